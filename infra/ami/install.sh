#!/bin/sh
# Installs vpc-cni onto a worker-node image (an AMI build) or into a staging root for packaging.
#
#   install.sh [--dist DIR] [--node PATH] [--enable-ipamd-service] [--enable-nodeadm-dropin] [--cni-plugins DIR]
#
#   DESTDIR               target root (default: /); everything lands under it
#   --dist DIR            the built bundles (npm run build); default: dist/ of this checkout
#   --node PATH           the Node.js (>= 20) binary to ship under /opt/vpc-cni/bin; default: node on PATH
#   --enable-ipamd-service  enable vpc-cni-ipamd.service (nodes that do not run the aws-node DaemonSet)
#   --enable-nodeadm-dropin enable vpc-cni-nodeadm.service (AL2023 AMIs: the kubelet's max pods at boot)
#   --cni-plugins DIR     where to take portmap from when the image has none (default /usr/lib/cni)
#
# Layout:
#   /opt/vpc-cni/bin/node, /opt/vpc-cni/lib/*.mjs|*.node    runtime and bundles
#   /opt/cni/bin/aws-cni                                     the CNI plugin the runtime execs (native shim)
#   /opt/cni/bin/aws-cni.mjs                                 the Node plugin the shim execs when ipamd is away
#   /usr/local/bin/max-pods, /usr/local/bin/vpc-cni-bootstrap the calculator and the kubelet hook
#   /etc/vpc-cni/ipamd.env                                   settings (kept when already present)
#   /etc/vpc-cni/10-aws.conflist.template                    what ipamd writes to /etc/cni/net.d when ready
#   /etc/systemd/system/vpc-cni-ipamd.service                ipamd as a service
#   /etc/systemd/system/vpc-cni-nodeadm.service              the nodeadm max-pods drop-in at boot
set -eu

here=$(cd "$(dirname "$0")" && pwd)
DESTDIR=${DESTDIR:-}
DESTDIR=${DESTDIR%/}
dist="$here/../../dist"
node_bin=""
enable_service=false
enable_nodeadm=false
cni_plugins=/usr/lib/cni

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; }
die() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dist) [ $# -ge 2 ] || die "--dist needs a directory"; dist=$2; shift 2 ;;
    --node) [ $# -ge 2 ] || die "--node needs a path"; node_bin=$2; shift 2 ;;
    --cni-plugins) [ $# -ge 2 ] || die "--cni-plugins needs a directory"; cni_plugins=$2; shift 2 ;;
    --enable-ipamd-service) enable_service=true; shift ;;
    --enable-nodeadm-dropin) enable_nodeadm=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage; die "unknown argument $1" ;;
  esac
done

[ -n "$node_bin" ] || node_bin=$(command -v node || true)
[ -n "$node_bin" ] && [ -x "$node_bin" ] || die "no Node.js binary: pass --node PATH (Node.js 20 or newer)"
major=$("$node_bin" -p 'process.versions.node.split(".")[0]' 2>/dev/null) || die "$node_bin does not run"
[ "$major" -ge 20 ] 2>/dev/null || die "$node_bin is Node.js $major; vpc-cni needs 20 or newer"
for f in aws-cni.mjs ipamd.mjs ipamd-probe.mjs max-pods.mjs aws-cni; do
  [ -f "$dist/$f" ] || die "$dist/$f is missing; run npm run build first (or pass --dist)"
done
[ -d "$dist/ipamd-chunks" ] || die "$dist/ipamd-chunks/ is missing; run npm run build first (or pass --dist)"

# Write to a temporary name and rename: a runtime exec'ing aws-cni never sees a half-written file.
put() { # src dst mode
  mkdir -p "$(dirname "$2")"
  cp "$1" "$2.tmp.$$" && chmod "$3" "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"
}
wrapper() { # program dst (a script: the shim execs aws-cni.mjs, whose #! line picks the runtime)
  mkdir -p "$(dirname "$2")"
  printf '#!/bin/sh\n# Installed by vpc-cni; runs %s with the Node.js runtime shipped beside it.\nexec /opt/vpc-cni/bin/node /opt/vpc-cni/lib/%s.mjs "$@"\n' "$1" "$1" >"$2.tmp.$$"
  chmod 0755 "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"
}

root=$DESTDIR
put "$node_bin" "$root/opt/vpc-cni/bin/node" 0755
for f in "$dist"/*.mjs "$dist"/*.node; do
  [ -f "$f" ] || continue
  case "$(basename "$f")" in local-vpc.mjs) continue ;; esac # a development tool, not for nodes
  put "$f" "$root/opt/vpc-cni/lib/$(basename "$f")" 0644
done
# ipamd's on-demand parts. Chunk names carry a content hash: add the new ones before the entry point
# that imports them is replaced, and drop the ones no bundle references any more.
chunks=$root/opt/vpc-cni/lib/ipamd-chunks
mkdir -p "$chunks"
for f in "$dist"/ipamd-chunks/*.mjs; do put "$f" "$chunks/$(basename "$f")" 0644; done
for f in "$chunks"/*.mjs; do
  [ -f "$dist/ipamd-chunks/$(basename "$f")" ] || rm -f "$f"
done
put "$dist/aws-cni" "$root/opt/cni/bin/aws-cni" 0755
wrapper aws-cni "$root/opt/cni/bin/aws-cni.mjs"
wrapper max-pods "$root/usr/local/bin/max-pods"
put "$here/vpc-cni-bootstrap" "$root/usr/local/bin/vpc-cni-bootstrap" 0755
if [ ! -e "$root/opt/cni/bin/portmap" ] && [ -f "$cni_plugins/portmap" ]; then
  put "$cni_plugins/portmap" "$root/opt/cni/bin/portmap" 0755
fi

put "$here/10-aws.conflist.template" "$root/etc/vpc-cni/10-aws.conflist.template" 0644
[ -e "$root/etc/vpc-cni/ipamd.env" ] || put "$here/ipamd.env" "$root/etc/vpc-cni/ipamd.env" 0644
mkdir -p "$root/etc/cni/net.d"
put "$here/vpc-cni-ipamd.service" "$root/etc/systemd/system/vpc-cni-ipamd.service" 0644
put "$here/vpc-cni-nodeadm.service" "$root/etc/systemd/system/vpc-cni-nodeadm.service" 0644
# What `systemctl enable` does, done by hand so it works in a DESTDIR without a running systemd.
enable_unit() { # unit
  mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
  ln -sf "/etc/systemd/system/$1" "$root/etc/systemd/system/multi-user.target.wants/$1"
}
if $enable_service; then enable_unit vpc-cni-ipamd.service; fi
if $enable_nodeadm; then
  mkdir -p "$root/etc/eks/nodeadm.d"
  enable_unit vpc-cni-nodeadm.service
fi
echo "install.sh: installed vpc-cni into ${DESTDIR:-/}" >&2
