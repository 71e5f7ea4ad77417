#!/usr/bin/env bash
# Installs everything Warren needs to build and test on Debian 12: Debian packages, and for the tests
# the npm packages they compare against (tests/node).
# Idempotent: packages already present are skipped, and `apt-get update` runs at most once per call
# (and not at all when nothing is missing).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git clang clang-format libclang-rt-14-dev
  # libraries (see docs/overview.md: one library per concern)
  libboost-dev libboost-system-dev libssl-dev libseccomp-dev libsqlite3-dev sqlite3
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev libyaml-cpp-dev libexpected-dev
  libtomlplusplus-dev libnl-route-3-dev libpcre2-dev
  # task images (image/): buildah builds Dockerfiles without a daemon, runc runs their RUN steps
  # (crun, buildah's other choice, refuses cgroup v1 hybrid hosts)
  buildah runc
  # an outbound network for sandboxes that ask for one (sandbox::Network::Outbound): user-mode NAT
  slirp4netns
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev python3 bubblewrap openssl ca-certificates git
  python3-pytest iproute2
  # the independent reference of the engine's forward pass (tests/inference/reference.py)
  python3-torch python3-numpy
  # a registry on loopback for the image tests to pull from
  docker-registry
  # the cgroup v2 test VM (scripts/cgroup2-vm.sh)
  qemu-system-x86 busybox-static xz-utils
)

# Node.js runs the npm packages tests compare against (tests/node); a machine without it gets
# Debian's.
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "setup: done"
fi

# The npm packages tests compare against (Hugging Face's tokenizers), as locked in
# tests/node/package-lock.json; never used at run time.
node_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/node"
if [ ! -d "$node_dir/node_modules/tokenizers" ] || [ ! -d "$node_dir/node_modules/@huggingface/tokenizers" ]; then
  echo "setup: installing the tests' npm packages (tests/node)"
  npm ci --prefix "$node_dir" --no-audit --no-fund --loglevel=error >/dev/null
fi
