package deploy

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

const chartDir = "../../deploy/helm/authproxy"

// renderChart renders the chart with Helm's own engine, over the values of
// valuesFile ("" for the defaults), into one file per template.
func renderChart(t *testing.T, valuesFile string) (map[string][]byte, error) {
	t.Helper()
	chart, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]any{}
	if valuesFile != "" {
		data, err := os.ReadFile(filepath.Join(chartDir, valuesFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := sigsyaml.Unmarshal(data, &vals); err != nil {
			t.Fatalf("%s: %v", valuesFile, err)
		}
	}
	rv, err := chartutil.ToRenderValues(chart, vals, chartutil.ReleaseOptions{Name: "milvus", Namespace: "default", IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	out, err := engine.Render(chart, rv)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for name, content := range out {
		if strings.HasSuffix(name, ".yaml") && strings.TrimSpace(content) != "" {
			files[name] = []byte(content)
		}
	}
	return files, nil
}

// The chart renders, for the defaults and every documented values file,
// into objects that decode strictly into their Kubernetes types, whose
// authproxy config the product's own config package accepts, and that keep
// the examples' invariants (probes, least privilege, whole-directory mounts,
// only the client port exposed).
func TestHelmChartRendersForEveryValuesFile(t *testing.T) {
	valuesFiles, _ := filepath.Glob(filepath.Join(chartDir, "values-*.yaml"))
	cases := []string{""}
	for _, f := range valuesFiles {
		cases = append(cases, filepath.Base(f))
	}
	if len(cases) < 3 {
		t.Fatalf("values files: %v", cases)
	}
	for _, vf := range cases {
		t.Run("values="+vf, func(t *testing.T) {
			files, err := renderChart(t, vf)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkKubernetes(files); err != nil {
				t.Fatal(err)
			}
			var d *appsv1.Deployment
			var pdb *policyv1.PodDisruptionBudget
			var pvc *corev1.PersistentVolumeClaim
			for name, data := range files {
				objs, err := decodeManifests(name, data)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range objs {
					switch o := o.(type) {
					case *appsv1.Deployment:
						d = o
					case *policyv1.PodDisruptionBudget:
						pdb = o
					case *corev1.PersistentVolumeClaim:
						pvc = o
					}
				}
			}
			replicas := *d.Spec.Replicas
			if (replicas > 1) != (pdb != nil) {
				t.Errorf("%d replicas with PodDisruptionBudget %v", replicas, pdb != nil)
			}
			if vf == "values-etcd.yaml" {
				if replicas != 3 || pvc != nil {
					t.Errorf("etcd values: %d replicas, PVC %v", replicas, pvc != nil)
				}
				env := d.Spec.Template.Spec.Containers[0].Env
				if !slices.ContainsFunc(env, func(e corev1.EnvVar) bool {
					return e.Name == "ETCD_PASSWORD" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
				}) {
					t.Error("the etcd password does not come from a Secret")
				}
			}
		})
	}
}

// Values that cannot work are refused at render time with a message.
func TestHelmChartRefusesManyReplicasOnAFile(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("replicaCount: 3\nstore:\n  type: file\n"), 0o600))
	chart, err := loader.Load(chartDir)
	must(err)
	var vals map[string]any
	data, _ := os.ReadFile(filepath.Join(dir, "bad.yaml"))
	must(sigsyaml.Unmarshal(data, &vals))
	rv, err := chartutil.ToRenderValues(chart, vals, chartutil.ReleaseOptions{Name: "x"}, chartutil.DefaultCapabilities)
	must(err)
	if _, err := engine.Render(chart, rv); err == nil || !strings.Contains(err.Error(), "store.type file serves one replica only") {
		t.Fatal(fmt.Sprint("3 replicas on a file: ", err))
	}
}

var updateExample = flag.Bool("update-example", false, "rewrite examples/kubernetes/three-replicas-etcd.yaml from the chart")

// The plain-manifest example of three replicas on Milvus's etcd is the
// chart rendered with values-etcd.yaml, so the two never drift apart; it is
// also checked with the other examples (TestKubernetesManifests).
func TestThreeReplicaExampleIsTheChartRendered(t *testing.T) {
	files, err := renderChart(t, "values-etcd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString("# Three authproxy replicas in front of an existing Milvus, sharing users and\n" +
		"# grants through Milvus's etcd: deploy/helm/authproxy rendered with\n" +
		"# values-etcd.yaml (release \"milvus\"). Regenerate with\n" +
		"# `cd test && go test ./deploy -run ThreeReplica -update-example`.\n")
	for _, n := range names {
		b.WriteString("---\n# " + filepath.Base(n) + "\n")
		b.WriteString(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(files[n])), "---")) + "\n")
	}
	path := filepath.Join(kubeDir, "three-replicas-etcd.yaml")
	if *updateExample {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := string(readFile(t, path)); got != b.String() {
		t.Fatalf("%s differs from the chart rendered with values-etcd.yaml; run with -update-example", path)
	}
}
