#!/bin/sh
# Starts an unpacked OCI bundle (rootfs/ + config.json, e.g. from
# `umoci unpack --image oci:DIR:TAG BUNDLE`) with runc, giving it the host's
# NVIDIA GPUs the way the NVIDIA container toolkit does:
#   - the driver's user-space libraries (libcuda.so.1, libnvidia-ml.so.1,
#     libnvidia-ptxjitcompiler.so.1, ...) bind-mounted read-only, here from
#     the directory the GPU machines keep them in, /usr/local/nvidia/lib64,
#     at the same path in the container, with LD_LIBRARY_PATH pointing there
#     (the layout GKE and the GPU test machine use; the toolkit's legacy mode
#     mounts the files into /usr/lib/x86_64-linux-gnu and runs ldconfig);
#   - the device nodes /dev/nvidiactl, /dev/nvidia-uvm, /dev/nvidia-uvm-tools,
#     /dev/nvidiaN and /dev/nvidia-caps/* created in the container and allowed
#     in its device cgroup.
#
# usage: run-bundle.sh [--chroot] [--bind SRC:DST]... [--env K=V]... BUNDLE [ARG...]
#   ARG...    replaces the image's Cmd (the entrypoint, strata-verify --, stays)
#   --bind    extra read-only bind mount (e.g. a host directory of CUDA wheels)
#   --env     extra environment variable for the container process
#   --chroot  skip runc: do the same mounts and chroot into the rootfs
# env: RUNC (default: runc beside this script, else on PATH; its libseccomp.so.2
#      may sit beside it), NVIDIA_LIB_DIR (default /usr/local/nvidia/lib64).
# Needs root and python3 (to edit config.json). config.json is rewritten from
# config.json.orig, which the first run saves, so repeated runs are identical.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
mode=runc
binds=""
envs=""
while [ $# -gt 0 ]; do
    case "$1" in
        --chroot) mode=chroot; shift ;;
        --bind) binds="$binds
$2"; shift 2 ;;
        --env) envs="$envs
$2"; shift 2 ;;
        --) shift; break ;;
        -*) echo "run-bundle.sh: unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
done
bundle=${1:?usage: run-bundle.sh [--chroot] [--bind SRC:DST]... [--env K=V]... BUNDLE [ARG...]}
shift
bundle=$(cd "$bundle" && pwd)
nvlib=${NVIDIA_LIB_DIR:-/usr/local/nvidia/lib64}
[ -f "$bundle/config.json" ] || { echo "run-bundle.sh: $bundle/config.json not found" >&2; exit 2; }
[ -d "$nvlib" ] || { echo "run-bundle.sh: driver library directory $nvlib not found (set NVIDIA_LIB_DIR)" >&2; exit 2; }
[ -f "$bundle/config.json.orig" ] || cp "$bundle/config.json" "$bundle/config.json.orig"

