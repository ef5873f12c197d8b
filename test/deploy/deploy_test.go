// Package deploy validates the Dockerfile and the deployment examples offline:
// every manifest strictly decoded into its real schema, the security and
// wiring invariants the READMEs promise, and each authproxy config loaded by
// the product's own config package. Each check is also shown to fail.
package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/authproxy/authproxy/config"
)

const (
	repoRoot      = "../.."
	proxyName     = "authproxy"
	adminPort     = "9091"
	clientPort    = "19530"
	credentialDir = "/var/lib/authproxy"
)

var (
	kubeDir    = filepath.Join(repoRoot, "examples", "kubernetes")
	composeDir = filepath.Join(repoRoot, "examples", "docker-compose")
	dockerfile = filepath.Join(repoRoot, "Dockerfile")
)

// --- Kubernetes -------------------------------------------------------------

// kinds maps apiVersion/kind to the k8s.io/api type a manifest must decode into.
var kinds = map[string]func() any{
	"apps/v1/Deployment":                      func() any { return &appsv1.Deployment{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"v1/Secret":                               func() any { return &corev1.Secret{} },
	"v1/ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"v1/PersistentVolumeClaim":                func() any { return &corev1.PersistentVolumeClaim{} },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return &networkingv1.NetworkPolicy{} },
	"policy/v1/PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"v1/ServiceAccount":                       func() any { return &corev1.ServiceAccount{} },
	"networking.k8s.io/v1/Ingress":            func() any { return &networkingv1.Ingress{} },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &monitoringv1.ServiceMonitor{} },
}

// decodeManifests strictly decodes every YAML document: duplicate keys and
// unknown fields (case-sensitive, as the API server) are errors.
func decodeManifests(name string, data []byte) ([]any, error) {
	var objs []any
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		js, err := sigsyaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, fmt.Errorf("%s document %d: %w", name, i, err)
		}
		if string(js) == "null" {
			continue // comments only
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(js, &tm); err != nil {
			return nil, fmt.Errorf("%s document %d: %w", name, i, err)
		}
		newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
		if !ok {
			return nil, fmt.Errorf("%s document %d: unsupported apiVersion/kind %s/%s", name, i, tm.APIVersion, tm.Kind)
		}
		obj := newObj()
		strict, err := kjson.UnmarshalStrict(js, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
		if err == nil && len(strict) > 0 {
			err = errors.Join(strict...)
		}
		if err != nil {
			return nil, fmt.Errorf("%s document %d (%s): %w", name, i, tm.Kind, err)
		}
		objs = append(objs, obj)
	}
}

// checkKubernetes decodes all files and checks every Deployment against the
// ConfigMaps, Services and NetworkPolicies of the other files.
func checkKubernetes(files map[string][]byte) error {
	var (
		errs     []error
		deploys  []*appsv1.Deployment
		services []*corev1.Service
		policies []*networkingv1.NetworkPolicy
		cms      = map[string]*corev1.ConfigMap{}
	)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		objs, err := decodeManifests(n, files[n])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, o := range objs {
			switch o := o.(type) {
			case *appsv1.Deployment:
				deploys = append(deploys, o)
			case *corev1.Service:
				services = append(services, o)
			case *networkingv1.NetworkPolicy:
				policies = append(policies, o)
			case *corev1.ConfigMap:
				cms[o.Name] = o
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if len(deploys) == 0 {
		return errors.New("no Deployment")
	}
	for _, d := range deploys {
		if err := checkDeployment(d, cms, services, policies); err != nil {
			errs = append(errs, fmt.Errorf("deployment %s: %w", d.Name, err))
		}
	}
	return errors.Join(errs...)
}

func checkDeployment(d *appsv1.Deployment, cms map[string]*corev1.ConfigMap, services []*corev1.Service, policies []*networkingv1.NetworkPolicy) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	pod := d.Spec.Template.Spec
	i := slices.IndexFunc(pod.Containers, func(c corev1.Container) bool { return c.Name == proxyName })
	if i < 0 {
		return fmt.Errorf("no container %q", proxyName)
	}
	proxy := pod.Containers[i]

	// Probes: the admin listener, alive and ready.
	for _, p := range []struct {
		kind, path string
		probe      *corev1.Probe
	}{{"liveness", "/healthz", proxy.LivenessProbe}, {"readiness", "/readyz", proxy.ReadinessProbe}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			bad("%s probe: want httpGet %s on %s", p.kind, p.path, adminPort)
			continue
		}
		port, _ := containerPort(proxy, p.probe.HTTPGet.Port)
		if p.probe.HTTPGet.Path != p.path || strconv.Itoa(int(port)) != adminPort {
			bad("%s probe: %s on port %v, want %s on %s", p.kind, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path, adminPort)
		}
	}

	// Least privilege for the proxy.
	sc := proxy.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	psc := pod.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	runAsNonRoot := sc.RunAsNonRoot
	if runAsNonRoot == nil {
		runAsNonRoot = psc.RunAsNonRoot
	}
	if runAsNonRoot == nil || !*runAsNonRoot {
		bad("authproxy: runAsNonRoot must be true")
	}
	if uid := sc.RunAsUser; uid != nil && *uid == 0 || uid == nil && psc.RunAsUser != nil && *psc.RunAsUser == 0 {
		bad("authproxy: runAsUser 0")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		bad("authproxy: readOnlyRootFilesystem must be true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		bad("authproxy: allowPrivilegeEscalation must be false")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		bad("authproxy: capabilities must drop ALL")
	}
	for _, c := range pod.Containers {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[r]; !ok {
				bad("container %s: no %s request", c.Name, r)
			}
			if _, ok := c.Resources.Limits[r]; !ok {
				bad("container %s: no %s limit", c.Name, r)
			}
		}
	}

	// Mounts: whole directories only, since subPath mounts never see updates.
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range proxy.VolumeMounts {
		if m.SubPath != "" || m.SubPathExpr != "" {
			bad("authproxy mount %s uses subPath: it would never be reloaded", m.MountPath)
		}
		mounts[m.MountPath] = m
	}
	mountFor := func(file string) (corev1.VolumeMount, corev1.Volume, bool) {
		m, ok := mounts[path.Dir(file)]
		return m, volumes[m.Name], ok
	}

	// The proxy's config: a ConfigMap mounted as a directory, valid for the product.
	ci := slices.Index(proxy.Args, "--config")
	if ci < 0 || ci+1 >= len(proxy.Args) {
		bad("authproxy args %q: no --config FILE", proxy.Args)
		return errors.Join(errs...)
	}
	cfgPath := proxy.Args[ci+1]
	_, vol, ok := mountFor(cfgPath)
	if !ok || vol.ConfigMap == nil || cms[vol.ConfigMap.Name] == nil {
		bad("config %s: not in a mounted ConfigMap", cfgPath)
		return errors.Join(errs...)
	}
	cfg, err := parseProxyConfig(cms[vol.ConfigMap.Name].Data[path.Base(cfgPath)])
	if err != nil {
		bad("ConfigMap %s: %w", vol.ConfigMap.Name, err)
		return errors.Join(errs...)
	}
	if port(cfg.Admin.Listen) != adminPort {
		bad("admin.listen %q: the probes use port %s", cfg.Admin.Listen, adminPort)
	}
	if h := host(cfg.Admin.Listen); h == "127.0.0.1" || h == "localhost" {
		bad("admin.listen %q: the kubelet's probes cannot reach loopback", cfg.Admin.Listen)
	}
	if h := host(cfg.Backend.Address); (h == "127.0.0.1" || h == "localhost") && (port(cfg.Backend.Address) == port(cfg.Listen) || port(cfg.Backend.Address) == adminPort) {
		bad("backend.address %q: the pod's Milvus cannot bind the proxy's own port", cfg.Backend.Address)
	}
	if cfg.Credentials.Store == config.StoreEtcd {
		// Shared by every replica through etcd: no file to mount.
	} else if m, v, ok := mountFor(cfg.Credentials.File); !ok {
		bad("credentials.file %s: no volume mounted at its directory", cfg.Credentials.File)
	} else if v.Secret != nil && !m.ReadOnly || v.Secret == nil && v.PersistentVolumeClaim == nil {
		bad("credentials.file %s: want a read-only Secret or a PersistentVolumeClaim", cfg.Credentials.File)
	}
	if t := cfg.Credentials.Etcd.TLS; cfg.Credentials.Store == config.StoreEtcd && t != nil {
		for _, f := range []string{t.CAFile, t.CertFile, t.KeyFile} {
			if _, v, ok := mountFor(f); f != "" && (!ok || v.Secret == nil) {
				bad("credentials.etcd.tls file %s: not in a mounted Secret", f)
			}
		}
	}
	if f := cfg.Common.Security.DefaultRootPasswordFile; f != "" {
		if _, v, ok := mountFor(f); !ok || v.Secret == nil {
			bad("common.security.defaultRootPasswordFile %s: not in a mounted Secret", f)
		}
	}
	if cfg.TLS != nil {
		for _, f := range []string{cfg.TLS.CertFile, cfg.TLS.KeyFile} {
			if _, v, ok := mountFor(f); !ok || v.Secret == nil {
				bad("tls file %s: not in a mounted Secret", f)
			}
		}
	}

	// Only the proxy's client port leaves the pod.
	podLabels := labels.Set(d.Spec.Template.Labels)
	selected := 0
	for _, s := range services {
		if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) {
			continue
		}
		selected++
		for _, sp := range s.Spec.Ports {
			target := sp.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(sp.Port)
			}
			p, ok := containerPort(proxy, target)
			switch {
			case ok && strconv.Itoa(int(p)) == port(cfg.Listen):
			case ok && strconv.Itoa(int(p)) == port(cfg.Admin.Listen) && sp.Name == "metrics":
				// The metrics Service: the scraper's way in; the
				// NetworkPolicy says who may use it.
			default:
				bad("service %s port %d: targets %s, not authproxy's client port %s", s.Name, sp.Port, target.String(), port(cfg.Listen))
			}
		}
	}
	if selected == 0 {
		bad("no Service selects the pod")
	}
	guarded := 0
	for _, np := range policies {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(podLabels) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			continue
		}
		guarded++
		for _, rule := range np.Spec.Ingress {
			if len(rule.Ports) == 0 {
				bad("networkpolicy %s: an ingress rule without ports admits Milvus's own ports", np.Name)
			}
			for _, p := range rule.Ports {
				switch v := p.Port.String(); {
				case v == port(cfg.Listen) || v == "grpc":
				case v == adminPort || v == "admin":
					if len(rule.From) == 0 {
						bad("networkpolicy %s: admin port %s open to every source", np.Name, v)
					}
				default:
					bad("networkpolicy %s: admits port %s", np.Name, v)
				}
			}
		}
	}
	if guarded == 0 {
		bad("no ingress NetworkPolicy selects the pod")
	}
	return errors.Join(errs...)
}

