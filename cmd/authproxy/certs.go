package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/authproxy/authproxy/certs"
)

func certsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "certs", Short: "Development certificates"}
	var dir, hosts string
	var validFor time.Duration
	gen := &cobra.Command{
		Use:   "generate",
		Short: "Write a CA, a server and a client certificate (ECDSA P-256; client CN root) for development and tests",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var hs []string
			for _, h := range strings.Split(hosts, ",") {
				if h = strings.TrimSpace(h); h != "" {
					hs = append(hs, h)
				}
			}
			if len(hs) == 0 {
				return fmt.Errorf("--hosts: at least one host name or IP")
			}
			if err := certs.Generate(dir, hs, validFor); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote ca.pem, ca.key, server.pem, server.key, client.pem, client.key in %s\n", dir)
			return nil
		},
	}
	gen.Flags().StringVar(&dir, "dir", "./certs", "output directory (created 0700; keys written 0600)")
	gen.Flags().StringVar(&hosts, "hosts", "localhost,127.0.0.1", "comma-separated DNS names and IPs for the server certificate")
	gen.Flags().DurationVar(&validFor, "valid-for", 365*24*time.Hour, "validity of the certificates")
	cmd.AddCommand(gen)
	return cmd
}
