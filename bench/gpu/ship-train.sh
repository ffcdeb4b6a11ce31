#!/usr/bin/env bash
# Trains the four tiny needle models with `longshot train` (recipes/needle-{vamba,qwen2vl,timeviper,mambamia}-v2.json:
# the streamed v2 mix of issue 27), side by side on the one GPU, then scores each with `longshot needle eval` on
# its held-out sets, all within the time left before SHIP_END (default: start + SHIP_SECONDS = 540 s).
#
#   SHIP_END=$(($(date +%s) + 560)) bash bench/gpu/job.sh ship-train       # on the GPU machine (≤ 10 min call)
#
# Each model starts from runs/ship/<model>/model/ when it is there (the previous call's weights: left on a warm
# machine, or carried back), else from its recipe (Vamba and Qwen2-VL: the shipped v1 weights, token rows
# remapped to tokenizer v2; TSTAR-MambaMia: the shipped Qwen2-VL's tower and LLM around a new compressor;
# TimeViper: from scratch). Every call is one run: warm-up, then
# a cosine over its training seconds (--time-schedule), as train_needle.py's runs 1 and 2 were.
#
# Held-out sets (tools/needle/heldout_sets.sh's seeds, records only: evaluated with --render, no ffmpeg needed):
# Vamba on 16-64, 256, 1024, count, reworded, unanswerable, patterns (our renderer's test-pattern backgrounds at
# camera sizes and rates) and, when ffmpeg is there (a carried .ffbin/, as bench/gpu/eval.sh), ffmpeg-patterns
# (MP4s over ffmpeg's lavfi sources); the others on 16-64.
#
# Returns: $OUT/ship-train/ (job.sh packs it: results.md, results.json, logs) and one $OUT/ship-ckpt-<model>.tgz
# per model holding runs/ship/<model>/model/ (bf16 weights, config, tokenizer): `tar -xzf ship-ckpt-<model>.tgz`
# in the repository root puts it where the next call reads it. To carry one to a fresh machine, repack it smaller
# (`tar -xzf ship-ckpt-<m>.tgz -C /tmp/c && tar -cf - -C /tmp/c runs/ship/<m> | xz -9e > .ckpt/<m>.tar.xz`, with
# .ckpt/ in .git/info/exclude) and carry .ckpt: each .ckpt*/*.tar.xz is unpacked here once. The carried tree's
# 64 MiB count disk blocks: run `bash scripts/device-slim.sh .device .ckpt…` before a call that carries the kit (it
# removes what no GPU job reads and prints the total; `--restore` after): ≈ 3.8 MiB is left beside the kit, one
# TimeViper or MambaMia checkpoint; a Vamba one (5.0 MB) goes in a second call on the warm machine, without
# .device (kept there).
#
# Knobs (a CPU dry run: SHIP_DEVICE=cpu SHIP_SECONDS=120 SHIP_STEPS=2 SHIP_TINY=1 SHIP_HELDOUT_DIV=20 OUT=/tmp/o
# bash bench/gpu/ship-train.sh): SHIP_MODELS (default all four), SHIP_STEPS (a step cap), SHIP_EVAL_SECONDS
# (kept for evaluation and packing, 110); SHIP_RENDER_THREADS, SHIP_LR and SHIP_RECIPE take one value for every
# model or "model=value" entries. SHIP_RENDER_THREADS (e.g. "vamba=10 mambamia=4"; default Vamba 6, Qwen2-VL 4, the others
# 2: 4 main threads + 14 render threads on the GPU machine's 16 cores, slightly over: the main threads mostly wait on the GPU), SHIP_TINY=1 (16-frame videos, 2 per
# step, a 4-video in-run evaluation), SHIP_HELDOUT_DIV (divides the held-out sets' sizes), SHIP_DEBUG (models
# trained with CUDA_LAUNCH_BLOCKING=1, e.g. "vamba"), SHIP_LR (per model, "vamba=1e-4 mambamia=3e-4": each call is
# a new warm-up and cosine, so a short call going on from trained weights should not climb to the recipe's rate:
# session 16's fourth call, 120 s at Vamba's 2e-4, undid part of the third's gains), SHIP_RECIPE (per model,
# "timeviper=recipes/my-easy-stage.json": its recipe for this call instead of recipes/needle-<model>-v2.json).
set -uo pipefail
START=$(date +%s)
END=${SHIP_END:-$((START + ${SHIP_SECONDS:-540}))}
OUT=${OUT:-.bench-out}
R="$OUT/ship-train"
MODELS=${SHIP_MODELS:-vamba qwen2vl timeviper mambamia}
DEVICE=${SHIP_DEVICE:-cuda}
EVAL_SECONDS=${SHIP_EVAL_SECONDS:-110}
# Render threads per trainer: the v2 frames are drawn on the CPU. Vamba (issue 27's model) and its baseline draw
# frames of many sizes; TimeViper and TSTAR-MambaMia plain 112×112 ones (their recipes' geometry), far cheaper.
declare -A THREADS=([vamba]=6 [qwen2vl]=4 [timeviper]=2 [mambamia]=2)
DIV=${SHIP_HELDOUT_DIV:-1}
SETS=/tmp/ship-heldout
RUNS=/tmp/ship-runs
STATE=runs/ship
mkdir -p "$R" "$SETS" "$RUNS" "$STATE"
command -v node >/dev/null || source .device/setup.sh
exec > >(tee -a "$R/log.txt") 2>&1
# Carried checkpoints, each unpacked once: a warm machine keeps both the archive and the newer weights trained from it.
for f in .ckpt*/*.tar.xz; do
  [ -f "$f" ] || continue
  sum=$(sha1sum < "$f") stamp="$STATE/.unpacked-${f//\//_}"
  [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ] && continue
  tar -xJf "$f" && echo "$sum" > "$stamp" && echo "unpacked $f"
done
LS=(node --import tsx src/cli/run.ts)
# A per-model knob's value: VAR holds one value for every model or "model=value" entries (the last that applies wins).
knob() {  # VAR default model
  local v=$2 kv
  for kv in ${!1:-}; do
    if [[ $kv == *=* ]]; then [ "${kv%%=*}" = "$3" ] && v=${kv#*=}; else v=$kv; fi
  done
  echo "$v"
}
left() { echo $((END - $(date +%s))); }
n() { echo $((($1 + DIV - 1) / DIV)); }
echo "ship-train: $MODELS on $DEVICE, $(left) s left"

# ---- ffmpeg, when carried (.ffbin/*.xz, as bench/gpu/eval.sh) or installed ----
FFMPEG=""
if [ -s .ffbin/ffmpeg.xz ]; then
  mkdir -p /tmp/ffbin
  [ -x /tmp/ffbin/ffmpeg ] || { xz -dc .ffbin/ffmpeg.xz > /tmp/ffbin/ffmpeg && chmod +x /tmp/ffbin/ffmpeg; }
  [ -s .ffbin/ffprobe.xz ] && { [ -x /tmp/ffbin/ffprobe ] || { xz -dc .ffbin/ffprobe.xz > /tmp/ffbin/ffprobe && chmod +x /tmp/ffbin/ffprobe; }; }
  export LONGSHOT_FFMPEG=/tmp/ffbin/ffmpeg
  [ -x /tmp/ffbin/ffprobe ] && export LONGSHOT_FFPROBE=/tmp/ffbin/ffprobe
  FFMPEG=/tmp/ffbin/ffmpeg
elif command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; then
  FFMPEG=$(command -v ffmpeg)
fi

# ---- held-out sets, beside the training (records only; ffmpeg-patterns as MP4s when ffmpeg is there) ----
gen() { [ -s "$SETS/$1/questions.jsonl" ] || "${LS[@]}" needle generate --json --out "$SETS/$1" "${@:2}" > /dev/null; }
(
  gen 16-64 --no-video --count "$(n 60)" --frames 16,32,64 --seed 9201 --not-shown 0
  gen 256 --no-video --count "$(n 20)" --frames 256 --seed 9202 --not-shown 0
  gen 1024 --no-video --count "$(n 10)" --frames 1024 --seed 9203 --not-shown 0
  gen count --no-video --count "$(n 30)" --frames 32,64,256 --tasks count --seed 9204 --not-shown 0
  gen reworded --no-video --count "$(n 40)" --frames 16,32,64 --phrasing reworded --seed 9205 --not-shown 0
  gen unanswerable --no-video --count "$(n 40)" --frames 16,32,64 --tasks color,word,digit,count --not-shown 1 --seed 9206
  gen patterns --no-video --count "$(n 40)" --frames 16,32,64 --scenes patterns --size 320x240,640x360,176x144 \
    --fps 10,25,30 --seed 9208 --not-shown 0
  if [ -n "$FFMPEG" ]; then
    gen ffmpeg-patterns --count "$(n 40)" --frames 16,32,64 --haystack testsrc2,smptebars,mandelbrot,noise,grey \
      --size 320x240,640x360,176x144 --fps 10,25,30 --seed 9207 --not-shown 0
  fi
) > "$R/heldout.log" 2>&1 &
GEN=$!

# ---- recipes: as shipped, or shrunk for a dry run (SHIP_TINY=1) ----
recipe() {
  local src
  src=$(knob SHIP_RECIPE "recipes/needle-$1-v2.json" "$1")
  if [ "${SHIP_TINY:-0}" != 1 ]; then echo "$src"; return; fi
  mkdir -p /tmp/ship-recipes
  node -e '
    const [src, out] = process.argv.slice(1);
    const path = require("path");
    const r = JSON.parse(require("fs").readFileSync(src, "utf8"));
    if (r.model.from !== "scratch") r.model.from = path.resolve(path.dirname(src), r.model.from);
    if (r.model.initFromQwen2VL) r.model.initFromQwen2VL = path.resolve(path.dirname(src), r.model.initFromQwen2VL);
    Object.assign(r.data.train, { frames: [16], weights: [1] });
    Object.assign(r.data.eval, { frames: [16], count: 4 });
    Object.assign(r.batch, { videos: 2, baseFrames: 16 });
    require("fs").writeFileSync(out, JSON.stringify(r));
  ' "$src" "/tmp/ship-recipes/$1.json"
  echo "/tmp/ship-recipes/$1.json"
}

# ---- training, side by side ----
# --max-seconds counts training steps only: model setup, the in-run evaluation and the last checkpoint come on top.
SECS=$(($(left) - EVAL_SECONDS - 45))
[ "$SECS" -lt 20 ] && SECS=20
echo "training ${SECS} s each"
pids=()
names=()
for m in $MODELS; do
  mkdir -p "$R/$m"
  # Each call is a new run (seed = the calls before it: new videos, not the last call's again).
  from=()
  call=0
  if [ -f "$STATE/$m/model/model.safetensors" ]; then
    call=$(cat "$STATE/$m/calls" 2>/dev/null || echo 1)
    from=(--from "$STATE/$m/model")
    echo "$m: from $STATE/$m/model (call $((call + 1)))"
  fi
  rm -rf "${RUNS:?}/$m"
  threads=$(knob SHIP_RENDER_THREADS "${THREADS[$m]}" "$m")
  lr=()
  rate=$(knob SHIP_LR "" "$m")
  [ -n "$rate" ] && lr=(--lr "$rate")
  # SHIP_DEBUG names models trained with synchronous launches (a device fault names its kernel's source line).
  dbg=()
  [[ " ${SHIP_DEBUG:-} " == *" $m "* ]] && dbg=(CUDA_LAUNCH_BLOCKING=1)
  env "${dbg[@]}" LONGSHOT_DEBUG=1 LONGSHOT_RENDER_THREADS=$threads LONGSHOT_CPU_THREADS=2 timeout -k 10 $((SECS + 90)) \
    "${LS[@]}" train "$(recipe "$m")" --device "$DEVICE" --out "$RUNS/$m" --max-seconds "$SECS" --time-schedule \
    --seed "$call" ${SHIP_STEPS:+--steps "$SHIP_STEPS"} "${from[@]}" "${lr[@]}" --json > "$R/$m/train.json" 2> "$R/$m/train.err" &
  pids+=($!)
  names+=("$m")
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}"
  echo "train ${names[$i]}: rc=$? ($(left) s left)"
done
# The new weights replace the old ones when the run saved a checkpoint: its report's, else (a run stopped by the
# timeout) the last one it wrote (output.checkpointEvery).
for m in $MODELS; do
  ck=$(node -e '
    const fs = require("fs"), [report, runs] = process.argv.slice(1);
    try { const r = JSON.parse(fs.readFileSync(report, "utf8")); if (r.checkpoint) { console.log(r.checkpoint); process.exit(0); } } catch {}
    try { console.log(`${runs}/${JSON.parse(fs.readFileSync(`${runs}/last-checkpoint.json`, "utf8")).checkpoint}`); } catch {}
  ' "$R/$m/train.json" "$RUNS/$m")
  if [ -n "$ck" ] && [ -f "$ck/model.safetensors" ]; then
    rm -rf "$STATE/$m/model.new" && mkdir -p "$STATE/$m/model.new"
    for f in "$ck"/*; do [ -f "$f" ] && cp "$f" "$STATE/$m/model.new/"; done
    rm -rf "$STATE/$m/model" && mv "$STATE/$m/model.new" "$STATE/$m/model"
    echo $(($(cat "$STATE/$m/calls" 2>/dev/null || echo 0) + 1)) > "$STATE/$m/calls"
    cp "$RUNS/$m/log.jsonl" "$R/$m/log.jsonl" 2>/dev/null
    cp "$RUNS/$m/loss.png" "$R/$m/loss.png" 2>/dev/null
    echo "$m: $(node -e 'const r = require(process.argv[1]); console.log(`${r.startStep} → ${r.steps} steps in ${r.seconds} s (${r.stepsPerSecond} steps/s), final loss ${r.finalLoss}`)' "$(realpath "$R/$m/train.json")")"
  else
    echo "$m: training failed; stderr:"; tail -n 8 "$R/$m/train.err"
  fi
done

# ---- evaluation, side by side (Vamba's sets in two processes) ----
wait "$GEN" || { echo "held-out sets: generation failed"; tail -n 5 "$R/heldout.log"; }
have() { for s in "$@"; do [ -s "$SETS/$s/questions.jsonl" ] && echo "$SETS/$s"; done | paste -sd,; }
evaluate() {  # model, output file, sets…
  local m=$1 out=$2 data render=(--render) t
  data=$(have "${@:3}")
  [ -n "$data" ] && [ -f "$STATE/$m/model/model.safetensors" ] || return 0
  # --render draws the records again; the ffmpeg set holds MP4s, so it is decoded.
  [ "$3" = ffmpeg-patterns ] && render=()
  t=$(($(left) - 15))
  [ "$t" -lt 10 ] && t=10
  timeout -k 5 "$t" "${LS[@]}" needle eval --model "$STATE/$m/model" --data "$data" --device "$DEVICE" \
    "${render[@]}" --json > "$out" 2>> "$R/$m/eval.err"
}
epids=()
names=()
for m in $MODELS; do
  if [ "$m" = vamba ]; then
    evaluate vamba "$R/vamba/eval-a.jsonl" 1024 256 count & epids+=($!)
    evaluate vamba "$R/vamba/eval-b.jsonl" 16-64 reworded unanswerable patterns & epids+=($!)
    [ -n "$FFMPEG" ] && { evaluate vamba "$R/vamba/eval-c.jsonl" ffmpeg-patterns & epids+=($!); }
  else
    evaluate "$m" "$R/$m/eval-a.jsonl" 16-64 & epids+=($!)
  fi
done
wait "${epids[@]}"
for m in $MODELS; do cat "$R/$m"/eval-*.jsonl > "$R/$m/eval.jsonl" 2>/dev/null; rm -f "$R/$m"/eval-*.jsonl; done
[ -z "$FFMPEG" ] && echo "ffmpeg-patterns: no ffmpeg here (carry .ffbin/); score it on a CPU: bash tools/needle/heldout_sets.sh /tmp/heldout, then longshot needle eval --model runs/ship/vamba/model --data /tmp/heldout/ffmpeg-patterns"

# ---- the table, and the checkpoints as one tarball per model (each under the 16 MiB a returned file may be) ----
node --import tsx tools/needle/ship.ts results "$R"
for m in $MODELS; do
  [ -f "$STATE/$m/model/model.safetensors" ] && tar -czf "$OUT/ship-ckpt-$m.tgz" "$STATE/$m/model" "$STATE/$m/calls"
done
ls -la "$OUT" | grep ship-ckpt
echo "ship-train done in $(($(date +%s) - START)) s ($(left) s before SHIP_END)"
