# Sourced by run.sh after kube.sh (uses its die, log, sdk, wait_ready,
# kube_secret, kube_down, $work, $image, $fake_image, $distroless_tag, $mark):
# the Helm chart rendered with values-milvus.yaml (the common case: Milvus's
# chart's default etcd, Service milvus-etcd:2379, no TLS, no auth), only the
# image overridden, by Helm's own engine (test/cmd/renderchart); its
# Deployment, ConfigMap and root-password Secret run with podman kube play on
# a network beside an etcd (Debian's etcd 3.4 from the host, reachable as
# milvus-etcd) and the fake Milvus (as milvus). The Services, NetworkPolicy
# and PodDisruptionBudget need a cluster and are not run; podman plays one
# replica of the Deployment.
chart_net=ct-chart-net
podman network exists "$chart_net" && die "a podman network $chart_net exists already; remove it (podman network rm $chart_net) to run the chart"
podman network create "$chart_net" >/dev/null || die "podman network create $chart_net failed"
nets+=("$chart_net")

# The etcd image: the host's etcd binary and the two libraries it links.
etcd_image=localhost/etcd:container-test
[ -x /usr/bin/etcd ] || die "/usr/bin/etcd missing: .ci/run installs Debian's etcd-server"
mkdir -p "$work/etcd/usr/bin"
cp /usr/bin/etcd "$work/etcd/usr/bin/"
for lib in $(ldd /usr/bin/etcd | grep -o '/[^ ]*'); do mkdir -p "$work/etcd$(dirname "$lib")"; cp -L "$lib" "$work/etcd$lib"; done
printf 'FROM %s\nCOPY . /\nENTRYPOINT ["/usr/bin/etcd"]\n' "$distroless_tag" >"$work/etcd.Containerfile"
podman build --quiet --pull=never --format docker --label "$mark=1" -t "$etcd_image" -f "$work/etcd.Containerfile" "$work/etcd" >/dev/null || die "build of the etcd image failed"
tagged+=("$etcd_image")
started+=(ct-chart-etcd ct-chart-milvus)
podman run -d --name ct-chart-etcd --network "$chart_net" --network-alias milvus-etcd "$etcd_image" \
  --name default --data-dir /tmp/etcd --listen-client-urls http://0.0.0.0:2379 --advertise-client-urls http://milvus-etcd:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --log-level warn >/dev/null || die "etcd did not start"
podman run -d --name ct-chart-milvus --network "$chart_net" --network-alias milvus "$fake_image" >/dev/null || die "the fake Milvus did not start"

# helm template milvus-auth deploy/helm/authproxy -f values-milvus.yaml --set image=...
printf 'image:\n  repository: %s\n  tag: %s\n  pullPolicy: Never\n' "${image%:*}" "${image##*:}" >"$work/chart-image.yaml"
(cd test && go run ./cmd/renderchart -chart ../deploy/helm/authproxy -release milvus-auth \
  -f ../deploy/helm/authproxy/values-milvus.yaml -f "$work/chart-image.yaml") >"$work/chart.yaml" || die "rendering the chart failed"

# The root Secret becomes a podman secret (kube.sh's kube_secret: podman 4.3
# wants the plain text); the ConfigMap and the Deployment are played.
chart_info=$(python3 - "$work/chart.yaml" "$work/chart-play.yaml" "$work/chart-root-pw" <<'PY'
import base64, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
play = [d for d in docs if d["kind"] in ("ConfigMap", "Deployment")]
secrets = [d for d in docs if d["kind"] == "Secret"]
assert len(play) == 2 and len(secrets) == 1, [d["kind"] for d in docs]
s = secrets[0]
key, value = next(iter(s["data"].items()))
open(sys.argv[3], "w").write(base64.b64decode(value).decode())
# podman 4.3 publishes every containerPort on the host's same port (see
# kube.sh), where another process may hold it: the played copy has no
# ports, its probes name the port numbers, and everything is reached on
# the pod's IP.
for d in play:
    if d["kind"] != "Deployment":
        continue
    for c in d["spec"]["template"]["spec"]["containers"]:
        named = {p["name"]: p["containerPort"] for p in c.pop("ports", [])}
        for kind in ("livenessProbe", "readinessProbe"):
            h = (c.get(kind) or {}).get("httpGet")
            if h and h["port"] in named:
                h["port"] = named[h["port"]]
yaml.safe_dump_all(play, open(sys.argv[2], "w"))
dep = [d for d in play if d["kind"] == "Deployment"][0]
print("secret", s["metadata"]["name"], key)
print("configmap", [d for d in play if d["kind"] == "ConfigMap"][0]["metadata"]["name"])
PY
) || die "cannot split the rendered chart"
read -r _ root_secret root_key < <(grep '^secret ' <<<"$chart_info")
read -r _ chart_cm < <(grep '^configmap ' <<<"$chart_info")
for v in "$chart_cm" "$root_secret"; do
  podman volume exists "$v" && die "a volume $v exists already; kube play of the chart would use it and this script remove it"
  kube_vols+=("$v")
