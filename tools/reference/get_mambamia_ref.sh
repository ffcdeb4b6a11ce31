#!/usr/bin/env bash
# Fills the git-ignored .ref/unimambamia-av/ with the derivative's MambaMia2 sources (naver-ai/unimambamia-av,
# MIT; never committed here) that tools/reference/mambamia_fixtures.py runs: UniMambaMia/modeling_mambamia2.py,
# configuration_mambamia2.py and audio_compressor.py, read from the fetch tool's mirror of the repository.
#
#   bash tools/reference/get_mambamia_ref.sh [mirror git dir, default /work/.mirror/naver-ai+unimambamia-av]
set -eu
MIRROR=${1:-/work/.mirror/naver-ai+unimambamia-av}
DEST=.ref/unimambamia-av/UniMambaMia
if [ ! -d "$MIRROR" ]; then
  echo "get_mambamia_ref: no mirror at $MIRROR; fetch github:naver-ai/unimambamia-av first (or pass its git dir)" >&2
  exit 1
fi
GIT=$(find "$MIRROR" -maxdepth 2 -name HEAD -printf '%h\n' | head -1)
mkdir -p "$DEST"
for f in modeling_mambamia2.py configuration_mambamia2.py audio_compressor.py; do
  git --git-dir="$GIT" show "HEAD:UniMambaMia/$f" >"$DEST/$f"
done
echo "get_mambamia_ref: $(git --git-dir="$GIT" rev-parse HEAD) → $DEST"
