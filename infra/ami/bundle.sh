#!/bin/sh
# Packs what a node needs (the built bundles and infra/ami/) into one tarball for image builds:
#   bash infra/ami/bundle.sh OUT.tar.gz      (run npm run build first; DIST_DIR overrides dist/)
# Unpacked, it has dist/ and infra/ami/, so `infra/ami/install.sh --dist dist` works from its root.
set -eu
[ $# -eq 1 ] || { echo "usage: bundle.sh OUT.tar.gz" >&2; exit 2; }
out=$1
repo=$(cd "$(dirname "$0")/../.." && pwd)
dist=${DIST_DIR:-$repo/dist}
for f in aws-cni.mjs ipamd.mjs ipamd-probe.mjs max-pods.mjs aws-cni; do
  [ -f "$dist/$f" ] || { echo "bundle.sh: $dist/$f is missing; run npm run build first" >&2; exit 1; }
done
[ -d "$dist/ipamd-chunks" ] || { echo "bundle.sh: $dist/ipamd-chunks/ is missing; run npm run build first" >&2; exit 1; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/dist" "$stage/infra"
for f in "$dist"/aws-cni "$dist"/*.mjs "$dist"/*.node; do
  [ -f "$f" ] || continue
  case "$(basename "$f")" in local-vpc.mjs) continue ;; esac # a development tool, not for nodes
  cp "$f" "$stage/dist/"
done
# ipamd loads its rarely needed parts (Kubernetes client, credential providers) from ipamd-chunks/.
cp -R "$dist/ipamd-chunks" "$stage/dist/ipamd-chunks"
cp -R "$repo/infra/ami" "$stage/infra/ami"
tar -czf "$out" -C "$stage" dist infra
echo "bundle.sh: wrote $out" >&2
