# Sourced by run.sh (uses its die, log, sdk, wait_ready, take_name, $work,
# $image, $fake_image): examples/kubernetes's sidecar Deployments run by
# `podman kube play`, with configmaps.yaml and storage.yaml as the README
# applies them. The Service and the NetworkPolicy need a cluster and are not run.
#
# podman 4.3 (Debian 12) needs three things the manifests do not:
#  - a secret volume without `optional:` segfaults kube play (containers/podman#16636,
#    fixed in 4.4): the played copy says `optional: false`, Kubernetes's default;
#  - a Secret is a podman secret holding the Secret's YAML, and 4.3 writes its
#    `data` values to the files as they are, without base64-decoding them
#    (and ignores `stringData`): on 4.3 the script stores the plain text;
#  - subPath is ignored (the whole ConfigMap directory is mounted at
#    /milvus/configs/user.yaml): the fake Milvus reads user.yaml inside it.
# 4.3 also publishes every containerPort on the host (19530 and 9091 here,
# all interfaces); the checks below connect to the pod IP only.
kdir=examples/kubernetes
podv=$(podman version -f '{{.Client.Version}}')
case "$podv" in 4.3.*) raw_secret_data=1 ;; *) raw_secret_data=0 ;; esac

# manifest_info FILE: what the checks need from the played manifest, one fact a line.
manifest_info() {
  python3 - "$1" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
for d in docs:
    if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "authproxy-config":
        print("backend", yaml.safe_load(d["data"]["authproxy.yaml"])["backend"]["address"])
    if d["kind"] != "Deployment":
        continue
    spec = d["spec"]["template"]["spec"]
    for v in spec.get("volumes", []):
        if "secret" in v:
            print("secret", v["name"], v["secret"]["secretName"])
        elif "persistentVolumeClaim" in v:
            print("volume", v["name"], v["persistentVolumeClaim"]["claimName"])
        elif "configMap" in v:
            print("volume", v["name"], v["configMap"]["name"])
        else:
            print("volume", v["name"], v["name"])
    for c in spec["containers"]:
        print("image", c["name"], c["image"])
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        for p in c.get("ports", []):
            print("port", c["name"], p.get("name", "-"), p["containerPort"])
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            h = (c.get(kind) or {}).get("httpGet")
            if h:
                port = h["port"] if isinstance(h["port"], int) else ports[h["port"]]
                print("probe", c["name"], kind, port, h["path"])
PY
}

kube_down() {
  podman kube play --down "$kube_up" >/dev/null 2>&1 || podman pod rm -f "$kube_pod" >/dev/null 2>&1
  for v in "${kube_vols[@]}"; do podman volume rm -f "$v" >/dev/null 2>&1; done
  for s in "${kube_secrets[@]}"; do podman secret rm "$s" >/dev/null 2>&1; done
  kube_up="" kube_pod="" kube_vols=() kube_secrets=()
}
kube_secrets=()

