#!/usr/bin/env bash
# Install the real Redis and Prometheus servers (and promtool) from Debian packages when
# they are missing. Tests and the demo run these binaries; nothing is mocked.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || missing+=(prometheus)
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "redis-server, prometheus and promtool present"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "error: ${missing[*]} missing and not root (no sudo): apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: ${missing[*]} missing and apt-get is unavailable; install them with your package manager" >&2
  exit 1
fi
echo ">> installing ${missing[*]} from Debian packages"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
