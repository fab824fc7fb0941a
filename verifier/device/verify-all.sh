#!/bin/bash
# Everything docs/verifier.md and docs/benchmarks.md report about
# strata-verify on a GPU machine, in one call (device time is scarce):
#
#   1. the quick level's first start on a fresh machine (wall, timeline);
#   2. quick x5 until the command has run (wall), then PyTorch's
#      `import torch; torch.cuda.init()` x5 in the same run;
#   3. the full level, PyTorch's GEMM rates for the same shapes
#      (torch_gemm.py), the full level again;
#   4. every broken-stack case: no GPU visible, wrong SM allowed set, a stub
#      libcuda copied outside any stubs/ directory (first and second in the
#      search order, and as the unversioned name only), CUDA newer than the
#      driver, missing cuDNN;
#   5. `strata-verify metrics`, scraped idle and under load;
#   6. with several GPUs: the quick and full level on all of them.
#
# usage (repository root, on the GPU machine): verifier/device/verify-all.sh OUTDIR
# needs: nvidia-smi, python3 with torch, curl, unshare and chroot (root).
# inputs: $BIN (default .carry/strata-verify: the binary to measure);
#   optional $OLD (a previous binary, timed beside it) and $DEV (a build
#   with --features dev-kernels, for the per-GPU thread-grouping variants
#   and more GEMM layouts).
set -u
OUT=${1:?usage: verify-all.sh OUTDIR}
mkdir -p "$OUT"
exec > >(tee "$OUT/verify-all.log") 2>&1
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$(pwd)/.carry/strata-verify}
# Every run goes through timeout(1) (about 1 ms of the walls below), so a
# hang cannot eat the whole call.
T="timeout -k 5 120"
OLD=${OLD:-}
DEV=${DEV:-}
PY=${PYTHON:-python3}
export STRATA_CUDA_VERSION=13.0 STRATA_ALLOWED_SM=sm_80,sm_90
LD0=${LD_LIBRARY_PATH:-}
section() { echo; echo "=== $* ==="; }
now() { date +%s.%N; }
# wall seconds of one run of "$@", output discarded
wall() { local t0 t1; t0=$(now); $T "$@" >/dev/null 2>&1; t1=$(now); awk "BEGIN{printf \"%.3f\", $t1 - $t0}"; }
walls() { local n=$1; shift; local s=""; for _ in $(seq "$n"); do s="$s $(wall "$@")"; done; echo "$s"; }
verdicts() { grep -E "^(FAIL|WARN) |^  fix:|^verdict:|^strata-verify: GPU|^command|SHOULD-NOT-RUN"; }

section "first start on this machine: strata-verify -- true (page cache and JIT cache cold)"
t0=$(now)
STRATA_VERIFY_TRACE=1 $T "$BIN" -- true 2>"$OUT/first.txt"
rc=$?
t1=$(now)
echo "first start wall s: $(awk "BEGIN{printf \"%.3f\", $t1 - $t0}") (exit $rc)"
cat "$OUT/first.txt"

section machine
date -u +%Y-%m-%dT%H:%M:%SZ
nvidia-smi --query-gpu=index,name,driver_version,memory.total,clocks.max.sm,persistence_mode,power.limit,temperature.gpu --format=csv
uname -r; grep PRETTY /etc/os-release; nproc
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
sha256sum "$BIN" ${OLD:+"$OLD"} ${DEV:+"$DEV"}
echo "LD_LIBRARY_PATH=$LD0"
ldconfig -p | grep -E 'libcuda\.so|libnvidia-ml' || echo "(libcuda not in ld.so.cache)"
NGPU=$(nvidia-smi -L | wc -l)

section "quick level, one run in full (warm)"
STRATA_VERIFY_TRACE=1 $T "$BIN" --json-file "$OUT/quick.json" -- sh -c 'echo "command ran: pid $$, result $STRATA_VERIFY_RESULT"' 2>&1

section "start-up until the command has run: strata-verify -- true, 5 runs (warm)"
echo "strata-verify wall s:$(walls 5 "$BIN" -- true)"
echo "strata-verify, JIT cache off (CUDA_CACHE_DISABLE=1, as in a fresh container) wall s:$(CUDA_CACHE_DISABLE=1 walls 5 "$BIN" -- true)"
if [ -n "$OLD" ]; then
    echo "previous binary wall s:$(walls 5 "$OLD" -- true)"
    $T "$OLD" --json 2>/dev/null | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print("previous binary, one run:", d["total_ms"], "ms;", ", ".join("%s %.1f" % (("gpu%d " % c["gpu"] if c["gpu"] is not None else "") + c["name"], c["ms"]) for c in d["checks"]))'
