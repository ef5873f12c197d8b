package deploy

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/authproxy/authproxy/config"
)

const chartDir = "../../deploy/helm/authproxy"

// renderChart renders the chart with Helm's own engine, over the values of
// valuesFile ("" for the defaults; a bare name is in the chart's
// directory), into one file per template.
func renderChart(t *testing.T, valuesFile string) (map[string][]byte, error) {
	t.Helper()
	vals := map[string]any{}
	if valuesFile != "" {
		vals = readValues(t, valuesFile)
	}
	return renderValues(t, vals)
}

func readValues(t *testing.T, valuesFile string) map[string]any {
	t.Helper()
	if !strings.Contains(valuesFile, "/") {
		valuesFile = filepath.Join(chartDir, valuesFile)
	}
	data, err := os.ReadFile(valuesFile)
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]any{}
	if err := sigsyaml.Unmarshal(data, &vals); err != nil {
		t.Fatalf("%s: %v", valuesFile, err)
	}
	return vals
}

func renderValues(t *testing.T, vals map[string]any) (map[string][]byte, error) {
	t.Helper()
	chart, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
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

// valuesCases are the defaults, every values file of the chart, and the
// test's own (testdata/chart-*.yaml: every optional object on).
func valuesCases(t *testing.T) []string {
	t.Helper()
	chartFiles, _ := filepath.Glob(filepath.Join(chartDir, "values-*.yaml"))
	own, _ := filepath.Glob("testdata/chart-*.yaml")
	cases := []string{""}
	for _, f := range chartFiles {
		cases = append(cases, filepath.Base(f))
	}
	cases = append(cases, own...)
	if len(chartFiles) < 3 || len(own) < 1 {
		t.Fatalf("values files: %v", cases)
	}
	return cases
}

func caseName(valuesFile string) string {
	if valuesFile == "" {
		return "defaults"
	}
	return filepath.Base(valuesFile)
}

// rendered is the chart's objects for one set of values, by kind.
type rendered struct {
	deploy    *appsv1.Deployment
	config    *config.Config
	configMap *corev1.ConfigMap
	pdb       *policyv1.PodDisruptionBudget
	pvc       *corev1.PersistentVolumeClaim
	policy    *networkingv1.NetworkPolicy
	services  map[string]*corev1.Service
	secrets   map[string]*corev1.Secret
	monitor   *monitoringv1.ServiceMonitor
	ingress   *networkingv1.Ingress
	hpa       *autoscalingv2.HorizontalPodAutoscaler
	account   *corev1.ServiceAccount
}

func decodeChart(t *testing.T, files map[string][]byte) *rendered {
	t.Helper()
	r := &rendered{services: map[string]*corev1.Service{}, secrets: map[string]*corev1.Secret{}}
	for name, data := range files {
		objs, err := decodeManifests(name, data)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			switch o := o.(type) {
			case *appsv1.Deployment:
				r.deploy = o
			case *corev1.ConfigMap:
				r.configMap = o
			case *policyv1.PodDisruptionBudget:
				r.pdb = o
			case *corev1.PersistentVolumeClaim:
				r.pvc = o
			case *networkingv1.NetworkPolicy:
				r.policy = o
			case *corev1.Service:
				r.services[o.Name] = o
			case *corev1.Secret:
				r.secrets[o.Name] = o
			case *monitoringv1.ServiceMonitor:
				r.monitor = o
			case *networkingv1.Ingress:
				r.ingress = o
			case *autoscalingv2.HorizontalPodAutoscaler:
				r.hpa = o
			case *corev1.ServiceAccount:
				r.account = o
			}
		}
	}
	if r.deploy == nil || r.configMap == nil {
		t.Fatal("no Deployment or ConfigMap rendered")
	}
	cfg, err := parseProxyConfig(r.configMap.Data["authproxy.yaml"])
	if err != nil {
		t.Fatalf("the rendered authproxy.yaml: %v\n%s", err, r.configMap.Data["authproxy.yaml"])
	}
	r.config = cfg
	return r
}

// helm lint --strict (warnings fail too), as the CLI runs it, for every
// set of values.
func TestHelmLintStrict(t *testing.T) {
	for _, vf := range valuesCases(t) {
		t.Run("values="+caseName(vf), func(t *testing.T) {
			vals := map[string]any{}
			if vf != "" {
				vals = readValues(t, vf)
			}
			// What `helm lint --strict` runs (helm's action.Lint with
			// Strict: a warning fails as an error does).
			res := lint.All(chartDir, vals, "default", false)
			for _, m := range res.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint --strict: %s", m)
				}
			}
		})
	}
}

