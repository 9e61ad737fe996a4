#!/usr/bin/env bash
# Boots Debian's Linux 6.1 (fetched by fetch-linux.sh) as Microhv's initial domain under QEMU and
# prints the serial log. usage: run-microhv.sh [seconds (default 120)] [extra Linux command line words]
# The initramfs (busybox, /init prints a line and powers off) is attached with the `initrd` module word.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
seconds="${1:-120}"
extra="${2:-}"
bash "$root/Tests/Guests/linux/fetch-linux.sh" >/dev/null
iso="$(mktemp -d)/linux.iso"
trap 'rm -rf "$(dirname "$iso")"' EXIT
bash "$root/Boot/mkiso.sh" "$root/build/microhv.elf" "$iso" "microhv.exit=isa-debug-exit microhv.log=debug" \
    "$root/build/linux/vmlinux" "name=linux pages=65536 initial -- console=hvc0 earlyprintk=xen loglevel=8 $extra" \
    "$root/build/linux/initrd.cpio.gz" "initrd" >/dev/null
timeout "$seconds" qemu-system-x86_64 -cdrom "$iso" -serial stdio -display none -no-reboot -m 1024M \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 || true
