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
#
# A run longer than one call (issue 24's equal-accuracy run, bench/gpu/equal-accuracy.sh): TRAIN_DIR (a folder
# the warm machine keeps, not under $OUT) holds both runs; TRAIN_PAUSE=S pauses both trainers after S seconds
# of this call (longshot: --max-seconds then --resume; train_needle.py: --state/--stop-seconds), and the next
# call with the same TRAIN_DIR goes on; $R/done marks a finished run. TRAIN_EXPORTERS (8) × TRAIN_VIDEOS
# training videos, TRAIN_BATCH (32 videos at 32 frames), TRAIN_LR (1e-3), TRAIN_INIT (a finished TRAIN_DIR: both
# trainers start from its models), TRAIN_EVAL (sets written by `longshot needle generate --no-video`: both final
# models answer them through `longshot needle eval --render`, one evaluator for both).
set -uo pipefail
START=$(date +%s)
R=${TRAIN_DIR:-$OUT/train}
D=${TRAIN_DATA:-/dev/shm/train-bench}
DEVICE=${DEVICE:-cuda}
MODEL=${TRAIN_MODEL:-vamba}
STEPS=${TRAIN_STEPS:-300}
SECS=${TRAIN_SECONDS:-240}
WARMUP=${TRAIN_WARMUP:-30}
EXPORTERS=${TRAIN_EXPORTERS:-8}
VIDEOS=${TRAIN_VIDEOS:-150}  # per exporter process
HELDOUT=${TRAIN_HELDOUT:-60}
BATCH=${TRAIN_BATCH:-32}
LR=${TRAIN_LR:-1e-3}
PY=${PYTHON:-python3}
mkdir -p "$R/longshot" "$R/pytorch" "$D" "$OUT/train"
command -v node >/dev/null || source .device/setup.sh
exec > >(tee -a "$OUT/train/run_log.txt") 2>&1

# ---- data: the exporter's v1 shards (what the PyTorch trainer reads), and the tokenizer ----
EXPORT="node --import tsx tools/needle/export_training_data.ts"
if [ ! -f "$D/.done" ]; then
  node --import tsx tools/needle/write_tokenizer.ts "$D/tok" 1
  pids=()
  for i in $(seq 0 $((EXPORTERS - 1))); do
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

# ---- longshot's recipe: needle-$MODEL.json with the shards, these steps, batch, rate and this output ----
node --import tsx tools/needle/shard_recipe.ts "$MODEL" "$R/longshot" "$TRAIN" "$D/heldout" "$STEPS" "$WARMUP" \
  "$BATCH" "$LR"
OURS=(--max-seconds "$SECS")
THEIRS=(--max-seconds "$SECS")
if [ -n "${TRAIN_PAUSE:-}" ]; then
  OURS=(--max-seconds "$TRAIN_PAUSE")
  [ -f "$R/longshot/last-checkpoint.json" ] && OURS+=(--resume)
  THEIRS=(--state "$R/pytorch/state.pt" --stop-seconds "$TRAIN_PAUSE")
fi
if [ -n "${TRAIN_INIT:-}" ]; then
  OURS+=(--from "$TRAIN_INIT/final/longshot")
  THEIRS+=(--init "$TRAIN_INIT/final/pytorch")
fi

# ---- both trainers side by side; each evaluates its model on the held-out set at the end ----
n=$(($(cat "$R/calls" 2>/dev/null || echo 0) + 1)); echo "$n" > "$R/calls"  # each call keeps its reports
oursDone() { node -e "process.exit(require(require('path').resolve('$R/longshot/report.json')).steps >= $STEPS ? 0 : 1)" 2>/dev/null; }
theirsDone() { [ -f "$R/pytorch/needle-$MODEL-tiny/model.safetensors" ]; }
P1= P2=
if ! oursDone; then
  timeout $((${TRAIN_PAUSE:-$SECS} + 150)) node --import tsx src/cli/run.ts train "$R/longshot/recipe.json" \
    --device "$DEVICE" "${OURS[@]}" --json > "$R/longshot/stdout.json" 2> "$R/longshot/stderr.txt" &
  P1=$!
