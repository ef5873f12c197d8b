#!/usr/bin/env bash
# Builds the project's Dockerfile unchanged on stand-in base images and runs
# the image for real with podman (no Docker engine here); then the Kubernetes
# sidecar example with podman kube play (kube.sh), the compose example with
# podman-compose (compose.sh) and the Helm chart on etcd with podman kube play
# (helm.sh), Milvus replaced by the fake backend. Removes all
# it started, also on failure. Fails loudly, with the reason, when it cannot
# run; it never skips.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
script_t0=$(date +%s)
die() { echo "test-container: FAIL: $*" >&2; exit 1; }
log() { echo "test-container: $*" >&2; }

# --- install (idempotent) -------------------------------------------------
need=()
for c in buildah podman podman-compose debootstrap runc catatonit iptables curl etcd; do command -v $c >/dev/null || need+=($c); done
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${need[*]} and not root to apt-get install them"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends \
    buildah podman podman-compose debootstrap runc catatonit iptables uidmap netavark aardvark-dns slirp4netns ca-certificates tzdata curl python3-yaml etcd-server \
    || die "apt-get install of ${need[*]} failed"
fi
# This sandbox: vfs storage, runc (crun refuses the cgroup layout), no rlimit raising.
if [ "$(id -u)" = 0 ]; then
  mkdir -p /etc/containers
  if ! grep -qs '^driver *= *"vfs"' /etc/containers/storage.conf; then
    printf '[storage]\ndriver = "vfs"\nrunroot = "/run/containers/storage"\ngraphroot = "/var/lib/containers/storage"\n' >/etc/containers/storage.conf
  fi
  if ! grep -qs 'default_ulimits *= *\[\]' /etc/containers/containers.conf; then
    printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n' >/etc/containers/containers.conf
  fi
fi
python3 -c 'import yaml' 2>/dev/null || die "python3 with PyYAML (python3-yaml) is needed to read the example manifests"
podman info >/dev/null 2>&1 || die "podman info fails: $(podman info 2>&1 | tail -3)"