// containerPort resolves a probe or Service target (number or name) against c's ports.
func containerPort(c corev1.Container, p intstr.IntOrString) (int32, bool) {
	for _, cp := range c.Ports {
		if p.Type == intstr.String && cp.Name == p.StrVal || p.Type == intstr.Int && cp.ContainerPort == p.IntVal {
			return cp.ContainerPort, true
		}
	}
	if p.Type == intstr.Int {
		return p.IntVal, false
	}
	return 0, false
}

// --- authproxy configuration --------------------------------------------------

// parseProxyConfig applies the product's own rules: unknown keys and bad values fail.
func parseProxyConfig(data string) (*config.Config, error) {
	if strings.TrimSpace(data) == "" {
		return nil, errors.New("empty authproxy config")
	}
	cfg, err := config.Parse([]byte(data))
	if err != nil {
		return nil, err
	}
	return cfg, cfg.Validate()
}

func loadProxyConfig(file string) (*config.Config, error) {
	cfg, err := config.Load(file)
	if err != nil {
		return nil, err
	}
	return cfg, cfg.Validate()
}

func host(addr string) string { h, _, _ := net.SplitHostPort(addr); return h }
func port(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }

// --- Docker Compose ---------------------------------------------------------

// loadCompose loads with schema validation and consistency checks on; any
// ${VAR} is reported, as the example must not depend on the caller's environment.
func loadCompose(content []byte) (*types.Project, error) {
	var lookups []string
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  composeDir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(composeDir, "docker-compose.yml"), Content: content}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) {
		o.SetProjectName("deploytest", true)
		o.Interpolate.LookupValue = func(k string) (string, bool) {
			lookups = append(lookups, k)
			return "", false
		}
	})
	if err != nil {
		return nil, err
	}
	if len(lookups) > 0 {
		return nil, fmt.Errorf("interpolates %v from the environment", lookups)
	}
	return p, nil
}

