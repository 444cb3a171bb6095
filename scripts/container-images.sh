#!/usr/bin/env bash
# Builds every image the deployment uses, on a machine without a container
# registry: the base stand-ins (container-base.sh), stand-ins for the official
# redis, postgres and haproxy images from Debian's packages (an existing tag is
# kept; FORCE=1 rebuilds), and firstcome's own image from the Dockerfile (always;
# its layer cache makes an unchanged build quick).
#   scripts/container-images.sh [firstcome image tag, default firstcome:latest]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/podman-env.sh
. scripts/podman-env.sh
scripts/container-base.sh

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
pids=()
# Independent builds, side by side: most of their time is waiting on mirrors.
build() { # name, then the podman build arguments
  local name=$1
  shift
  podman build --quiet "$@" >"$logs/$name" 2>&1 &
  pids+=("$!:$name")
}
standin() { # tag, Containerfile
  if [ "${FORCE:-0}" != 1 ] && podman image exists "$1"; then
    echo "images: $1 exists"
  else
    build "${2%.Containerfile}" -f "deploy/podman/standins/$2" -t "$1" deploy/podman/standins
  fi
}
standin docker.io/library/redis:7.0-bookworm redis.Containerfile
standin docker.io/library/postgres:15-bookworm postgres.Containerfile
standin docker.io/library/haproxy:2.6-bookworm haproxy.Containerfile

tag=${1:-firstcome:latest}
# A CA bundle for a network that re-signs TLS reaches npm as a build secret.
ca=${BUILD_CA_FILE:-${NODE_EXTRA_CA_CERTS:-}}
build firstcome ${ca:+--secret "id=ca,src=$ca"} -t "$tag" .

failed=0
for entry in "${pids[@]}"; do
  if wait "${entry%%:*}"; then
    echo "images: built ${entry#*:}"
  else
    echo "images: building ${entry#*:} failed:" >&2
    tail -40 "$logs/${entry#*:}" >&2
    failed=1
  fi
done
[ "$failed" = 0 ] || exit 1
echo "images: $tag is $(podman image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"