done
root_pw=$(cat "$work/chart-root-pw")
[ "${#root_pw}" = 24 ] && [ "$root_pw" != Milvus ] || die "the chart's generated root password is ${#root_pw} characters"
kube_secret "$root_secret" "$root_key=$work/chart-root-pw"
sed -i -E 's/^( *)secretName: .*/&\n\1optional: false/' "$work/chart-play.yaml"

chart_play() {
  local out t0
  t0=$(date +%s%N)
  kube_up=$work/chart-play.yaml
  out=$(timeout 120 podman kube play --network "$chart_net" "$kube_up" 2>"$work/kube.err") || { cat "$work/kube.err" >&2; die "podman kube play of the chart failed"; }
  kube_pod=$(awk '/^Pod:/{getline; print; exit}' <<<"$out")
  [ -n "$kube_pod" ] || die "podman kube play printed no pod: $out"
  kube_pod=$(podman pod inspect -f '{{.Name}}' "$kube_pod")
  kube_ip=$(podman inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$kube_pod-authproxy")
  [ -n "$kube_ip" ] || die "no IP address for the pod $kube_pod"
  wait_ready "http://$kube_ip:9091/readyz" || { podman logs "$kube_pod-authproxy" >&2; die "the chart's pod: /readyz not 200 within 30 s"; }
  log "ok: the chart (values-milvus.yaml) played as pod $kube_pod, IP $kube_ip; ready on etcd after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}
chart_play
[ "$(curl -s "http://$kube_ip:9091/healthz" -o /dev/null -w '%{http_code}')" = 200 ] || die "the chart's pod: /healthz not 200"
# Read whole before grep: grep -q would close the pipe and fail curl (pipefail).
metrics=$(curl -s "http://$kube_ip:9091/metrics") || die "the chart's pod: GET /metrics on $kube_ip:9091 failed"
grep -q '^authproxy_credential_store_stale_seconds' <<<"$metrics" \
  || die "the chart's pod: /metrics on $kube_ip:9091 (where the metrics Service points) has no authproxy metrics"
log "ok: /healthz and /metrics answer on the pod IP's admin port, where the probes and the metrics Service point"
chart_user_pw="chart-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
sdk TestSDKChangedPassword AUTHPROXY_ADDR="$kube_ip:19530" AUTHPROXY_PASSWORD="$root_pw" AUTHPROXY_OLD_PASSWORD=Milvus
log "ok: Go SDK as root with the password of the chart's generated Secret; root:Milvus refused"
sdk TestSDKUserOnEtcd AUTHPROXY_ADDR="$kube_ip:19530" AUTHPROXY_PASSWORD="$root_pw" CHART_USER_PASSWORD="$chart_user_pw"
log "ok: Go SDK created chart_user through the chart's pod; it authenticates"
podman kube play --down "$kube_up" >/dev/null 2>&1 || die "podman kube play --down of the chart failed"
chart_play
sdk TestSDKUserOnEtcd AUTHPROXY_ADDR="$kube_ip:19530" AUTHPROXY_PASSWORD="$root_pw" CHART_USER_PASSWORD="$chart_user_pw" CHART_USER_EXISTS=1
log "ok: the pod played again: chart_user is still there (kept in etcd, not in the pod) and authenticates"
kube_down
podman rm -f -t 2 ct-chart-etcd ct-chart-milvus >/dev/null
started=()
