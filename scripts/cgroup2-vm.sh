#!/usr/bin/env bash
# Runs the sandbox tests on cgroup v2, which this project's machines (v1 hybrid, controllers held
# by v1 hierarchies) cannot switch to: in QEMU VMs booting Debian's own kernels with cgroup2 alone
# at /sys/fs/cgroup. The guest sees this host's / over 9p, read-only under a tmpfs overlay that
# takes its writes, so it runs the binaries built here, as root. scripts/vm/init is its PID 1.
#   scripts/cgroup2-vm.sh                   build/bin/sandbox_tests on each kernel
#   scripts/cgroup2-vm.sh -- 'COMMAND'      COMMAND instead (sh -c in the guest, in /tmp)
# The kernels: bookworm's 6.1, where memory.peak cannot be reset and so cgroups are not reused, and
# bookworm-backports' 6.12, where they are. Set WARREN_VM_SUITES to run one ("bookworm").
# Packages come from Debian's archive through apt with a private list directory (the host's apt
# sources are left alone) and are kept in $WARREN_VM_CACHE. Emulated (TCG): nested KVM is not
# dependable on cloud VMs, and the tests take about a minute each way.
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${WARREN_VM_CACHE:-/var/cache/warren-vm}
suites=(${WARREN_VM_SUITES:-bookworm bookworm-backports})
tests="$(pwd)/${BUILD_DIR:-build}/bin/sandbox_tests"
if [ "${1:-}" = "--" ]; then
  shift
  command="$*" shown="$*"
else
  # Emulation runs some ten times slower than a host, and the tests' timeouts are set for a host:
  # a test that fails runs once more, alone, and says so. A v2 bug fails both times.
  shown=$tests
  command="tests=$tests"$'\n'$(cat <<'GUEST'
"$tests" --gtest_brief=1 > /tmp/first 2>&1 && { cat /tmp/first; exit 0; }
cat /tmp/first
failed=$(sed -n 's/^\[  FAILED  \] \([^ ]*\) (.*/\1/p' /tmp/first | sort -u | paste -sd:)
[ -n "$failed" ] || exit 1
echo "cgroup2-vm: failed once; run again alone: $failed"
"$tests" --gtest_brief=1 --gtest_filter="$failed"
GUEST
)
fi

for tool in qemu-system-x86_64 busybox xz apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "cgroup2-vm: $tool is missing (scripts/setup.sh)"; exit 2; }
done

# Extracts the suite's current amd64 kernel into $cache/$suite/kernel, once.
fetch_kernel() {
  local suite=$1 dir="$cache/$1"
  [ -f "$dir/kernel/ready" ] && return
  rm -rf "$dir" && mkdir -p "$dir/lists/partial" "$dir/archives/partial" "$dir/kernel"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
    "http://deb.debian.org/debian $suite main" > "$dir/sources.list"
  local apt=(-o Dir::Etc::sourcelist="$dir/sources.list" -o Dir::Etc::sourceparts=-
             -o Dir::State::Lists="$dir/lists" -o Dir::Cache="$dir" -o APT::Sandbox::User=root)
  apt-get "${apt[@]}" update -qq
  # The metapackage names the suite's current kernel, whose number moves with point releases.
  local package
  package=$(apt-cache "${apt[@]}" depends "linux-image-amd64/$suite" 2>/dev/null |
            awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [ -n "$package" ] || { echo "cgroup2-vm: no kernel found in $suite"; exit 2; }
  (cd "$dir" && apt-get "${apt[@]}" download -qq "$package/$suite")
  dpkg-deb -x "$dir"/"${package}"_*.deb "$dir/kernel" && rm "$dir"/*.deb
  touch "$dir/kernel/ready"
}

# busybox, the guest's init and the modules it loads (decompressed: busybox insmod reads plain .ko):
# virtio and 9p for the shared folder, overlay for image roots, bridge and veth (with llc and stp)
# for the private networks of docker-compose services.
make_initrd() {
  local kernel=$1 out=$2 root
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/lib/mod"
  cp "$(command -v busybox)" "$root/bin/busybox"
  cp scripts/vm/init "$root/init"
  # In dependency order, which lib/mod/order keeps for the guest's init.
  for module in virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs \
                fscache 9pnet 9pnet_virtio 9p overlay llc stp bridge veth; do
    local file
    file=$(find "$kernel/lib/modules" -name "$module.ko" -o -name "$module.ko.xz" | head -1)
    [ -z "$file" ] && continue  # built in
    echo "$module" >> "$root/lib/mod/order"
    case $file in
      *.xz) xz -dc "$file" > "$root/lib/mod/$module.ko" ;;
      *) cp "$file" "$root/lib/mod/$module.ko" ;;
    esac
  done
  (cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$out"
  rm -rf "$root"
}

status=0
for suite in "${suites[@]}"; do
  fetch_kernel "$suite"
  kernel="$cache/$suite/kernel"
  out=$(mktemp -d)
  make_initrd "$kernel" "$out/initrd.gz"
  printf '%s\n' "$command" > "$out/cmd.sh"
  echo "== cgroup v2 VM ($suite kernel $(ls "$kernel/lib/modules")): $shown"
  # Emulating two CPUs, the guest kernel now and then panics while it patches its own code (an
  # int3 oops in early boot): the emulator's fault, not the tests'. That boot is tried once more.
  for boot in 1 2; do
    timeout "${WARREN_VM_TIMEOUT:-900}" qemu-system-x86_64 -accel tcg,thread=multi -cpu max \
      -m 3072 -smp 2 -nographic -no-reboot -kernel "$kernel"/boot/vmlinuz-* \
      -initrd "$out/initrd.gz" -append "console=ttyS0 quiet panic=-1" \
      -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
      -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
      -fsdev local,id=out,path="$out",security_model=none \
      -device virtio-9p-pci,fsdev=out,mount_tag=out > "$out/console" 2>&1 || true
    if [ -f "$out/rc" ] || [ $boot = 2 ] || ! grep -aq "Kernel panic" "$out/console"; then break; fi
    echo "cgroup2-vm: the guest kernel panicked under emulation; booting it again:"
    grep -a -m1 -B2 "Oops\|BUG" "$out/console" || true
  done
  grep -ao "warren-vm: .*" "$out/console" || true
  cat "$out/log" 2>/dev/null || true
  rc=$(cat "$out/rc" 2>/dev/null || echo "none: the guest did not finish")
  if [ "$rc" != 0 ]; then
    echo "cgroup2-vm: failed on $suite (exit $rc); the guest's console:"
    tail -40 "$out/console"
    status=1
  fi
  rm -rf "$out"
done
exit $status
