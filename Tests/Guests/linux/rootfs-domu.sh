# Sourced by make-rootfs.sh (not run by itself): what a user of the dom0 image needs to create a Debian
# Linux PV guest with Xen's `xl create`, as Xen's documentation would show it:
#   /boot/vmlinuz                the guest's kernel: Debian's bzImage, the same kernel as dom0 (make-rootfs.sh keeps it)
#   /root/domu-initrd.cpio.gz    its initramfs: busybox, xen-blkfront, xen-netfront and ext4 (with what they need);
#                                /init prints `domu-init: up, kernel <release>, <n> CPU(s), <MemTotal> kB`,
#                                mounts /dev/xvda on /mnt if the guest has a disk, gives eth0 10.0.0.2/24 if it has a
#                                vif, then runs root shells on hvc0 (`xl console guest`), one after the other
#   /root/guest.img              a 32 MiB ext4 filesystem for the guest's xvda (served by blkback over a loop device)
#   /root/guest.cfg              the guest's xl configuration (kernel, ramdisk, memory, disk, vif on xenbr0)
#   /etc/xen/xl.conf             autoballoon="off": dom0 keeps its memory, guests take the hypervisor's free memory
# Uses from make-rootfs.sh: $tree (the root filesystem being built), $work, $bb (busybox), $moddir (the
# kernel's modules), add_module/order, say, die. The guest's network: dom0's xenbr0 is 10.0.0.1/24 (xen-toolstack),
# the guest 10.0.0.2/24; nothing leaves QEMU.

say "domU: /root/domu-initrd.cpio.gz (busybox + blkfront, netfront, ext4), /root/guest.img, /root/guest.cfg"
dird="$work/domu-initrd"
mkdir -p "$dird"/{bin,sbin,dev,proc,sys,mnt,tmp,root,etc,lib/modules}
cp "$bb" "$dird/bin/busybox"
while read -r applet; do
    name="${applet##*/}"
    [[ "$name" == busybox || "$name" == poweroff || "$name" == reboot ]] && continue
    ln -sf busybox "$dird/bin/$name"
done < <("$bb" --list-full)
order=()
for m in crc32c_generic xen-blkfront xen-netfront ext4; do add_module "$m"; done
for rel in "${order[@]}"; do cp "$moddir/$rel" "$dird/lib/modules/"; done
printf '%s\n' "${order[@]##*/}" > "$dird/lib/modules/order"
echo guest > "$dird/etc/hostname"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$dird/etc/passwd"
printf 'root:x:0:\n' > "$dird/etc/group"
cat > "$dird/etc/profile" <<'EOF'
export PATH=/sbin:/bin HOME=/root TERM="${TERM:-linux}"
PS1='\u@\h:\w\# '
EOF
# `xl shutdown` makes the guest's kernel run /sbin/poweroff (orderly_poweroff); PID 1 is a shell, which
# busybox's own poweroff could not signal, so this one unmounts the disk and powers off itself.
cat > "$dird/sbin/poweroff" <<'EOF'
#!/bin/sh
sync
umount /mnt 2>/dev/null
exec busybox poweroff -f
EOF
sed 's/poweroff -f/reboot -f/' "$dird/sbin/poweroff" > "$dird/sbin/reboot"
cat > "$dird/init" <<'EOF'
#!/bin/sh
# The guest's PID 1: front-end drivers, its disk on /mnt, its address on xenbr0's network, then root shells
# on hvc0 (Xen's console: `xl console guest` in dom0), one after another.
export PATH=/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
hostname -F /etc/hostname
for m in $(cat /lib/modules/order); do
    insmod "/lib/modules/$m" || echo "domu-init: insmod $m failed"
done
echo "domu-init: up, kernel $(uname -r), $(nproc) CPU(s), $(awk '$1 == "MemTotal:" { print $2 }' /proc/meminfo) kB"
# xenbus lists the guest's devices before their drivers connect: wait for the ones it has (10 s each).
wait_for() { i=0; while [ ! -e "$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done; [ -e "$1" ]; }
if ls -d /sys/bus/xen/devices/vbd-* >/dev/null 2>&1; then
    if ! wait_for /dev/xvda; then echo "domu-init: FAILED: the guest has a vbd but no /dev/xvda"
    elif ! mount -t ext4 /dev/xvda /mnt; then echo "domu-init: FAILED: mount -t ext4 /dev/xvda /mnt"; fi
fi
ip link set lo up
if ls -d /sys/bus/xen/devices/vif-* >/dev/null 2>&1; then
    if ! wait_for /sys/class/net/eth0; then echo "domu-init: FAILED: the guest has a vif but no eth0"
    else ip addr add 10.0.0.2/24 dev eth0 && ip link set eth0 up || echo "domu-init: FAILED: eth0 10.0.0.2/24"; fi
fi
while true; do setsid cttyhack sh -l; done
EOF
chmod 755 "$dird/init" "$dird/sbin/poweroff" "$dird/sbin/reboot"
# Reproducible archive: sorted names, fixed times and owners.
find "$dird" -exec touch -h -d @0 {} +
(cd "$dird" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible | gzip -n -6) > "$tree/root/domu-initrd.cpio.gz"

# The guest's disk: an empty ext4 filesystem (fixed UUID, hash seed and time: the same bytes on every build).
rm -f "$tree/root/guest.img"
truncate -s 32M "$tree/root/guest.img"
E2FSPROGS_FAKE_TIME=1700000000 mke2fs -q -F -t ext4 -L guest -U 6d6f6475-0000-4000-8000-677565737431 -E hash_seed=6d6f6475-0000-4000-8000-677565737432,root_owner=0:0 \
    "$tree/root/guest.img"
cat > "$tree/root/guest.cfg" <<'EOF'
# A Debian Linux PV guest: `xl create /root/guest.cfg`, then `xl console guest` (Ctrl-] leaves it).
name = "guest"
kernel = "/boot/vmlinuz"
ramdisk = "/root/domu-initrd.cpio.gz"
extra = "console=hvc0"
memory = 128
vcpus = 1
disk = ['file:/root/guest.img,xvda,w']
vif = ['bridge=xenbr0']
EOF
# xl would otherwise shrink dom0 to make room for a guest (through memory/target, then polling).
sed -i 's/^#\?autoballoon=.*/autoballoon="off"/' "$tree/etc/xen/xl.conf"
grep -qx 'autoballoon="off"' "$tree/etc/xen/xl.conf" || die "/etc/xen/xl.conf: could not set autoballoon=\"off\""