fi
echo "strata-verify again wall s:$(walls 5 "$BIN" -- true)"
echo "--- timeline of a warm run"
STRATA_VERIFY_TRACE=1 $T "$BIN" 2>&1 | grep -E "^trace|verdict"
echo "--- from execve to the command: the verifier's last trace line, then the command's clock, 3 runs"
for _ in 1 2 3; do
    STRATA_VERIFY_TRACE=1 $T "$BIN" -- date +%s.%N 2>&1 | grep -E "execve, at unix time|^[0-9]+\.[0-9]+$" | tr '\n' ' ' \
        | awk '{for(i=1;i<=NF;i++) if($i=="time") t=$(i+1); print "execve at " t ", command at " $NF ": " sprintf("%.1f", ($NF - t) * 1000) " ms"}'
done
if [ -n "$DEV" ]; then
    for g in serial 3 4; do
        echo "dev grouping $g wall s:$(STRATA_VERIFY_DEV_GROUPS=$g walls 5 "$DEV" -- true)"
    done
    echo "dev loader after cuInit wall s:$(STRATA_VERIFY_DEV_LOADER=after-init walls 5 "$DEV" -- true)"
    echo "dev default again wall s:$(walls 5 "$DEV" -- true)"
    echo "--- timeline, loader after cuInit"
    STRATA_VERIFY_DEV_LOADER=after-init STRATA_VERIFY_TRACE=1 $T "$DEV" 2>&1 | grep -E "^trace|verdict"
fi

section "PyTorch in the same run: python3 -c 'import torch; torch.cuda.init()', 5 runs"
echo "torch.cuda.init wall s:$(walls 5 "$PY" -c 'import torch; torch.cuda.init()')"
echo "torch first tensor (import torch; torch.ones(1).cuda()) wall s:$(walls 3 "$PY" -c 'import torch; torch.ones(1).cuda()')"

section "full level (trace: every GEMM candidate's rate)"
STRATA_VERIFY_TRACE=1 $T "$BIN" --level full --json-file "$OUT/full.json" 2>&1 | grep -vE '^  lib|^trace .*(memory|context|cuDNN|cuBLAS|NCCL|libcuda|cuInit)'

section "PyTorch GEMM rates, same shapes (torch_gemm.py)"
"$PY" "$HERE/torch_gemm.py"

section "full level again"
$T "$BIN" --level full 2>&1 | grep -E "^  .*(gemm|hbm)|verdict"
section "PyTorch again (the fastest cases only)"
"$PY" "$HERE/torch_gemm.py" --short
section "full level a third time"
$T "$BIN" --level full 2>&1 | grep -E "^  .*(gemm|hbm)|verdict"
if [ -n "$DEV" ]; then
    section "dev: GEMM data: randn-like exponents (2^-3..2^1), mantissa bits a TF32/bf16 unit reads"
    STRATA_VERIFY_DEV_FILL_0=81FFE000,3E000000 STRATA_VERIFY_DEV_FILL_14=81FF81FF,3E003E00 $T "$DEV" --level full 2>&1 | grep -E "gemm-|verdict"
    section "dev: GEMM data: the default again"
    $T "$DEV" --level full 2>&1 | grep -E "gemm-|verdict"
fi

