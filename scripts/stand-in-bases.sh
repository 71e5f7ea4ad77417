#!/usr/bin/env bash
# Stands in for Terminal-Bench's and Harbor's base images where their registries (ghcr.io, Docker
# Hub) cannot be reached: one Debian 12 root made by mmdebstrap from Debian's archive, imported
# into Warren's image store under every base name the original tasks' Dockerfiles use, so that
# their FROM lines find it (docs/images.md, docs/benchmarks.md).
#
#   scripts/stand-in-bases.sh [--store DIR] [--warren PATH] [--packages LIST] [NAME...]
#
# NAME...     the names to import it under (default: the 13 the Terminal-Bench 1 tasks use)
# --packages  Debian packages, comma-separated (default: what those images give the tasks:
#             Python with pip, pytest and `python`, a compiler, tmux, curl, git...)
# --store     the image store (default: $WARREN_IMAGES, else ~/.cache/warren/images)
# --warren    the warren binary (default: warren on PATH, else build/bin/warren)
#
# Debian's Python refuses system-wide pip installs (PEP 668); the python:3.x images do not, so
# the marker that makes it refuse is removed. It is Python 3.11 and Debian, not 3.13 and Ubuntu.
set -euo pipefail

store="" warren_bin="" names=()
packages="python3,python3-pip,python3-venv,python3-pytest,python-is-python3,build-essential,tmux"
packages+=",curl,wget,ca-certificates,procps,git,less,patch,xz-utils,bzip2,unzip,file"
while [ $# -gt 0 ]; do
  case "$1" in
    --store) store="$2"; shift 2 ;;
    --warren) warren_bin="$2"; shift 2 ;;
    --packages) packages="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "stand-in-bases: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done
if [ ${#names[@]} -eq 0 ]; then
  names=(
    ghcr.io/laude-institute/t-bench/python-3-13:20250620
    ghcr.io/laude-institute/t-bench/python-3-13:latest
    ghcr.io/laude-institute/t-bench/ubuntu-24-04:20250624
    ghcr.io/laude-institute/t-bench/ubuntu-24-04:latest
    ubuntu:24.04 ubuntu:22.04 debian:bullseye-slim
    python:3.13-slim-bookworm python:3.11-slim python:3.10-slim python:3.10-slim-bookworm
    python:3.9-slim-bookworm python:3.8-slim-bookworm
  )
fi
if [ -z "$warren_bin" ]; then
  warren_bin=$(command -v warren || true)
  [ -n "$warren_bin" ] || warren_bin="$(cd "$(dirname "$0")/.." && pwd)/build/bin/warren"
fi
[ -x "$warren_bin" ] || { echo "stand-in-bases: no warren binary at $warren_bin (--warren)" >&2; exit 2; }
command -v mmdebstrap >/dev/null || { echo "stand-in-bases: mmdebstrap is needed (apt-get install mmdebstrap)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/warren-bases.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "stand-in-bases: making a Debian 12 root with $packages" >&2
mmdebstrap --quiet --variant=minbase --include="$packages" \
  --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
  bookworm "$work/root.tar"
store_flag=()
[ -z "$store" ] || store_flag=(--store "$store")
also=()
for n in "${names[@]:1}"; do also+=(--also "$n"); done
# Terminal-Bench's images work in /app; the tasks' Dockerfiles count on it.
"$warren_bin" image import "${names[0]}" "$work/root.tar" --workdir /app "${also[@]}" "${store_flag[@]}"
