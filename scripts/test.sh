#!/usr/bin/env bash
# Runs every test: installs what is missing, builds Release and runs ctest, then builds with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs ctest again. Between the two, the sandbox
# tests run again on cgroup v2, in VMs (scripts/cgroup2-vm.sh), when run as root.
#   scripts/test.sh            both builds
#   scripts/test.sh --fast     the Release build only (for quick local iterations)
set -euo pipefail
cd "$(dirname "$0")/.."

fast=0
[ "${1:-}" = "--fast" ] && fast=1

bash scripts/setup.sh
jobs=${WARREN_JOBS:-2}

run_suite() {
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja -DWARREN_BENCH=OFF "$@" >/dev/null
  ninja -C "$dir" -j "$jobs"
  (cd "$dir" && ctest --output-on-failure -j "$jobs")
}

echo "== Release build and tests"
run_suite build -DCMAKE_BUILD_TYPE=Release
if [ $fast -eq 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "== sandbox tests on cgroup v2"
    bash scripts/cgroup2-vm.sh
  else
    echo "== sandbox tests on cgroup v2: skipped, they need root"
  fi
  echo "== ASan+UBSan build and tests"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    run_suite build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWARREN_SANITIZE=ON
fi
