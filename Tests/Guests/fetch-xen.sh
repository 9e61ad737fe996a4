#!/usr/bin/env bash
# Fetches the real Xen 4.17 hypervisor (Debian 12's xen-hypervisor-4.17-amd64) so the PV test
# guests can be checked against it. Leaves the multiboot1 ELF at build/xen/xen (QEMU's -kernel
# boots it directly). Needs apt-get (Debian 12 sources), dpkg-deb and gzip; no root for the
# download itself unless apt's cache is not writable. Idempotent: does nothing if build/xen/xen exists.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="$root/build/xen"
package="${XEN_PACKAGE:-xen-hypervisor-4.17-amd64}"

if [[ -s "$out/xen" && "${1:-}" != "--force" ]]; then
    echo "$out/xen"
    exit 0
fi

mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# apt-get download writes into the current directory; the _apt sandbox user may not be able to,
# which only produces a warning.
( cd "$work" && apt-get download "$package" ) >&2 || {
    echo "fetch-xen.sh: apt-get download $package failed (run 'apt-get update' first? Debian 12 sources needed)" >&2
    exit 1
}
deb="$(ls "$work"/*.deb | head -n 1)"
dpkg-deb -x "$deb" "$work/root"

gz="$(ls "$work"/root/boot/xen-4.17*-amd64.gz 2>/dev/null | head -n 1 || true)"
if [[ -z "$gz" ]]; then
    echo "fetch-xen.sh: $deb holds no boot/xen-4.17*-amd64.gz" >&2
    exit 1
fi
gunzip -c "$gz" > "$out/xen.tmp"
mv "$out/xen.tmp" "$out/xen"
cp "$gz" "$out/xen.gz"
basename "$deb" > "$out/VERSION"
echo "$out/xen"