func checkCompose(content []byte) error {
	p, err := loadCompose(content)
	if err != nil {
		return err
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	proxy, ok := p.Services[proxyName]
	if !ok {
		return fmt.Errorf("no service %s", proxyName)
	}
	for name, s := range p.Services {
		if name != proxyName && len(s.Ports) > 0 {
			bad("service %s publishes ports %v: only authproxy may", name, s.Ports)
		}
	}
	var client bool
	for _, pt := range proxy.Ports {
		switch strconv.Itoa(int(pt.Target)) {
		case clientPort:
			client = true
		case adminPort:
			if pt.HostIP != "127.0.0.1" {
				bad("authproxy publishes %s on %q: host loopback only", adminPort, pt.HostIP)
			}
		default:
			bad("authproxy publishes unexpected port %d", pt.Target)
		}
	}
	if !client {
		bad("authproxy does not publish %s", clientPort)
	}
	var cfgFile string
	var creds bool
	for _, v := range proxy.Volumes {
		switch v.Target {
		case credentialDir:
			if _, declared := p.Volumes[v.Source]; v.Type != types.VolumeTypeVolume || !declared {
				bad("credentials %s: want a named volume, got %s %q", credentialDir, v.Type, v.Source)
			}
			creds = true
		case "/etc/authproxy":
			if fi, err := os.Stat(v.Source); v.Type != types.VolumeTypeBind || err != nil || !fi.IsDir() {
				bad("/etc/authproxy: want a bind-mounted directory, got %s %q", v.Type, v.Source)
			}
			cfgFile = filepath.Join(v.Source, "authproxy.yaml")
		default:
			if strings.HasPrefix(v.Target, "/etc/authproxy/") {
				bad("%s: a single-file mount is never reloaded; mount the directory /etc/authproxy", v.Target)
			}
		}
	}
	if !creds {
		bad("no volume at %s", credentialDir)
	}
	if cfgFile == "" {
		bad("no config directory mounted at /etc/authproxy")
	} else if cfg, err := loadProxyConfig(cfgFile); err != nil {
		bad("%w", err)
	} else if _, ok := p.Services[host(cfg.Backend.Address)]; !ok {
		bad("backend.address %q: not a service of the project", cfg.Backend.Address)
	} else if dep, ok := proxy.DependsOn[host(cfg.Backend.Address)]; !ok || dep.Condition != types.ServiceConditionHealthy {
		bad("authproxy must depend on %s being healthy", host(cfg.Backend.Address))
	}
	return errors.Join(errs...)
}

// --- Dockerfile ---------------------------------------------------------------

type instruction struct{ cmd, args string }

// parseDockerfile joins continuation lines and drops comments: enough for
// the checks below, not a full parser.
func parseDockerfile(data string) []instruction {
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(data, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "#") || t == "" && cur.Len() == 0 {
			continue
		}
		if strings.HasSuffix(t, "\\") {
			cur.WriteString(strings.TrimSuffix(t, "\\") + " ")
			continue
		}
		cur.WriteString(t)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// execForm decodes a JSON-array argument (ENTRYPOINT, CMD, HEALTHCHECK CMD).
func execForm(args string) []string {
	var v []string
	if json.Unmarshal([]byte(args), &v) != nil {
		return nil
	}
	return v
}

func checkDockerfile(data, goMod string) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	ins := parseDockerfile(data)
	var froms []string
	var lastUser, build, volume, expose, baked string
	var health, entry, cmd []string
	for _, in := range ins {
		switch in.cmd {
		case "FROM":
			froms = append(froms, strings.Fields(in.args)[0])
			lastUser = ""
		case "USER":
			lastUser = in.args
		case "RUN":
			if strings.Contains(in.args, "go build") {
				build = in.args
			}
		case "VOLUME":
			volume = in.args
		case "EXPOSE":
			expose += " " + in.args
		case "HEALTHCHECK":
			if _, c, ok := strings.Cut(in.args, "CMD "); ok {
				health = execForm(c)
			}
		case "ENTRYPOINT":
			entry = execForm(in.args)
		case "CMD":
			cmd = execForm(in.args)
		case "COPY":
			if f := strings.Fields(in.args); len(f) == 2 && f[1] == "/etc/authproxy/authproxy.yaml" {
				baked = f[0]
			}
		}
	}
	if len(froms) < 2 {
		bad("want a multi-stage build, got FROM %v", froms)
		return errors.Join(errs...)
	}
	if m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(goMod); m == nil || !strings.HasPrefix(froms[0], "golang:"+m[1]) {
		bad("build stage %s does not match go.mod's go line", froms[0])
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=", "./cmd/authproxy"} {
		if !strings.Contains(build, want) {
			bad("go build %q: missing %s", build, want)
		}
	}
	runtime := froms[len(froms)-1]
	if nonRootImage := strings.HasSuffix(runtime, ":nonroot"); !nonRootImage && lastUser == "" || lastUser == "root" || lastUser == "0" || strings.HasPrefix(lastUser, "0:") || strings.HasPrefix(lastUser, "root:") {
		bad("runtime stage %s runs as root (USER %q)", runtime, lastUser)
	}
	for _, p := range []string{clientPort, adminPort} {
		if !slices.Contains(strings.Fields(expose), p) {
			bad("EXPOSE %q: missing %s", expose, p)
		}
	}
	if !strings.Contains(volume, credentialDir) {
		bad("VOLUME %q: want %s", volume, credentialDir)
	}
	if len(health) < 2 || health[0] != "/authproxy" || health[1] != "healthcheck" {
		bad("HEALTHCHECK %q: want CMD [\"/authproxy\", \"healthcheck\", ...]", health)
	}
	if !slices.Equal(entry, []string{"/authproxy"}) {
		bad("ENTRYPOINT %q: want [\"/authproxy\"]", entry)
	}
	if !slices.Equal(cmd, []string{"serve", "--config", "/etc/authproxy/authproxy.yaml"}) {
		bad("CMD %q: want serve --config /etc/authproxy/authproxy.yaml", cmd)
	}
	if baked == "" {
		bad("no COPY of a config to /etc/authproxy/authproxy.yaml")
		return errors.Join(errs...)
	}
	cfg, err := loadProxyConfig(filepath.Join(repoRoot, baked))
	if err != nil {
		bad("baked config: %w", err)
		return errors.Join(errs...)
	}
	if path.Dir(cfg.Credentials.File) != credentialDir {
		bad("baked credentials.file %s: not on the VOLUME %s", cfg.Credentials.File, credentialDir)
	}
	if h := host(cfg.Admin.Listen); h == "127.0.0.1" || h == "localhost" || port(cfg.Admin.Listen) != adminPort {
		bad("baked admin.listen %q: want all interfaces on %s for the orchestrator's probes", cfg.Admin.Listen, adminPort)
	}
	if i := slices.Index(health, "--admin"); i < 0 || i+1 >= len(health) || port(health[i+1]) != port(cfg.Admin.Listen) {
		bad("HEALTHCHECK %q: --admin does not match admin.listen %s", health, cfg.Admin.Listen)
	}
	if port(cfg.Listen) != clientPort {
		bad("baked listen %q: want port %s", cfg.Listen, clientPort)
	}
	return errors.Join(errs...)
}

// --- Tests ------------------------------------------------------------------------

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func kubeFiles(t *testing.T) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(kubeDir, "*.yaml"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no manifests in %s: %v", kubeDir, err)
	}
	files := map[string][]byte{}
	for _, n := range names {
		files[filepath.Base(n)] = readFile(t, n)
	}
	return files
}

