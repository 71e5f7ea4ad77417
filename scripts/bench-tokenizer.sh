#!/usr/bin/env bash
# The tokenizer's encoding speed on one core beside Hugging Face tokenizers' (the Rust library's
# Node binding, tests/node), on the same tokenizer.json and text, in one run (docs/benchmarks.md).
#   scripts/bench-tokenizer.sh [BUILD_DIR]
# The tokenizer: `warren model init --preset tiny`'s. The text: 8 MB of Python, licences and C++
# headers from this machine (English prose and code, as an agent's prompts are).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
work=$(mktemp -d "${TMPDIR:-/tmp}/warren-tokbench.XXXXXX")
trap 'rm -rf "$work"' EXIT
[ -x "$build/bin/inference_bench" ] || { echo "bench-tokenizer: build with -DWARREN_BENCH=ON first" >&2; exit 2; }
[ -d tests/node/node_modules/tokenizers ] || { echo "bench-tokenizer: run scripts/setup.sh first" >&2; exit 2; }

"$build/bin/warren" model init --preset tiny --out "$work/model" >/dev/null 2>&1
{ cat /usr/lib/python3.11/*.py /usr/share/common-licenses/*
  find /usr/include/c++/12/bits -name '*.h' | sort | head -300 | xargs cat; } > "$work/text"
echo "text: $(stat -c %s "$work/text") bytes; tokenizer: $(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['model']['vocab']))" "$work/model/tokenizer.json") entries"

echo "== warren (inference_bench)"
WARREN_BENCH_TOKENIZER="$work/model/tokenizer.json" WARREN_BENCH_TEXT="$work/text" \
  "$build/bin/inference_bench" --benchmark_filter=BM_TokenizerEncode 2>&1 | grep -E "BM_|tokens"
echo "== Hugging Face tokenizers $(node -p 'require("./tests/node/node_modules/tokenizers/package.json").version'), one thread"
(cd tests/node && RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false node hf_bench.mjs \
  "$work/model/tokenizer.json" "$work/text" 3)
