#!/bin/busybox sh
# Stage 1, from the initramfs: load what a 9p root needs, build the new
# root (the host's / read-only over 9p, under a tmpfs overlay so the guest
# can write), put the control share in it, switch.
/bin/busybox --install -s /bin
export PATH=/bin
fail() { echo "berth-vm init: $*" > /dev/console; echo o > /proc/sysrq-trigger; sleep 5; }
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules/order); do insmod "/modules/$m" || echo "berth-vm init: insmod $m failed" > /dev/console; done
mount9p() { mount -t 9p -o "trans=virtio,version=9p2000.L,msize=512000,$2" "$1" "$3"; }
mount9p berthctl cache=none /ctl || fail "cannot mount the control share"
mount9p hostroot cache=loose,ro /lower || fail "cannot mount the host root"
mount -t tmpfs -o mode=755 rw /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work,xino=off root /newroot ||
	fail "cannot mount the overlay root"
for d in dev proc sys; do mount --move /$d /newroot/$d; done
mount -t tmpfs -o mode=755,nosuid,nodev run /newroot/run
# Fresh scratch space, before the shares: a share may live under /tmp.
for d in /tmp /var/tmp; do mount -t tmpfs -o mode=1777 tmp "/newroot$d"; done
mkdir -p /newroot/run/berth-vm/ctl
mount --move /ctl /newroot/run/berth-vm/ctl
# shares: "tag mode path" per line; the path is the same as on the host.
while read -r tag mode path; do
	mkdir -p "/newroot$path"
	opts=cache=mmap
	[ "$mode" = ro ] && opts=cache=mmap,ro
	mount9p "$tag" "$opts" "/newroot$path" || fail "cannot mount share $path"
done < /newroot/run/berth-vm/ctl/shares
exec switch_root /newroot /bin/sh /run/berth-vm/ctl/stage2
fail "switch_root failed"
