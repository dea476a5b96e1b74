#!/usr/bin/env bash
# Publishes the three programs as native executables (scripts/publish.sh) and installs them as PREFIX/bin/fileproxy-server,
# fileproxy-proxy and fileproxy-client. Usage: scripts/install.sh [PREFIX]   (default: /usr/local as root, else ~/.local)
set -euo pipefail
cd "$(dirname "$0")/.."
if ((EUID == 0)); then default=/usr/local; else default=$HOME/.local; fi
prefix=${1:-$default}
case "$prefix" in -h|--help) sed -n '2,3p' "$0"; exit 0 ;; esac

native=$(./scripts/publish.sh)
mkdir -p "$prefix/bin"
for name in server proxy client; do
  install -m 755 "$native/fileproxy-$name" "$prefix/bin/fileproxy-$name"
  echo "installed $prefix/bin/fileproxy-$name"
done
case ":$PATH:" in
  *":$prefix/bin:"*) ;;
  *) echo "note: $prefix/bin is not on PATH; add it, e.g. export PATH=\"$prefix/bin:\$PATH\"" >&2 ;;
esac
