#!/usr/bin/env bash
# The flagship image (specs/pytorch-cuda.yaml) built by Strata vs a peer
# pipeline, measured in the same run; then one layer written with gzip
# splicing, without it, and by pigz. Every figure of docs/benchmarks.md's
# sections "Flagship build vs a peer pipeline" and "Gzip splicing vs pigz".
#
#   benches/flagship.sh
#
# Peer pipeline (one layer, the Python packages only, no Debian base):
#   uv pip install --no-deps --target ROOT/usr/local/lib/python3.11/dist-packages \
#       --python-platform x86_64-manylinux_2_28 --python-version 3.11 -r pylock.toml
#   tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C ROOT -c . | pigz -p2 -6
#   + an OCI layout around that blob (config, manifest, index; the tar and
#     the blob are hashed on the way through, as any layout writer must)
# timed together under GNU time -v (wall, peak RSS), from a warm uv cache
# (uv --offline, see below).
# A second peer ("umoci") gives the tar to `umoci raw add-layer`, which
# compresses it itself (Go pgzip) and writes the layout.
#
# Strata is measured with every artifact in its cache (nothing downloaded):
# the whole flagship and a python-only spec (the peer's scope), each with
# --no-layer-cache, unchanged (layer cache warm), and after a one-package
# change (six 1.17.0 -> 1.16.0 in a copy of the pylock).
#
# Environment:
#   STRATA_CACHE   Strata's cache with the flagship's artifacts (default /work/cache/strata)
#   BENCH_DIR      work directory: specs, timings, the peer's layout (~4.2 GB while it runs)
#                  (default /tmp/strata-bench-flagship)
#   PEER_DIR       uv's cache and the peer's install root (~7.4 GB; uv hard-links the
#                  root from its cache, so both must be on one file system)
#                  (default $BENCH_DIR/peer)
#   REPEAT         runs of each Strata build (median reported; default 3)
#   SKIP_UMOCI=1   skip the umoci peer; SKIP_BUILDS=1 / SKIP_SPLICE=1 skip the first /
#                  the second section
#
# Needs: a release build (built here), uv (pip install uv), pigz, umoci, skopeo, zstd,
# GNU time, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CACHE="${STRATA_CACHE:-/work/cache/strata}"
WORK="${BENCH_DIR:-/tmp/strata-bench-flagship}"
PEER="${PEER_DIR:-$WORK/peer}"
REPEAT="${REPEAT:-3}"
STRATA="$REPO/target/release/strata"
cargo build --release --quiet -p strata
VERIFIER=$(verifier/build-reproducible.sh | awk '{print $2}')
for tool in uv pigz umoci skopeo zstd python3 /usr/bin/time; do
  command -v "$tool" > /dev/null || { echo "missing: $tool" >&2; exit 1; }
done

mkdir -p "$WORK" "$PEER"
rm -rf "$WORK/specs" "$WORK/specs-changed" "$WORK/layers" "$WORK"/out-* "$WORK"/time-* "$WORK"/json-*
RESULTS="$WORK/results.tsv"
: > "$RESULTS"

# ---- inputs ----------------------------------------------------------------
# Copies of the flagship's files; the python-only spec has the flagship's
# python: entry alone. The changed copies pin six 1.16.0 instead of 1.17.0
# (wheel pinned by URL, size and sha256 from PyPI), and the flagship's lock
# records the edited pylock's hash, as `strata lock` would.
cp -r specs "$WORK/specs"
cp -r layers "$WORK/layers"
cat > "$WORK/specs/python-only.yaml" <<'SPEC'
version: 1
name: python-only
epoch: 1795737600
layers:
  - name: python
    python:
      lock: pylock.pytorch-cuda.toml
      requirements: [torch==2.9.0, numpy, pandas, matplotlib, jupyterlab]
      exclude_newer: 2026-11-27T00:00:00Z
SPEC
cp -r "$WORK/specs" "$WORK/specs-changed"
python3 - "$WORK/specs-changed" <<'PY'
import hashlib, pathlib, re, sys
d = pathlib.Path(sys.argv[1])
p = d / "pylock.pytorch-cuda.toml"
text = p.read_text()
old = re.search(r'\[\[packages\]\]\nname = "six"\nversion = "1.17.0"\n.*?\n\n', text, re.S)
assert old, "six 1.17.0 not found in the pylock"
new = ('[[packages]]\nname = "six"\nversion = "1.16.0"\n'
       'wheels = [{ url = "https://files.pythonhosted.org/packages/d9/5a/e7c31adbe875f2abbb91bd84cf2dc52d792b5a01506781dbcf25c91daf11/six-1.16.0-py2.py3-none-any.whl", '
       'upload-time = 2021-05-05T14:18:17Z, size = 11053, hashes = { sha256 = "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254" } }]\n\n')
