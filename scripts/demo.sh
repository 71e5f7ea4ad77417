#!/usr/bin/env bash
# The main job, for now: a demo of the DSML codec on the bundled examples.
# Installs what is missing, builds, encodes a request, parses a completion (strict), and parses a
# malformed one (lenient, with the warnings and per-call errors it produces).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build -j "${WARREN_JOBS:-2}" warren
w=build/bin/warren
echo "== warren toolcall encode --mode thinking < configs/examples/request.json"
$w toolcall encode --mode thinking < configs/examples/request.json
echo
echo
echo "== warren toolcall parse --tools configs/examples/request.json < configs/examples/completion.txt"
$w toolcall parse --tools configs/examples/request.json --seed 1 < configs/examples/completion.txt
echo "== warren toolcall parse --lenient --tools ... < configs/examples/completion-malformed.txt"
$w toolcall parse --lenient --tools configs/examples/request.json --seed 1 \
  < configs/examples/completion-malformed.txt