// mutate replaces old by new once, failing if old is absent so that a
// negative case can never pass by testing the unchanged file.
func mutate(t *testing.T, data []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("mutation target %q not found", old)
	}
	return bytes.Replace(data, []byte(old), []byte(new), 1)
}

func wantError(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want an error containing %q", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q; want it to contain %q", err, want)
	}
}

func TestKubernetesManifests(t *testing.T) {
	files := kubeFiles(t)
	if err := checkKubernetes(files); err != nil {
		t.Fatal(err)
	}
	// Both credential variants must be there, each a complete Deployment.
	for _, f := range []string{"deployment-secret-credentials.yaml", "deployment-pvc-credentials.yaml"} {
		if _, ok := files[f]; !ok {
			t.Errorf("missing %s", f)
		}
	}
}

func TestKubernetesChecksFail(t *testing.T) {
	const dep = "deployment-secret-credentials.yaml"
	cases := []struct {
		name, file, old, new, want string
	}{
		{"misspelled containers", dep, "      containers:", "      contianers:", `unknown field "spec.template.spec.contianers"`},
		{"misspelled readinessProbe", dep, "readinessProbe:", "readinesProbe:", `unknown field "spec.template.spec.containers[0].readinesProbe"`},
		{"wrong case", dep, "readOnlyRootFilesystem:", "ReadOnlyRootFilesystem:", "unknown field"},
		{"duplicate key", "service.yaml", "  name: milvus\n", "  name: milvus\n  name: milvus2\n", `key "name" already set`},
		{"unknown kind", "service.yaml", "kind: Service", "kind: Servic", "unsupported apiVersion/kind"},
		{"readiness path", dep, "path: /readyz", "path: /ready", "readiness probe"},
		{"liveness port", dep, "path: /healthz\n              port: 9091", "path: /healthz\n              port: 19530", "liveness probe"},
		{"subPath on credentials", dep, "              mountPath: /var/lib/authproxy\n", "              mountPath: /var/lib/authproxy\n              subPath: creds\n", "uses subPath"},
		{"subPath on TLS", dep, "              mountPath: /etc/authproxy-tls\n", "              mountPath: /etc/authproxy-tls\n              subPath: tls\n", "uses subPath"},
		{"writable Secret", dep, "              readOnly: true\n        - name: milvus\n", "              readOnly: false\n        - name: milvus\n", "read-only Secret"},
		{"root", dep, "runAsNonRoot: true", "runAsNonRoot: false", "runAsNonRoot"},
		{"writable root filesystem", dep, "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem"},
		{"capabilities kept", dep, `drop: ["ALL"]`, `drop: ["NET_RAW"]`, "drop ALL"},
		{"no limits", dep, "              cpu: \"1\"\n              memory: 256Mi\n", "", "limit"},
		{"Service exposes Milvus", "service.yaml", "targetPort: grpc", "targetPort: 19540", "not authproxy's client port"},
		{"policy admits Milvus", "networkpolicy.yaml", "- port: 19530", "- port: 19540", "admits port 19540"},
		{"policy opens admin", "networkpolicy.yaml", "    - from:\n        - namespaceSelector:\n            matchLabels:\n              kubernetes.io/metadata.name: monitoring\n      ports:", "    - ports:", "open to every source"},
		{"misspelled config key", "configmaps.yaml", "    admin:\n      # Pod IP", "    admn:\n      # Pod IP", `unknown key "admn"`},
		{"bad config value", "configmaps.yaml", `minVersion: "1.2"`, `minVersion: "1.1"`, "tls.minVersion"},
		{"admin on loopback", "configmaps.yaml", `listen: "0.0.0.0:9091"`, `listen: "127.0.0.1:9091"`, "cannot reach loopback"},
		{"backend port clash", "configmaps.yaml", `address: "127.0.0.1:19540"`, `address: "127.0.0.1:19530"`, "cannot bind"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := kubeFiles(t)
			files[c.file] = mutate(t, files[c.file], c.old, c.new)
			wantError(t, checkKubernetes(files), c.want)
		})
	}
}