fi
if ! theirsDone; then
  PYTHONUNBUFFERED=1 timeout $((${TRAIN_PAUSE:-$SECS} + 150)) "$PY" tools/reference/train_needle.py --data "$TRAIN" \
    --eval "$D/heldout" --out "$R/pytorch" --tokenizer-dir "$D/tok" --model "$MODEL" --steps "$STEPS" --batch "$BATCH" \
    --base-frames 32 --lr "$LR" --warmup "$WARMUP" --seed 0 --device "$DEVICE" --loss-log "$R/pytorch/loss.jsonl" \
    "${THEIRS[@]}" >> "$R/pytorch/stdout.txt" 2>&1 &
  P2=$!
fi
[ -n "$P1" ] && { wait $P1; echo "[train] longshot train rc=$?"; tail -n 3 "$R/longshot/stderr.txt"; \
  cp "$R/longshot/report.json" "$R/longshot/report-$n.json"; }
[ -n "$P2" ] && { wait $P2; echo "[train] train_needle.py rc=$?"; tail -n 3 "$R/pytorch/stdout.txt"; \
  cp "$R/pytorch/report.json" "$R/pytorch/report-$n.json"; }
LAST=$(node -p "require(require('path').resolve('$R/longshot/last-checkpoint.json')).checkpoint" 2>/dev/null)
# A run in one call is over now (its time cap may have come first); a paused one when both trainers have taken
# their last step (a paused PyTorch run saves no model).
finished() { [ -z "${TRAIN_PAUSE:-}" ] || { oursDone && theirsDone; }; }
if [ -n "$LAST" ] && finished && [ ! -f "$R/done" ]; then
  mkdir -p "$R/final/pytorch"
  rm -rf "$R/final/longshot" "$R/final/pytorch/needle-$MODEL-tiny"
  cp -r "$R/longshot/$LAST" "$R/final/longshot" && rm -rf "$R/final/longshot/trainer"
  [ -d "$R/pytorch/needle-$MODEL-tiny" ] && cp -r "$R/pytorch/needle-$MODEL-tiny" "$R/final/pytorch/"
  touch "$R/done"
  # One evaluator for both: `longshot needle eval` on TRAIN_EVAL's sets.
  for who in longshot pytorch; do
    dir="$R/final/$who"; [ "$who" = pytorch ] && dir="$R/final/pytorch/needle-$MODEL-tiny"
    [ -n "${TRAIN_EVAL:-}" ] && node --import tsx src/cli/run.ts needle eval --model "$dir" --data "$TRAIN_EVAL" \
      --render --device "$DEVICE" --json > "$R/eval-$who.json" 2> "$R/eval-$who.err"
  done
  # The weights need not come back, except longshot's last model files with TRAIN_KEEP=1 ($OUT/train-model.tgz).
  [ "${TRAIN_KEEP:-0}" = 1 ] && tar -czf "$OUT/train-model.tgz" -C "$R/final/longshot" .
fi
# Under $OUT (no TRAIN_DIR) the weights would travel back: only the tables, logs and curves do.
[ -z "${TRAIN_DIR:-}" ] && rm -rf "$R"/longshot/checkpoint-*/ "$R/pytorch/needle-$MODEL-tiny" "$R/final" \
  "$R/pytorch/state.pt"

node --import tsx bench/train_compare.ts "$R" "$MODEL"
[ "$R" != "$OUT/train" ] && cp "$R"/summary.* "$R"/*.png "$R"/eval-*.json "$OUT/train/" 2>/dev/null \
  && cp "$R/longshot/loss.png" "$OUT/train/longshot-loss.png" \
  && cp "$R/longshot/log.jsonl" "$OUT/train/longshot-log.jsonl" && cp "$R/pytorch/loss.jsonl" "$OUT/train/pytorch-loss.jsonl"
# Where longshot's step time goes (bench/gpu/train-calls.sh on these shards; TRAIN_CALLS=0 skips, ~1 min a model).
[ "${TRAIN_CALLS:-1}" = 1 ] && TRAIN_DATA="$D" TRAIN_CALLS_MODELS="$MODEL ${TRAIN_CALLS_MODELS:-}" \
  bash bench/gpu/train-calls.sh
echo "[train] done in $(($(date +%s) - START)) s"
