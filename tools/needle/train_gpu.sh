#!/usr/bin/env bash
# Generates the training and held-out data and trains both tiny needle models, in one go on a GPU machine
# (16 cores: the renderer runs in parallel processes; the two trainers share the GPU, each launch-bound).
# Writes each model, its log and report.json under $1/<model>/.
#
#   bash tools/needle/train_gpu.sh /tmp/out [max seconds per model] [more train_needle.py options]
#   bash tools/needle/train_gpu.sh /tmp/out 600 --init models   # continue from the shipped weights
#
# NEEDLE_DATA (default /dev/shm/needle) holds the rendered data; it is rendered once (a .done marker), so a
# second run with other options reuses it. NEEDLE_MODELS (default "vamba qwen2vl") picks the models; set empty, only the data is rendered.
set -euo pipefail
OUT=${1:?output dir}
CAP=${2:-120}
D=${NEEDLE_DATA:-/dev/shm/needle}
mkdir -p "$OUT" "$D"
export_data() { node --import tsx tools/needle/export_training_data.ts "$@"; }
if [ ! -f "$D/.done" ]; then
  node --import tsx tools/needle/write_tokenizer.ts "$D/tok"
  t0=$(date +%s)
  # 16,800 training videos of 16–64 frames (2 fps, 112×112), 14 seeds in parallel.
  for i in $(seq 0 13); do
    export_data --out "$D/train$i" --count 1200 --frames 16,24,32,48,64 --seed $((1000 + i)) 2>/dev/null &
  done
  # Held-out videos: the trained lengths, 4× and 16× longer (other seeds).
  export_data --out "$D/eval_in" --count 150 --frames 16,32,64 --seed 9001 2>/dev/null &
  export_data --out "$D/eval_4x" --count 40 --frames 256 --seed 9002 --per-shard 32 2>/dev/null &
  export_data --out "$D/eval_16xa" --count 8 --frames 1024 --seed 9003 --per-shard 4 2>/dev/null &
  export_data --out "$D/eval_16xb" --count 8 --frames 1024 --seed 9004 --per-shard 4 2>/dev/null &
  wait
  echo "data generated in $(($(date +%s) - t0))s; $(du -sh "$D" | cut -f1)"
  touch "$D/.done"
fi
TRAIN=$(ls -d "$D"/train* | paste -sd,)
EVAL="$D/eval_in,$D/eval_4x,$D/eval_16xa,$D/eval_16xb"
for m in ${NEEDLE_MODELS-vamba qwen2vl}; do
  PYTHONUNBUFFERED=1 python3 tools/reference/train_needle.py --data "$TRAIN" --eval "$EVAL" --out "$OUT/$m" \
    --tokenizer-dir "$D/tok" --model "$m" --steps 3000 --max-seconds "$CAP" --seed 0 "${@:3}" &
done
wait
