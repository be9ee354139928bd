# Stage 2, PID 1 in the new root: the system a container runtime expects
# (pure cgroup2 with every controller delegated, tmpfs /tmp, shared
# propagation), then the command. Its status goes to the control share.
ctl=/run/berth-vm/ctl
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t mqueue mqueue /dev/mqueue
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup ||
	mount -t cgroup2 cgroup2 /sys/fs/cgroup
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
	echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control
done
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mount --make-rshared /
hostname berth-vm
ip link set lo up 2>/dev/null
. "$ctl/env"
cd "$BERTH_VM_CWD" || cd /
sh "$ctl/cmd" < /dev/null
echo $? > "$ctl/rc"
sync
# PID 1 must not exit first: that panics the kernel.
/bin/busybox poweroff -f
echo o > /proc/sysrq-trigger
while :; do sleep 1; done
