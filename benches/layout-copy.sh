#!/usr/bin/env bash
# What it costs to give a new OCI layout its own verified copy of a cached
# layer instead of a hard link into the cache (docs/cache.md, "Integrity").
# One layer of SIZE_MIB incompressible bytes (compression: none) is built
# once; then, all from the layer cache, into a new layout each run:
#
#   strata-new   strata build into a new layout (verified reflink-or-copy of the blob)
#   strata-same  the same build into the layout it already wrote (nothing copied):
#                strata-new minus strata-same is what the copy costs
#   cp+sha   cp --reflink=never + sha256sum of the same blob (coreutils, the same work)
#   ln       ln of the same blob (what a hard link costs: the old behaviour)
#
#   benches/layout-copy.sh [SIZE_MIB]        (default 1024)
#
# Needs: a release build (cargo build --release), GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB="${1:-1024}"
WORK="${BENCH_DIR:-/tmp/strata-bench-layout-copy}"
STRATA="$PWD/target/release/strata"
[ -x "$STRATA" ] || cargo build --release --quiet
rm -rf "$WORK" && mkdir -p "$WORK"
cd "$WORK"
head -c $((SIZE_MIB << 20)) /dev/urandom > payload.bin
cat > spec.yaml <<SPEC
version: 1
name: copy-bench
compression: {algorithm: none}
layers:
  - name: payload
    files: [{path: /payload.bin, source: payload.bin}]
SPEC

measure() { # label, command...
  local label="$1"; shift
  /usr/bin/time -v -o "time-$label.txt" "$@" > /dev/null
  local wall rss
  wall=$(grep "Elapsed (wall clock)" "time-$label.txt" | awk '{print $NF}')
  rss=$(grep "Maximum resident set size" "time-$label.txt" | awk '{print $NF}')
  echo "$label wall=$wall rss_kib=$rss"
}

"$STRATA" -q build spec.yaml -o "oci:$WORK/warm" --cache "$WORK/cache" > /dev/null
blob=$(ls -S "$WORK"/cache/cas/sha256/* | head -1)
ls -l "$blob"
for i in 1 2 3; do
  sync
  measure "strata-new-$i" "$STRATA" -q build spec.yaml -o "oci:$WORK/out-$i" --cache "$WORK/cache"
  measure "strata-same-$i" "$STRATA" -q build spec.yaml -o "oci:$WORK/out-$i" --cache "$WORK/cache"
  measure "cp+sha-$i" sh -c "cp --reflink=never '$blob' '$WORK/copy-$i' && sha256sum '$WORK/copy-$i'"
  measure "ln-$i" ln "$blob" "$WORK/link-$i"
  rm -rf "$WORK/out-$i" "$WORK/copy-$i" "$WORK/link-$i"
done