// The chart renders, for the defaults and every values file, into objects
// that decode strictly into their Kubernetes types, whose authproxy config
// the product's own config package accepts, and that keep the examples'
// invariants (probes, least privilege, whole-directory mounts, only the
// client port exposed, the admin port only to the scraper).
func TestHelmChartRendersForEveryValuesFile(t *testing.T) {
	for _, vf := range valuesCases(t) {
		t.Run("values="+caseName(vf), func(t *testing.T) {
			files, err := renderChart(t, vf)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkKubernetes(files); err != nil {
				t.Fatal(err)
			}
			r := decodeChart(t, files)
			replicas := int32(0)
			if r.deploy.Spec.Replicas != nil {
				replicas = *r.deploy.Spec.Replicas
			}
			if (replicas > 1 || r.hpa != nil) != (r.pdb != nil) {
				t.Errorf("%d replicas (HPA %v) with PodDisruptionBudget %v", replicas, r.hpa != nil, r.pdb != nil)
			}
			if (r.hpa != nil) == (r.deploy.Spec.Replicas != nil) {
				t.Errorf("HPA %v and Deployment replicas %v: one or the other", r.hpa != nil, r.deploy.Spec.Replicas)
			}
			// Root never starts as root:Milvus: its first password is a
			// mounted Secret's, one the chart generates unless given one.
			if r.config.Common.Security.DefaultRootPasswordFile == "" {
				t.Error("root's first password is not from a Secret")
			}
			switch vf {
			case "testdata/chart-everything.yaml":
				if r.account == nil || r.deploy.Spec.Template.Spec.ServiceAccountName != r.account.Name {
					t.Errorf("ServiceAccount %v, the pods use %q", r.account, r.deploy.Spec.Template.Spec.ServiceAccountName)
				}
				client := r.services["milvus-authproxy"]
				if r.ingress == nil || client == nil || len(r.ingress.Spec.Rules) != 1 {
					t.Fatalf("Ingress %v, client Service %v", r.ingress, client)
				}
				b := r.ingress.Spec.Rules[0].HTTP.Paths[0].Backend.Service
				if b.Name != client.Name || b.Port.Number != client.Spec.Ports[0].Port {
					t.Errorf("the Ingress goes to %s:%d, not the client Service", b.Name, b.Port.Number)
				}
				if client.Spec.Ports[0].NodePort != 31953 || !slices.Equal(client.Spec.LoadBalancerSourceRanges, []string{"10.0.0.0/8"}) {
					t.Errorf("client Service: %+v", client.Spec)
				}
			case "values-etcd.yaml":
				if replicas != 3 || r.pvc != nil {
					t.Errorf("etcd values: %d replicas, PVC %v", replicas, r.pvc != nil)
				}
				env := r.deploy.Spec.Template.Spec.Containers[0].Env
				if !slices.ContainsFunc(env, func(e corev1.EnvVar) bool {
					return e.Name == "ETCD_PASSWORD" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
				}) {
					t.Error("the etcd password does not come from a Secret")
				}
			case "values-milvus.yaml":
				e := r.config.Credentials.Etcd
				if r.config.Credentials.Store != config.StoreEtcd || !slices.Equal(e.Endpoints, []string{"milvus-etcd:2379"}) || e.TLS != nil || e.Username != "" {
					t.Errorf("Milvus chart's default etcd: %+v", e)
				}
				if r.config.Backend.Address != "milvus:19530" {
					t.Errorf("backend %q", r.config.Backend.Address)
				}
				if _, ok := r.secrets["milvus-authproxy-root"]; !ok {
					t.Errorf("no generated root password Secret: %v", slices.Collect(maps.Keys(r.secrets)))
				}
			}
		})
	}
}

// The admin listener serves the probes and the metrics on an address a
// scraper reaches; a metrics Service exposes it, the NetworkPolicy admits
// it from metrics.from only, and the ServiceMonitor scrapes that Service's
// port. (Before: the policy admitted the client port only, and there was no
// metrics Service nor ServiceMonitor.)
func TestHelmChartMetricsReachPrometheus(t *testing.T) {
	files, err := renderChart(t, "testdata/chart-everything.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := decodeChart(t, files)
	if h := host(r.config.Admin.Listen); h != "0.0.0.0" {
		t.Errorf("admin.listen %q: a scraper cannot reach it", r.config.Admin.Listen)
	}
	svc := r.services["milvus-authproxy-metrics"]
	if svc == nil || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].TargetPort.String() != "admin" {
		t.Fatalf("metrics Service: %+v", svc)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(r.deploy.Spec.Template.Labels)) {
		t.Error("the metrics Service does not select the pods")
	}
	var admitted []networkingv1.NetworkPolicyPeer
	for _, rule := range r.policy.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port.String() == "admin" {
				admitted = append(admitted, rule.From...)
			}
		}
	}
	if len(admitted) != 1 || admitted[0].PodSelector == nil || admitted[0].PodSelector.MatchLabels["app.kubernetes.io/name"] != "prometheus" {
		t.Errorf("the NetworkPolicy admits the metrics port from %+v, want metrics.from", admitted)
	}
	m := r.monitor
	if m == nil || len(m.Spec.Endpoints) != 1 || m.Spec.Endpoints[0].Port != "metrics" || m.Spec.Endpoints[0].Path != "/metrics" {
		t.Fatalf("ServiceMonitor: %+v", m)
	}
	if !labels.SelectorFromSet(m.Spec.Selector.MatchLabels).Matches(labels.Set(svc.Labels)) {
		t.Error("the ServiceMonitor does not select the metrics Service")
	}
	if m.Labels["release"] != "prometheus" {
		t.Errorf("metrics.serviceMonitor.additionalLabels not on the ServiceMonitor: %v", m.Labels)
	}

	// metrics.enabled false: no Service, no port in the policy.
	vals := readValues(t, "testdata/chart-everything.yaml")
	vals["metrics"] = map[string]any{"enabled": false}
	files, err = renderValues(t, vals)
	if err != nil {
		t.Fatal(err)
	}
	r = decodeChart(t, files)
	if r.services["milvus-authproxy-metrics"] != nil || r.monitor != nil || len(r.policy.Spec.Ingress) != 1 {
		t.Errorf("metrics off: Service %v, ServiceMonitor %v, %d policy rules", r.services["milvus-authproxy-metrics"] != nil, r.monitor != nil, len(r.policy.Spec.Ingress))
	}
}

