#!/usr/bin/env bash
# Where a `longshot train` step's time goes on the GPU (about 2 minutes): bench/train_calls.ts on the needle
# recipes of TRAIN_CALLS_MODELS (default "vamba timeviper") over exported shards (TRAIN_DATA's train*/ when they
# are there, else 4 × 64 videos rendered here), once as it runs (host time inside each kind of backend call) and
# once with CUDA_LAUNCH_BLOCKING=1 (each call's host time is then its kernel's GPU time). Writes $OUT/train-calls/.
# TRAIN_CALLS_BATCH sets the videos per step (the recipe's 32 by default); TRAIN_CALLS_AB runs each model again
# with some environment variables set, once per ';'-separated variant (below). TRAIN_CALLS_PROF=1 adds V8 CPU profiles of the first run (summarise: npx tsx bench/cpuprofile_top.ts <file>).
set -uo pipefail
R="$OUT/train-calls"
D=${TRAIN_DATA:-/dev/shm/train-calls}
mkdir -p "$R"
command -v node >/dev/null || source .device/setup.sh
if ! ls -d "$D"/train* >/dev/null 2>&1; then
  for i in 0 1 2 3; do
    node --import tsx tools/needle/export_training_data.ts --out "$D/train$i" --count 64 --frames 16,24,32,48,64 \
      --seed $((1000 + i)) > /dev/null 2>&1 &
  done
  wait
fi
TRAIN=$(ls -d "$D"/train* | paste -sd,)
# Model $m's two runs into $R/$m<suffix>{,-blocking}.{json,md}: as it runs (with $PROF), then with blocking
# launches; the arguments after the suffix are variables set for both (env NAME=value …).
calls() {
  local sfx=$1
  shift
  env "$@" timeout 120 node ${PROF[@]+"${PROF[@]}"} --import tsx bench/train_calls.ts "$R/$m/recipe.json" --device cuda \
    --steps 14 --warmup 4 --json "$R/$m$sfx.json" > "$R/$m$sfx.md" 2>&1
  echo "[train-calls] $m $* rc=$?"; head -n 16 "$R/$m$sfx.md"
  env "$@" CUDA_LAUNCH_BLOCKING=1 timeout 120 node --import tsx bench/train_calls.ts "$R/$m/recipe.json" --device cuda \
    --steps 10 --warmup 4 --json "$R/$m$sfx-blocking.json" > "$R/$m$sfx-blocking.md" 2>&1
  echo "[train-calls] $m $*, launches blocking: rc=$?"; head -n 14 "$R/$m$sfx-blocking.md"
}
for m in ${TRAIN_CALLS_MODELS:-vamba timeviper}; do
  mkdir -p "$R/$m"
  node --import tsx tools/needle/shard_recipe.ts "$m" "$R/$m" "$TRAIN" - 14 4 ${TRAIN_CALLS_BATCH:-}
  # TRAIN_CALLS_PROF=1: V8 CPU profiles of this run (the main thread's JavaScript outside the calls) in $R/$m-prof/.
  PROF=()
  [ "${TRAIN_CALLS_PROF:-0}" = 1 ] && PROF=(--cpu-prof --cpu-prof-dir="$R/$m-prof")
  calls ""
  # TRAIN_CALLS_AB="NAME=value …[; NAME=value …]": the same two runs again with those variables set, once per
  # ';'-separated variant (an A/B on the same shards and machine, e.g. LONGSHOT_ATTENTION_GRAD_MMA=0), into
  # $R/$m-ab1*, $R/$m-ab2*, …
  PROF=()
  n=0
  IFS=';' read -ra variants <<< "${TRAIN_CALLS_AB:-}"
  for variant in "${variants[@]}"; do
    [ -n "${variant// /}" ] || continue
    n=$((n + 1))
    calls "-ab$n" $variant
  done
done
