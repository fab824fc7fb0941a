#!/usr/bin/env bash
# Installs a skopeo that can verify sigstore signatures into a private prefix
# (default target/skopeo-sigstore), for the signing tests (registry-tests/
# tests/sign.rs). Debian 12's skopeo (1.9) is built with sigstore support
# disabled; Debian 13's (1.18) has it. This fetches skopeo and the libraries
# it needs from the Debian 13 archive with a private apt configuration (the
# system's apt sources, lists and packages are not touched) and unpacks them
# under the prefix; the wrapper PREFIX/skopeo runs them with Debian 13's own
# dynamic loader. The system skopeo is left as it is.
#
# Prints the wrapper's path. Idempotent: an existing working wrapper is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix="${1:-$PWD/target/skopeo-sigstore}"
wrapper="$prefix/skopeo"
if [ -x "$wrapper" ] && "$wrapper" --version >/dev/null 2>&1; then
  echo "$wrapper"
  exit 0
fi

mirror="${STRATA_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f /usr/share/keyrings/debian-archive-trixie-stable.gpg ] && keyring=/usr/share/keyrings/debian-archive-trixie-stable.gpg

work="$prefix.work"
rm -rf "$work"
mkdir -p "$work/etc/preferences.d" "$work/etc/sources.list.d" "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$prefix"
cat >"$work/etc/sources.list" <<EOF
deb [signed-by=$keyring] $mirror trixie main
EOF
: >"$work/status"
opts=(
  -o "Dir::Etc::SourceList=$work/etc/sources.list"
  -o "Dir::Etc::SourceParts=$work/etc/sources.list.d"
  -o "Dir::Etc::PreferencesParts=$work/etc/preferences.d"
  -o "Dir::State::Lists=$work/lists"
  -o "Dir::State::Status=$work/status"
  -o "Dir::Cache=$work/cache"
  -o "Debug::NoLocking=1"
  -o "APT::Architecture=$(dpkg --print-architecture)"
)
apt-get "${opts[@]}" update -qq >/dev/null

# skopeo and the shared libraries its binary links (the C library included,
# so that the Debian 13 binary runs on older systems through its own loader).
pkgs=(skopeo libc6 libgpgme11t64 libassuan9 libgpg-error0 libsqlite3-0 libsubid5 libaudit1 libcap-ng0 libselinux1 libpcre2-8-0 libsemanage2 libsepol2 libbz2-1.0 libdevmapper1.02.1 libudev1 libbtrfs0t64 libzstd1)
got=()
for p in "${pkgs[@]}"; do
  if (cd "$work/debs" && apt-get "${opts[@]}" download -qq "$p" >/dev/null 2>&1); then got+=("$p"); fi
done
case " ${got[*]} " in *" skopeo "*) ;; *) echo "error: could not download skopeo from the Debian 13 archive" >&2; exit 1 ;; esac
for d in "$work"/debs/*.deb; do dpkg-deb -x "$d" "$prefix/root"; done

root="$prefix/root"
loader=$(ls "$root"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root"/lib64/ld-linux-x86-64.so.2 "$root"/usr/lib/*/ld-linux-*.so.* 2>/dev/null | head -n1 || true)
libdirs="$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu:$root/usr/lib/aarch64-linux-gnu:$root/lib/aarch64-linux-gnu"
cat >"$wrapper" <<EOF
#!/bin/sh
# skopeo from Debian 13 with sigstore support (scripts/install-skopeo-sigstore.sh).
exec "$loader" --library-path "$libdirs" "$root/usr/bin/skopeo" "\$@"
EOF
chmod +x "$wrapper"
rm -rf "$work"
if ! "$wrapper" --version >/dev/null; then
  echo "error: the installed skopeo does not run" >&2
  exit 1
fi
echo "$wrapper"
