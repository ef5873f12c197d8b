package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/authproxy/authproxy/credentials"
)

func apikeyCmd() *cobra.Command {
	var sf storeFlags
	cmd := &cobra.Command{
		Use:   "apikey",
		Short: "Manage API keys in the credential store (only their SHA-256 digest is stored)",
	}
	sf.register(cmd)

	var user, expires string
	create := &cobra.Command{
		Use:   "create NAME --user USER [--expires 30d]",
		Short: "Create an API key acting as USER; the key is printed once, on stdout",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lifetime, err := parseLifetime(expires)
			if err != nil {
				return err
			}
			key, err := credentials.NewAPIKey()
			if err != nil {
				return err
			}
			now := time.Now().UTC()
			err = sf.update(func(s *credentials.Set) error {
				if _, exists := s.User(user); !exists {
					return fmt.Errorf("user not found: %s", user)
				}
				for _, k := range s.APIKeys() {
					if k.Name == args[0] {
						return fmt.Errorf("api key already exists: %s", args[0])
					}
				}
				k := &credentials.APIKey{Name: args[0], User: user, Digest: credentials.APIKeyDigest(key), Created: now}
				if lifetime > 0 {
					k.Expires = now.Add(lifetime)
				}
				return s.PutAPIKey(k)
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), key)
			return nil
		},
	}
	create.Flags().StringVar(&user, "user", credentials.RootUser, "the user the key acts as")
	create.Flags().StringVar(&expires, "expires", "", "lifetime, such as 90d, 12h or 30m; empty: never expires")

	rotate := &cobra.Command{
		Use:   "rotate NAME",
		Short: "Replace an API key's secret: the new key is printed once; the old one stops working at once",
		Long: `Replace an API key's secret. The key keeps its name and user; a key that
expires gets its lifetime again from now. The old secret is refused from the
next call on (a running proxy follows the store).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := credentials.NewAPIKey()
			if err != nil {
				return err
			}
			now := time.Now().UTC()
			err = sf.update(func(s *credentials.Set) error {
				var old *credentials.APIKey
				for _, k := range s.APIKeys() {
					if k.Name == args[0] {
						old = k
					}
				}
				if old == nil {
					return fmt.Errorf("api key not found: %s", args[0])
				}
				next := &credentials.APIKey{Name: old.Name, User: old.User, Digest: credentials.APIKeyDigest(key), Created: now}
				if !old.Expires.IsZero() {
					next.Expires = now.Add(old.Expires.Sub(old.Created))
				}
				return s.PutAPIKey(next)
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), key)
			return nil
		},
	}

	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke an API key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sf.update(func(s *credentials.Set) error {
				if !s.DeleteAPIKey(args[0]) {
					return fmt.Errorf("api key not found: %s", args[0])
				}
				return nil
			})
		},
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List API keys (names and users, never the keys)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, done, err := sf.open()
			if err != nil {
				return err
			}
			defer done()
			var rows [][]string
			for _, k := range store.Current().APIKeys() {
				expires := "never"
				switch {
				case k.Expired(time.Now()):
					expires = "expired " + k.Expires.Format(time.RFC3339)
				case !k.Expires.IsZero():
					expires = k.Expires.Format(time.RFC3339)
				}
				rows = append(rows, []string{k.Name, k.User, k.Created.Format(time.RFC3339), expires})
			}
			return table(cmd.OutOrStdout(), "NAME\tUSER\tCREATED\tEXPIRES", rows)
		},
	}
	cmd.AddCommand(create, rotate, revoke, list)
	return cmd
}

// parseLifetime reads a key's lifetime: a Go duration, or a number of days
// ("30d"). Empty is no expiry.
func parseLifetime(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("--expires %q: want a positive number of days (30d) or a duration (12h)", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--expires %q: want a positive number of days (30d) or a duration (12h)", s)
	}
	return d, nil
}
