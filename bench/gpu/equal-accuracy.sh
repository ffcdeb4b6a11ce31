#!/usr/bin/env bash
# Issue 24's equal-accuracy run: the tiny needle Vamba trained from scratch by `longshot train` and by
# tools/reference/train_needle.py side by side on the one GPU, with the shipped v1 model's data and schedule
# (docs/models/needle-vamba-tiny.md: 16,800 videos of 16–64 frames from 14 exporters; run 1 at 48 videos a step
# and lr 6e-4, run 2 from run 1's weights at 128 a step and lr 8e-4), fixed step counts instead of the time caps
# the shipped model had, so both trainers take the same steps. The two runs take longer than one call: every
# call goes on where the last one paused (bench/gpu/train.sh's TRAIN_DIR/TRAIN_PAUSE, kept in /dev/shm by the
# warm machine) until EQ_END, then leaves a margin for the evaluations and the packing.
#
#   EQ_END=$(($(date +%s) + 560)) bash bench/gpu/job.sh equal-accuracy     # as often as it takes (≤ 10 min calls)
#
# At the end both final models answer the same held-out set through `longshot needle eval --render` (150 videos
# of 16/32/64 frames, seed 9208, the generator's wordings: the trained range). Writes $OUT/equal-accuracy/run{1,2}/
# train/ (summary.md and .json, both loss curves and logs, each trainer's evaluation). EQ_STEPS1/EQ_STEPS2 set the
# step counts (4600 and 3400: about the shipped model's 4,589 and 3,413). A CPU dry run: DEVICE=cpu EQ_VIDEOS=4
# EQ_EVAL_COUNT=3 EQ_BATCH1=4 EQ_BATCH2=4 EQ_STEPS1=6 EQ_STEPS2=4 EQ_DIR=/tmp/eq OUT=/tmp/o bash bench/gpu/equal-accuracy.sh
set -uo pipefail
START=$(date +%s)
END=${EQ_END:-$((START + 540))}
MARGIN=${EQ_MARGIN:-100}  # after the pause: the trainers' last saves and evaluations, the final evaluation, packing
W=${EQ_DIR:-/dev/shm/equal-accuracy}
mkdir -p "$W" "$OUT/equal-accuracy"
command -v node >/dev/null || source .device/setup.sh
exec > >(tee -a "$OUT/equal-accuracy/log.txt") 2>&1
EVAL="$W/eval-16-64"
[ -f "$EVAL/questions.jsonl" ] || node --import tsx src/cli/run.ts needle generate --no-video --json --out "$EVAL" \
  --count "${EQ_EVAL_COUNT:-150}" --frames 16,32,64 --seed 9208 > /dev/null
common() {
  TRAIN_DATA="$W/data" TRAIN_EXPORTERS=14 TRAIN_VIDEOS=${EQ_VIDEOS:-1200} TRAIN_HELDOUT=${EQ_EVAL_COUNT:-150} TRAIN_CALLS=0 \
    TRAIN_EVAL="$EVAL" TRAIN_PAUSE=$((END - MARGIN - $(date +%s))) "$@"
}
left() { [ $((END - MARGIN - $(date +%s))) -gt 30 ]; }
if [ ! -f "$W/run1/done" ] && left; then
  echo "[equal-accuracy] run 1, $((END - MARGIN - $(date +%s))) s"
  common env OUT="$OUT/equal-accuracy/run1" TRAIN_DIR="$W/run1" TRAIN_STEPS=${EQ_STEPS1:-4600} TRAIN_BATCH=${EQ_BATCH1:-48} \
    TRAIN_LR=6e-4 TRAIN_WARMUP=300 bash bench/gpu/train.sh
fi
if [ -f "$W/run1/done" ] && [ ! -f "$W/run2/done" ] && left; then
  echo "[equal-accuracy] run 2 from run 1's models, $((END - MARGIN - $(date +%s))) s"
  common env OUT="$OUT/equal-accuracy/run2" TRAIN_DIR="$W/run2" TRAIN_INIT="$W/run1" TRAIN_STEPS=${EQ_STEPS2:-3400} \
    TRAIN_BATCH=${EQ_BATCH2:-128} TRAIN_LR=8e-4 TRAIN_WARMUP=200 bash bench/gpu/train.sh
fi
# The final models come back (bf16, about 5 MB each) for the CPU re-evaluation and, if longshot's is the
# better, a shipped model trained by longshot alone.
for r in run1 run2; do
  [ -f "$W/$r/done" ] && tar -czf "$OUT/equal-accuracy-$r-models.tgz" -C "$W/$r" final
done
echo "[equal-accuracy] done in $(($(date +%s) - START)) s"
