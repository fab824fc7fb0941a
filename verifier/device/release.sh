#!/bin/bash
# The quick level's start-up, cold and warm, against the previous binary in
# the same call (docs/verifier.md, "Start-up time"). The first section must
# be the first GPU use on the machine.
#
# usage (repository root): verifier/device/release.sh OUTDIR
# inputs: $BIN (default .carry/strata-verify); $OLD (the previous binary).
# Cold runs drop the page cache first (root; skipped where not allowed).
set -u
OUT=${1:?usage: release.sh OUTDIR}
mkdir -p "$OUT"
exec > >(tee "$OUT/release.log") 2>&1
BIN=${BIN:-$(pwd)/.carry/strata-verify}
OLD=${OLD:-}
PY=${PYTHON:-python3}
T="timeout -k 5 120"
export STRATA_CUDA_VERSION=13.0 STRATA_ALLOWED_SM=sm_80,sm_90
now() { date +%s.%N; }
wall() { local t0 t1; t0=$(now); $T "$@" >/dev/null 2>&1; t1=$(now); awk "BEGIN{printf \"%.3f\", $t1 - $t0}"; }
walls() { local n=$1; shift; local s=""; for _ in $(seq "$n"); do s="$s $(wall "$@")"; done; echo "$s"; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
row() { local name=$1; shift; local w; w=$(walls "$@"); echo "$name wall s:$w  median $(echo "$w" | median)"; }
gap() {
    for _ in 1 2 3; do
        STRATA_VERIFY_TRACE=1 $T "$@" -- date +%s.%N 2>&1 | grep -E "execve, at unix time|^[0-9]+\.[0-9]+$" | tr '\n' ' ' \
            | awk '{for(i=1;i<=NF;i++) if($i=="time") t=$(i+1); printf "%.1f ms  ", ($NF - t) * 1000}'
    done
    echo
}
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; }

echo "=== first start on this machine, trace"
t0=$(now); STRATA_VERIFY_TRACE=1 $T "$BIN" -- true 2>"$OUT/first.txt"; rc=$?; t1=$(now)
echo "first start wall s: $(awk "BEGIN{printf \"%.3f\", $t1 - $t0}") (exit $rc)"
grep -E "^trace|verdict" "$OUT/first.txt"

echo; echo "=== machine"
date -u +%Y-%m-%dT%H:%M:%SZ
nvidia-smi --query-gpu=index,name,driver_version,compute_mode,persistence_mode --format=csv
sha256sum "$BIN" ${OLD:+"$OLD"}

echo; echo "=== page cache dropped before each run (echo 3 > /proc/sys/vm/drop_caches)"
if drop && [ "$(cat /proc/sys/vm/drop_caches 2>/dev/null)" != x ]; then
    for i in 1 2 3; do
        drop; echo "new, cold run $i wall s: $(wall "$BIN" -- true)"
        [ -n "$OLD" ] && { drop; echo "old, cold run $i wall s: $(wall "$OLD" -- true)"; }
    done
    drop; echo "--- new, cold, timeline"
    STRATA_VERIFY_TRACE=1 $T "$BIN" -- true 2>&1 | grep -E "^trace|verdict"
else
    echo "not allowed here"
fi

echo; echo "=== warm, until the command has run: strata-verify -- true"
for round in 1 2; do
    row "new (keeper, one connection) r$round" 10 "$BIN" -- true
    row "new, CUDA_DEVICE_MAX_CONNECTIONS=8 r$round" 10 env CUDA_DEVICE_MAX_CONNECTIONS=8 "$BIN" -- true
    row "new, STRATA_VERIFY_RELEASE=inline r$round" 10 env STRATA_VERIFY_RELEASE=inline "$BIN" -- true
    [ -n "$OLD" ] && row "old r$round" 10 "$OLD" -- true
done
row "new, no command (exits)" 5 "$BIN"
echo "--- new, warm, timeline"
STRATA_VERIFY_TRACE=1 $T "$BIN" -- true 2>&1 | grep -E "^trace|verdict"

echo; echo "=== from the verifier's last word to the command's first instruction"
echo "new:    $(gap "$BIN")"
echo "inline: $(gap env STRATA_VERIFY_RELEASE=inline "$BIN")"

echo; echo "=== PyTorch in the same run"
row "import torch; torch.cuda.init()" 5 "$PY" -c 'import torch; torch.cuda.init()'
row "new + torch first tensor" 3 "$BIN" -- "$PY" -c 'import torch; torch.ones(1).cuda()'
row "torch first tensor alone" 3 "$PY" -c 'import torch; torch.ones(1).cuda()'

echo; echo "=== nothing left behind"
"$BIN" -- sh -c 'sleep 0.5; read k < /proc/$$/task/$$/children; echo "children of the command: [$k]"; ps -eo pid,ppid,stat,comm | grep -E "strata|defunct" || echo "no strata-verify process left"' 2>/dev/null
sleep 0.3
nvidia-smi --query-compute-apps=pid,process_name --format=csv
echo "=== done"