func TestCompose(t *testing.T) {
	if err := checkCompose(readFile(t, filepath.Join(composeDir, "docker-compose.yml"))); err != nil {
		t.Fatal(err)
	}
}

func TestComposeChecksFail(t *testing.T) {
	cases := []struct{ name, old, new, want string }{
		{"misspelled key", "    depends_on:\n      standalone:", "    depnds_on:\n      standalone:", "depnds_on"},
		{"Milvus published", "    # No ports: Milvus", "    ports:\n      - \"19530:19530\"\n    # No ports: Milvus", "service standalone publishes"},
		{"admin published publicly", `"127.0.0.1:9091:9091"`, `"9091:9091"`, "host loopback only"},
		{"credentials on a bind mount", "authproxy-credentials:/var/lib/authproxy", "./creds:/var/lib/authproxy", "want a named volume"},
		{"single-file config mount", "./config:/etc/authproxy:ro", "./config/authproxy.yaml:/etc/authproxy/authproxy.yaml:ro", "single-file mount"},
		{"environment interpolation", "milvusdb/milvus:v2.6.2", "milvusdb/milvus:${MILVUS_TAG}", "MILVUS_TAG"},
		{"not waiting for health", "condition: service_healthy\n    restart:", "condition: service_started\n    restart:", "healthy"},
	}
	orig := readFile(t, filepath.Join(composeDir, "docker-compose.yml"))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, checkCompose(mutate(t, orig, c.old, c.new)), c.want)
		})
	}
}