// A CA-only etcd TLS Secret (etcd does not ask for a client certificate):
// the config names the CA and no client certificate, so the replicas start
// (before: tls.crt and tls.key were always written, and every replica
// exited 1 on the missing files). With clientCertificate, both are named.
func TestHelmChartEtcdTLSWithACAOnly(t *testing.T) {
	for _, clientCert := range []bool{false, true} {
		vals := readValues(t, "values-milvus.yaml")
		vals["store"].(map[string]any)["etcd"].(map[string]any)["tls"] = map[string]any{"secret": "etcd-ca", "clientCertificate": clientCert}
		files, err := renderValues(t, vals)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkKubernetes(files); err != nil {
			t.Fatal(err)
		}
		tls := decodeChart(t, files).config.Credentials.Etcd.TLS
		if tls == nil || tls.CAFile != "/etc/authproxy-etcd/ca.crt" {
			t.Fatalf("clientCertificate %v: etcd TLS %+v, want the CA from the Secret", clientCert, tls)
		}
		if got := tls.CertFile != "" || tls.KeyFile != ""; got != clientCert {
			t.Errorf("clientCertificate %v: certFile %q keyFile %q", clientCert, tls.CertFile, tls.KeyFile)
		}
	}
}

// extraConfigFiles reaches every key: merged key by key over the chart's
// config, false and 0 included (which sprig's mergeOverwrite would drop),
// lists replaced; the values' common.security keys land where milvus.yaml
// has them; a file that is not YAML is refused, naming it.
func TestHelmChartExtraConfigFiles(t *testing.T) {
	vals := readValues(t, "values-milvus.yaml")
	vals["common"] = map[string]any{"security": map[string]any{"superUsers": "alice", "enablePublicPrivilege": false}}
	vals["log"] = map[string]any{"level": "debug"}
	vals["extraConfigFiles"] = map[string]any{
		"a.yaml": "cache:\n  size: 77\n  ttl: 1m\nauth:\n  bruteForce:\n    enabled: false\n",
		"b.yaml": "credentials:\n  etcd:\n    requestTimeout: 2s\n    endpoints: [\"etcd-a:2379\", \"etcd-b:2379\"]\ngrpc:\n  maxRecvMsgSize: 134217728\n",
	}
	files, err := renderValues(t, vals)
	if err != nil {
		t.Fatal(err)
	}
	cfg := decodeChart(t, files).config
	if cfg.Cache.Size != 77 || cfg.Cache.TTL != time.Minute || cfg.Auth.BruteForce.Enabled {
		t.Errorf("cache %+v, bruteForce.enabled %v", cfg.Cache, cfg.Auth.BruteForce.Enabled)
	}
	if cfg.Credentials.Etcd.RequestTimeout != 2*time.Second || !slices.Equal(cfg.Credentials.Etcd.Endpoints, []string{"etcd-a:2379", "etcd-b:2379"}) || cfg.Credentials.Etcd.Prefix != "/authproxy/" {
		t.Errorf("etcd %+v", cfg.Credentials.Etcd)
	}
	if cfg.GRPC.MaxRecvMsgSize != 134217728 {
		t.Errorf("grpc.maxRecvMsgSize %d", cfg.GRPC.MaxRecvMsgSize)
	}
	if s := cfg.Common.Security; !slices.Equal([]string(s.SuperUsers), []string{"alice"}) || s.EnablePublicPrivilege || !s.AuthorizationEnabled || cfg.Log.Level != "debug" {
		t.Errorf("common.security %+v, log.level %q", s, cfg.Log.Level)
	}

	vals["extraConfigFiles"] = map[string]any{"broken.yaml": "cache: [unclosed\n"}
	if _, err := renderValues(t, vals); err == nil || !strings.Contains(err.Error(), "extraConfigFiles.broken.yaml is not YAML") {
		t.Fatalf("a broken extra config file: %v", err)
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
