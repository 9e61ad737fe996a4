#!/usr/bin/env bash
# Builds the Debian 12 dom0 disk from Debian's own packages, with Debian's own tools:
#   build/linux/rootfs.img            a raw disk, MBR, partition 1 = ext4 root filesystem (Linux: /dev/sda1)
#   build/linux/rootfs-initrd.cpio.gz the initramfs Debian's kernel needs to mount it (AHCI, sd and ext4
#                                     are modules): busybox, those modules, an /init that loads them,
#                                     mounts root= (default /dev/sda1) and switch_roots to /sbin/init
# The packages (busybox, bash, coreutils, kmod, iproute2, util-linux, Xen's xen-utils-4.17 and what they
# depend on, without python, perl, udev, debconf and other maintainer-script-only packages) are fetched
# with `apt-get download` and unpacked with `dpkg-deb -x` (no maintainer scripts run, no root needed for
# that); the kernel's modules come from the same linux-image package as build/linux/vmlinux
# (fetch-linux.sh, whose package name is in build/linux/VERSION). PID 1 is busybox init: /etc/init.d/rcS
# mounts the pseudo filesystems, loads e1000, takes eth0's address by DHCP (udhcpc), and root gets a
# login shell without a password on hvc0 and on tty1. The word `xen-toolstack` on Linux's command line
# (or `/usr/local/sbin/xen-toolstack` by hand) starts Xen's toolstack as Debian's /etc/init.d/xen does,
# with a bridge xenbr0 (10.0.0.1/24) for guests' vifs. rootfs-domu.sh adds what `xl create /root/guest.cfg`
# needs: the guest's kernel (/boot/vmlinuz), initramfs, disk image and configuration.
#
# Rebuilt only when an input changes: the stamp build/linux/rootfs.stamp holds this script's hash and
# every package version; apt is not even asked while its package lists are unchanged. usage: make-rootfs.sh [--force]
# Needs apt-get (Debian 12 sources), dpkg-deb, depmod (kmod), ldconfig, sfdisk (fdisk), mke2fs
# (e2fsprogs >= 1.43 for -d), cpio, gzip. Run as root so the files in the image are owned by root
# (as another user they keep that user's uid; root in the guest can still use them).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="$root/build/linux"
debs="$out/rootfs-debs"
img="$out/rootfs.img"
initrd="$out/rootfs-initrd.cpio.gz"
stamp="$out/rootfs.stamp"
force="${1:-}"

start=$SECONDS
say() { printf 'make-rootfs [%3ds] %s\n' $((SECONDS - start)) "$*" >&2; }
die() { echo "make-rootfs.sh: $*" >&2; exit 1; }

for tool in apt-get apt-cache dpkg-deb strings depmod ldconfig sfdisk mke2fs cpio gzip sha256sum; do
    command -v "$tool" >/dev/null || [[ -x "/sbin/$tool" || -x "/usr/sbin/$tool" ]] \
        || die "needs $tool (apt-get install -y kmod fdisk e2fsprogs cpio gzip)"
done
export PATH="$PATH:/usr/sbin:/sbin"

# The kernel: the same package as build/linux/vmlinux.
bash "$here/fetch-linux.sh" >/dev/null
kpkg="$(cat "$out/VERSION")"

# Resolving the packages takes apt several seconds; while neither this script nor apt's package lists
# (apt-get update) have changed, the versions cannot have changed either.
script_line="script $(cat "${BASH_SOURCE[0]}" "$here/rootfs-domu.sh" | sha256sum | cut -d' ' -f1) kernel $kpkg"
lists_line="apt-lists $(cd /var/lib/apt/lists 2>/dev/null && stat -c '%n %s %Y' -- *_Packages* 2>/dev/null | sha256sum | cut -d' ' -f1)"
built() { [[ "$force" != "--force" && -s "$img" && -s "$initrd" && -f "$stamp" ]]; }
if built && [[ "$(sed -n 1p "$stamp")" == "$script_line" && "$(sed -n 2p "$stamp")" == "$lists_line" ]]; then
    say "up to date: $img ($(du -m --apparent-size "$img" | cut -f1) MiB), $initrd ($(($(wc -l < "$stamp") - 2)) packages)"
    echo "$img"
    exit 0
fi

