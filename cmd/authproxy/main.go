// Command authproxy is an authentication and TLS-terminating proxy for
// Milvus and other gRPC services. See README.md.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	root := &cobra.Command{
		Use:           "authproxy",
		Short:         "Authentication and TLS-terminating proxy for Milvus and other gRPC services",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCmd(), versionCmd(), userCmd(), policyCmd(), apikeyCmd(), storeCmd(), certsCmd(), healthcheckCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "authproxy:", err)
		os.Exit(1)
	}
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "authproxy", version)
		},
	}
}