text = text[: old.start()] + new + text[old.end():]
p.write_text(text)
sha = hashlib.sha256(text.encode()).hexdigest()
lock = d / "pytorch-cuda.lock"
lt = lock.read_text()
lt2 = re.sub(r'(\[python\.python\]\npylock = "pylock.pytorch-cuda.toml"\nsha256 = "sha256:)[0-9a-f]{64}"', r'\g<1>' + sha + '"', lt)
assert lt2 != lt, "python entry not found in the lock"
lock.write_text(lt2)
PY

# ---- measuring -------------------------------------------------------------
secs() { # "h:mm:ss" or "m:ss.ss" -> seconds
  echo "$1" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f", s }'
}
measure() { # label, command... -> one line in results.tsv: label wall user sys rss_kib load1
  local label="$1"; shift
  sync
  if ! /usr/bin/time -v -o "$WORK/time-$label.txt" "$@" > "$WORK/json-$label.txt" 2> "$WORK/err-$label.txt"; then
    echo "FAILED: $label" >&2; tail -20 "$WORK/err-$label.txt" >&2; exit 1
  fi
  local t="$WORK/time-$label.txt"
  local wall user sys rss
  wall=$(secs "$(grep 'Elapsed (wall clock)' "$t" | awk '{print $NF}')")
  user=$(grep 'User time' "$t" | awk '{print $NF}')
  sys=$(grep 'System time' "$t" | awk '{print $NF}')
  rss=$(grep 'Maximum resident set size' "$t" | awk '{print $NF}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$wall" "$user" "$sys" "$rss" "$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$RESULTS"
}
strata_build() { # label, spec, extra args...
  local label="$1" spec="$2"; shift 2
  rm -rf "$WORK/out-$label"
  measure "$label" "$STRATA" --cache "$CACHE" -q build --json "$spec" --context "$WORK" -o "oci:$WORK/out-$label" --verifier "$VERIFIER" "$@"
  rm -rf "$WORK/out-$label"
}
rebuilt() { # label -> names of the layers that were written, not taken from the cache
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(' '.join(l['name'] for l in d['layers'] if not l['cached']) or '-')" "$WORK/json-$1.txt"
}
forget_new() { # label, reference label: drops the layer cache entries of the layers
  # of the first build that the second does not have (the changed package's layer)
  local d digest
  d=$(python3 -c "import json,sys; a, b = (json.load(open(f)) for f in sys.argv[1:]); old = {l['digest'] for l in b['layers']}; print(' '.join(l['digest'] for l in a['layers'] if l['digest'] not in old))" "$WORK/json-$1.txt" "$WORK/json-$2.txt")
  for digest in $d; do
    grep -l "\"$digest\"" "$CACHE"/layers/*.json | xargs -r rm -f
  done
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME"), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# strata $(git rev-parse --short HEAD), uv $(uv --version | awk '{print $2}'), pigz $(pigz --version 2>&1 | awk '{print $2}'), umoci $(umoci --version | awk '{print $3}')"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- the peer --------------------------------------------------------------
cat > "$WORK/hashtee.py" <<'PY'
# stdin -> stdout, writing the stream's sha256 to argv[1] at its end.
import hashlib, sys
h = hashlib.sha256()
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    b = inp.read(1 << 20)
    if not b:
        break
    h.update(b)
    out.write(b)
out.flush()
open(sys.argv[1], "w").write(h.hexdigest())
PY
cat > "$WORK/layout.py" <<'PY'
# Writes an OCI layout around one gzip layer: config, manifest, index.
import hashlib, json, os, sys
layout, diff_id, digest, tag = sys.argv[1:5]
blobs = os.path.join(layout, "blobs", "sha256")
def put(obj):
    b = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    d = hashlib.sha256(b).hexdigest()
    open(os.path.join(blobs, d), "wb").write(b)
    return {"digest": "sha256:" + d, "size": len(b)}
size = os.path.getsize(os.path.join(blobs, digest))
config = put({"architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
              "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id]},
              "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "uv pip install + tar | pigz"}]})
manifest = put({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": dict(config, mediaType="application/vnd.oci.image.config.v1+json"),
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + digest, "size": size}]})
open(os.path.join(layout, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [dict(manifest, mediaType="application/vnd.oci.image.manifest.v1+json",
                            annotations={"org.opencontainers.image.ref.name": tag})]}
open(os.path.join(layout, "index.json"), "w").write(json.dumps(index))
PY
cat > "$WORK/peer.sh" <<'SH'
#!/usr/bin/env bash
# peer.sh PYLOCK ROOT LAYOUT STEPS pigz|umoci ; UV_CACHE_DIR set by the caller
set -euo pipefail
pylock=$1 root=$2 layout=$3 steps=$4 mode=$5
here=$(dirname "$0")
t0=$(date +%s.%N)
uv pip install -q --offline --preview-features pylock --no-deps --target "$root/usr/local/lib/python3.11/dist-packages" \
  --python-platform x86_64-manylinux_2_28 --python-version 3.11 -r "$pylock"
t1=$(date +%s.%N)
if [ "$mode" = pigz ]; then
  mkdir -p "$layout/blobs/sha256"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -c . \
    | python3 "$here/hashtee.py" "$layout/diff_id" | pigz -p2 -6 \
    | python3 "$here/hashtee.py" "$layout/digest" > "$layout/blobs/sha256/layer.tmp"
  t2=$(date +%s.%N)
  mv "$layout/blobs/sha256/layer.tmp" "$layout/blobs/sha256/$(cat "$layout/digest")"
  python3 "$here/layout.py" "$layout" "$(cat "$layout/diff_id")" "$(cat "$layout/digest")" peer
  rm "$layout/diff_id" "$layout/digest"
else
  umoci init --layout "$layout"
  umoci new --image "$layout:peer"
  t2=$(date +%s.%N)
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -c . \
    | umoci raw add-layer --image "$layout:peer" /dev/stdin
fi
t3=$(date +%s.%N)
if [ "$mode" = pigz ]; then
  awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN { printf "uv %.2f, tar|pigz %.2f, layout %.2f\n", b - a, c - b, d - c }' > "$steps"
else
  awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN { printf "uv %.2f, umoci init+new %.2f, tar|umoci raw add-layer %.2f\n", b - a, c - b, d - c }' > "$steps"
fi
SH
chmod +x "$WORK/peer.sh"
export UV_CACHE_DIR="$PEER/uv-cache"

peer() { # label, pylock, mode
  local label="$1" pylock="$2" mode="$3"
  rm -rf "$PEER/root" "$WORK/peer-layout"
  measure "$label" "$WORK/peer.sh" "$pylock" "$PEER/root" "$WORK/peer-layout" "$WORK/steps-$label.txt" "$mode"
  echo "# $label steps (s): $(cat "$WORK/steps-$label.txt")"
  # The layout is valid for the tools that read layouts.
  skopeo inspect "oci:$WORK/peer-layout:peer" > /dev/null
  umoci stat --image "$WORK/peer-layout:peer" > /dev/null
  echo "# $label layer: $(find "$WORK/peer-layout/blobs" -type f -size +1M -printf '%s bytes\n')"
  rm -rf "$PEER/root" "$WORK/peer-layout"
}

if [ "${SKIP_BUILDS:-}" != 1 ]; then
# Warm-up (untimed): uv's cache for both pylocks; Strata's cache for the
# changed pin (an 11 kB wheel; the layer it makes is then forgotten).
# The timed uv runs use --offline: this machine reaches PyPI through a proxy
# that drops Cache-Control/ETag, so uv would download every wheel again
# (and keep both copies in its cache); PyPI itself marks them immutable, so
# a warm cache is not revalidated there either.
uv_warm() { # pylock
  rm -rf "$PEER/root"
  uv pip install -q --offline --preview-features pylock --no-deps --target "$PEER/root/usr/local/lib/python3.11/dist-packages" \
    --python-platform x86_64-manylinux_2_28 --python-version 3.11 -r "$1" 2> /dev/null && return
  uv pip install -q --preview-features pylock --no-deps --target "$PEER/root/usr/local/lib/python3.11/dist-packages" \
    --python-platform x86_64-manylinux_2_28 --python-version 3.11 -r "$1"
}
free_kib() { df -Pk "$1" | awk 'NR == 2 {print $4}'; }
if [ ! -d "$UV_CACHE_DIR/archive-v0" ] && [ "$(free_kib "$PEER")" -lt $((8 << 20)) ]; then
  echo "$PEER: uv's cache needs 8 GiB free (set PEER_DIR)" >&2; exit 1
fi
if [ "$(free_kib "$WORK")" -lt $((5 << 20)) ]; then
  echo "$WORK: the peer's layout needs 5 GiB free (set BENCH_DIR)" >&2; exit 1
fi
uv_warm "$WORK/specs/pylock.pytorch-cuda.toml"
# Only six 1.16.0 is new in the changed pylock: fetch it alone.
python3 - "$WORK/specs-changed/pylock.pytorch-cuda.toml" "$WORK/pylock.six.toml" <<'PY'
import sys
head, *pkgs = open(sys.argv[1]).read().split("\n[[packages]]\n")
six = [p for p in pkgs if p.startswith('name = "six"\n')]
open(sys.argv[2], "w").write(head + "\n[[packages]]\n" + six[0].rstrip("\n") + "\n")
PY
uv_warm "$WORK/pylock.six.toml"
uv_warm "$WORK/specs-changed/pylock.pytorch-cuda.toml"
rm -rf "$PEER/root"
strata_build warmup "$WORK/specs/python-only.yaml"
strata_build warmup-changed "$WORK/specs-changed/python-only.yaml"
forget_new warmup-changed warmup
: > "$RESULTS"

peer peer-pigz "$WORK/specs/pylock.pytorch-cuda.toml" pigz
peer peer-pigz-changed "$WORK/specs-changed/pylock.pytorch-cuda.toml" pigz
[ "${SKIP_UMOCI:-}" = 1 ] || peer peer-umoci "$WORK/specs/pylock.pytorch-cuda.toml" umoci

# ---- Strata ----------------------------------------------------------------
for i in $(seq 1 "$REPEAT"); do
  strata_build "flagship-nocache-$i" "$WORK/specs/pytorch-cuda.yaml" --no-layer-cache
  strata_build "python-nocache-$i" "$WORK/specs/python-only.yaml" --no-layer-cache
  # One thread: one layer at a time, as before layers were written in parallel.
  strata_build "flagship-nocache-threads1-$i" "$WORK/specs/pytorch-cuda.yaml" --no-layer-cache --threads 1
done
for label in flagship-nocache-1 python-nocache-1; do
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('# $label:', len(d['layers']), 'layers,', sum(l['size'] for l in d['layers']), 'bytes compressed,', sum(l['tar_size'] for l in d['layers']), 'bytes of tar')" "$WORK/json-$label.txt"
done
for i in $(seq 1 "$REPEAT"); do
  strata_build "flagship-unchanged-$i" "$WORK/specs/pytorch-cuda.yaml"
  strata_build "python-unchanged-$i" "$WORK/specs/python-only.yaml"
done
# One-package change: the changed spec, then back to the original, so each
# run finds exactly one layer missing from the layer cache.
for i in $(seq 1 "$REPEAT"); do
  for s in flagship:pytorch-cuda python:python-only; do
    label=${s%%:*} file=${s#*:}
    strata_build "$label-changed-$i" "$WORK/specs-changed/$file.yaml"
    echo "# $label-changed-$i rebuilt: $(rebuilt "$label-changed-$i")"
    forget_new "$label-changed-$i" "$label-unchanged-1" # so that the next run rebuilds it too
  done
done
echo "# flagship digest $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['manifest_digest'])" "$WORK/json-flagship-nocache-1.txt")"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
fi

# ---- gzip splicing vs pigz: the torch layer --------------------------------
if [ "${SKIP_SPLICE:-}" != 1 ]; then
  T="$WORK/torch"
  rm -rf "$T" && mkdir -p "$T/cache/cas/sha256"
  # A spec with torch's wheel alone: its layer is the flagship's python/torch
  # layer (same diff_id). A private cache holds the wheel (a hard link) so the
  # layers written here do not land in the shared cache.
  sha=$(python3 - "$WORK/specs/pylock.pytorch-cuda.toml" "$T" <<'PY'
import pathlib, re, sys
text = pathlib.Path(sys.argv[1]).read_text()
head, *pkgs = text.split("\n[[packages]]\n")
torch = [p for p in pkgs if p.startswith('name = "torch"\n')]
assert len(torch) == 1
pathlib.Path(sys.argv[2], "pylock.torch.toml").write_text(head + "\n[[packages]]\n" + torch[0].rstrip("\n") + "\n")
sha = re.search(r'wheels = \[\{ url = "[^"]*", upload-time = [^,]*, size = \d+, hashes = \{ sha256 = "([0-9a-f]{64})"', torch[0]).group(1)
print(sha)
PY
)
  ln "$CACHE/cas/sha256/$sha" "$T/cache/cas/sha256/$sha"
  for variant in splice nosplice zstd; do
    case $variant in
      splice) comp="" ;;
      nosplice) comp="compression: {algorithm: gzip, splice: false}" ;;
      zstd) comp="compression: {algorithm: zstd}" ;;
    esac
    printf 'version: 1\nname: torch\nepoch: 1795737600\n%s\nlayers:\n  - name: torch\n    python: {lock: pylock.torch.toml, requirements: [torch==2.9.0]}\n' "$comp" > "$T/torch-$variant.yaml"
    for i in $(seq 1 "$REPEAT"); do
      rm -rf "$T/out"
      measure "torch-$variant-$i" "$STRATA" --cache "$T/cache" -q build --json --no-layer-cache "$T/torch-$variant.yaml" -o "oci:$T/out"
    done
    python3 -c "import json,sys; l=json.load(open(sys.argv[1]))['layers'][0]; print('# torch-$variant', l['digest'], l['diff_id'], l['size'], 'bytes of', l['tar_size'])" "$WORK/json-torch-$variant-1.txt"
  done
  if [ -f "$WORK/json-flagship-nocache-1.txt" ]; then
    python3 -c "import json,sys; a=[l['digest'] for l in json.load(open(sys.argv[1]))['layers'] if l['name'] == 'python/torch']; b=json.load(open(sys.argv[2]))['layers'][0]['digest']; print('# torch-splice is the flagship layer python/torch:', a == [b])" "$WORK/json-flagship-nocache-1.txt" "$WORK/json-torch-splice-1.txt"
  fi
  blob=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['layers'][0]['digest'].split(':')[1])" "$WORK/json-torch-splice-1.txt")
  gzip -dc "$T/cache/cas/sha256/$blob" > "$T/torch.tar"
  echo "# torch.tar $(stat -c %s "$T/torch.tar") bytes, sha256:$(python3 -c "import hashlib,sys; h=hashlib.sha256(); f=open(sys.argv[1],'rb'); [h.update(b) for b in iter(lambda: f.read(1<<20), b'')]; print(h.hexdigest())" "$T/torch.tar")"
  cat "$T/torch.tar" > /dev/null
  for i in $(seq 1 "$REPEAT"); do
    measure "torch-pigz-$i" sh -c "pigz -p2 -6 < '$T/torch.tar' > '$T/torch.pigz.gz'"
    echo "# torch-pigz $(stat -c %s "$T/torch.pigz.gz") bytes"
    measure "torch-zstd-cli-$i" sh -c "zstd -q -3 -T2 < '$T/torch.tar' > '$T/torch.tar.zst'"
    echo "# torch-zstd-cli $(stat -c %s "$T/torch.tar.zst") bytes"
  done
  measure "torch-gzip-1" sh -c "gzip -6 < '$T/torch.tar' > '$T/torch.gzip.gz'"
  echo "# torch-gzip $(stat -c %s "$T/torch.gzip.gz") bytes"
  rm -rf "$T"
fi

# ---- summary ---------------------------------------------------------------
# Medians over the runs; ratio = wall / the reference's median wall (the
# peer for the builds, pigz for the torch layer); load = 1-minute load
# average at the end of each run (other work on the machine).
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, wall, user, sys_, rss, load = line.rstrip("\n").split("\t")
    base = label.rsplit("-", 1)[0] if label.rsplit("-", 1)[-1].isdigit() else label
    rows.setdefault(base, []).append((float(wall), float(user) + float(sys_), int(rss), float(load)))
def table(keys, ref):
    refw = statistics.median(w for w, *_ in rows[ref])
    print(f"\n{'':26} {'wall s':>8} {'cpu s':>8} {'peak RSS MiB':>13} {'/ ' + ref:>16}   runs (wall s; load)")
    for k in keys:
        v = rows[k]
        w = statistics.median(x[0] for x in v)
        c = statistics.median(x[1] for x in v)
        r = max(x[2] for x in v) / 1024
        runs = ", ".join(f"{x[0]:.2f}; {x[3]:.1f}" for x in v)
        print(f"{k:26} {w:8.2f} {c:8.2f} {r:13.1f} {w / refw:15.3f}x   {runs}")
if "peer-pigz" in rows:
    table([k for k in rows if not k.startswith("torch-")], "peer-pigz")
if "torch-pigz" in rows:
    table([k for k in rows if k.startswith("torch-")], "torch-pigz")
PY
