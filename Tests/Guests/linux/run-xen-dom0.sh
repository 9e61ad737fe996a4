#!/usr/bin/env bash
# The reference run of the hardware-dom0 scenario: Debian's Xen 4.17 (build/xen/xen, fetch-xen.sh)
# boots Debian's Linux 6.1 (build/linux/vmlinux) as dom0 with its root filesystem on an AHCI disk
# (build/linux/rootfs.img, make-rootfs.sh) and an e1000 on QEMU's user network (restrict=on: nothing
# leaves QEMU). QEMU's multiboot loader takes Xen as -kernel and the modules as -initrd, comma
# separated: dom0's kernel with its command line, then its initramfs. The serial console (Xen's and
# dom0's hvc0) is on the terminal, interactive: a root shell waits (no login, no password); `poweroff -f` ends
# dom0, Xen enters ACPI S5 and QEMU exits. QEMU's own escape is Ctrl-A as well: Ctrl-A X quits QEMU,
# Ctrl-A Ctrl-A sends one Ctrl-A to Xen (so six presses switch Xen's serial input, Xen's debug keys).
# usage: run-xen-dom0.sh [--disk FILE] [--append "dom0 words"] [--xen-append "Xen words"] [-- QEMU args]
#   --disk FILE   the disk to boot (default build/linux/rootfs.img; it is written to: use a copy to keep it)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"

disk="$root/build/linux/rootfs.img"
append=""
xen_append=""
while (($#)); do
    case "$1" in
        --disk) disk="$2"; shift 2 ;;
        --append) append="$2"; shift 2 ;;
        --xen-append) xen_append="$2"; shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "run-xen-dom0.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

bash "$root/Tests/Guests/fetch-xen.sh" >/dev/null
bash "$here/make-rootfs.sh" >/dev/null
[[ -f "$disk" ]] || { echo "run-xen-dom0.sh: no disk image $disk" >&2; exit 1; }

# In a multiboot module list a comma inside a command line is written twice.
dom0_cmdline="root=/dev/sda1 console=hvc0 $append"
modules="$root/build/linux/vmlinux ${dom0_cmdline//,/,,},$root/build/linux/rootfs-initrd.cpio.gz"

# -cpu max without SMAP/SMEP: Xen 4.17 under QEMU's TCG with them enabled faults in dom0's first
# user-space accesses (see README); the rest of max stays.
exec qemu-system-x86_64 -machine q35 -m 2048 -cpu max,-smap,-smep -display none -no-reboot \
    -serial mon:stdio -monitor none \
    -device ahci,id=ahci -drive "if=none,id=d0,file=$disk,format=raw" -device ide-hd,drive=d0,bus=ahci.0 \
    -netdev user,id=n0,restrict=on -device e1000,netdev=n0 \
    -kernel "$root/build/xen/xen" -append "console=com1 com1=115200,8n1 dom0_mem=512M noreboot $xen_append" \
    -initrd "$modules" "$@"
