package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/authproxy/authproxy/config"
	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/server"
)

func storeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "store", Short: "The credential store as a whole"}
	var configPath, from, to string
	copyCmd := &cobra.Command{
		Use:   "copy --from FILE|etcd --to FILE|etcd",
		Short: "Copy every user, API key, role, grant and group from one store to the other",
		Long: `Copy the whole credential store, for example from the file of a single
replica to the etcd store of many (credentials.etcd of --config), or back.
The destination becomes an exact copy; copying again changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (from == "etcd") == (to == "etcd") {
				return errors.New("copy between a file and etcd: one of --from and --to is etcd, the other a file")
			}
			cfg, err := config.Read(configPath, func(c *config.Config) { c.Credentials.Store = config.StoreEtcd })
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			etcd, err := server.OpenEtcdStoreAsIs(ctx, cfg, logger)
			if err != nil {
				return err
			}
			defer etcd.Close()
			var src, dst credentials.Store = etcd, nil
			file := to
			if to == "etcd" {
				file = from
			}
			// A source file must exist; a destination file may be created.
			fs, err := credentials.OpenFile(file, credentials.FileOptions{MustExist: to == "etcd", Logger: logger})
			if err != nil {
				return err
			}
			if to == "etcd" {
				src, dst = fs, etcd
			} else {
				dst = fs
			}
			set := src.Current()
			if err := dst.Update(ctx, func(s *credentials.Set) error { s.ReplaceWith(set); return nil }); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "copied %d users, %d API keys, %d roles, %d grants, %d privilege groups, %d row policies from %s to %s\n",
				len(set.Users()), len(set.APIKeys()), len(set.Roles()), len(set.Grants()), len(set.PrivilegeGroups()), len(set.AllRowPolicies()), from, to)
			return nil
		},
	}
	copyCmd.Flags().StringVarP(&configPath, "config", "c", "", "config file whose credentials.etcd names the etcd store")
	copyCmd.Flags().StringVar(&from, "from", "", "a credential file, or etcd")
	copyCmd.Flags().StringVar(&to, "to", "", "a credential file, or etcd")
	_ = copyCmd.MarkFlagRequired("from")
	_ = copyCmd.MarkFlagRequired("to")
	cmd.AddCommand(copyCmd)
	return cmd
}
