#!/usr/bin/env bash
# Issue 24's speed half alone (about 2.5 minutes a batch size): the tiny needle Vamba from scratch by `longshot train`
# and by tools/reference/train_needle.py side by side on the one GPU, as bench/gpu/train.sh runs them, for the same
# TRAIN_SPEED_SECONDS (default 90) of training each — both run the whole time, so neither has the GPU to itself
# at the end (the equal-accuracy run's fixed step counts let the faster one finish alone) — at each batch of
# TRAIN_SPEED_BATCHES (default "128 48": the equal-accuracy run's two). One small set of v1 shards (14 exporters ×
# 40 videos of 16–64 frames) in /dev/shm. steps/s of both in $OUT/train-speed/b<N>/train/summary.md. A CPU dry run:
# DEVICE=cpu PYTHON=/usr/bin/python3 TRAIN_SPEED_BATCHES=2 TRAIN_SPEED_SECONDS=10 TRAIN_SPEED_EXPORTERS=2 TRAIN_SPEED_VIDEOS=3
# TRAIN_SPEED_HELDOUT=2 TRAIN_SPEED_DATA=/tmp/ts OUT=/tmp/o bash bench/gpu/train-speed.sh
set -uo pipefail
for b in ${TRAIN_SPEED_BATCHES:-128 48}; do
  echo "[train-speed] $b videos a step"
  OUT="$OUT/train-speed/b$b" TRAIN_DATA=${TRAIN_SPEED_DATA:-/dev/shm/train-speed} TRAIN_EXPORTERS=${TRAIN_SPEED_EXPORTERS:-14} \
    TRAIN_VIDEOS=${TRAIN_SPEED_VIDEOS:-40} TRAIN_HELDOUT=${TRAIN_SPEED_HELDOUT:-10} \
    TRAIN_CALLS=0 TRAIN_STEPS=100000 TRAIN_SECONDS="${TRAIN_SPEED_SECONDS:-90}" TRAIN_BATCH="$b" TRAIN_WARMUP=30 \
    bash bench/gpu/train.sh | grep -E '^\| |steps/s|rc='
done
