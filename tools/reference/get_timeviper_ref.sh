#!/usr/bin/env bash
# Fills .ref/TimeViper/ (git-ignored) with the official TimeViper sources that tools/reference/timeviper_fixtures.py
# runs, from a local git mirror of xiaomi-research/TimeViper (never committed here: read, run, not copied).
#
#   bash tools/reference/get_timeviper_ref.sh [mirror git dir, default /work/.mirror/xiaomi-research+timeviper/repo]
set -euo pipefail
MIRROR=${1:-/work/.mirror/xiaomi-research+timeviper/repo}
DEST=.ref/TimeViper
[ -d "$MIRROR" ] || { echo "no mirror at $MIRROR: fetch github:xiaomi-research/TimeViper first" >&2; exit 1; }
rm -rf "$DEST"
mkdir -p "$DEST"
git --git-dir="$MIRROR" archive HEAD timeviper/model/projector/tome.py timeviper/model/llm/llm_repo/nano |
  tar -x -C "$DEST"
git --git-dir="$MIRROR" rev-parse HEAD >"$DEST/COMMIT"
echo "official TimeViper $(cat "$DEST/COMMIT") in $DEST"
