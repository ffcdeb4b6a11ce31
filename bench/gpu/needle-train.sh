#!/usr/bin/env bash
# Expected duration: about 8 minutes (≤ 9 by its own timeouts): ~1.5 min rendering the v2 needle data on 16
# cores into /dev/shm (≈ 6 GB), NEEDLE_TRAIN_SECONDS (default 270) of training with the models side by side on
# one GPU, ~1 min of PyTorch evaluation on the held-out sets, then a table.
#
# Renders the second version of the needle training data (tools/needle/export_training_data.ts --data v2:
# varied wordings, "not shown"/0 questions, varied footage and frame sizes, 256–1024-frame videos) and the
# held-out sets (other seeds), trains the models named in NEEDLE_MODELS (default "vamba qwen2vl") side by side
# with tools/reference/train_needle.py — each reads its batches from the one memory-mapped copy in /dev/shm —
# starting from the shipped weights where models/needle-<model>-tiny exists, evaluates each on every held-out
# set, and writes to $OUT/needle-train/<model>/: needle-<model>-tiny/ (the checkpoint, bf16), train_log.txt,
# report.json; $OUT/needle-train/summary.md holds the table. Run from the repository root with node on PATH
# (the kit's .device/setup.sh is sourced when node is missing).
set -uo pipefail
START=$(date +%s)
R="$OUT/needle-train"
D=${NEEDLE_DATA:-/dev/shm/needle-v2}
SECS=${NEEDLE_TRAIN_SECONDS:-270}
MODELS=${NEEDLE_MODELS:-vamba qwen2vl}
SHORT=${NEEDLE_SHORT_VIDEOS:-170}  # per process, 14 processes
LONG=${NEEDLE_LONG_VIDEOS:-10}     # per process, 4 processes
JOBS=${NEEDLE_JOBS:-16}
DIV=${NEEDLE_HELDOUT_DIV:-1}       # divides the held-out sets' sizes (a quick local run)
PY=${PYTHON:-python3}
INIT=${NEEDLE_INIT:-models}        # where needle-<model>-tiny/ to start from is looked for (a model not there starts from scratch)
BATCH=${NEEDLE_BATCH:-48}
LR_SCRATCH=${NEEDLE_LR:-1e-3}      # from scratch; from earlier weights 6e-4 with a short warm-up
h() { echo $((($1 + DIV - 1) / DIV)); }
mkdir -p "$R" "$D"
command -v node >/dev/null || source .device/setup.sh
exec > >(tee -a "$R/run_log.txt") 2>&1

# ---- data ----
EXPORT="node --import tsx tools/needle/export_training_data.ts --data v2"
if [ ! -f "$D/.done" ]; then  # rendered once: a second run with NEEDLE_DATA set reuses it
node --import tsx tools/needle/write_tokenizer.ts "$D/tok" 2
{  # one line per exporter process: its output directory, then its options
  # Held-out sets (seeds 9100+, never used for training). Plain: the generator's sentences, scenes and 112×112
  # frames, as the issue measured; each changes one thing.
  P="--phrasing generator --unanswerable 0 --scenes generator --geometry plain --variants 2"
  echo "heldout-16-64 --count $(h 120) --frames 16,32,64 --seed 9101 $P"
  echo "heldout-256 --count $(h 32) --frames 256 --seed 9102 --per-shard 16 $P"
  echo "heldout-1024 --count $(h 16) --frames 1024 --seed 9103 --per-shard 4 $P"
  echo "heldout-count --count $(h 60) --frames 32,64,256 --seed 9104 --tasks count --per-shard 32 $P"
  echo "heldout-reworded --count $(h 80) --frames 16,32,64 --seed 9105 --phrasing reworded --unanswerable 0 --scenes generator --geometry plain --variants 2"
  echo "heldout-unanswerable --count $(h 80) --frames 16,32,64 --seed 9106 --tasks color,word,digit,count --phrasing generator --unanswerable 1 --scenes generator --geometry plain --variants 2"
  echo "heldout-patterns --count $(h 60) --frames 16,32,64 --seed 9107 --phrasing generator --unanswerable 0 --scenes patterns --variants 2"
  # Training data (seeds 2000+), after the held-out sets so that a slow machine cuts training data, not them.
  for i in 0 1 2 3; do echo "long$i --count $LONG --frames 256,512,1024 --seed $((2100 + i)) --per-shard 8"; done
  for i in $(seq 0 13); do echo "train$i --count $SHORT --frames 16,24,32,48,64 --seed $((2000 + i))"; done
} | timeout 200 xargs -P "$JOBS" -L 1 bash -c 'out=$0; '"$EXPORT"' --out "'"$D"'/$out" "$@" 2>/dev/null || echo "export $out failed"'
touch "$D/.done"
fi
echo "data rendered in $(($(date +%s) - START))s: $(du -sh "$D" | cut -f1)"
# The finished exports (an index.json) among these globs, comma-separated.
ready() { for g in "$@"; do for d in "$D"/$g; do [ -f "$d/index.json" ] && echo "$d"; done; done | paste -sd,; }
TRAIN=$(ready 'train*' 'long*')
EVAL=$(ready 'heldout-*')
# The whole job stays within 9 minutes: slow rendering shortens training, never the evaluation.
LEFT=$((530 - 110 - ($(date +%s) - START)))
[ "$SECS" -gt "$LEFT" ] && SECS=$((LEFT > 30 ? LEFT : 30))
echo "training ${SECS}s: $MODELS"

