#!/usr/bin/env bash
# The main job: installs and builds what is missing, then runs vpc-cni end to end on a local VPC
# (2 x m5.large, ipamd in each, pods through the CNI plugin, connectivity checks, report, cleanup).
#   bash scripts/run.sh [--instances N] [--instance-type T] [--pods N] [--keep [--name NAME]]
#   bash scripts/run.sh down [--name NAME]      # stop a demo started with --keep
# Needs root (network namespaces). Exit code 0 only when every pod started and every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
  echo "run.sh: the local VPC creates network namespaces, which needs root; run it with sudo" >&2
  exit 1
fi
bash scripts/setup.sh >&2
exec node dist/demo.mjs "$@"
