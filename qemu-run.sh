#!/usr/bin/env bash
# Builds Microhv if anything is out of date and boots it in QEMU with the serial console on this
# terminal. Ctrl-C stops QEMU; Ctrl-A X quits too and Ctrl-A C switches to the QEMU monitor.
# Exit status: 0 when every domain powered off (isa-debug-exit's success, QEMU status 1), otherwise
# QEMU's own status (isa-debug-exit: (code << 1) | 1, so 3 = a domain failed, 33 = a fatal trap).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: ./qemu-run.sh [options] [-- extra QEMU arguments]

  --linux          boot Debian's Linux 6.1 as the hardware domain (dom0) from an AHCI disk with
                   a Debian root filesystem, with an e1000 on QEMU's user network (restrict=on:
                   nothing leaves QEMU); log in on the console as root (no password). The disk is
                   build/linux/dom0-disk.img, made from make-rootfs.sh's image on first use and kept
                   across runs (what you write survives a poweroff); --fresh-disk starts over.
                   Fetches the kernel and builds the disk the first time (~100 MB of packages).
                   Dom0 starts Xen's toolstack at boot (xenstored, xenconsoled, the xenbr0 bridge):
                   xl works, `xl create /root/guest.cfg` starts a guest (see README).
  --fresh-disk     with --linux: replace build/linux/dom0-disk.img by a new copy of the image
  --no-toolstack   with --linux: do not start Xen's toolstack in dom0
  --append "words" with --linux: add words to dom0's command line
  --vcpus N        with --linux: dom0's vCPUs (1-8; default one per CPU of the machine: -- -smp 4
                   gives a 4-vCPU dom0, as Xen's dom0 gets one vCPU per CPU)
  --uefi           boot with UEFI firmware (OVMF) instead of BIOS (SeaBIOS)
  --usb            attach the ISO as a USB mass-storage disk (xHCI) and boot from it, as a stick
                   written with dd would boot (default: as a CD-ROM)
  --mem N          guest memory in MiB (default 256; 2048 with --linux)
  --cmdline "..."  kernel command line (default: microhv.log=info microhv.exit=isa-debug-exit);
                   the run's ISO is build/microhv-run.iso, made with Boot/mkiso.sh
  --no-guest       boot without the default guest (pvtest, a Xen PV test kernel)
  --gdb            wait for GDB on localhost:1234 before the first instruction (-s -S)
  --display        show the QEMU window (VGA screen) instead of running headless
  --no-build       do not run dotnet build first
  -h, --help       this text
EOF
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
uefi=0 usb=0 mem="" cmdline="" have_cmdline=0 gdb=0 display=0 build=1 guest=1 linux=0 fresh=0 dom0_words="" toolstack=1 vcpus=
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --linux) linux=1 ;;
        --fresh-disk) fresh=1 ;;
        --no-toolstack) toolstack=0 ;;
        --vcpus)
            [ $# -ge 2 ] && [[ "$2" =~ ^[1-8]$ ]] || { echo "qemu-run: --vcpus needs a number from 1 to 8" >&2; exit 2; }
            vcpus=$2; shift ;;
        --append)
            [ $# -ge 2 ] || { echo "qemu-run: --append needs an argument" >&2; exit 2; }
            dom0_words=$2; shift ;;
        --append=*) dom0_words=${1#--append=} ;;
        --uefi) uefi=1 ;;
        --usb) usb=1 ;;
        --mem)
            [ $# -ge 2 ] && [[ "$2" =~ ^[0-9]+$ ]] || { echo "qemu-run: --mem needs a number of MiB" >&2; exit 2; }
            mem=$2; shift ;;
        --mem=*) mem=${1#--mem=}; [[ "$mem" =~ ^[0-9]+$ ]] || { echo "qemu-run: --mem needs a number of MiB" >&2; exit 2; } ;;
        --cmdline)
            [ $# -ge 2 ] || { echo "qemu-run: --cmdline needs an argument" >&2; exit 2; }
            cmdline=$2; have_cmdline=1; shift ;;
        --cmdline=*) cmdline=${1#--cmdline=}; have_cmdline=1 ;;
        --gdb) gdb=1 ;;
        --display) display=1 ;;
        --no-build) build=0 ;;
        --no-guest) guest=0 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        *) echo "qemu-run: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

cd "$root"
[ -n "$mem" ] || { [ "$linux" = 1 ] && mem=2048 || mem=256; }
[ "$fresh" = 0 ] || [ "$linux" = 1 ] || { echo "qemu-run: --fresh-disk goes with --linux" >&2; exit 2; }
[ -z "$dom0_words" ] || [ "$linux" = 1 ] || { echo "qemu-run: --append goes with --linux" >&2; exit 2; }

# A fresh Debian machine has only the .NET SDK: install what the image build and QEMU need.
missing=()
for tool in qemu-system-x86_64:qemu-system-x86 grub-mkrescue:grub-common xorriso:xorriso mformat:mtools nasm:nasm; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
[ -d /usr/lib/grub/i386-pc ] || missing+=(grub-pc-bin)
[ -d /usr/lib/grub/x86_64-efi ] || missing+=(grub-efi-amd64-bin)
[ -f /usr/share/ovmf/OVMF.fd ] || [ -f /usr/share/OVMF/OVMF_CODE.fd ] || missing+=(ovmf)
if [ "$linux" = 1 ]; then
    # What fetch-linux.sh and make-rootfs.sh use to unpack Debian's packages and make the disk.
    for tool in xz:xz-utils zstd:zstd cpio:cpio mke2fs:e2fsprogs sfdisk:fdisk depmod:kmod strings:binutils; do
        command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
    done