section "broken stacks (strict: the command must not run)"
echo "--- no GPU visible: CUDA_VISIBLE_DEVICES=''"
CUDA_VISIBLE_DEVICES= $T "$BIN" -- echo SHOULD-NOT-RUN 2>&1 | verdicts; echo "exit ${PIPESTATUS[0]}"
# A root with nothing but the verifier and the C libraries it links: no
# /dev/nvidia*, no driver libraries, as in a container started without --gpus.
NOGPU=/tmp/nogpu-root
rm -rf "$NOGPU"; mkdir -p "$NOGPU/bin" "$NOGPU/dev"
cp "$BIN" "$NOGPU/bin/strata-verify"
for f in $(ldd "$BIN" | grep -o '/[^ ]*'); do mkdir -p "$NOGPU$(dirname "$f")"; cp -L "$f" "$NOGPU$f"; done
echo "--- no GPU visible: no /dev/nvidia* and no driver libraries (chroot $NOGPU, as a container started without --gpus)"
chroot "$NOGPU" /bin/strata-verify -- echo SHOULD-NOT-RUN 2>&1 | verdicts; echo "exit ${PIPESTATUS[0]}"
echo "--- wrong SM allowed set: STRATA_ALLOWED_SM=sm_80"
STRATA_ALLOWED_SM=sm_80 $T "$BIN" -- echo SHOULD-NOT-RUN 2>&1 | verdicts; echo "exit ${PIPESTATUS[0]}"
STUB=$(ls /usr/local/cuda/lib64/stubs/libcuda.so /usr/local/cuda/targets/x86_64-linux/lib/stubs/libcuda.so 2>/dev/null | head -1)
echo "toolkit stub: $STUB"
if [ -n "$STUB" ]; then
    REAL=$(ls /usr/local/nvidia/lib64/libcuda.so.1 2>/dev/null || ldconfig -p | awk '/libcuda\.so\.1 /{print $NF; exit}')
    echo "stub: $(stat -c %s "$STUB") bytes; driver's: $(stat -L -c %s "$REAL") bytes ($(readlink -f "$REAL"))"
    nm -D --defined-only "$STUB" | awk '{print $NF}' | sort > /tmp/stub.syms
    nm -D --defined-only "$(readlink -f "$REAL")" | awk '{print $NF}' | sort > /tmp/driver.syms
    echo "exported functions: stub $(wc -l < /tmp/stub.syms), driver $(wc -l < /tmp/driver.syms); in the driver only: $(comm -13 /tmp/stub.syms /tmp/driver.syms | wc -l) (first: $(comm -13 /tmp/stub.syms /tmp/driver.syms | head -5 | tr '\n' ' ')); in the stub only: $(comm -23 /tmp/stub.syms /tmp/driver.syms | wc -l)"
    "$PY" - "$STUB" <<'EOF'
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_LOCAL)
v = ctypes.c_int(-1)
print("stub: cuDriverGetVersion ->", lib.cuDriverGetVersion(ctypes.byref(v)), "value", v.value, "; cuInit ->", lib.cuInit(0))
EOF
    rm -rf /tmp/stubcopy /tmp/stubcopy2; mkdir -p /tmp/stubcopy/lib /tmp/stubcopy2/lib
    cp "$STUB" /tmp/stubcopy/lib/libcuda.so; cp "$STUB" /tmp/stubcopy/lib/libcuda.so.1
    cp "$STUB" /tmp/stubcopy2/lib/libcuda.so
    echo "--- stub copied to /tmp/stubcopy/lib (libcuda.so and libcuda.so.1), first in LD_LIBRARY_PATH"
    LD_LIBRARY_PATH=/tmp/stubcopy/lib:$LD0 $T "$BIN" -- echo SHOULD-NOT-RUN 2>&1 | verdicts; echo "exit ${PIPESTATUS[0]}"
    echo "--- the same copy second in LD_LIBRARY_PATH (the driver's libcuda comes first)"
    LD_LIBRARY_PATH=$LD0:/tmp/stubcopy/lib $T "$BIN" -- sh -c 'echo command ran: $STRATA_VERIFY_RESULT' 2>&1 | grep -E "libcuda|cuinit|verdict|command ran"; echo "exit ${PIPESTATUS[0]}"
    echo "--- stub copied as libcuda.so only (/tmp/stubcopy2/lib), first in LD_LIBRARY_PATH"
    LD_LIBRARY_PATH=/tmp/stubcopy2/lib:$LD0 $T "$BIN" -- sh -c 'echo command ran: $STRATA_VERIFY_RESULT' 2>&1 | grep -E "libcuda|fix|verdict|command ran"; echo "exit ${PIPESTATUS[0]}"
    echo "--- the toolkit's stubs directory itself first in LD_LIBRARY_PATH"
    LD_LIBRARY_PATH=$(dirname "$STUB"):$LD0 $T "$BIN" -- sh -c 'echo command ran: $STRATA_VERIFY_RESULT' 2>&1 | grep -E "environment|libcuda|verdict|command ran"; echo "exit ${PIPESTATUS[0]}"
