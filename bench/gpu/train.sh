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
# Then bench/train_calls.ts profiles longshot's steps alone (backend calls per step and the host time in them).
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

# ---- longshot's recipe: needle-<model>.json with the shards, these steps and this output ----
recipe_for() {  # model, output dir (the recipe is written there as recipe.json)
  node -e '
const [src, out, train, heldout, steps, warmup] = process.argv.slice(1);
const r = JSON.parse(require("fs").readFileSync(src, "utf8"));
r.data = { train: { kind: "shards", dirs: train.split(",") }, eval: { kind: "shards", dirs: [heldout] } };
r.schedule = { ...r.schedule, steps: Number(steps), warmup: Number(warmup) };
r.output = { ...r.output, dir: out, checkpointEvery: Number(steps), evalEvery: Number(steps), logEvery: 1 };
require("fs").writeFileSync(out + "/recipe.json", JSON.stringify(r, null, 2));
' "recipes/needle-$1.json" "$2" "$TRAIN" "$D/heldout" "$STEPS" "$WARMUP"
}
recipe_for "$MODEL" "$R/longshot"

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
rm -rf "$R"/longshot/checkpoint-*/ "$R/pytorch/needle-$MODEL-tiny"  # the weights need not come back

node --import tsx bench/train_compare.ts "$R" "$MODEL"
# Where longshot's step time goes: backend calls and the host time inside them, for $MODEL and the models in
# TRAIN_CALLS_MODELS (TRAIN_CALLS=0 skips; ~40 s each), then again with synchronous launches (GPU time per kernel).
if [ "${TRAIN_CALLS:-1}" = 1 ]; then
  for m in $MODEL ${TRAIN_CALLS_MODELS:-}; do
    mkdir -p "$R/calls-$m"
    recipe_for "$m" "$R/calls-$m"
    timeout 120 node --import tsx bench/train_calls.ts "$R/calls-$m/recipe.json" --device "$DEVICE" --steps 14 \
      --warmup 4 --json "$R/calls-$m.json" > "$R/calls-$m.md" 2>&1
    echo "[train] train_calls $m rc=$?"; head -n 24 "$R/calls-$m.md"
    # With synchronous launches each call's host time is its kernel's GPU time too: where the GPU's time goes.
    CUDA_LAUNCH_BLOCKING=1 timeout 120 node --import tsx bench/train_calls.ts "$R/calls-$m/recipe.json" \
      --device "$DEVICE" --steps 10 --warmup 4 --json "$R/calls-$m-blocking.json" > "$R/calls-$m-blocking.md" 2>&1
    echo "[train] train_calls $m, launches blocking: rc=$?"; head -n 18 "$R/calls-$m-blocking.md"
  done
fi
echo "[train] done in $(($(date +%s) - START)) s"