fi
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || { echo "qemu-run: missing ${missing[*]} and no apt-get to install them" >&2; exit 1; }
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "qemu-run: installing ${missing[*]}" >&2
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
fi
if [ "$build" = 1 ]; then
    dotnet build Kernel/Kernel.csproj -v q -nologo
fi

elf=build/microhv.elf
# The run's own ISO: the kernel command line (by default the log at info level and QEMU's exit
# device, so QEMU ends when every domain has shut down) and the default guest, pvtest, as the
# initial domain.
[ "$have_cmdline" = 1 ] || cmdline="microhv.log=info microhv.exit=isa-debug-exit"
iso=build/microhv-run.iso
modules=()
[ "$guest" = 1 ] && modules=(build/pvtest.elf "name=pvtest")
if [ "$linux" = 1 ]; then
    # The hardware dom0: the same kernel, initramfs and disk Xen 4.17's dom0 boots
    # (Tests/Guests/linux/run-xen-dom0.sh), with Xen's dom0 memory (512 MiB).
    bash Tests/Guests/linux/fetch-linux.sh >/dev/null
    bash Tests/Guests/linux/make-rootfs.sh >/dev/null
    disk=build/linux/dom0-disk.img
    if [ "$fresh" = 1 ] || [ ! -f "$disk" ]; then
        cp --sparse=always build/linux/rootfs.img "$disk"
        echo "qemu-run: $disk is a new copy of build/linux/rootfs.img" >&2
    fi
    iso=build/microhv-linux.iso
    if [ "$toolstack" = 1 ]; then
        case " $dom0_words " in *" xen-toolstack "*) ;; *) dom0_words="xen-toolstack${dom0_words:+ $dom0_words}" ;; esac
    fi
    modules=(build/linux/vmlinux "name=dom0 pages=131072${vcpus:+ vcpus=$vcpus} initial -- root=/dev/sda1 console=hvc0${dom0_words:+ $dom0_words}"
             build/linux/rootfs-initrd.cpio.gz "initrd")
fi
Boot/mkiso.sh "$elf" "$iso" "$cmdline" "${modules[@]}"
[ -f "$iso" ] || { echo "qemu-run: $iso not found (build failed?)" >&2; exit 1; }

args=(-m "$mem" -no-reboot -serial mon:stdio
      -device isa-debug-exit,iobase=0xf4,iosize=0x04)
if [ "$linux" = 1 ]; then
    # q35 with an AHCI disk and an e1000, as docs/hardware-domain.md and the dom0 tests use; the CD boots
    # (the disk has no boot loader).
    args+=(-machine q35 -boot d
           -device ahci,id=ahci -drive "if=none,id=d0,file=$disk,format=raw" -device ide-hd,drive=d0,bus=ahci.0
           -netdev user,id=n0,restrict=on -device e1000,netdev=n0)
fi

if [ "$uefi" = 1 ]; then
    if [ -f /usr/share/ovmf/OVMF.fd ]; then
        args+=(-bios /usr/share/ovmf/OVMF.fd)
    elif [ -f /usr/share/OVMF/OVMF_CODE.fd ] && [ -f /usr/share/OVMF/OVMF_VARS.fd ]; then
        # Split firmware: read-only code plus a private copy of the variable store.
        cp /usr/share/OVMF/OVMF_VARS.fd build/OVMF_VARS.fd
        args+=(-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd
               -drive if=pflash,format=raw,file=build/OVMF_VARS.fd)
    else
        echo "qemu-run: no OVMF firmware found (apt-get install ovmf)" >&2; exit 1
    fi
fi

if [ "$usb" = 1 ]; then
    # read-only: the image is not changed, and several QEMUs may share it.
    args+=(-drive "if=none,id=stick,format=raw,readonly=on,file=$iso"
           -device qemu-xhci,id=xhci -device usb-storage,bus=xhci.0,drive=stick,bootindex=1)
else
    args+=(-cdrom "$iso")
fi

[ "$display" = 1 ] || args+=(-display none)

if [ "$gdb" = 1 ]; then
    args+=(-s -S)
    echo "qemu-run: waiting for GDB on localhost:1234; in another terminal run:" >&2
    echo "    gdb $elf -ex 'target remote :1234'" >&2
fi

echo "qemu-run: $(basename "$iso")$([ "$uefi" = 1 ] && echo ", UEFI")$([ "$usb" = 1 ] && echo ", USB disk"); Ctrl-C or Ctrl-A X to quit" >&2
status=0
qemu-system-x86_64 "${args[@]}" "${extra[@]+"${extra[@]}"}" || status=$?
# isa-debug-exit reports "every domain powered off" as (0 << 1) | 1.
[ "$status" = 1 ] && exit 0
exit "$status"
