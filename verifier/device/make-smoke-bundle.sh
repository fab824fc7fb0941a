#!/bin/sh
# Builds the smoke image (smoke.yaml) with strata itself and unpacks it with
# umoci into an OCI bundle that run-bundle.sh starts on a GPU machine.
# Also fetches Debian bookworm's runc and libseccomp2 to carry along.
# Run from anywhere in the repository on a Debian bookworm machine with
# apt-get, dpkg, umoci and a built strata (cargo build --release).
# Output: .carry/smoke/{bundle/,runc,libseccomp.so.2}
set -eu
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
out="$root/.carry/smoke"
bin=${STRATA_VERIFY_BIN:-$root/target/verifier/strata-verify}
strata=${STRATA_BIN:-$root/target/release/strata}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$out"
mkdir -p "$out" "$work/x" "$work/base"

(cd "$work" && apt-get download libc6 libgcc-s1 libstdc++6 zlib1g dash runc libseccomp2 >/dev/null 2>&1)
for d in "$work"/*.deb; do dpkg -x "$d" "$work/x"; done

# The runtime files: glibc's loader and the libraries the verifier and the
# CUDA libraries link against, libstdc++, zlib, and /bin/sh.
b="$work/base"
mkdir -p "$b/lib/x86_64-linux-gnu" "$b/lib64" "$b/usr/lib/x86_64-linux-gnu" "$b/bin"
for f in ld-linux-x86-64.so.2 libc.so.6 libdl.so.2 libm.so.6 libpthread.so.0 librt.so.1 libresolv.so.2 libgcc_s.so.1; do
    cp -a "$work/x/lib/x86_64-linux-gnu/$f" "$b/lib/x86_64-linux-gnu/"
done
ln -s /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$b/lib64/ld-linux-x86-64.so.2"
cp -a "$work/x/usr/lib/x86_64-linux-gnu/"libstdc++.so.6* "$b/usr/lib/x86_64-linux-gnu/"
# zlib: a Debian image with Python has it, and cuDNN 9 needs it.
cp -a "$work/x/lib/x86_64-linux-gnu/"libz.so.1* "$b/lib/x86_64-linux-gnu/"
cp -a "$work/x/bin/dash" "$b/bin/dash"
ln -s dash "$b/bin/sh"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1700000000 -cf "$out/base.tar" -C "$b" .
cp "$bin" "$out/strata-verify"

"$strata" -q build "$root/verifier/device/smoke.yaml" --context "$root" -o "oci:$work/oci:smoke"
umoci unpack --image "$work/oci:smoke" "$out/bundle" >/dev/null
cp "$work/x/usr/sbin/runc" "$out/runc"
cp -L "$work/x/usr/lib/x86_64-linux-gnu/libseccomp.so.2" "$out/libseccomp.so.2"
rm -f "$out/base.tar" "$out/strata-verify"
du -sh "$out"
