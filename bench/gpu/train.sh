#!/usr/bin/env bash
# Expected duration: about 7 minutes (≤ 8 by its own caps): ~40 s rendering the needle data (v1, as the
# shipped tiny models) on 16 cores into /dev/shm, then the tiny needle Vamba trained from scratch twice side by
# side on the one GPU — `longshot train --device cuda` (recipes/needle-vamba.json with the exported shards) and
# `tools/reference/train_needle.py --model vamba` — with the same data, steps (TRAIN_STEPS, default 300),
# batch (32 videos at 32 frames), learning rate, warm-up and seed, each capped at TRAIN_SECONDS (default 240)
# of training; each then answers the held-out set (every asking of 60 videos of 16/32/64 frames). Prints and
# writes $OUT/train/summary.md (steps/s, final loss, held-out accuracy) and summary.json, and both loss curves
# (longshot/loss.png, pytorch-loss.png). DEVICE=cpu with small TRAIN_* values runs the same job on a CPU.
# TRAIN_MODEL=mambamia does the same for the tiny TSTAR-MambaMia (recipes/needle-mambamia.json against
# train_needle.py --model mambamia), TRAIN_MODEL=timeviper for the tiny needle TimeViper
# (recipes/needle-timeviper.json against train_needle.py --model timeviper, i.e. needle_timeviper.py).
# TRAIN_KEEP=1 brings longshot's trained model back ($OUT/train-model.tgz: the last checkpoint's model files).
# Then bench/gpu/train-calls.sh profiles longshot's steps alone (backend calls per step, host and GPU time in them).
set -uo pipefail
START=$(date +%s)
R="$OUT/train"
D=${TRAIN_DATA:-/dev/shm/train-bench}
DEVICE=${DEVICE:-cuda}
MODEL=${TRAIN_MODEL:-vamba}
STEPS=${TRAIN_STEPS:-300}
SECS=${TRAIN_SECONDS:-240}
WARMUP=${TRAIN_WARMUP:-30}
VIDEOS=${TRAIN_VIDEOS:-150}  # per exporter process, 8 processes
HELDOUT=${TRAIN_HELDOUT:-60}
PY=${PYTHON:-python3}
mkdir -p "$R/longshot" "$R/pytorch" "$D"
command -v node >/dev/null || source .device/setup.sh
exec > >(tee -a "$R/run_log.txt") 2>&1

# ---- data: the exporter's v1 shards (what the PyTorch trainer reads), and the tokenizer ----
EXPORT="node --import tsx tools/needle/export_training_data.ts"
if [ ! -f "$D/.done" ]; then
  node --import tsx tools/needle/write_tokenizer.ts "$D/tok" 1
  pids=()
  for i in 0 1 2 3 4 5 6 7; do
    $EXPORT --out "$D/train$i" --count "$VIDEOS" --frames 16,24,32,48,64 --seed $((1000 + i)) 2>/dev/null &
    pids+=($!)
  done
  $EXPORT --out "$D/heldout" --count "$HELDOUT" --frames 16,32,64 --seed 9001 2>/dev/null &
  pids+=($!)
  wait "${pids[@]}"  # not a bare wait: that would also wait for the tee of the log
  touch "$D/.done"
fi
echo "[train] data ready in $(($(date +%s) - START)) s: $(du -sh "$D" | cut -f1)"
TRAIN=$(ls -d "$D"/train* | paste -sd,)

# ---- longshot's recipe: needle-$MODEL.json with the shards, these steps and this output ----
node --import tsx tools/needle/shard_recipe.ts "$MODEL" "$R/longshot" "$TRAIN" "$D/heldout" "$STEPS" "$WARMUP"

# ---- both trainers side by side; each evaluates its model on the held-out set at the end ----
timeout $((SECS + 150)) node --import tsx src/cli/run.ts train "$R/longshot/recipe.json" --device "$DEVICE" \
  --max-seconds "$SECS" --json > "$R/longshot/stdout.json" 2> "$R/longshot/stderr.txt" &
P1=$!
PYTHONUNBUFFERED=1 timeout $((SECS + 150)) "$PY" tools/reference/train_needle.py --data "$TRAIN" --eval "$D/heldout" \
  --out "$R/pytorch" --tokenizer-dir "$D/tok" --model "$MODEL" --steps "$STEPS" --max-seconds "$SECS" --batch 32 \
  --base-frames 32 --lr 1e-3 --warmup "$WARMUP" --seed 0 --device "$DEVICE" --loss-log "$R/pytorch/loss.jsonl" \
  > "$R/pytorch/stdout.txt" 2>&1 &
P2=$!
wait $P1; echo "[train] longshot train rc=$?"; tail -n 3 "$R/longshot/stderr.txt"
wait $P2; echo "[train] train_needle.py rc=$?"; tail -n 3 "$R/pytorch/stdout.txt"
# The weights need not come back, except longshot's last model files with TRAIN_KEEP=1 ($OUT/train-model.tgz).
if [ "${TRAIN_KEEP:-0}" = 1 ] && LAST=$(node -p "require(require('path').resolve('$R/longshot/last-checkpoint.json')).checkpoint" 2>/dev/null); then
  tar -czf "$OUT/train-model.tgz" -C "$R/longshot/$LAST" --exclude=./trainer .
fi
rm -rf "$R"/longshot/checkpoint-*/ "$R/pytorch/needle-$MODEL-tiny"

node --import tsx bench/train_compare.ts "$R" "$MODEL"
# Where longshot's step time goes (bench/gpu/train-calls.sh on these shards; TRAIN_CALLS=0 skips, ~1 min a model).
[ "${TRAIN_CALLS:-1}" = 1 ] && TRAIN_DATA="$D" TRAIN_CALLS_MODELS="$MODEL ${TRAIN_CALLS_MODELS:-}" \
  bash bench/gpu/train-calls.sh
echo "[train] done in $(($(date +%s) - START)) s"