# Device nodes as "path major minor", majors/minors read from the host.
devices=$(for d in /dev/nvidiactl /dev/nvidia-uvm /dev/nvidia-uvm-tools /dev/nvidia[0-9]* /dev/nvidia-caps/*; do
    [ -c "$d" ] && printf '%s %d %d\n' "$d" "0x$(stat -c %t "$d")" "0x$(stat -c %T "$d")"
done || true)

NVLIB="$nvlib" BINDS="$binds" ENVS="$envs" DEVICES="$devices" ARGS_JSON=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "$@") \
python3 - "$bundle" <<'PY'
import json, os, sys
bundle = sys.argv[1]
cfg = json.load(open(os.path.join(bundle, "config.json.orig")))
proc = cfg.setdefault("process", {})
proc["terminal"] = False
args = json.loads(os.environ["ARGS_JSON"])
if args:
    # Keep the entrypoint part (everything up to and including "--").
    old = proc.get("args", [])
    head = old[: old.index("--") + 1] if "--" in old else []
    proc["args"] = head + args
env = proc.setdefault("env", [])
nvlib = os.environ["NVLIB"]
def set_env(key, value):
    for i, kv in enumerate(env):
        if kv.split("=", 1)[0] == key:
            env[i] = f"{key}={value}"
            return
    env.append(f"{key}={value}")
old_ld = next((kv.split("=", 1)[1] for kv in env if kv.startswith("LD_LIBRARY_PATH=")), "")
set_env("LD_LIBRARY_PATH", nvlib + (":" + old_ld if old_ld else ""))
set_env("NVIDIA_VISIBLE_DEVICES", "all")
for kv in filter(None, os.environ["ENVS"].splitlines()):
    k, v = kv.split("=", 1)
    set_env(k, v)
mounts = cfg.setdefault("mounts", [])
def bind(src, dst):
    mounts.append({"destination": dst, "type": "bind", "source": src, "options": ["rbind", "ro", "nosuid", "nodev"]})
bind(nvlib, nvlib)
for spec in filter(None, os.environ["BINDS"].splitlines()):
    src, dst = spec.split(":", 1)
    bind(src, dst)
linux = cfg.setdefault("linux", {})
devs = linux.setdefault("devices", [])
allow = linux.setdefault("resources", {}).setdefault("devices", [])
for line in filter(None, os.environ["DEVICES"].splitlines()):
    path, major, minor = line.split()
    devs.append({"path": path, "type": "c", "major": int(major), "minor": int(minor), "fileMode": 0o666, "uid": 0, "gid": 0})
    allow.append({"allow": True, "type": "c", "major": int(major), "minor": int(minor), "access": "rwm"})
json.dump(cfg, open(os.path.join(bundle, "config.json"), "w"), indent=2)
print("config.json: args", proc.get("args"), "| mounts +%d | devices +%d" % (1 + len(list(filter(None, os.environ["BINDS"].splitlines()))), len(devs)), file=sys.stderr)
PY

if [ "$mode" = runc ]; then
    runc=${RUNC:-}
    if [ -z "$runc" ]; then
        if [ -x "$here/runc" ]; then runc="$here/runc"; else runc=$(command -v runc); fi
    fi
    # Debian's runc needs libseccomp.so.2; accept it beside the binary.
    export LD_LIBRARY_PATH="$(dirname "$runc")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    id="strata-gpu-$$"
    state=${RUNC_ROOT:-/tmp/runc-state}
    mkdir -p "$state"
    set +e
    "$runc" --root "$state" run --bundle "$bundle" "$id"
    rc=$?
    "$runc" --root "$state" delete -f "$id" >/dev/null 2>&1
    exit $rc
fi

# --chroot: the same mounts by hand, then the same process in a chroot
# (as root: the config's user and namespaces are not applied).
rootfs="$bundle/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["root"]["path"])' "$bundle/config.json")"
cleanup() { for m in $mounted; do umount -l "$m" 2>/dev/null; done; }
mounted=""
trap cleanup EXIT
mount_bind() { mkdir -p "$2"; mount --bind "$1" "$2"; mount -o remount,bind,ro "$2" 2>/dev/null || true; mounted="$2 $mounted"; }
mount_bind "$nvlib" "$rootfs$nvlib"
list=$(mktemp)
printf '%s\n' "$binds" > "$list"
while IFS=: read -r src dst; do
    if [ -n "$src" ]; then mount_bind "$src" "$rootfs$dst"; fi
done < "$list"
rm -f "$list"
mkdir -p "$rootfs/dev" "$rootfs/proc"
mount -t proc proc "$rootfs/proc" && mounted="$rootfs/proc $mounted"
echo "$devices" | while read -r path major minor; do [ -n "$path" ] && mkdir -p "$rootfs$(dirname "$path")" && mknod -m 666 "$rootfs$path" c "$major" "$minor" 2>/dev/null || true; done
python3 - "$bundle/config.json" "$rootfs" <<'PY'
import json, os, sys
cfg = json.load(open(sys.argv[1]))
p = cfg["process"]
env = dict(kv.split("=", 1) for kv in p.get("env", []))
os.chroot(sys.argv[2])
os.chdir(p.get("cwd", "/"))
os.execve(p["args"][0], p["args"], env)
PY