func TestProxyConfigs(t *testing.T) {
	for _, f := range []string{
		filepath.Join(repoRoot, "examples", "container", "authproxy.yaml"),
		filepath.Join(composeDir, "config", "authproxy.yaml"),
	} {
		if _, err := loadProxyConfig(f); err != nil {
			t.Error(err)
		}
	}
	// A misspelled key in a file fails through the same loader.
	bad := filepath.Join(t.TempDir(), "authproxy.yaml")
	data := mutate(t, readFile(t, filepath.Join(composeDir, "config", "authproxy.yaml")), "  address:", "  adress:")
	if err := os.WriteFile(bad, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadProxyConfig(bad)
	wantError(t, err, `unknown key "adress"`)
}

func TestDockerfile(t *testing.T) {
	goMod := string(readFile(t, filepath.Join(repoRoot, "go.mod")))
	if err := checkDockerfile(string(readFile(t, dockerfile)), goMod); err != nil {
		t.Fatal(err)
	}
	ignore := strings.Fields(string(readFile(t, filepath.Join(repoRoot, ".dockerignore"))))
	for _, want := range []string{"bin/", "test/", ".git", "node_modules/"} {
		if !slices.Contains(ignore, want) {
			t.Errorf(".dockerignore: missing %s", want)
		}
	}
}

func TestDockerfileChecksFail(t *testing.T) {
	goMod := string(readFile(t, filepath.Join(repoRoot, "go.mod")))
	orig := readFile(t, dockerfile)
	cases := []struct {
		name string
		repl []string // old, new pairs
		want string
	}{
		{"single stage", []string{"FROM golang:1.26 AS build", ""}, "multi-stage"},
		{"Go version drift", []string{"FROM golang:1.26 AS build", "FROM golang:1.24 AS build"}, "go.mod's go line"},
		{"cgo", []string{"CGO_ENABLED=0 ", ""}, "CGO_ENABLED=0"},
		{"root image without USER", []string{"static-debian12:nonroot", "static-debian12", "USER 65532:65532\n", ""}, "runs as root"},
		{"root user", []string{"USER 65532:65532", "USER root"}, "runs as root"},
		{"exposed ports", []string{"EXPOSE 19530 9091", "EXPOSE 19530"}, "missing 9091"},
		{"no volume", []string{"VOLUME /var/lib/authproxy", "VOLUME /data"}, "VOLUME"},
		{"healthcheck", []string{`"healthcheck", "--admin"`, `"version", "--admin"`}, "HEALTHCHECK"},
		{"healthcheck port", []string{`"127.0.0.1:9091"`, `"127.0.0.1:9092"`}, "does not match admin.listen"},
		{"entrypoint", []string{`ENTRYPOINT ["/authproxy"]`, `ENTRYPOINT /authproxy`}, "ENTRYPOINT"},
		{"baked config missing", []string{"examples/container/authproxy.yaml", "examples/container/missing.yaml"}, "baked config"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := orig
			for i := 0; i < len(c.repl); i += 2 {
				data = mutate(t, data, c.repl[i], c.repl[i+1])
			}
			wantError(t, checkDockerfile(string(data), goMod), c.want)
		})
	}
}
