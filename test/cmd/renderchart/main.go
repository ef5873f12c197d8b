// Command renderchart renders the Helm chart deploy/helm/authproxy as
// `helm template` would, with Helm's own Go packages, for the container
// test (test/container/helm.sh) that runs the result with podman kube play:
//
//	renderchart -release milvus-auth -f values-milvus.yaml -f overrides.yaml > out.yaml
//
// Values files are merged in order, later keys winning, as helm's -f.
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	sigsyaml "sigs.k8s.io/yaml"
)

type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

func main() {
	chartDir := flag.String("chart", "deploy/helm/authproxy", "the chart's directory")
	release := flag.String("release", "authproxy", "the release's name")
	namespace := flag.String("namespace", "default", "the release's namespace")
	var valueFiles files
	flag.Var(&valueFiles, "f", "a values file (repeatable)")
	flag.Parse()
	if err := render(os.Stdout, *chartDir, *release, *namespace, valueFiles); err != nil {
		fmt.Fprintln(os.Stderr, "renderchart:", err)
		os.Exit(1)
	}
}

func render(out *os.File, chartDir, release, namespace string, valueFiles []string) error {
	chart, err := loader.Load(chartDir)
	if err != nil {
		return err
	}
	vals := map[string]any{}
	for _, f := range valueFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		next := map[string]any{}
		if err := sigsyaml.Unmarshal(data, &next); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		vals = chartutil.CoalesceTables(next, vals)
	}
	rv, err := chartutil.ToRenderValues(chart, vals, chartutil.ReleaseOptions{Name: release, Namespace: namespace, IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		return err
	}
	rendered, err := engine.Render(chart, rv)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(rendered))
	for n, content := range rendered {
		if strings.HasSuffix(n, ".yaml") && strings.TrimSpace(content) != "" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(out, "---\n# Source: %s\n%s\n", n, strings.TrimSpace(rendered[n]))
	}
	return nil
}
