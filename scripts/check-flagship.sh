#!/usr/bin/env bash
# Outside CI: builds the flagship with the README's command and runs it under
# runc without a GPU (STRATA_VERIFY=warn), checking what a user of the image
# does first. Its output is recorded in docs/flagship.md ("Checked").
#
#   scripts/check-flagship.sh
#
# Checks: the image's digest and sizes (< 10 GB uncompressed); torch,
# torchvision and torchaudio versions and the CUDA stack they load;
# torch.compile of a small function on CPU (gcc from the compiler layer);
# /bin/sh; the default command (tini + strata-start) with sshd on SSH_PORT and
# JupyterLab on JUPYTER_PORT: an SSH login with a key made here and a Python
# command over it, JupyterLab's /api/status with the token and a terminal
# created through the API; import time with the precompiled bytecode
# (benches/bytecode-import.sh).
#
# Environment: STRATA_CACHE (Strata's cache), OUT (default build/pytorch-cuda),
# WORK (unpacked bundle, ~9 GB; default a temporary directory, removed at the end),
# SSH_PORT (2222), JUPYTER_PORT (8888), SKIP_BUILD=1 (use the existing OUT).
# Needs: root (runc), umoci, runc, ssh and ssh-keygen, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-build/pytorch-cuda}
ssh_port=${SSH_PORT:-2222}
jupyter_port=${JUPYTER_PORT:-8888}
work=${WORK:-$(mktemp -d /tmp/strata-check-flagship.XXXXXX)}
id=strata-check-$$
cleanup() {
  runc kill "$id" KILL >/dev/null 2>&1 || true
  runc delete -f "$id" >/dev/null 2>&1 || true
  [ -n "${WORK:-}" ] || rm -rf --one-file-system "$work"
}
trap cleanup EXIT
say() { printf '\n== %s\n' "$*"; }

if [ "${SKIP_BUILD:-}" != 1 ]; then
  say "build (the README's command)"
  cargo build --release -p strata 2>&1 | tail -1
  start=$(date +%s)
  digest=$(target/release/strata build specs/pytorch-cuda.yaml -o "oci:$out" --quiet)
  echo "target/release/strata build specs/pytorch-cuda.yaml -o oci:$out"
  echo "$digest  ($(($(date +%s) - start)) s)"
fi

say "sizes"
python3 - "$out" <<'EOF'
import gzip, json, os, sys
out = sys.argv[1]
index = json.load(open(os.path.join(out, "index.json")))
digest = index["manifests"][0]["digest"]
blob = lambda d: os.path.join(out, "blobs", *d.split(":"))
manifest = json.load(open(blob(digest)))
comp = sum(l["size"] for l in manifest["layers"])
raw = 0
for l in manifest["layers"]:
    # gzip.open reads every member (a spliced layer is many gzip members).
    with gzip.open(blob(l["digest"]), "rb") as f:
        while chunk := f.read(1 << 22):
            raw += len(chunk)
print(f"manifest {digest}")
print(f"{len(manifest['layers'])} layers: {comp / 1e9:.2f} GB compressed, {raw / 1e9:.2f} GB uncompressed (layer tars)")
assert raw < 10e9, "over 10 GB uncompressed"
EOF

say "unpack (umoci)"
ref="$out:$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"])' "$out/index.json")"
rm -rf "$work/bundle"
umoci unpack --image "$ref" "$work/bundle" >/dev/null
echo "rootfs: $(du -sb "$work/bundle/rootfs" | cut -f1 | awk '{printf "%.2f GB", $1/1e9}') on disk"

# The bundle's config: no terminal, the host's network (so the ports are
# reachable on 127.0.0.1), STRATA_VERIFY=warn (no GPU here).
config() { # args-json env-json
  python3 - "$work/bundle/config.json" "$1" "$2" <<'EOF'
import json, sys
path, args, env = sys.argv[1], json.loads(sys.argv[2] or "null"), json.loads(sys.argv[3])
c = json.load(open(path + ".orig"))
c["process"]["terminal"] = False
if args:
    c["process"]["args"] = args
c["process"]["env"] = [e for e in c["process"]["env"] if e.split("=")[0] not in {k.split("=")[0] for k in env}] + env
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
json.dump(c, open(path, "w"))
EOF
}
cp "$work/bundle/config.json" "$work/bundle/config.json.orig"
run() { # command (a shell-free argv as JSON)
  config "$1" '["STRATA_VERIFY=warn"]'
  runc run --bundle "$work/bundle" "$id" </dev/null
}

