#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian 12 / Node 20 machine, then builds.
# Idempotent: each step runs only when what it provides is missing or stale.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(iproute2 iptables nftables containernetworking-plugins containerd procps iputils-ping packer systemd curl gcc libc6-dev busybox-static strace)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing apt packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm install (pinned by package-lock.json) when node_modules is missing or older than the lockfile.
# Not `npm ci`: npm 11 rejects this lockfile's platform-specific optional packages (biome's) as
# "missing" although `npm install` resolves them to the same versions.
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "setup: installing npm packages" >&2
  npm install --no-audit --no-fund --loglevel=error
fi

npm run --silent build
