#!/usr/bin/env bash
# Registry push benchmark: strata push vs skopeo copy of the same >= 1 GiB
# OCI layout to Debian's docker-registry on loopback, measured in the same
# run, alternating, each push into a fresh registry (fresh storage, fresh
# port, fresh strata cache) so nothing is skipped or mounted.
#
#   benches/registry-push.sh [RUNS] [LAYERS] [MIB_PER_LAYER]
#   defaults: 3 runs, 4 layers of 256 MiB (random, so gzip cannot shrink them)
#
# Needs: a release build (cargo build --release -p strata), docker-registry,
# skopeo, /usr/bin/time. Prints a Markdown table for docs/benchmarks.md.
set -euo pipefail

RUNS=${1:-3}
LAYERS=${2:-4}
MIB=${3:-256}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STRATA=${STRATA_BIN:-$ROOT/target/release/strata}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench-push.XXXXXX")
REG_PID=
cleanup() {
    if [ -n "$REG_PID" ]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

for t in docker-registry skopeo /usr/bin/time; do
    command -v "$t" >/dev/null || { echo "missing: $t" >&2; exit 1; }
done
[ -x "$STRATA" ] || { echo "missing $STRATA (cargo build --release -p strata)" >&2; exit 1; }

# --- the image: LAYERS layers of MIB MiB of random bytes, gzip (default) ---
mkdir -p "$WORK/spec"
{
    echo "version: 1"
    echo "name: bench-push"
    echo "tag: \"1\""
    echo "epoch: 1700000000"
    echo "layers:"
    for i in $(seq 1 "$LAYERS"); do
        head -c "$((MIB << 20))" /dev/urandom > "$WORK/spec/payload-$i.bin"
        echo "  - name: payload-$i"
        echo "    files:"
        echo "      - {path: /data/payload-$i.bin, source: payload-$i.bin}"
    done
} > "$WORK/spec/image.yaml"
STRATA_CACHE="$WORK/build-cache" "$STRATA" build "$WORK/spec/image.yaml" -o "oci:$WORK/layout:1" -q >/dev/null
rm -f "$WORK"/spec/payload-*.bin
SIZE=$(du -sb "$WORK/layout/blobs" | cut -f1)

echo '{"default":[{"type":"insecureAcceptAnything"}]}' > "$WORK/policy.json"

free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 30000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

start_registry() {
    local port=$1 dir=$2
    mkdir -p "$dir"
    cat > "$dir/config.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $dir/data}}
http: {addr: 127.0.0.1:$port, secret: bench}
EOF
    docker-registry serve "$dir/config.yml" > "$dir/log" 2>&1 &
    REG_PID=$!
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "registry did not start" >&2; exit 1
}

stop_registry() {
    kill "$REG_PID"; wait "$REG_PID" 2>/dev/null || true; REG_PID=
}

# measure NAME COMMAND...: appends "name seconds maxrss_kib" to results
measure() {
    local name=$1; shift
    /usr/bin/time -v -o "$WORK/time.txt" "$@" >/dev/null 2>"$WORK/stderr.txt" || { cat "$WORK/stderr.txt" >&2; exit 1; }
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time.txt" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
    echo "$name $wall $rss" >> "$WORK/results"
}

for run in $(seq 1 "$RUNS"); do
    port=$(free_port)
    start_registry "$port" "$WORK/reg-strata-$run"
    measure strata env STRATA_CACHE="$WORK/cache-$run" "$STRATA" push -q "oci:$WORK/layout:1" "127.0.0.1:$port/bench/push:1"
    stop_registry; rm -rf "$WORK/reg-strata-$run"

    port=$(free_port)
    start_registry "$port" "$WORK/reg-skopeo-$run"
    measure skopeo skopeo --policy "$WORK/policy.json" copy -q --dest-tls-verify=false "oci:$WORK/layout:1" "docker://127.0.0.1:$port/bench/push:1"
    stop_registry; rm -rf "$WORK/reg-skopeo-$run"
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
st=$(awk '$1=="strata" {print $2}' "$WORK/results" | median)
sk=$(awk '$1=="skopeo" {print $2}' "$WORK/results" | median)
sr=$(awk '$1=="strata" {print $3}' "$WORK/results" | sort -n | tail -1)
kr=$(awk '$1=="skopeo" {print $3}' "$WORK/results" | sort -n | tail -1)

echo "image: $LAYERS layers x $MIB MiB random (gzip), $((SIZE >> 20)) MiB of blobs; $RUNS runs each, alternating"
echo "raw (tool seconds max_rss_kib):"
sed 's/^/  /' "$WORK/results"
echo
echo "| tool | median wall time | throughput | peak RSS (max of runs) |"
echo "|---|---|---|---|"
awk -v s="$st" -v b="$SIZE" -v r="$sr" 'BEGIN { printf "| strata push | %.1f s | %.0f MiB/s | %.0f MiB |\n", s, b/1048576/s, r/1024 }'
awk -v s="$sk" -v b="$SIZE" -v r="$kr" 'BEGIN { printf "| skopeo copy | %.1f s | %.0f MiB/s | %.0f MiB |\n", s, b/1048576/s, r/1024 }'
awk -v a="$st" -v b="$sk" 'BEGIN { printf "\nratio skopeo/strata wall time: %.2f\n", b/a }'