# ---- training, side by side; each process then evaluates its model on every held-out set ----
pids=()
for m in $MODELS; do
  init=()
  init=(--lr "$LR_SCRATCH")
  [ -f "$INIT/needle-$m-tiny/model.safetensors" ] && init=(--init "$INIT" --lr 6e-4 --warmup 100)
  mkdir -p "$R/$m"
  PYTHONUNBUFFERED=1 timeout $((SECS + ${NEEDLE_EVAL_SECONDS:-130})) "$PY" tools/reference/train_needle.py --data "$TRAIN" --eval "$EVAL" \
    --out "$R/$m" --tokenizer-dir "$D/tok" --model "$m" --steps 100000 --max-seconds "$SECS" --batch "$BATCH" \
    --long-weight 5 --seed 0 "${init[@]}" > "$R/$m/stdout.txt" 2>&1 &
  pids+=($!)
done
wait "${pids[@]}"  # not a bare wait: that would also wait for the tee of the log
for m in $MODELS; do tail -n 3 "$R/$m/stdout.txt"; done

# ---- the parity fixture of the new weights (test/fixtures/needle/parity.json), when both shipped kinds trained ----
if [ -f "$R/vamba/needle-vamba-tiny/model.safetensors" ] && [ -f "$R/qwen2vl/needle-qwen2vl-tiny/model.safetensors" ]; then
  mkdir -p "$D/fx-models"
  ln -sfn "$(realpath "$R/vamba/needle-vamba-tiny")" "$D/fx-models/needle-vamba-tiny"
  ln -sfn "$(realpath "$R/qwen2vl/needle-qwen2vl-tiny")" "$D/fx-models/needle-qwen2vl-tiny"
  node --import tsx tools/needle/export_training_data.ts --out "$D/fx" --count 4 --frames 16 --seed 4242 --tokenizer 2 2>/dev/null &&
    timeout 60 "$PY" tools/reference/needle_fixtures.py --data vamba="$D/fx" qwen2vl="$D/fx" --models "$D/fx-models" --out "$R/parity.json" ||
    echo "parity fixture failed"
fi

# ---- the table ----
"$PY" - "$R" $MODELS <<'PY' | tee "$R/summary.md"
import json, os, sys
root, models = sys.argv[1], sys.argv[2:]
reports = {}
for m in models:
    p = os.path.join(root, m, "report.json")
    if os.path.exists(p):
        reports[m] = json.load(open(p)).get(m, {})
sets = sorted({s for r in reports.values() for s in r.get("eval", {})})
print("| held-out set | " + " | ".join(reports) + " |")
print("|---|" + "---|" * len(reports))
pct = lambda c, n: f"{100 * c / n:.1f}% ({c}/{n})" if n else "–"
for s in sets:
    print(f"| {s} | " + " | ".join(pct(r["eval"][s]["correct"], r["eval"][s]["total"]) if s in r.get("eval", {}) else "–" for r in reports.values()) + " |")
print("| unanswerable questions (any set) | " + " | ".join(pct(sum(e["unanswerable"][0] for e in r.get("eval", {}).values()), sum(e["unanswerable"][1] for e in r.get("eval", {}).values())) for r in reports.values()) + " |")
print("| steps / seconds | " + " | ".join(f"{r.get('steps')} / {r.get('seconds')}" for r in reports.values()) + " |")
PY
echo "needle-train done in $(($(date +%s) - START))s"