fi
echo "--- CUDA newer than the driver: STRATA_CUDA_VERSION=13.1 (driver: CUDA 13.0)"
STRATA_CUDA_VERSION=13.1 $T "$BIN" -- sh -c 'echo command ran: $STRATA_VERIFY_RESULT' 2>&1 | grep -E "cuda-compat|verdict|command ran|^  fix"; echo "exit ${PIPESTATUS[0]}"
echo "--- CUDA newer than the driver, required: NVIDIA_REQUIRE_CUDA='cuda>=13.1'"
NVIDIA_REQUIRE_CUDA='cuda>=13.1' $T "$BIN" -- echo SHOULD-NOT-RUN 2>&1 | verdicts; echo "exit ${PIPESTATUS[0]}"
echo "--- CUDA major newer than the driver: STRATA_CUDA_VERSION=14.0"
STRATA_CUDA_VERSION=14.0 $T "$BIN" -- echo SHOULD-NOT-RUN 2>&1 | verdicts; echo "exit ${PIPESTATUS[0]}"
# Hide every cuDNN: a directory of the wheels goes under an empty tmpfs; in a
# system directory (libc lives there too) an overlay whites out libcudnn*.
CUDNN_DIRS=$(find /opt /usr /root -name 'libcudnn.so.9' 2>/dev/null | xargs -r -n1 dirname | sort -u | tr '\n' ' ')
echo "--- missing cuDNN: every libcudnn* hidden ($CUDNN_DIRS)"
if [ -n "$CUDNN_DIRS" ] && command -v unshare >/dev/null; then
    CUDNN_DIRS=$CUDNN_DIRS unshare -m sh -c '
        for d in $CUDNN_DIRS; do
            case "$d" in
            /usr/lib/*|/lib/*)
                o=/tmp/ovl$(echo "$d" | tr / _); rm -rf "$o"; mkdir -p "$o/up" "$o/work"
                for f in "$d"/libcudnn*; do mknod "$o/up/$(basename "$f")" c 0 0; done
                mount -t overlay overlay -o "lowerdir=$d,upperdir=$o/up,workdir=$o/work" "$d" ;;
            *) mount -t tmpfs none "$d" ;;
            esac
        done
        exec "$0" -- sh -c "echo command ran: \$STRATA_VERIFY_RESULT"' "$BIN" 2>&1 | grep -E "cudnn|verdict|command ran|^  fix"
    echo "exit ${PIPESTATUS[0]}"
fi

section "strata-verify metrics"
"$BIN" metrics --listen 127.0.0.1:9400 2>/tmp/metrics.err &
MPID=$!
sleep 0.5
cat /tmp/metrics.err
echo "--- idle"
curl -s -i http://127.0.0.1:9400/metrics | tee "$OUT/metrics-idle.txt"
echo "--- while a bf16 GEMM loop runs"
rm -f /tmp/gemm-running
"$PY" -c '
import torch, time
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
a @ a
torch.cuda.synchronize()
open("/tmp/gemm-running", "w").close()
t = time.time()
while time.time() - t < 4:
    a @ a
torch.cuda.synchronize()' &
LPID=$!
for _ in $(seq 60); do [ -e /tmp/gemm-running ] && break; sleep 0.5; done
sleep 1.5
curl -s http://127.0.0.1:9400/metrics | tee "$OUT/metrics-busy.txt" | grep -vE '^#'
wait $LPID
echo "--- HEAD /metrics, GET /nope, POST /metrics, an oversized request"
curl -s -I http://127.0.0.1:9400/metrics | head -1
curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1:9400/nope
curl -s -o /dev/null -w '%{http_code}\n' -X POST http://127.0.0.1:9400/metrics
curl -s -o /dev/null -w '%{http_code}\n' -H "X-Big: $(head -c 20000 /dev/zero | tr '\0' a)" http://127.0.0.1:9400/metrics
kill $MPID; wait $MPID 2>/dev/null
echo "--- no GPU: the same server in the chroot without driver libraries"
chroot "$NOGPU" /bin/strata-verify metrics --listen 127.0.0.1:9401 2>/tmp/metrics-nogpu.err &
NPID=$!
sleep 0.5
cat /tmp/metrics-nogpu.err
curl -s -i http://127.0.0.1:9401/metrics
kill $NPID 2>/dev/null; wait $NPID 2>/dev/null

if [ "$NGPU" -gt 1 ]; then
    section "several GPUs ($NGPU): quick and full on all of them"
    nvidia-smi topo -m 2>/dev/null | head -$((NGPU + 2))
    STRATA_VERIFY_TRACE=1 $T "$BIN" 2>&1 | grep -vE '^  lib'
    echo "all GPUs wall s:$(walls 5 "$BIN" -- true)"
    $T "$BIN" --level full 2>&1 | grep -E "gemm|hbm|nccl|verdict"
fi

section summary
grep -E "wall s:|^torch best|^  (PASS|FAIL|WARN)  gpu0 (gemm|hbm)|^execve at" "$OUT/verify-all.log" | grep -v "^trace" | sed -E 's/ on H100 SXM5 80GB \(threshold.*\[/ [/' 
section done
