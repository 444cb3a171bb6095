#!/usr/bin/env bash
# The Docker-compatible API that docker-compose talks to, from podman, plus the
# loop that runs the containers' healthchecks (podman schedules them with systemd
# timers; these machines have no systemd).
#   scripts/podman-service.sh start   # then: . scripts/podman-env.sh; docker-compose …
#   scripts/podman-service.sh stop
# The socket is FIRSTCOME_PODMAN_SOCKET (default /run/firstcome-podman/podman.sock);
# the two processes' ids are kept beside it. With FIRSTCOME_COMPOSE_PROJECT set,
# only that compose project's containers get their healthchecks run.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/podman-env.sh
. scripts/podman-env.sh
dir=$(dirname "$FIRSTCOME_PODMAN_SOCKET")
HEALTH_INTERVAL=${HEALTH_INTERVAL:-2}

alive() { [ -f "$dir/$1.pid" ] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

health_loop() {
  local filter=()
  [ -n "${FIRSTCOME_COMPOSE_PROJECT:-}" ] &&
    filter=(--filter "label=com.docker.compose.project=$FIRSTCOME_COMPOSE_PROJECT")
  while sleep "$HEALTH_INTERVAL"; do
    for id in $(podman ps "${filter[@]}" --format '{{.ID}} {{.Status}}' | awk '/\(/ {print $1}'); do
      podman healthcheck run "$id" >/dev/null 2>&1 || true
    done
  done
}

case "${1:-}" in
start)
  mkdir -p "$dir"
  if ! alive service; then
    rm -f "$FIRSTCOME_PODMAN_SOCKET"
    setsid podman system service --time=0 "unix://$FIRSTCOME_PODMAN_SOCKET" \
      >"$dir/service.log" 2>&1 </dev/null &
    echo $! >"$dir/service.pid"
  fi
  if ! alive health; then
    health_loop >/dev/null 2>&1 </dev/null &
    echo $! >"$dir/health.pid"
  fi
  for _ in $(seq 1 100); do [ -S "$FIRSTCOME_PODMAN_SOCKET" ] && break; sleep 0.1; done
  [ -S "$FIRSTCOME_PODMAN_SOCKET" ] || { cat "$dir/service.log" >&2; exit 1; }
  echo "podman: serving $DOCKER_HOST"
  ;;
stop)
  for name in health service; do
    if alive "$name"; then kill "$(cat "$dir/$name.pid")"; fi
    rm -f "$dir/$name.pid"
  done
  rm -f "$FIRSTCOME_PODMAN_SOCKET"
  ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac
