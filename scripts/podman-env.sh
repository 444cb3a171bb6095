# Sourced by the container scripts and tests' shell steps: podman's settings for
# these machines come from the project's own containers.conf (runc on cgroups v1,
# explicit ulimits, no systemd), never from the system-wide configuration.
# shellcheck shell=bash
_fc_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CONTAINERS_CONF="$_fc_root/deploy/podman/containers.conf"
# Without systemd, podman must not try to schedule healthchecks with its timers;
# scripts/podman-service.sh runs them instead.
export DISABLE_HC_SYSTEMD=true
# Images in Docker's format, which keeps HEALTHCHECK (OCI's has no field for it).
export BUILDAH_FORMAT=docker
# The socket docker-compose talks to (scripts/podman-service.sh starts the service).
export FIRSTCOME_PODMAN_SOCKET="${FIRSTCOME_PODMAN_SOCKET:-/run/firstcome-podman/podman.sock}"
export DOCKER_HOST="unix://$FIRSTCOME_PODMAN_SOCKET"
_fc_nofile=$(sed -n 's/.*"nofile=\([0-9]*\):.*/\1/p' "$CONTAINERS_CONF")
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$_fc_nofile" ]; then
  echo "podman-env: the host's hard nofile limit ($(ulimit -Hn)) is below the $_fc_nofile" \
    "of $CONTAINERS_CONF; lower it there" >&2
fi
unset _fc_root _fc_nofile
