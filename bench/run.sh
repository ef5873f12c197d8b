#!/usr/bin/env bash
# The side-by-side benchmark of authproxy (`make bench`); see bench/README.md.
#
# Builds authproxy, the fake Milvus and the load generator, installs nginx if
# missing (Debian packages), starts on 127.0.0.1: the fake backend, authproxy
# with auth off, with auth on, with TLS+auth and on the frame relay, the l4
# floor, nginx (h2c and TLS) and its twin, runs the load generator over them
# interleaved, stops everything and writes
# bench/results/{results.md,results.json,latency.svg}.
#
# Environment: ROUNDS (3), OUT (bench/results), PORT_BASE (21000, below the kernel's ephemeral range),
# BACKEND (quiet | fakemilvus; see README), LOADGEN_ARGS (extra flags),
# NGINX_WORKERS (auto), AUTHPROXY_BIN (a prebuilt authproxy to measure instead
# of building the work tree's, e.g. for before/after comparisons), TARGETS
# (names to measure, beside direct; default all), AP_ENV (extra environment
# of the authproxy processes, e.g. GOGC=200, for experiments), L4_ARGS (extra
# flags of the l4 floor: -copy buffer makes it a user-space copy relay).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-bench/results}
PORT_BASE=${PORT_BASE:-21000}
BACKEND=${BACKEND:-quiet}
NGINX_WORKERS=${NGINX_WORKERS:-auto}
LOADGEN_ARGS=${LOADGEN_ARGS:-}
AP_ENV=${AP_ENV:-}
GO=${GO:-go}

P_FAKE=$((PORT_BASE + 40))
P_NOAUTH=$((PORT_BASE + 31))
P_AUTH=$((PORT_BASE + 32))
P_TLS=$((PORT_BASE + 33))
P_NGX=$((PORT_BASE + 35))
P_NGXTLS=$((PORT_BASE + 36))
P_ETCD=$((PORT_BASE + 37))
P_ETCDPEER=$((PORT_BASE + 38))
P_APETCD=$((PORT_BASE + 34))
P_FRAMES=$((PORT_BASE + 42))
P_FRAMESTLS=$((PORT_BASE + 43))
P_FLOOR=$((PORT_BASE + 44))
P_LIMITS=$((PORT_BASE + 45))
P_TWIN=$((PORT_BASE + 46))
P_TWINTLS=$((PORT_BASE + 47))

log() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

log "building bin/authproxy, bin/fakemilvus, bin/loadgen"
$GO build -o bin/authproxy ./cmd/authproxy
AP=${AUTHPROXY_BIN:-bin/authproxy}
(cd test && $GO build -o ../bin/fakemilvus ./cmd/fakemilvus && $GO build -o ../bin/loadgen ./cmd/loadgen)

if ! command -v nginx >/dev/null 2>&1; then
	log "installing nginx from Debian packages"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq nginx-light >/dev/null || apt-get install -y -qq nginx >/dev/null
fi
NGINX_VERSION=$(nginx -v 2>&1 | sed 's/^nginx version: //')

for p in $P_FAKE $P_FLOOR $P_NOAUTH $P_AUTH $P_TLS $P_NGX $P_NGXTLS $P_ETCD $P_ETCDPEER $P_APETCD $P_TWIN $P_TWINTLS $((P_NOAUTH + 60)) $((P_AUTH + 60)) $((P_TLS + 60)) $((P_APETCD + 60)); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		echo "bench: port $p on 127.0.0.1 is in use; set PORT_BASE" >&2
		exit 1
	fi
done