# kube_secret NAME KEY=FILE...: a podman secret holding a Kubernetes Secret.
kube_secret() {
  local name=$1 kv; shift
  podman secret inspect "$name" >/dev/null 2>&1 && die "a podman secret $name exists already; remove it (podman secret rm $name) to run the example"
  { printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\ndata:\n' "$name"
    for kv in "$@"; do
      if [ "$raw_secret_data" = 1 ]; then printf '  %s: |\n' "${kv%%=*}"; sed 's/^/    /' "${kv#*=}"
      else printf '  %s: %s\n' "${kv%%=*}" "$(base64 -w0 "${kv#*=}")"; fi
    done; } >"$work/secret-$name.yaml"
  podman secret create "$name" "$work/secret-$name.yaml" >/dev/null || die "podman secret create $name failed"
  kube_secrets+=("$name")
}

# kube_play DEPLOYMENT: plays configmaps.yaml, storage.yaml and DEPLOYMENT; sets
# kube_pod, kube_ip (the pod's IP), kube_info and kube_ready_ms.
kube_play() {
  local dep=$kdir/$1 y=$work/kube-$1 line c img t0 out
  { cat "$kdir/configmaps.yaml"; echo '---'; cat "$kdir/storage.yaml"; echo '---'
    sed -E 's/^( *)secretName: .*/&\n\1optional: false/' "$dep"; } >"$y"
  kube_info=$(manifest_info "$y") || die "cannot read $y"
  while read -r _ _ vol; do
    podman volume exists "$vol" && die "a volume $vol exists already; kube play of $1 would use it and this script remove it"
    kube_vols+=("$vol")
  done < <(grep -E '^(volume|secret) ' <<<"$kube_info")
  while read -r _ c img; do
    case "$c" in
      authproxy) take_name "$image" "$img" ;;
      milvus) take_name "$fake_image" "$img" ;;
      *) die "$1: unexpected container $c" ;;
    esac
  done < <(grep '^image ' <<<"$kube_info")
  podman network exists podman-default-kube-network || nets+=(podman-default-kube-network)
  kube_up=$y
  t0=$(date +%s%N)
  out=$(timeout 120 podman kube play "$y" 2>"$work/kube.err") || { cat "$work/kube.err" >&2; die "podman kube play of $1 failed"; }
  kube_pod=$(awk '/^Pod:/{getline; print; exit}' <<<"$out")
  [ -n "$kube_pod" ] || die "podman kube play printed no pod: $out"
  kube_pod=$(podman pod inspect -f '{{.Name}}' "$kube_pod")
  kube_ip=$(podman inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$kube_pod-authproxy")
  [ -n "$kube_ip" ] || die "no IP address for the pod $kube_pod"
  read -r _ c _ port path < <(grep '^probe authproxy readinessProbe ' <<<"$kube_info") || die "$1: no readinessProbe on authproxy"
  wait_ready "http://$kube_ip:$port$path" || { podman logs "$kube_pod-authproxy" >&2; die "$1: $path on $kube_ip:$port not 200 within 30 s"; }
  kube_ready_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  log "ok: $1 played (podman $podv) as pod $kube_pod, IP $kube_ip; authproxy ready after $kube_ready_ms ms"
}

