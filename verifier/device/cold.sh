#!/bin/bash
# Cold start (page cache dropped before each run): where the time goes, and
# whether reading the libraries ahead helps. Development binary ($DEV, built
# with --features dev-kernels) for STRATA_VERIFY_DEV_PREFETCH.
# usage (repository root, root on the GPU machine): verifier/device/cold.sh OUTDIR
set -u
OUT=${1:?usage: cold.sh OUTDIR}
mkdir -p "$OUT"
exec > >(tee "$OUT/cold.log") 2>&1
DEV=${DEV:-$(pwd)/.carry/dev-verify}
PY=${PYTHON:-python3}
T="timeout -k 5 120"
export STRATA_CUDA_VERSION=13.0 STRATA_ALLOWED_SM=sm_80,sm_90
now() { date +%s.%N; }
wall() { local t0 t1; t0=$(now); $T "$@" >/dev/null 2>&1; t1=$(now); awk "BEGIN{printf \"%.3f\", $t1 - $t0}"; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
LIBDIRS=$(find / -xdev \( -name 'libcublasLt.so.*' -o -name 'libcudnn.so.9' -o -name 'libnccl.so.2' -o -name 'libcuda.so.1' \) 2>/dev/null | xargs -r -n1 dirname | sort -u)
echo "library dirs: $LIBDIRS"
resident() {
    "$PY" - $LIBDIRS <<'PYEOF'
import ctypes, mmap, os, sys
libc = ctypes.CDLL(None, use_errno=True)
rows = []
for d in sys.argv[1:]:
    for n in sorted(os.listdir(d)):
        p = os.path.join(d, n)
        if os.path.islink(p) or not os.path.isfile(p) or ".so" not in n:
            continue
        size = os.path.getsize(p)
        if size < 1 << 20:
            continue
        with open(p, "rb") as f:
            m = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
            c = ctypes.c_char.from_buffer(m)
            pages = (size + 4095) // 4096
            vec = (ctypes.c_ubyte * pages)()
            libc.mincore(ctypes.c_void_p(ctypes.addressof(c)), ctypes.c_size_t(size), vec)
            res = sum(v & 1 for v in vec) * 4096
            del c
            m.close()
        if res:
            rows.append((res, size, p))
for res, size, p in sorted(rows, reverse=True):
    print(f"  {res/2**20:8.1f} of {size/2**20:8.1f} MiB resident  {p}")
PYEOF
}
echo "=== what one cold run reads (resident pages after it)"
drop; $T "$DEV" -- true >/dev/null 2>&1; resident
echo "=== cold walls, interleaved: none / elf / all"
for i in 1 2 3; do
    drop; echo "none r$i: $(wall "$DEV" -- true)"
    drop; echo "elf  r$i: $(wall env STRATA_VERIFY_DEV_PREFETCH=elf "$DEV" -- true)"
    drop; echo "all  r$i: $(wall env STRATA_VERIFY_DEV_PREFETCH=all "$DEV" -- true)"
done
for how in elf all; do
    echo "--- timeline, cold, prefetch $how"
    drop; STRATA_VERIFY_DEV_PREFETCH=$how STRATA_VERIFY_TRACE=1 $T "$DEV" -- true 2>&1 | grep -E "^trace .*(prefetch|cuInit|context|loader|pass|cublasCreate|queued|planned|execve)|verdict"
done
echo "=== warm, prefetch costs nothing when cached?"
for how in none elf all; do
    s=""; for _ in 1 2 3 4 5; do s="$s $(wall env STRATA_VERIFY_DEV_PREFETCH=$how "$DEV" -- true)"; done
    echo "warm $how:$s"
done
echo "=== done"