WORK=$(mktemp -d /tmp/authproxy-bench.XXXXXX)
PIDS=()
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for _ in $(seq 50); do
		local alive=0
		for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.2
	done
	for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
	if [ $rc != 0 ]; then
		log "failed (exit $rc); logs:"
		tail -n 20 "$WORK"/*.log >&2 2>/dev/null || true
	fi
	rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT INT TERM

wait_port() { # port name
	for _ in $(seq 150); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "bench: $2 is not listening on 127.0.0.1:$1" >&2
	return 1
}

log "certificates and credentials in $WORK"
bin/authproxy certs generate --dir "$WORK/certs" >/dev/null
PASSWORD="bench-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$PASSWORD" | bin/authproxy user passwd root --password-stdin --credentials "$WORK/credentials.yaml" 2>/dev/null
# A user whose grants are checked on every call (the ap-rbac target): Search
# on the search collection and Insert on the insert one through a role,
# beside root (ap-auth), which skips them.
cat >>"$WORK/credentials.yaml" <<EOF
roles:
  - name: searcher
grants:
  - {role: searcher, object: Collection, objectName: bench_search, db: default, privilege: Search}
  - {role: searcher, object: Collection, objectName: bench_insert, db: default, privilege: Insert}
EOF
printf '%s\n' "$PASSWORD" | bin/authproxy user add reader --role searcher --password-stdin --credentials "$WORK/credentials.yaml" 2>/dev/null

# The backend.
if [ "$BACKEND" = fakemilvus ]; then
	bin/fakemilvus --listen "127.0.0.1:$P_FAKE" >/dev/null 2>"$WORK/fake.log" &
else
	bin/loadgen backend -listen "127.0.0.1:$P_FAKE" -max-life 30m 2>"$WORK/fake.log" &
fi
FAKE_PID=$!
PIDS+=("$FAKE_PID")
wait_port "$P_FAKE" "the fake backend"

# The authproxy processes, GOMAXPROCS=2 each (the machine's cores).
start_authproxy() { # name port auth tls [forwarding [extra YAML]]
	local name=$1 port=$2 auth=$3 tls=$4 forwarding=${5:-grpc} extra=${6:-}
	{
		echo "listen: \"127.0.0.1:$port\""
		echo "forwarding: $forwarding"
		echo "backend: {address: \"127.0.0.1:$P_FAKE\"}"
		echo "common: {security: {authorizationEnabled: $auth}}"
		if [ "$auth" = true ]; then
			echo "credentials: {file: \"$WORK/credentials.yaml\"}"
		else
			echo "credentials: {file: \"$WORK/credentials-$name.yaml\"}"
		fi
		echo "admin: {listen: \"127.0.0.1:$((port + 60))\"}"
		echo "shutdown: {gracePeriod: 2s}"
		if [ "$tls" = true ]; then
			echo "tls: {certFile: \"$WORK/certs/server.pem\", keyFile: \"$WORK/certs/server.key\"}"
		fi
		if [ -n "$extra" ]; then
			echo "$extra"
		fi
	} >"$WORK/$name.yaml"
	# shellcheck disable=SC2086
	env GOMAXPROCS=2 $AP_ENV "$AP" serve --config "$WORK/$name.yaml" >"$WORK/$name.log" 2>&1 &
	PIDS+=("$!")
	LAST_PID=$!
	wait_port "$port" "authproxy $name"
}
start_authproxy ap-noauth "$P_NOAUTH" false false
AP_NOAUTH_PID=$LAST_PID
start_authproxy ap-auth "$P_AUTH" true false
AP_AUTH_PID=$LAST_PID
start_authproxy ap-tls "$P_TLS" true true
AP_TLS_PID=$LAST_PID
# ap-auth and ap-tls again on the frame relay (forwarding: frames).
start_authproxy ap-frames "$P_FRAMES" true false frames
AP_FRAMES_PID=$LAST_PID
start_authproxy ap-frames-tls "$P_FRAMESTLS" true true frames
AP_FRAMESTLS_PID=$LAST_PID
# ap-auth with rate limits configured but never reached (issue 29): every
# call counted by two limits, searches and inserts by a third.
start_authproxy ap-limits "$P_LIMITS" true false grpc 'rateLimits: {limits: [
  {name: calls, user: "*", rate: callRate, max: 1e9},
  {name: searcher-vectors, role: searcher, rate: dql.searchRate, max: 1e9},
  {name: per-db, database: "*", rate: dql.callRate, max: 1e9},
  {name: inserts, user: "*", rate: dml.insertRate, max: 1e6}]}'
AP_LIMITS_PID=$LAST_PID

# A fourth authproxy whose credential store is on etcd (embedded in the load
# generator's binary), beside ap-auth on a file: the cached check must not
# care where the users live.
bin/loadgen etcd -dir "$WORK/etcd" -listen "127.0.0.1:$P_ETCD" -peer "127.0.0.1:$P_ETCDPEER" 2>"$WORK/etcd.log" &
PIDS+=("$!")
wait_port "$P_ETCD" "etcd"
cat >"$WORK/ap-etcd.yaml" <<EOF
listen: "127.0.0.1:$P_APETCD"
forwarding: grpc
backend: {address: "127.0.0.1:$P_FAKE"}
common: {security: {authorizationEnabled: true, defaultRootPassword: "$PASSWORD"}}
credentials: {store: etcd, etcd: {endpoints: ["127.0.0.1:$P_ETCD"]}}
admin: {listen: "127.0.0.1:$((P_APETCD + 60))"}
shutdown: {gracePeriod: 2s}
EOF
GOMAXPROCS=2 "$AP" serve --config "$WORK/ap-etcd.yaml" >"$WORK/ap-etcd.log" 2>&1 &
PIDS+=("$!")
AP_ETCD_PID=$!
wait_port "$P_APETCD" "authproxy ap-etcd"

# The floor: a TCP relay that parses nothing (splice(2) in the kernel),
# to show what the least possible proxy costs on this machine.
# shellcheck disable=SC2086
bin/loadgen l4 -listen "127.0.0.1:$P_FLOOR" -to "127.0.0.1:$P_FAKE" ${L4_ARGS:-} 2>"$WORK/l4.log" &
PIDS+=("$!")
FLOOR_PID=$!
wait_port "$P_FLOOR" "l4 relay"

# nginx: an instance has an h2c and a TLS listener, grpc_pass to the fake.
start_nginx() { # dir h2c-port tls-port
	local dir=$1 h2c=$2 tls=$3
	mkdir -p "$dir/nginx"
	cat >"$dir/nginx.conf" <<EOF
# worker_processes auto = one per core = 2 here, as authproxy's GOMAXPROCS=2.
worker_processes $NGINX_WORKERS;
worker_rlimit_nofile 8192;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/nginx/body;
    proxy_temp_path $dir/nginx/proxy;
    fastcgi_temp_path $dir/nginx/fastcgi;
    uwsgi_temp_path $dir/nginx/uwsgi;
    scgi_temp_path $dir/nginx/scgi;

    # Milvus-sized messages: no body limit, room for 4 MiB inserts.
    client_max_body_size 0;
    client_body_buffer_size 4m;
    http2_body_preread_size 4m;
    grpc_buffer_size 64k;
    # Long-lived client connections, as SDKs keep them (default 1000 requests).
    keepalive_requests 100000000;
    keepalive_timeout 600s;

    upstream fake {
        server 127.0.0.1:$P_FAKE;
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 600s;
    }
    server {
        listen 127.0.0.1:$h2c http2;
        location / { grpc_pass grpc://fake; }
    }
    server {
        listen 127.0.0.1:$tls ssl http2;
        ssl_certificate $WORK/certs/server.pem;
        ssl_certificate_key $WORK/certs/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / { grpc_pass grpc://fake; }
    }
}
EOF
	nginx -t -c "$dir/nginx.conf" -p "$dir" 2>"$dir/nginx-test.log" || { cat "$dir/nginx-test.log" >&2; exit 1; }
	nginx -c "$dir/nginx.conf" -p "$dir" -g 'daemon off;' 2>"$dir/nginx.log" &
	PIDS+=("$!")
	LAST_PID=$!
	wait_port "$h2c" "nginx h2c"
	wait_port "$tls" "nginx TLS"
	sleep 0.3
	LAST_ALL=$(echo "$LAST_PID" $(pgrep -P "$LAST_PID") | tr ' ' '+')
}
start_nginx "$WORK" "$P_NGX" "$P_NGXTLS"
NGINX_PID=$LAST_PID
NGINX_ALL=$LAST_ALL
# The twin: a second nginx, the same in every way, measured as a target of
# its own. Held to the frame relay's bounds, it shows what a proxy exactly
# level with nginx scores against them on this machine in this run.
start_nginx "$WORK/twin" "$P_TWIN" "$P_TWINTLS"
TWIN_ALL=$LAST_ALL

# TARGETS (a comma-separated list of names) runs the workloads on those
# targets only, beside direct, which the load generator needs first.
ALL_TARGETS=(
	"direct=127.0.0.1:$P_FAKE,pid=$FAKE_PID"
	"ap-noauth=127.0.0.1:$P_NOAUTH,pid=$AP_NOAUTH_PID"
	"ap-auth=127.0.0.1:$P_AUTH,pid=$AP_AUTH_PID,mem"
	"ap-rbac=127.0.0.1:$P_AUTH,pid=$AP_AUTH_PID,token=reader:$PASSWORD"
	"ap-etcd=127.0.0.1:$P_APETCD,pid=$AP_ETCD_PID"
	"ap-tls=127.0.0.1:$P_TLS,tls,pid=$AP_TLS_PID,mem"
	"ap-frames=127.0.0.1:$P_FRAMES,pid=$AP_FRAMES_PID,mem"
	"ap-frames-tls=127.0.0.1:$P_FRAMESTLS,tls,pid=$AP_FRAMESTLS_PID,mem"
	"ap-limits=127.0.0.1:$P_LIMITS,pid=$AP_LIMITS_PID"
	"l4-splice=127.0.0.1:$P_FLOOR,pid=$FLOOR_PID"
	"nginx-h2c=127.0.0.1:$P_NGX,pid=$NGINX_ALL,mem"
	"nginx-tls=127.0.0.1:$P_NGXTLS,tls,pid=$NGINX_ALL,mem"
	"nginx-twin=127.0.0.1:$P_TWIN,pid=$TWIN_ALL,mem"
	"nginx-twin-tls=127.0.0.1:$P_TWINTLS,tls,pid=$TWIN_ALL,mem"
)
TARGET_ARGS=()
for t in "${ALL_TARGETS[@]}"; do
	name=${t%%=*}
	if [ -z "${TARGETS:-}" ] || [ "$name" = direct ] || [[ ",$TARGETS," == *",$name,"* ]]; then
		TARGET_ARGS+=(-target "$t")
	fi
done

log "running the load generator ($ROUNDS rounds)"
mkdir -p "$OUT"
# shellcheck disable=SC2086
bin/loadgen run -rounds "$ROUNDS" -max-run "$((3 * ROUNDS + 6))m" -out "$OUT" -ca "$WORK/certs/ca.pem" -token "root:$PASSWORD" \
	-backend-pid "$FAKE_PID" \
	"${TARGET_ARGS[@]}" \
	-machine "Go (authproxy build): $($GO env GOVERSION)|nginx: $NGINX_VERSION, worker_processes $NGINX_WORKERS ($(pgrep -c -P "$NGINX_PID") workers)|authproxy: $AP, GOMAXPROCS=2, git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet -- proxy relay server 2>/dev/null || echo ' + local changes')|backend: $BACKEND" \
	-notes "all processes share the same 2 cores: loadgen, proxy and backend compete for CPU, so throughput figures are whole-system figures; see 'target CPU per call' for the proxy's own cost|c=1 and c=32 use one client connection per target (as one SDK client); the memory test opens more, one GetVersion each|nginx's RSS is master + workers; nginx-h2c and nginx-tls are the same nginx processes, nginx-twin and nginx-twin-tls a second instance of the same configuration|every call carries the same authorization metadata to every target (nginx and direct ignore it)" \
	$LOADGEN_ARGS
log "results in $OUT/results.md, $OUT/latency.svg, $OUT/results.json"
