#!/usr/bin/env bash
# Registry layer cache benchmark: a CI runner with an EMPTY local cache builds
# and pushes SPEC, (a) with no registry cache (cold: downloads every artifact,
# builds every layer) and (b) with a warm registry cache on the same loopback
# docker-registry (--cache-from), once writing an OCI layout (the layer blobs
# are downloaded from the cache) and once with `-o none` (nothing local: the
# push mounts the blobs from the cache repository). Alternating, in one run;
# every build's digest must be the same.
#
#   benches/registry-cache.sh [RUNS] [SPEC]
#   defaults: 3 runs, specs/python-base.yaml (35 Debian packages, ~14 MiB)
#
# Needs: a release build (cargo build --release -p strata), docker-registry,
# curl, jq, network access to the spec's artifacts (the cold builds download
# them each time). Prints a Markdown table for docs/benchmarks.md.
set -euo pipefail

RUNS=${1:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SPEC=${2:-$ROOT/specs/python-base.yaml}
STRATA=${STRATA_BIN:-$ROOT/target/release/strata}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench-regcache.XXXXXX")
REG_PID=
cleanup() {
    if [ -n "$REG_PID" ]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

for t in docker-registry curl jq; do
    command -v "$t" >/dev/null || { echo "missing: $t" >&2; exit 1; }
done
[ -x "$STRATA" ] || { echo "missing $STRATA (cargo build --release -p strata)" >&2; exit 1; }

free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 30000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

PORT=$(free_port)
mkdir -p "$WORK/reg"
cat > "$WORK/reg/config.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $WORK/reg/data}}
http: {addr: 127.0.0.1:$PORT, secret: bench}
EOF
docker-registry serve "$WORK/reg/config.yml" > "$WORK/reg/log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break
    sleep 0.05
done
REG=127.0.0.1:$PORT
CACHE=$REG/ci/strata-cache

# build NAME CACHE_DIR ARGS...: runs a build with --json; appends
# "name seconds artifact_bytes artifacts_downloaded cache_blob_bytes digest".
build() {
    local name=$1 cache=$2; shift 2
    local t0 t1
    t0=$(date +%s.%N)
    STRATA_CACHE=$cache "$STRATA" build -q "$SPEC" --context "$ROOT" --json "$@" > "$WORK/out.json" 2>"$WORK/err.txt" \
        || { cat "$WORK/err.txt" >&2; exit 1; }
    t1=$(date +%s.%N)
    jq -r --arg n "$name" --arg s "$(echo "$t1 - $t0" | bc -l)" \
        '"\($n) \($s) \(.fetch.bytes) \(.fetch.downloaded) \(.registry_cache.bytes_downloaded // 0) \(.manifest_digest)"' \
        "$WORK/out.json" >> "$WORK/results"
}

# Warm the registry cache once (a runner that built the image before).
build fill "$WORK/fill-cache" -o "oci:$WORK/fill" --cache-to "$CACHE"
rm -rf "$WORK/fill-cache" "$WORK/fill"
: > "$WORK/results"

for run in $(seq 1 "$RUNS"); do
    build cold "$WORK/c-$run" -o "oci:$WORK/o-c-$run" --push "$REG/cold$run/app:1"
    rm -rf "$WORK/c-$run" "$WORK/o-c-$run"
    build warm "$WORK/w-$run" -o "oci:$WORK/o-w-$run" --cache-from "$CACHE" --push "$REG/warm$run/app:1"
    rm -rf "$WORK/w-$run" "$WORK/o-w-$run"
    build warm-none "$WORK/n-$run" -o none --cache-from "$CACHE" --push "$REG/none$run/app:1"
    rm -rf "$WORK/n-$run"
done

if [ "$(awk '{print $6}' "$WORK/results" | sort -u | wc -l)" != 1 ]; then
    echo "digests differ:" >&2; cat "$WORK/results" >&2; exit 1
fi

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
col() { awk -v n="$1" -v c="$2" '$1==n {print $c}' "$WORK/results" | median; }
tc=$(col cold 2); tw=$(col warm 2); tn=$(col warm-none 2)

echo "spec: $SPEC; digest $(awk 'NR==1 {print $6}' "$WORK/results"); $RUNS runs each, alternating"
echo "raw (build seconds artifact_bytes artifacts_downloaded cache_blob_bytes digest):"
sed 's/^/  /' "$WORK/results"
echo
echo "| empty local cache, build + push | median wall time | artifacts downloaded | layer bytes read from the cache |"
echo "|---|---|---|---|"
awk -v t="$tc" -v b="$(col cold 3)" -v n="$(col cold 4)" 'BEGIN { printf "| no registry cache (cold) | %.1f s | %d (%.1f MiB) | - |\n", t, n, b/1048576 }'
awk -v t="$tw" -v b="$(col warm 3)" -v n="$(col warm 4)" -v c="$(col warm 5)" 'BEGIN { printf "| --cache-from, -o oci:DIR | %.1f s | %d (%.1f MiB) | %.1f MiB |\n", t, n, b/1048576, c/1048576 }'
awk -v t="$tn" -v b="$(col warm-none 3)" -v n="$(col warm-none 4)" -v c="$(col warm-none 5)" 'BEGIN { printf "| --cache-from, -o none | %.1f s | %d (%.1f MiB) | %.1f MiB |\n", t, n, b/1048576, c/1048576 }'
awk -v a="$tc" -v b="$tw" -v c="$tn" 'BEGIN { printf "\nratio cold / warm: %.1fx (-o oci:DIR), %.1fx (-o none)\n", a/b, a/c }'