say "versions"
run '["python3", "-c", "import sys, torch, torchvision, torchaudio, numpy, pandas, matplotlib, jupyterlab\nprint(\"python\", sys.version.split()[0])\nprint(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"cudnn\", torch.backends.cudnn.version(), \"nccl\", \".\".join(map(str, torch.cuda.nccl.version())))\nprint(\"torchvision\", torchvision.__version__, \"torchaudio\", torchaudio.__version__)\nprint(\"numpy\", numpy.__version__, \"pandas\", pandas.__version__, \"matplotlib\", matplotlib.__version__, \"jupyterlab\", jupyterlab.__version__)\nprint(\"cuda available:\", torch.cuda.is_available())"]'
run '["gcc", "--version"]' | head -1

say "torch.compile on CPU"
run '["python3", "-c", "import torch\n@torch.compile\ndef f(x):\n    return torch.sin(x) * 2 + x\nx = torch.arange(4.0)\nprint(f(x))\nprint(\"matches eager:\", torch.allclose(f(x), torch.sin(x) * 2 + x))"]' 2>&1 | grep -v "^strata-verify" || true

say "/bin/sh"
run '["python3", "-c", "import subprocess; print(subprocess.run(\"echo $0 is $(readlink -f /bin/sh)\", shell=True, capture_output=True, text=True).stdout.strip())"]'

say "default command: sshd on $ssh_port and JupyterLab on $jupyter_port"
rm -f "$work/key" "$work/key.pub"
ssh-keygen -q -t ed25519 -N '' -f "$work/key" -C check-flagship
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
config '' "[\"STRATA_VERIFY=warn\", \"SSH_PORT=$ssh_port\", \"JUPYTER_TOKEN=$token\", \"SSH_AUTHORIZED_KEYS=$(cat "$work/key.pub")\"]"
python3 - "$work/bundle/config.json" "$jupyter_port" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["args"] = c["process"]["args"] + [f"--port={sys.argv[2]}"]
json.dump(c, open(sys.argv[1], "w"))
EOF
echo "args: $(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["process"]["args"]))' "$work/bundle/config.json")"
runc run --detach --bundle "$work/bundle" "$id" </dev/null >"$work/container.log" 2>&1
for _ in $(seq 120); do
  curl -fsS -o /dev/null "http://127.0.0.1:$jupyter_port/api/status?token=$token" 2>/dev/null && break
  sleep 1
done
ssh_opts=(-i "$work/key" -p "$ssh_port" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR)
echo "\$ ssh -p $ssh_port jupyter@127.0.0.1 'id; python3 -c ...'"
ssh "${ssh_opts[@]}" jupyter@127.0.0.1 'id; python3 -c "import torch, torchvision; print(\"over ssh: torch\", torch.__version__, \"torchvision\", torchvision.__version__)"'
echo "\$ curl -H 'Authorization: token …' http://127.0.0.1:$jupyter_port/api/status"
curl -fsS -H "Authorization: token $token" "http://127.0.0.1:$jupyter_port/api/status"; echo
echo "without the token: HTTP $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$jupyter_port/api/status")"
echo "\$ curl -X POST -H 'Authorization: token …' http://127.0.0.1:$jupyter_port/api/terminals"
curl -fsS -X POST -H "Authorization: token $token" "http://127.0.0.1:$jupyter_port/api/terminals"; echo
echo "container log (first lines):"
head -n 8 "$work/container.log" | sed "s/$token/<token>/g"
runc kill "$id" TERM
for _ in $(seq 30); do [ "$(runc state "$id" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null)" = stopped ] && break; sleep 1; done
echo "after SIGTERM: $(runc state "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')"
runc delete -f "$id"

say "import time (benches/bytecode-import.sh)"
ROOTFS="$work/bundle/rootfs" RUNS=${RUNS:-3} benches/bytecode-import.sh "$out"
