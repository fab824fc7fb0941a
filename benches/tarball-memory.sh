#!/usr/bin/env bash
# Layer from a large tarball: Strata vs the peer pipeline
#   tar -x  +  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -c | pigz -p2
# measured in the same run: wall time and peak RSS (GNU time -v).
#
#   benches/tarball-memory.sh [SIZE_MIB]        (default 2048)
#
# Needs: a release build (cargo build --release), GNU time, pigz.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB="${1:-2048}"
WORK="${BENCH_DIR:-/tmp/strata-bench-tarball}"
STRATA="$PWD/target/release/strata"
[ -x "$STRATA" ] || cargo build --release --quiet
rm -rf "$WORK" && mkdir -p "$WORK/src/data"
cd "$WORK"

# Input: 1/4 random bytes (incompressible), 3/4 text (compressible), in 64 MiB files.
n=$((SIZE_MIB / 64))
for i in $(seq 1 "$n"); do
  if [ $((i % 4)) = 0 ]; then
    head -c $((64 << 20)) /dev/urandom > "src/data/part-$i.bin"
  else
    python3 -c "
import sys
line = ''.join(chr(97 + (j * 7) % 26) for j in range(100)) + '\n'
out = sys.stdout
for k in range($((64 << 20)) // 101):
    out.write(f'{k:08d} ' + line[: 92])
" > "src/data/part-$i.txt"
  fi
done
tar -C src -cf big.tar .
ls -l big.tar

cat > spec.yaml <<SPEC
version: 1
name: bigtar
layers:
  - name: payload
    tarball: {path: big.tar}
SPEC

measure() { # label, command...
  local label="$1"; shift
  /usr/bin/time -v -o "time-$label.txt" "$@" > /dev/null
  local wall rss
  wall=$(grep "Elapsed (wall clock)" "time-$label.txt" | awk '{print $NF}')
  rss=$(grep "Maximum resident set size" "time-$label.txt" | awk '{print $NF}')
  echo "$label wall=$wall rss_kib=$rss"
}

sync
measure strata "$STRATA" -q build spec.yaml -o "oci:$WORK/out" --cache "$WORK/cache" --threads 2 --no-layer-cache
rm -rf peer && mkdir peer
measure peer sh -c "tar -C peer -xf big.tar && tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C peer -cf - . | pigz -p2 -6 > peer.tar.gz"
ls -l "$WORK"/cache/cas/sha256 | sort -k5 -n | tail -1
ls -l peer.tar.gz
