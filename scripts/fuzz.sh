#!/usr/bin/env bash
# Builds the libFuzzer target for the streaming parser with clang (ASan+UBSan) and runs it.
#   scripts/fuzz.sh [SECONDS]     default 600
# Starts from the kept corpus (tests/toolcall/fuzz_corpus/); new inputs go to fuzz-work/corpus/,
# crashes to fuzz-work/. Copy a crashing input into tests/toolcall/fuzz_corpus/ once it is fixed:
# the FuzzRegressions test replays every file there.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
bash scripts/setup.sh
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DWARREN_FUZZ=ON -DWARREN_SANITIZE=ON -DWARREN_BENCH=OFF >/dev/null
ninja -C build-fuzz fuzz_stream_parser
mkdir -p fuzz-work/corpus
cp -n tests/toolcall/fuzz_corpus/* fuzz-work/corpus/ 2>/dev/null || true
build-fuzz/bin/fuzz_stream_parser fuzz-work/corpus -dict=tests/fuzz/dsml.dict \
  -max_total_time="$seconds" -max_len=4096 -artifact_prefix=fuzz-work/ -print_final_stats=1
