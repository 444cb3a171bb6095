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

standin() { # tag, Containerfile
  if [ "${FORCE:-0}" != 1 ] && podman image exists "$1"; then
    echo "images: $1 exists"
  else
    podman build --quiet -f "deploy/podman/standins/$2" -t "$1" deploy/podman/standins >/dev/null
    echo "images: built $1"
  fi
}
standin docker.io/library/redis:7.0-bookworm redis.Containerfile
standin docker.io/library/postgres:15-bookworm postgres.Containerfile
standin docker.io/library/haproxy:2.6-bookworm haproxy.Containerfile

tag=${1:-firstcome:latest}
# A CA bundle for a network that re-signs TLS reaches npm as a build secret.
ca=${BUILD_CA_FILE:-${NODE_EXTRA_CA_CERTS:-}}
podman build --quiet ${ca:+--secret "id=ca,src=$ca"} -t "$tag" . >/dev/null
echo "images: built $tag ($(podman image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