# The packages the root filesystem is made of, and what they depend on.
roots=(busybox-static bash coreutils kmod iproute2 pciutils bridge-utils util-linux dpkg sysvinit-utils procps
       xen-utils-4.17 xen-utils-common xenstore-utils)
# Left out of the dependency closure: interpreters only maintainer scripts or optional tools need, and
# packages that make no sense without dpkg's configuration step (xl, the daemons and the hotplug scripts
# run without them).
excluded() {
    case "$1" in
        python3*|libpython3*|perl|perl-base|perl-modules-*|libperl*|udev|systemd*|debconf|debconf-*|cdebconf \
        |adduser|passwd|ucf|install-info|mime-support|mailcap|media-types|sensible-utils|init-system-helpers \
        |linux-base|initramfs-tools*|usrmerge|lib*-perl|libdebian-installer*|libnewt*|libslang*|libtextwrap*|readline-common) return 0 ;;
    esac
    return 1
}

# Breadth-first over Depends and Pre-Depends, one apt-cache call per level; of alternatives the first
# (Debian's own preference), of a virtual package its first provider.
declare -A seen=()
closure=()
level=("${roots[@]}")
while ((${#level[@]})); do
    next=()
    for p in "${level[@]}"; do
        [[ -n "${seen[$p]:-}" ]] && continue
        seen[$p]=1
        excluded "$p" && continue
        closure+=("$p")
    done
    # shellcheck disable=SC2207
    deps=($(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances \
                "${level[@]}" 2>/dev/null | awk '
        /^ [ |](Pre)?Depends: / {
            alt = substr($0, 2, 1) == "|"; name = $2; wantprov = 0
            if (skip) { if (!alt) skip = 0; next }
            if (alt) skip = 1
            if (name ~ /^</) { wantprov = 1; next }
            sub(/:any$/, "", name); print name; next
        }
        /^    / { if (wantprov) { name = $1; sub(/:any$/, "", name); print name; wantprov = 0 } next }
        { wantprov = 0 }'))
    for d in "${deps[@]}"; do [[ -z "${seen[$d]:-}" ]] && next+=("$d"); done
    level=()
    ((${#next[@]})) && mapfile -t level < <(printf '%s\n' "${next[@]}" | sort -u)
done
((${#closure[@]} > 20)) || die "apt-cache resolved only ${#closure[@]} packages (${closure[*]}): are Debian 12 sources configured? (apt-get update)"

# Exact versions: the .deb file names apt would download now. They, the script and the kernel are the stamp
# (build/linux/rootfs.stamp: the script's hash, apt's lists, then one .deb file name a line).
uris="$(cd /tmp && apt-get download --print-uris "$kpkg" "${closure[@]}" 2>&1)" \
    || die "apt-get download --print-uris failed: $uris"
mapfile -t files < <(awk '/^'\''/ { print $2 }' <<<"$uris" | sort)
((${#files[@]} == ${#closure[@]} + 1)) || die "apt knows ${#files[@]} .deb files for $((${#closure[@]} + 1)) packages:
$uris"
if built && [[ "$(sed -n 1p "$stamp")" == "$script_line" && "$(tail -n +3 "$stamp")" == "$(printf '%s\n' "${files[@]}")" ]]; then
    printf '%s\n' "$script_line" "$lists_line" "${files[@]}" > "$stamp"
    say "up to date: $img ($(du -m --apparent-size "$img" | cut -f1) MiB), $initrd (${#files[@]} packages, same versions)"
    echo "$img"
    exit 0
fi

say "building $img from ${#files[@]} Debian packages (kernel $kpkg)"
mkdir -p "$debs"
missing=()
for f in "${files[@]}"; do [[ -s "$debs/$f" ]] || missing+=("${f%%_*}"); done
if ((${#missing[@]})); then
    say "apt-get download ${#missing[@]} packages into $debs"
    # As root, apt warns that its _apt sandbox user cannot write here: harmless.
    (cd "$debs" && apt-get download -q "${missing[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) \
        || die "apt-get download failed (network or apt sources? run 'apt-get update')"
fi
for f in "${files[@]}"; do [[ -s "$debs/$f" ]] || die "apt-get download left no $debs/$f"; done
# Old versions of the same packages are not needed again.
for f in "$debs"/*.deb; do
    printf '%s\n' "${files[@]}" | grep -qxF "$(basename "$f")" || rm -f "$f"
done

work="$out/rootfs.work"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
tree="$work/tree"
mkdir -p "$tree"

say "dpkg-deb -x ${#files[@]} packages ($(du -cm "${files[@]/#/$debs/}" | tail -n 1 | cut -f1) MiB of .deb)"
for f in "${files[@]}"; do dpkg-deb -x "$debs/$f" "$tree"; done

# Merged /usr, as Debian 12 installs it (usrmerge): /bin, /sbin, /lib, /lib64 are links into /usr.
for d in bin sbin lib lib64; do
    mkdir -p "$tree/usr/$d"
    if [[ -d "$tree/$d" && ! -L "$tree/$d" ]]; then
        cp -a "$tree/$d/." "$tree/usr/$d/"
        rm -rf "${tree:?}/$d"
    fi
    ln -sfn "usr/$d" "$tree/$d"
done

# The kernel's modules, matching build/linux/vmlinux. Whole classes of hardware a virtual machine does
# not have (sound, GPUs, cameras, Wi-Fi, InfiniBand, staging, industrial I/O) stay out: 390 -> ~230 MiB.
kver="$(ls "$tree/usr/lib/modules")"
[[ "$(wc -w <<<"$kver")" == 1 ]] || die "expected one kernel in the linux-image package, found: $kver"
kdeb="$(printf '%s\n' "${files[@]}" | grep "^${kpkg}_")"
kdebver="$(dpkg-deb -f "$debs/$kdeb" Version)"
vmver="$(strings -n 20 "$out/vmlinux" | grep -m 1 '^Linux version ' || true)"
[[ "$vmver" == "Linux version $kver "* && "$vmver" == *" Debian $kdebver"* ]] \
    || die "build/linux/vmlinux ('$vmver') is not the kernel of $kdeb ($kver, $kdebver): run Tests/Guests/linux/fetch-linux.sh --force"
for d in sound drivers/gpu drivers/media drivers/net/wireless drivers/infiniband drivers/staging drivers/iio drivers/comedi \
         net/bluetooth net/mac80211 net/wireless; do
    rm -rf "$tree/usr/lib/modules/$kver/kernel/$d"
done
# QEMU/Xen boot dom0 from build/linux/vmlinux; the bzImage stays for the guests `xl create` builds (guest.cfg).
ln -sfn "vmlinuz-$kver" "$tree/boot/vmlinuz"
depmod -b "$tree" "$kver"

# Busybox for every command no package brought (not `busybox` itself: linking it would overwrite the
# binary with a link to itself).
bb="$tree/usr/bin/busybox"
[[ -x "$bb" ]] || die "busybox-static left no /bin/busybox"
n=0
while read -r applet; do
    name="${applet##*/}"
    [[ "$name" == busybox ]] && continue
    [[ -e "$tree/usr/bin/$name" || -L "$tree/usr/bin/$name" || -e "$tree/usr/sbin/$name" || -L "$tree/usr/sbin/$name" ]] && continue
    case "$applet" in sbin/*|usr/sbin/*) ln -s ../bin/busybox "$tree/usr/sbin/$name" ;; *) ln -s busybox "$tree/usr/bin/$name" ;; esac
    n=$((n + 1))
done < <("$bb" --list-full)
ln -sfn busybox "$tree/usr/bin/sh"
ln -sfn ../bin/busybox "$tree/usr/sbin/init"   # PID 1: busybox init, /etc/inittab below (links are relative:
                                               # the initramfs checks them before switch_root)
say "busybox: $n applets linked; /sbin/init and /bin/sh are busybox"

# /etc and the directories no maintainer script made.
mkdir -p "$tree"/{proc,sys,dev,run,tmp,root,mnt,home,var/log,var/lib/xen,var/log/xen,etc/init.d,etc/udhcpc,usr/local/sbin}
chmod 1777 "$tree/tmp"
chmod 700 "$tree/root"
ln -sfn /run "$tree/var/run"
ln -sfn /run/lock "$tree/var/lock"
echo dom0 > "$tree/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tdom0\n' > "$tree/etc/hosts"
cat > "$tree/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
# Root has an empty password: the consoles below need no login, and `login root` asks for none.
printf 'root::19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n' > "$tree/etc/shadow"
chmod 640 "$tree/etc/shadow"
printf 'root:x:0:\ndaemon:x:1:\ntty:x:5:\ndisk:x:6:\nnogroup:x:65534:\n' > "$tree/etc/group"
printf 'proc /proc proc defaults 0 0\n/dev/sda1 / ext4 defaults 0 1\n' > "$tree/etc/fstab"
cat > "$tree/etc/profile" <<'EOF'
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM="${TERM:-linux}"
PS1='\u@\h:\w\$ '
EOF
[[ -e "$tree/etc/ld.so.conf" ]] || echo 'include /etc/ld.so.conf.d/*.conf' > "$tree/etc/ld.so.conf"
cat > "$tree/etc/inittab" <<'EOF'
# busybox init: rcS once, then a root login shell (no password) on Xen's console and on the first VT.
::sysinit:/etc/init.d/rcS
hvc0::respawn:-/bin/sh
tty1::respawn:-/bin/sh
::ctrlaltdel:/sbin/poweroff
::shutdown:/bin/sync
::shutdown:/bin/umount -a -r
EOF
cat > "$tree/etc/init.d/rcS" <<'EOF'
#!/bin/sh
# System start (busybox init's sysinit). No udev: PCI drivers that must run are loaded by name.
export PATH=/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/lock /run/xen
# devtmpfs has none of these; Xen's hotplug scripts (locking.sh) stat /dev/stdin.
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr
mount -o remount,rw / 2>/dev/null
hostname -F /etc/hostname
ip link set lo up
# The network in the background (the e1000 link takes seconds to come up): the shells do not wait
# for the lease, which the udhcpc script prints.
(
    modprobe e1000 || echo "rcS: modprobe e1000 failed"
    if ip link set eth0 up 2>/dev/null; then
        udhcpc -i eth0 -b -s /etc/udhcpc/default.script >/dev/null 2>&1
    else
        echo "rcS: no eth0 (no e1000 on the PCI bus?)"
    fi
) &
if grep -qw xen-toolstack /proc/cmdline; then /usr/local/sbin/xen-toolstack start; fi
echo "rcS: $(uname -r) up, root $(awk '$2 == "/" && $1 != "rootfs" { print $1 " (" $3 ")" }' /proc/mounts | tail -n 1)"
EOF
cat > "$tree/etc/udhcpc/default.script" <<'EOF'
#!/bin/sh
# udhcpc's hook: configures the interface and says which address it got.
case "$1" in
    deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
    bound|renew)
        ip -4 addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface"
        [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
        : > /etc/resolv.conf
        for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
        echo "udhcpc: $interface $ip/${mask:-24} router ${router:-none}" > /dev/console ;;
esac
exit 0
EOF
cat > "$tree/usr/local/sbin/xen-toolstack" <<'EOF'
#!/bin/sh
# Starts Xen's toolstack as Debian's packages do: the backend and device modules, a bridge for the
# guests' vifs (xenbr0, no uplink), then Debian's own /etc/init.d/xen (xenfs on /proc/xen, xenstored,
# xen-init-dom0, xenconsoled). usage: xen-toolstack start
[ "$1" = start ] || { echo "usage: xen-toolstack start" >&2; exit 2; }
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-blkback xen-netback bridge loop; do
    modprobe "$m" || echo "xen-toolstack: modprobe $m failed"
done
ip link show xenbr0 >/dev/null 2>&1 || { ip link add xenbr0 type bridge stp_state 0 forward_delay 0 && ip link set xenbr0 up; }
# The guests' own network (guest.cfg's guest is 10.0.0.2): nothing leaves QEMU.
ip -4 addr show dev xenbr0 | grep -q 'inet 10\.0\.0\.1/' || ip addr add 10.0.0.1/24 dev xenbr0
/etc/init.d/xen start
echo "xen-toolstack: $(cat /proc/xen/capabilities 2>/dev/null || echo 'no /proc/xen/capabilities')"
EOF
chmod 755 "$tree/etc/init.d/rcS" "$tree/etc/udhcpc/default.script" "$tree/usr/local/sbin/xen-toolstack"
ldconfig -r "$tree"
rm -rf "$tree/usr/share/man" "$tree/usr/share/doc" "$tree/usr/share/info" "$tree/usr/share/locale"

# The initramfs: busybox, the modules that reach an ext4 root on an AHCI disk, in load order.
say "initramfs: busybox + the AHCI, sd and ext4 modules"
ird="$work/initrd"
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,lib/modules}
cp "$bb" "$ird/bin/busybox"
for a in sh mount umount mkdir sleep cat insmod switch_root ls echo grep; do ln -s busybox "$ird/bin/$a"; done
# Dependencies first (modules.dep lists each module's transitive dependencies), each module once;
# crc32c_generic because ext4 and jbd2 ask the crypto API for crc32c (their softdep).
moddir="$tree/usr/lib/modules/$kver"
order=()
add_module() {
    local rel dep
    rel="$(awk -v m="/$1.ko:" 'index($0, m) { sub(/:.*/, ""); print; exit }' "$moddir/modules.dep")"
    [[ -n "$rel" ]] || die "module $1 not found in $kpkg"
    for dep in $(awk -v r="$rel:" '$1 == r { for (i = NF; i > 1; i--) print $i }' "$moddir/modules.dep"); do
        [[ " ${order[*]} " == *" $dep "* ]] || order+=("$dep")
    done
    [[ " ${order[*]} " == *" $rel "* ]] || order+=("$rel")
}
for m in crc32c_generic ahci sd_mod ext4; do add_module "$m"; done
for rel in "${order[@]}"; do cp "$moddir/$rel" "$ird/lib/modules/"; done
printf '%s\n' "${order[@]##*/}" > "$ird/lib/modules/order"
cat > "$ird/init" <<'EOF'
#!/bin/sh
# Loads the disk and filesystem modules, mounts the root filesystem (root=, default /dev/sda1) and
# hands over to its /sbin/init. `break` on the command line stops here in a shell.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
root=/dev/sda1
for w in $(cat /proc/cmdline); do case "$w" in root=*) root="${w#root=}" ;; esac; done
fail() {
    echo "rootfs-initrd: FAILED: $*"
    echo "rootfs-initrd: block devices: $(ls /sys/class/block | tr '\n' ' ')"
    echo "rootfs-initrd: a shell; 'exit' tries again"
    sh
}
for m in $(cat /lib/modules/order); do
    insmod "/lib/modules/$m" || echo "rootfs-initrd: insmod $m failed"
done
echo "rootfs-initrd: modules loaded, waiting for $root"
grep -qw break /proc/cmdline && sh
while true; do
    i=0
    while [ ! -b "$root" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    if [ ! -b "$root" ]; then fail "$root did not appear within 10 s (no AHCI disk attached, or no partition 1?)"; continue; fi
    if mount -t ext4 -o rw "$root" /newroot; then
        [ -x /newroot/sbin/init ] && break
        umount /newroot
        fail "$root has no /sbin/init"
    else
        fail "mount -t ext4 $root /newroot failed"
    fi
done
echo "rootfs-initrd: $root mounted, switching to its /sbin/init"
mount --move /dev /newroot/dev
umount /sys /proc
exec switch_root /newroot /sbin/init
EOF
chmod 755 "$ird/init"
(cd "$ird" && find . | cpio --quiet -o -H newc | gzip -6) > "$initrd.tmp"
mv "$initrd.tmp" "$initrd"

# shellcheck source=rootfs-domu.sh
. "$here/rootfs-domu.sh"

# The disk: 1 MiB for the partition table, then partition 1 = the ext4 filesystem, with room to spare.
used_mib="$(du -sm "$tree" | cut -f1)"
fs_mib=$(( used_mib * 5 / 4 + 64 ))
say "ext4: mke2fs -d of a $used_mib MiB tree into a $fs_mib MiB partition"
rm -f "$img.tmp"
truncate -s $(( (fs_mib + 1) * 1024 * 1024 )) "$img.tmp"
echo 'start=2048, type=83' | sfdisk --quiet --label dos "$img.tmp" >/dev/null
mke2fs -q -F -t ext4 -L dom0root -E offset=1048576,root_owner=0:0 -d "$tree" "$img.tmp" "$((fs_mib * 1024))k"
mv "$img.tmp" "$img"
printf '%s\n' "$script_line" "$lists_line" "${files[@]}" > "$stamp"
say "done: $img ($(( fs_mib + 1 )) MiB, $(du -m "$img" | cut -f1) MiB on disk), $initrd ($(du -k "$initrd" | cut -f1) KiB, ${#order[@]} modules)"
echo "$img"
