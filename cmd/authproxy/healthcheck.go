package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

func healthcheckCmd() *cobra.Command {
	var addr, path string
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 if the proxy's admin listener answers healthy, 1 otherwise (for Docker HEALTHCHECK)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client := &http.Client{Timeout: 3 * time.Second}
			resp, err := client.Get("http://" + addr + path)
			if err != nil {
				return fmt.Errorf("healthcheck: %w", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("healthcheck: %s answered %s", path, resp.Status)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "ok")
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "admin", "127.0.0.1:9091", "the proxy's admin listener, host:port")
	cmd.Flags().StringVar(&path, "path", "/healthz", "endpoint to check: /healthz (alive) or /readyz (ready)")
	return cmd
}
