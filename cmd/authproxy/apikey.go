package main

import (
	"fmt"
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
				return s.CreateAPIKey(args[0], user, credentials.APIKeyDigest(key), now, lifetime)
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
				return s.RotateAPIKey(args[0], credentials.APIKeyDigest(key), now)
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
					return fmt.Errorf("%w: %s", credentials.ErrAPIKeyNotFound, args[0])
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

// parseLifetime reads --expires (credentials.ParseLifetime).
func parseLifetime(s string) (time.Duration, error) {
	d, err := credentials.ParseLifetime(s)
	if err != nil {
		return 0, fmt.Errorf("--expires %w", err)
	}
	return d, nil
}
