#!/usr/bin/env bash
# The tree a GPU call carries (tracked and untracked-not-ignored files, plus the paths named in `carry`) must stay
# under the device tool's 64 MiB, counted in disk blocks. With the kit (.device, ~24 MiB) and the shipped tiny models
# the tracked files no longer fit beside it, so before a call that carries .device:
#
#   bash scripts/device-slim.sh .device [.ckpt3 …]   # removes from the working tree what no GPU job reads, then
#                                                     # prints what would travel with those paths against the limit
#   bash scripts/device-slim.sh --restore             # puts the removed files back (git checkout), right after the call
#
# Removed: models/needle-mambamia-tiny/ (4.8 MiB: no GPU job or test-cuda file loads it) and the docs' screenshots.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
SLIM=(models/needle-mambamia-tiny docs/web-ui-live.png docs/web-ui-mandelbrot.png docs/web-ui-needle.png docs/web-ui-timeviper.png)
if [ "${1:-}" = --restore ]; then
  git checkout -- "${SLIM[@]}"
  echo "restored ${SLIM[*]}"
  exit 0
fi
rm -rf "${SLIM[@]}"
kib() { xargs -0 -r du -ck 2>/dev/null | awk 'END { print $1 + 0 }'; }
tracked=$(git ls-files -z | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done | kib)
untracked=$(git ls-files -z --others --exclude-standard | kib)
carried=0
for p in "$@"; do carried=$((carried + $(du -sk "$p" | cut -f1))); done
total=$((tracked + untracked + carried))
echo "would travel: tracked ${tracked} KiB + untracked ${untracked} KiB + carried (${*:-none}) ${carried} KiB = ${total} KiB of 65536"
[ "$total" -le 65536 ] || { echo "over the limit: carry less, or remove more (and restore it after)" >&2; exit 1; }
