#!/usr/bin/env bash
# Make a Docker engine reachable: do nothing when one already answers, otherwise
# install Debian's docker.io (if dockerd is missing) and start dockerd in the background.
# Used by .ci/run and by developers on a fresh machine. Idempotent.
set -euo pipefail

log=${DOCKERD_LOG:-/tmp/dockerd.log}
wait_seconds=${DOCKERD_WAIT:-60}

engine_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && engine_answers; then
  echo "ensure-docker: engine already reachable ($(docker version --format '{{.Server.Version}}'))"
  exit 0
fi

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v dockerd >/dev/null 2>&1; then
  echo "ensure-docker: installing docker.io"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

# Without procps (pgrep): a minimal Debian has none. /proc tells the same.
dockerd_running() {
  local comm
  for comm in /proc/[0-9]*/comm; do
    [ "$(cat "$comm" 2>/dev/null)" = dockerd ] && return 0
  done
  return 1
}

if ! dockerd_running; then
  echo "ensure-docker: starting dockerd (log: $log)"
  # setsid: dockerd must outlive this script and the shell that ran it.
  as_root setsid dockerd >"$log" 2>&1 < /dev/null &
fi

for _ in $(seq "$wait_seconds"); do
  if [ -S /var/run/docker.sock ] && engine_answers; then
    echo "ensure-docker: engine up ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 1
done
echo "ensure-docker: dockerd did not answer within ${wait_seconds}s; last log lines:" >&2
tail -n 20 "$log" >&2 || true
exit 1
