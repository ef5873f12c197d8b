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

	var user string
	create := &cobra.Command{
		Use:   "create NAME --user USER",
		Short: "Create an API key acting as USER; the key is printed once, on stdout",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := credentials.NewAPIKey()
			if err != nil {
				return err
			}
			err = sf.update(func(s *credentials.Set) error {
				if _, exists := s.User(user); !exists {
					return fmt.Errorf("user not found: %s", user)
				}
				for _, k := range s.APIKeys() {
					if k.Name == args[0] {
						return fmt.Errorf("api key already exists: %s", args[0])
					}
				}
				return s.PutAPIKey(&credentials.APIKey{Name: args[0], User: user, Digest: credentials.APIKeyDigest(key), Created: time.Now().UTC()})
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), key)
			return nil
		},
	}
	create.Flags().StringVar(&user, "user", credentials.RootUser, "the user the key acts as")

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
				rows = append(rows, []string{k.Name, k.User, k.Created.Format(time.RFC3339)})
			}
			return table(cmd.OutOrStdout(), "NAME\tUSER\tCREATED", rows)
		},
	}
	cmd.AddCommand(create, revoke, list)
	return cmd
}
