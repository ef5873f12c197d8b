# Sourced by run.sh (uses its die, log, sdk, wait_ready, take_name, $work,
# $image, $fake_image, $idle_image): examples/docker-compose run with
# podman-compose, step by step as its README says, `docker compose` read as
# `podman-compose -p milvus-authproxy`.
#
# podman-compose 1.0.3 (Debian 12) differs from docker compose in ways that
# need no change to the compose file:
#  - it ignores the top-level `name:`, hence -p with the same name;
#  - it starts services in depends_on order but does not wait for
#    `condition: service_healthy` (and podman runs no healthchecks without
#    systemd), so the script waits for /readyz itself;
#  - it builds OCI images, which drop HEALTHCHECK: BUILDAH_FORMAT=docker
#    keeps it, as docker compose build does;
#  - `down -v` leaves the project's network: the script removes it.
cdir=examples/docker-compose
project=milvus-authproxy
pc() { (cd "$cdir" && podman-compose -p "$project" "$@"); }
compose_down() {
  pc down -v >"$work/compose-down.log" 2>&1
  podman network rm -f "${project}_default" >/dev/null 2>&1
  compose_up=""
}

[ -z "$(podman ps -a -q --filter "label=io.podman.compose.project=$project")" ] \
  || die "containers of the compose project $project exist already; remove them (cd $cdir && podman-compose -p $project down)"
for v in $(podman volume ls -q); do
  case "$v" in "${project}_"*) die "the volume $v of the compose project exists already; remove it (podman volume rm $v)";; esac
done
podman network exists "${project}_default" && die "the network ${project}_default exists already; remove it (podman network rm ${project}_default)"
nets+=("${project}_default")
while read -r svc img; do
  case "$svc" in
    authproxy) take_name "$image" "$img" ;;
    standalone) take_name "$fake_image" "$img" ;;
    etcd|minio) take_name "$idle_image" "$img" ;;
    *) die "$cdir/docker-compose.yml: unexpected service $svc" ;;
  esac
done < <(python3 -c 'import sys, yaml
for n, s in yaml.safe_load(open(sys.argv[1]))["services"].items(): print(n, s["image"])' "$cdir/docker-compose.yml")
compose_up=$project

# 1. Build the image and set root's password before opening the port.
t0=$(date +%s)
# The build arg matches the first build so that every layer comes from its cache.
BUILDAH_FORMAT=docker pc build --build-arg VERSION=container-test authproxy >"$work/compose-build.log" 2>&1 \
  || { tail -20 "$work/compose-build.log" >&2; die "podman-compose build authproxy failed"; }
podman image inspect -f '{{.Config.Healthcheck}}' authproxy:latest | grep -q healthcheck || die "podman-compose build authproxy: the image has no HEALTHCHECK"
log "ok: podman-compose build authproxy in $(( $(date +%s) - t0 )) s (HEALTHCHECK kept)"
composepw="compose-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
echo "$composepw" | pc run --rm -T --no-deps authproxy user passwd root -c /etc/authproxy/authproxy.yaml --password-stdin \
  >"$work/compose-run.log" 2>&1 || { cat "$work/compose-run.log" >&2; die "podman-compose run ... user passwd root failed"; }
log "ok: podman-compose run --rm -T --no-deps authproxy user passwd root"

# 2. Start.
t0=$(date +%s%N)
pc up -d >"$work/compose-up.log" 2>&1 || { cat "$work/compose-up.log" >&2; die "podman-compose up -d failed"; }
wait_ready http://127.0.0.1:9091/readyz || { pc logs authproxy >&2 2>&1; pc ps >&2; die "compose: 127.0.0.1:9091/readyz not 200 within 30 s"; }
compose_ready_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
running=$(pc ps 2>/dev/null | grep -c " Up " || true)
[ "$running" = 4 ] || { pc ps >&2; die "compose: $running of 4 services up"; }
log "ok: podman-compose up -d: 4 services up, 127.0.0.1:9091/readyz 200 after $compose_ready_ms ms"

# 3. Connect as root: the new password works, the default one is refused.
sdk TestSDKChangedPassword AUTHPROXY_ADDR=127.0.0.1:19530 AUTHPROXY_PASSWORD="$composepw" AUTHPROXY_OLD_PASSWORD=Milvus
log "ok: Go SDK through 127.0.0.1:19530 as root with the password set by step 1; Milvus and no credentials refused"
# Milvus publishes nothing: only authproxy's ports are bound on the host.
for svc in etcd minio standalone; do
  p=$(podman port "${project}_${svc}_1" 2>/dev/null || true)
  [ -z "$p" ] || die "compose: $svc publishes $p"
done
log "ok: etcd, minio and standalone publish no port"

# 5. Manage users offline, on the shared volume, while the proxy runs.
echo "alice-$composepw" | pc run --rm -T --no-deps authproxy user add alice --role admin -c /etc/authproxy/authproxy.yaml --password-stdin \
  >"$work/compose-run.log" 2>&1 || { cat "$work/compose-run.log" >&2; die "podman-compose run ... user add alice failed"; }
pc run --rm -T --no-deps authproxy user list -c /etc/authproxy/authproxy.yaml >"$work/compose-run.log" 2>&1 \
  || { cat "$work/compose-run.log" >&2; die "podman-compose run ... user list failed"; }
grep -qw alice "$work/compose-run.log" || { cat "$work/compose-run.log" >&2; die "user list does not show alice"; }
pc run --rm -T --no-deps authproxy user del alice -c /etc/authproxy/authproxy.yaml >"$work/compose-run.log" 2>&1 \
  || { cat "$work/compose-run.log" >&2; die "podman-compose run ... user del alice failed"; }
log "ok: podman-compose run ... user add alice, user list (shows alice), user del alice"

# Stop.
compose_down
left=$(podman ps -a -q --filter "label=io.podman.compose.project=$project"; podman volume ls -q | grep "^${project}_" || true)
[ -z "$left" ] || die "podman-compose down -v left: $left"
log "ok: podman-compose down -v removed the containers and volumes"
