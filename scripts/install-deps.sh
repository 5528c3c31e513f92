#!/bin/sh
# Installs the Debian packages nomoat needs to build and test, if any are missing.
# As root it runs apt-get; otherwise it prints the exact command and exits 1.
# Never installs nodejs: the machine's own Node (20+) is newer than Debian's.
set -e
PKGS="pkg-config make gcc clang libzstd-dev libcjson-dev libxxhash-dev libcmocka-dev zstd python3 python3-numpy xxhash"
[ -n "$NOMOAT_EXTRA_DEPS" ] && PKGS="$PKGS $NOMOAT_EXTRA_DEPS"
# Optional: the arm64 cross toolchain and qemu-user used only by `make test-arm64`.
[ "$NOMOAT_WITH_ARM64" = 1 ] && PKGS="$PKGS gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "nomoat: missing Debian packages:$missing" >&2
    echo "run:  sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "nomoat: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q $missing >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q $missing >/dev/null; }