# kube_checks DEPLOYMENT: every httpGet probe answers 200 where the manifest
# says; Milvus's port is not published. Sets grpc_port.
kube_checks() {
  local c kind port path code published p bport ok
  while read -r _ c kind port path; do
    code=000
    for _ in $(seq 100); do
      code=$(curl -s -o /dev/null -w '%{http_code}' "http://$kube_ip:$port$path" || true)
      [ "$code" = 200 ] && break; sleep 0.1
    done
    [ "$code" = 200 ] || die "$1: $c's $kind GET :$port$path answered $code, want 200"
    log "ok: $c's $kind GET $kube_ip:$port$path 200"
  done < <(grep '^probe ' <<<"$kube_info")
  local pid uid ro caps
  pid=$(podman inspect -f '{{.State.Pid}}' "$kube_pod-authproxy")
  uid=$(awk '/^Uid:/{print $2}' "/proc/$pid/status")
  ro=$(podman inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$kube_pod-authproxy")
  caps=$(awk '/^CapEff:/{print $2}' "/proc/$pid/status")
  [ "$uid" = 65532 ] && [ "$ro" = true ] && [ "$caps" = 0000000000000000 ] \
    || die "$1: authproxy runs as uid $uid, read-only root $ro, effective capabilities $caps; want 65532, true, none"
  log "ok: authproxy's securityContext applied: uid 65532, read-only root filesystem, no capabilities"
  grpc_port=$(awk '$1 == "port" && $2 == "authproxy" && $3 == "grpc" {print $4}' <<<"$kube_info")
  [ -n "$grpc_port" ] || die "$1: no port named grpc on authproxy"

  bport=$(awk '$1 == "backend" {print $2}' <<<"$kube_info"); bport=${bport##*:}
  published=$(podman pod inspect -f '{{range $k, $v := .InfraConfig.PortBindings}}{{$k}} {{end}}' "$kube_pod")
  for p in $published; do
    grep -q "^port authproxy [^ ]* ${p%/tcp}\$" <<<"$kube_info" || die "$1: the pod publishes $p on the host, which is not a port of the authproxy container"
  done
  sdk TestBackendNotReachable BACKEND_ADDR="127.0.0.1:$bport"
  log "ok: published on the host: ${published:-nothing} (authproxy's containerPorts); Milvus's $bport is not, 127.0.0.1:$bport refused"
  if timeout 2 bash -c "echo >/dev/tcp/$kube_ip/$bport" 2>/dev/null; then ok=answers; else ok="does not answer"; fi
  log "note: Milvus's own port $kube_ip:$bport $ok from the host; in a cluster the NetworkPolicy (not run here) is what closes it"
}

# cred_reload_at URL: when /readyz says the credential file was last reloaded.
cred_reload_at() {
  curl -s "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["reloads"]["credentials"]["at"])' 2>/dev/null || true
}

go build -o "$work/authproxy" ./cmd/authproxy || die "go build of cmd/authproxy (for the README's offline commands) failed"
"$work/authproxy" certs generate --dir "$work/certs" --hosts milvus,milvus.default.svc,localhost,127.0.0.1 >/dev/null \
  || die "authproxy certs generate failed"
kube_secret authproxy-tls tls.crt="$work/certs/server.pem" tls.key="$work/certs/server.key"

# 3b: credentials on the PVC (writable); the README's `kubectl exec ... user passwd root`.
kube_play deployment-pvc-credentials.yaml
kube_checks deployment-pvc-credentials.yaml
tls_env=(AUTHPROXY_ADDR="$kube_ip:$grpc_port" AUTHPROXY_CA="$work/certs/ca.pem" AUTHPROXY_SERVER_NAME=milvus)
sdk TestSDKThroughProxy "${tls_env[@]}"
log "ok: Go SDK over TLS as root:Milvus through $kube_ip:$grpc_port to Milvus on the pod's loopback; a wrong password and no credentials refused"
cred="$(podman volume inspect -f '{{.Mountpoint}}' authproxy-credentials)/credentials.yaml"
[ "$(stat -c '%a %u' "$cred" 2>/dev/null)" = "600 65532" ] || die "credentials.yaml on the PVC is $(stat -c '%a %u' "$cred" 2>&1), want 600 65532"
log "ok: credentials.yaml created on the PVC, mode 0600, owner 65532"
newpw="pvc-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
ready_url=http://$kube_ip:$(awk '$1 == "probe" && $2 == "authproxy" && $3 == "readinessProbe" {print $4 $5}' <<<"$kube_info")
before=$(cred_reload_at "$ready_url")
podman exec -i "$kube_pod-authproxy" /authproxy user passwd root -c /etc/authproxy/authproxy.yaml --password-stdin <<<"$newpw" >/dev/null \
  || die "podman exec ... /authproxy user passwd root failed"
# The proxy reloads the file after a 200 ms quiet period: wait for /readyz to say so.
for _ in $(seq 50); do [ "$(cred_reload_at "$ready_url")" != "$before" ] && break; sleep 0.1; done
[ "$(cred_reload_at "$ready_url")" != "$before" ] || die "the proxy did not reload credentials.yaml within 5 s of user passwd"
sdk TestSDKChangedPassword "${tls_env[@]}" AUTHPROXY_PASSWORD="$newpw" AUTHPROXY_OLD_PASSWORD=Milvus
log "ok: after exec /authproxy user passwd root: the new password works, Milvus is refused"
kube_down_t0=$(date +%s%N)
kube_down
log "ok: kube play --down in $(( ($(date +%s%N) - kube_down_t0) / 1000000 )) ms; pod, volumes and secrets removed"

# 3a: credentials built offline with the proxy's commands, from a read-only Secret.
kube_secret authproxy-tls tls.crt="$work/certs/server.pem" tls.key="$work/certs/server.key"
mkdir -p "$work/kcred"
secpw="secret-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
"$work/authproxy" user passwd root --credentials "$work/kcred/credentials.yaml" --password-stdin <<<"$secpw" >/dev/null 2>&1 || die "authproxy user passwd root (offline) failed"
"$work/authproxy" user add alice --role admin --credentials "$work/kcred/credentials.yaml" --password-stdin <<<"alice-$secpw" >/dev/null 2>&1 || die "authproxy user add alice (offline) failed"
"$work/authproxy" apikey create ci --user alice --credentials "$work/kcred/credentials.yaml" >/dev/null 2>&1 || die "authproxy apikey create (offline) failed"
kube_secret authproxy-credentials credentials.yaml="$work/kcred/credentials.yaml"
kube_play deployment-secret-credentials.yaml
kube_checks deployment-secret-credentials.yaml
tls_env=(AUTHPROXY_ADDR="$kube_ip:$grpc_port" AUTHPROXY_CA="$work/certs/ca.pem" AUTHPROXY_SERVER_NAME=milvus)
sdk TestSDKChangedPassword "${tls_env[@]}" AUTHPROXY_PASSWORD="$secpw" AUTHPROXY_OLD_PASSWORD=Milvus
sdk TestSDKReadOnlyStore "${tls_env[@]}" AUTHPROXY_PASSWORD="$secpw"
log "ok: users from the Secret: root with the offline password works, Milvus and no credentials refused; CreateUser refused (read-only store)"
kube_down
