#!/usr/bin/env bash
# Import time of `torch, numpy, pandas, matplotlib` in the flagship image
# (specs/pytorch-cuda.yaml), no GPU, as the image user (uid 1000, who
# cannot write __pycache__), in three states of the same root file system:
#
#   bytecode   the image as built: its `bytecode:` layer's hash-based .pyc
#   none       no usable .pyc: PYTHONPYCACHEPREFIX points at an empty,
#              read-only directory, so Python looks for bytecode only there
#              and compiles every module at every start (what an image
#              without the layer costs)
#   warm       a warm, writable cache: PYTHONPYCACHEPREFIX at a directory
#              filled by one earlier run (timestamp .pyc written by Python
#              itself: the best case, what a root user gets from the second
#              start on)
#
# Each state: one warm-up run, then RUNS timed runs (median reported); the
# time is measured inside Python around the import statement only.
# Runs are interleaved (bytecode, none, warm, bytecode, ...) so that a
# change in machine load hits all three alike.
#
#   benches/bytecode-import.sh [OCI_LAYOUT]     (default build/pytorch-cuda)
#
# Environment: ROOTFS=DIR reuses an unpacked root file system (umoci unpack
# …/rootfs) instead of unpacking the layout; RUNS (default 5).
# Needs: root (chroot), umoci (unless ROOTFS is given), python3 on the host
# only for the median.
set -euo pipefail
cd "$(dirname "$0")/.."
layout=${1:-build/pytorch-cuda}
runs=${RUNS:-5}
work=$(mktemp -d /tmp/strata-bytecode-bench.XXXXXX)
cleanup() { rm -rf --one-file-system "$work"; }
trap cleanup EXIT

rootfs=${ROOTFS:-}
if [ -z "$rootfs" ]; then
  ref=$layout
  case $ref in *:*) ;; *) ref="$ref:$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"])' "$layout/index.json")" ;; esac
  umoci unpack --image "$ref" "$work/bundle" >/dev/null
  rootfs=$work/bundle/rootfs
fi

# torch needs /dev/urandom and /proc in the chroot.
mount --bind /dev "$rootfs/dev"
mount -t proc proc "$rootfs/proc"
cleanup() { umount "$rootfs/proc" 2>/dev/null || true; umount "$rootfs/dev" 2>/dev/null || true; rm -rf --one-file-system "$work"; }
# Caches outside the image: an empty read-only one, and a writable one.
mkdir -p "$rootfs/tmp/bench-empty" "$rootfs/tmp/bench-warm"
chmod 555 "$rootfs/tmp/bench-empty"
chown 1000:1000 "$rootfs/tmp/bench-warm"

chroot=$(command -v chroot)
code='import time; t = time.perf_counter(); import torch, numpy, pandas, matplotlib; print(f"{time.perf_counter() - t:.3f}")'
run() { # state
  local env=(env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/home/jupyter LANG=C.UTF-8 MPLCONFIGDIR=/tmp/bench-mpl)
  case $1 in
    none) env+=(PYTHONPYCACHEPREFIX=/tmp/bench-empty PYTHONDONTWRITEBYTECODE=1) ;;
    warm) env+=(PYTHONPYCACHEPREFIX=/tmp/bench-warm) ;;
  esac
  "${env[@]}" "$chroot" --userspec=1000:1000 "$rootfs" /usr/bin/python3 -c "$code"
}

echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "image:   $layout"
for s in bytecode none warm; do run "$s" >/dev/null; done   # warm-up; fills the warm cache
declare -A times
for i in $(seq "$runs"); do
  for s in bytecode none warm; do
    t=$(run "$s")
    times[$s]="${times[$s]:-} $t"
    echo "run $i $s ${t}s"
  done
done
median() { python3 -c 'import statistics,sys; print(f"{statistics.median(map(float, sys.argv[1:])):.2f}")' $1; }
b=$(median "${times[bytecode]}"); n=$(median "${times[none]}"); w=$(median "${times[warm]}")
echo
echo "median of $runs: bytecode ${b}s, none ${n}s, warm ${w}s"
python3 -c "import sys; b,n,w=map(float,sys.argv[1:]); print(f'bytecode / warm = {b/w:.2f}x   none / warm = {n/w:.2f}x   none / bytecode = {n/b:.2f}x')" "$b" "$n" "$w"
rm -rf "$rootfs/tmp/bench-empty" "$rootfs/tmp/bench-warm" "$rootfs/tmp/bench-mpl"