# --- stand-in base images, built once and kept in podman's storage -----------
# golang:1.26: a Debian minbase rootfs with the host's Go toolchain.
# gcr.io/distroless/static-debian12:nonroot: CA certificates, tzdata, user 65532.
golang_tag=docker.io/library/golang:1.26
distroless_tag=gcr.io/distroless/static-debian12:nonroot
goroot=$(go env GOROOT)
gover=$(go env GOVERSION)
ca_sum=$(sha256sum /etc/ssl/certs/ca-certificates.crt | cut -c1-12)
case "$gover" in go1.26*) ;; *) die "host Go is $gover; the golang:1.26 stand-in needs Go 1.26 at GOROOT";; esac
work=$(mktemp -d /tmp/test-container.XXXXXX)
started=()     # containers
tagged=()      # image names given to the local images for the examples
kube_up=""     # the manifest podman kube play runs
kube_vols=()   # volumes and secrets kube play makes from the manifest
compose_up=""  # podman-compose project
nets=()        # networks this script made podman create
cleanup() {
  set +e
  for c in "${started[@]}"; do podman rm -f -t 2 "$c" >/dev/null 2>&1; done
  podman pod rm -f ct-authproxy-pod >/dev/null 2>&1
  podman volume rm -f ct-authproxy-credentials >/dev/null 2>&1
  [ -z "$kube_up" ] || kube_down
  [ -z "$compose_up" ] || compose_down
  for n in "${nets[@]}"; do podman network rm -f "$n" >/dev/null 2>&1; done
  for t in "${tagged[@]}"; do podman untag "$t" "$t" >/dev/null 2>&1; done
  # Superseded images of this script's builds (e.g. a build stage of older sources).
  podman images -q --filter dangling=true --filter "label=$mark=1" | xargs -r podman rmi >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
# A signal ends the script through exit, so that cleanup runs then too.
trap 'exit 130' INT; trap 'exit 143' TERM
# Every image this script builds carries this label: a name it is about to
# take over must be free or one of its own (a stale tag from a killed run).
mark=org.authproxy.container-test
take_name() { # take_name IMAGE NAME
  if podman image exists "$2" && [ "$(podman image inspect -f "{{index .Labels \"$mark\"}}" "$2")" != 1 ]; then
    die "the image name $2 is taken by an image this script did not build; remove it (podman rmi $2) to run the examples"
  fi
  podman tag "$1" "$2" || die "podman tag $1 $2 failed"
  tagged+=("$2")
}

t0=$(date +%s)
if ! podman image exists "$golang_tag" || [ "$(podman image inspect -f '{{index .Labels "org.authproxy.go"}}' "$golang_tag")" != "$gover-$ca_sum" ]; then
  log "building the $golang_tag stand-in (debootstrap, once)"
  rootfs=$work/rootfs
  debootstrap --variant=minbase --include=ca-certificates,git bookworm "$rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
    || die "debootstrap failed: $(tail -3 "$work/debootstrap.log")"
  # The host's CA bundle: this machine reaches the Go module proxy through its own CA.
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  mkdir -p "$rootfs/usr/local"
  cp -a "$goroot" "$rootfs/usr/local/go"
  rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
  c=$(buildah from scratch)
  buildah copy --quiet "$c" "$rootfs" / >/dev/null
  buildah config --env PATH=/usr/local/go/bin:/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env GOPATH=/go --env GOLANG_VERSION="${gover#go}" --workingdir /go --cmd bash \
    --label org.authproxy.go="$gover-$ca_sum" "$c"
  buildah commit --quiet --rm "$c" "$golang_tag" >/dev/null
  rm -rf "$rootfs"
fi
if ! podman image exists "$distroless_tag"; then
  log "building the $distroless_tag stand-in (once)"
  s=$work/static
  mkdir -p "$s/etc/ssl/certs" "$s/usr/share" "$s/home/nonroot" "$s/tmp"
  cp /etc/ssl/certs/ca-certificates.crt "$s/etc/ssl/certs/"
  cp -a /usr/share/zoneinfo "$s/usr/share/"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$s/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$s/etc/group"
  chown 65532:65532 "$s/home/nonroot"; chmod 1777 "$s/tmp"
  c=$(buildah from scratch)
  buildah copy --quiet "$c" "$s" / >/dev/null
  buildah config --user 65532 --workingdir /home/nonroot --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt "$c"
  buildah commit --quiet --rm "$c" "$distroless_tag" >/dev/null
fi
log "stand-in base images ready in $(( $(date +%s) - t0 )) s"

# --- the project's image and the fake backend's image ---------------------------
image=localhost/authproxy:container-test
fake_image=localhost/fakemilvus:container-test
idle_image=localhost/idle:container-test
# Images this script built before and is about to replace, removed once untagged.
old_ids=$(for i in "$image" "$fake_image" "$idle_image"; do podman image inspect -f '{{.Id}}' "$i" 2>/dev/null || true; done)
log "building the Dockerfile unchanged (--pull=never)"
t0=$(date +%s)
# --format docker keeps the HEALTHCHECK (OCI image config has none), as docker build does.
# --network=host: `go mod download` in the build needs the Go module proxy.
podman build --quiet --pull=never --format docker --network=host --build-arg VERSION=container-test \
  --label "$mark=1" -t "$image" -f Dockerfile . >"$work/build.log" 2>&1 || { tail -20 "$work/build.log" >&2; die "podman build of the Dockerfile failed"; }
log "Dockerfile built in $(( $(date +%s) - t0 )) s"
(cd test && CGO_ENABLED=0 go build -o "$work/fakemilvus" ./cmd/fakemilvus) || die "go build of test/cmd/fakemilvus failed"
# With Milvus's own arguments (`milvus run standalone`, as both examples run
# it) the fake listens where Milvus would: see test/cmd/fakemilvus.
printf 'FROM %s\nCOPY fakemilvus /fakemilvus\nENTRYPOINT ["/fakemilvus"]\nCMD ["--listen", "0.0.0.0:19530", "--rest-listen", "0.0.0.0:19531"]\n' "$distroless_tag" >"$work/Containerfile"
podman build --quiet --pull=never --format docker --label "$mark=1" -t "$fake_image" -f "$work/Containerfile" "$work" >/dev/null || die "build of the fake Milvus image failed"
# etcd and MinIO of the compose example: idle stand-ins (the fake keeps its
# state in memory); catatonit waits for the stop signal and ignores the command.
mkdir -p "$work/idle" && cp "$(command -v catatonit)" "$work/idle/catatonit"
printf 'FROM %s\nCOPY catatonit /catatonit\nENTRYPOINT ["/catatonit", "-P", "--"]\n' "$distroless_tag" >"$work/idle/Containerfile"
podman build --quiet --pull=never --format docker --label "$mark=1" -t "$idle_image" -f "$work/idle/Containerfile" "$work/idle" >/dev/null || die "build of the idle stand-in image failed"
for i in $old_ids; do
  [ -n "$(podman image inspect -f '{{join .RepoTags ""}}' "$i" 2>/dev/null)" ] || podman rmi "$i" >/dev/null 2>&1 || true
done

sdk() { # sdk TESTNAME env...: the Milvus Go SDK checks, which fail (never skip) on a missing address.
  local name=$1; shift
  [ -x "$work/sdk.test" ] || (cd test && go test -c -tags container -o "$work/sdk.test" ./container/) || die "go test -c of test/container failed"
  (env "$@" "$work/sdk.test" -test.count=1 -test.run "^$name\$" -test.v >"$work/sdk.log" 2>&1) \
    || { cat "$work/sdk.log" >&2; die "SDK check $name failed"; }
  grep -q -- "--- PASS: $name" "$work/sdk.log" || { cat "$work/sdk.log" >&2; die "SDK check $name did not run"; }
}
wait_ready() { # wait_ready URL [TENTHS]: 200 within 30 s (or TENTHS/10 s)
  for _ in $(seq "${2:-300}"); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)" = 200 ] && return 0; sleep 0.1
  done
  return 1
}
hostport() { podman port "$1" "$2" | head -1 | sed 's/0\.0\.0\.0/127.0.0.1/'; }

# --- the image alone: user, volume, SDK, HEALTHCHECK, SIGTERM, --read-only ------
# One pod (a shared loopback); the proxy is pointed at the fake with --backend.
pod=ct-authproxy-pod
podman pod rm -f "$pod" >/dev/null 2>&1 || true
podman pod create --name "$pod" -p 127.0.0.1::19530 -p 127.0.0.1::9091 >/dev/null || die "podman pod create failed"
started+=(ct-milvus ct-authproxy)
podman run -d --name ct-milvus --pod "$pod" "$fake_image" --listen 127.0.0.1:19540 >/dev/null || die "the fake Milvus did not start"
vol=ct-authproxy-credentials
podman volume rm -f "$vol" >/dev/null 2>&1 || true
podman volume create "$vol" >/dev/null
t0=$(date +%s%N)
podman run -d --name ct-authproxy --read-only -v "$vol":/var/lib/authproxy \
  --pod "$pod" "$image" serve --config /etc/authproxy/authproxy.yaml --backend 127.0.0.1:19540 >/dev/null || die "the authproxy image did not start"
admin=$(podman pod inspect -f '{{range $k, $v := .InfraConfig.PortBindings}}{{$k}}={{(index $v 0).HostIP}}:{{(index $v 0).HostPort}} {{end}}' "$pod")
client=$(tr ' ' '\n' <<<"$admin" | sed -n 's#^19530/tcp=##p'); admin=$(tr ' ' '\n' <<<"$admin" | sed -n 's#^9091/tcp=##p')
[ -n "$client" ] && [ -n "$admin" ] || die "no published ports on the pod"
wait_ready "http://$admin/readyz" || { podman logs ct-authproxy >&2; die "/readyz not 200 within 30 s"; }
ready_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
log "ok: /readyz 200 after $ready_ms ms from podman run (read-only root filesystem)"
pid=$(podman inspect -f '{{.State.Pid}}' ct-authproxy)
uid=$(awk '/^Uid:/{print $2}' "/proc/$pid/status")
[ "$uid" = 65532 ] || die "the proxy runs as uid $uid, want 65532"
log "ok: runs as uid 65532"
cred="$(podman volume inspect -f '{{.Mountpoint}}' "$vol")/credentials.yaml"
[ -f "$cred" ] || die "no credentials.yaml in the volume"
[ "$(stat -c '%a %u' "$cred")" = "600 65532" ] || die "credentials.yaml is $(stat -c '%a %u' "$cred"), want 600 65532"
log "ok: credentials.yaml in the volume, mode 0600, owner 65532"
sdk TestSDKThroughProxy AUTHPROXY_ADDR="$client"
log "ok: Go SDK as root:Milvus through $client; a wrong password refused"
podman healthcheck run ct-authproxy >/dev/null || die "the image's HEALTHCHECK failed while it serves"
log "ok: HEALTHCHECK exits 0"
t0=$(date +%s%N)
podman stop -t 10 ct-authproxy >/dev/null
stop_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
code=$(podman inspect -f '{{.State.ExitCode}}' ct-authproxy)
[ "$code" != 137 ] && [ "$stop_ms" -lt 10000 ] || die "SIGTERM: exit code $code after $stop_ms ms (killed at the 10 s grace period)"
log "ok: stopped on SIGTERM in $stop_ms ms, exit code $code"
size=$(podman image inspect -f '{{.Size}}' "$image")
log "image size: $size bytes ($(( size / 1024 / 1024 )) MiB); start-up to /readyz 200: $ready_ms ms"
podman rm -f -t 2 ct-authproxy ct-milvus >/dev/null
podman pod rm -f "$pod" >/dev/null
podman volume rm -f "$vol" >/dev/null
started=()

. test/container/kube.sh
. test/container/compose.sh
. test/container/helm.sh
log "PASS: the image, the Kubernetes sidecar example, the compose example and the Helm chart in $(( $(date +%s) - script_t0 )) s"
