#!/bin/bash
# How long `warren run` takes to give its agent a workspace on a large repository, beside
# `cp -a` of the same repository to a tmpfs (the anchor), warm cache, in one run.
#   scripts/bench-run-start.sh [REPO]   (default: makes 100,000 files of 10 KiB, committed)
# Prints, as root, each line of the run's progress with the seconds since it started: the
# workspace (an overlay over the repository), the first step, the end.
set -euo pipefail
warren=$(realpath "${WARREN:-$(dirname "$0")/../build/bin/warren}")
repo=${1:-}
work=$(mktemp -d)
trap 'umount -l "$work/tmpfs" 2>/dev/null || true; rm -rf "$work"' EXIT
if [ -z "$repo" ]; then
  repo=$work/repo
  mkdir -p "$repo"
  python3 - "$repo" <<'PY'
import os, sys
root = sys.argv[1]
data = os.urandom(1 << 20)
for d in range(1000):
    os.makedirs(f"{root}/src/m{d:03d}")
    for f in range(100):
        at = ((d * 100 + f) * 7919) % (len(data) - 10240)
        with open(f"{root}/src/m{d:03d}/f{f:02d}.txt", "wb") as out:
            out.write(data[at:at + 10240])
PY
  git -C "$repo" init -q && git -C "$repo" add -A &&
    git -C "$repo" -c user.name=b -c user.email=b@b commit -qm files
fi
printf '%s\n' \
  'Edit.</think>' '' '<｜DSML｜tool_calls>' '<｜DSML｜invoke name="bash">' \
  '<｜DSML｜parameter name="command" string="true">echo x >> README.bench</｜DSML｜parameter>' \
  '</｜DSML｜invoke>' '</｜DSML｜tool_calls><｜end▁of▁sentence｜>' \
  'Done.</think>' '' '<｜DSML｜tool_calls>' '<｜DSML｜invoke name="submit">' \
  '</｜DSML｜invoke>' '</｜DSML｜tool_calls><｜end▁of▁sentence｜>' > "$work/script"
echo "repository: $(git -C "$repo" ls-files | wc -l) tracked files, $(du -sh "$repo" | cut -f1)"
find "$repo" -type f -exec cat {} + > /dev/null  # warm the cache
stamp() { date +%s.%N; }
run() {  # $1: label, then warren run flags
  local label=$1; shift
  local began; began=$(stamp)
  (cd "$repo" && "$warren" run --repo . --task bench --script "$work/script" --db "$work/$label.db" \
     --patch-out /dev/null "$@" 2>&1) | while IFS= read -r line; do
    printf '%8.2f s  %s\n' "$(echo "$(stamp) - $began" | bc)" "$line"
  done
}
echo "== overlay (as root)"; run overlay
mkdir -p "$work/tmpfs" && mount -t tmpfs -o size=16g bench "$work/tmpfs"
began=$(stamp); cp -a "$repo" "$work/tmpfs/copy"
printf 'anchor: cp -a to a tmpfs %.2f s\n' "$(echo "$(stamp) - $began" | bc)"
