#!/usr/bin/env bash
# Fetches Debian 12's stock Linux 6.1 kernel (a Xen PV guest: CONFIG_XEN_PV=y) and leaves the ELF
# vmlinux at build/linux/vmlinux, plus a tiny busybox initramfs at build/linux/initrd.cpio.gz whose
# /init prints a line and powers off. The vmlinuz on the package is a bzImage: its payload (at the
# setup header's payload_offset, after the real-mode setup sectors) is an xz or zstd stream holding
# the ELF vmlinux, which we decompress on the host so the loader gets the ELF it understands.
# Needs apt-get (Debian 12 sources), dpkg-deb, xz or zstd, gzip. Idempotent: does nothing when
# the outputs exist (pass --force to redo). LINUX_PACKAGE overrides the package name.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
out="$root/build/linux"

if [[ -s "$out/vmlinux" && -s "$out/initrd.cpio.gz" && "${1:-}" != "--force" ]]; then
    echo "$out/vmlinux"
    exit 0
fi

mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

package="${LINUX_PACKAGE:-}"
if [[ -z "$package" ]]; then
    # The newest 6.1 ABI the sources know; the -unsigned flavour is the same kernel without the EFI signature.
    package="$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' | cut -d' ' -f1 | sort -V | tail -n 1)"
fi
if [[ -z "$package" ]]; then
    echo "fetch-linux.sh: no linux-image-6.1.0-*-amd64-unsigned package known to apt (run 'apt-get update'? Debian 12 sources needed)" >&2
    exit 1
fi

( cd "$work" && apt-get download "$package" busybox-static ) >&2 || {
    echo "fetch-linux.sh: apt-get download $package busybox-static failed (network or apt sources?)" >&2
    exit 1
}
dpkg-deb -x "$(ls "$work"/linux-image-*.deb | head -n 1)" "$work/kernel"
dpkg-deb -x "$(ls "$work"/busybox-static_*.deb | head -n 1)" "$work/busybox"

vmlinuz="$(ls "$work"/kernel/boot/vmlinuz-* | head -n 1)"

# Little-endian integer of $2 bytes at offset $1 of the bzImage.
le() { od -An -t u"$2" -j "$1" -N "$2" "$vmlinuz" | tr -d ' '; }
setup_sects="$(le $((0x1f1)) 1)"
[[ "$setup_sects" == 0 ]] && setup_sects=4
payload_offset="$(le $((0x248)) 4)"
payload_length="$(le $((0x24c)) 4)"
start=$(( (setup_sects + 1) * 512 + payload_offset ))
dd if="$vmlinuz" of="$work/payload" iflag=skip_bytes,count_bytes skip="$start" count="$payload_length" status=none

magic="$(od -An -t x1 -N 6 "$work/payload" | tr -d ' \n')"
case "$magic" in
    fd377a585a00*) xz -dc --single-stream < "$work/payload" > "$work/vmlinux" 2>/dev/null || true ;;
    28b52ffd*)     zstd -dcq < "$work/payload" > "$work/vmlinux" 2>/dev/null || true ;;
    *) echo "fetch-linux.sh: unknown bzImage payload format (magic $magic)" >&2; exit 1 ;;
esac
if [[ "$(head -c 4 "$work/vmlinux" | od -An -t x1 | tr -d ' \n')" != "7f454c46" ]]; then
    echo "fetch-linux.sh: decompressing the payload of $vmlinuz did not give an ELF file" >&2
    exit 1
fi
mv "$work/vmlinux" "$out/vmlinux"

# The initramfs: busybox and an /init that says it ran, then powers the domain off (SCHEDOP_shutdown).
mkdir -p "$work/initrd/bin" "$work/initrd/proc" "$work/initrd/sys" "$work/initrd/dev"
cp "$work/busybox/bin/busybox" "$work/initrd/bin/busybox"
ln -s busybox "$work/initrd/bin/sh"
cat > "$work/initrd/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "microhv-linux-init: hello from /init, kernel $(/bin/busybox uname -r)"
/bin/busybox poweroff -f
EOF
chmod +x "$work/initrd/init"
# The host's cpio if it has one, else busybox's own (it runs on any x86-64 Linux host).
cpio=(cpio --quiet); command -v cpio >/dev/null || cpio=("$work/busybox/bin/busybox" cpio)
( cd "$work/initrd" && find . | "${cpio[@]}" -o -H newc | gzip -9 ) > "$out/initrd.cpio.gz"

echo "$package" > "$out/VERSION"
echo "$out/vmlinux"
