#!/usr/bin/env bash
# What `make test` starts on loopback besides Go: Node.js for the Node SDK
# walk, slapd for the directory tests, Debian's etcd-server for the
# 3-member etcd clusters, Chromium for the console's browser tests.
# Installed with apt-get when missing (as root); the container tools are
# installed by test/container/run.sh, which alone needs them.
set -euo pipefail
need=()
command -v curl >/dev/null || need+=(curl)
command -v node >/dev/null || need+=(nodejs npm)
command -v slapd >/dev/null || [ -x /usr/sbin/slapd ] || need+=(slapd)
[ -x /usr/bin/etcd ] || need+=(etcd-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "test/deps.sh: the tests need ${need[*]}: run make test as root, or install them with apt-get" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}"
