#!/usr/bin/env bash
# TimeViper and TSTAR-MambaMia on the GPU (issues 18 and 19), at most FAMILIES_SECONDS (default 400 s, under 7
# minutes) in all, the CUDA addon's build included when it is missing (~90 s). Synthetic frames throughout: no
# ffmpeg is needed. The most important rows come first, and every step is cut to the time left, so a timeout
# still leaves what ran (each row is also logged as it finishes):
#
#   0. bench/tome.ts: ToMe alone, 256 frames of 729 × 1152 bf16 (ms per frame; a few seconds);
#   1. TimeViper-9B's architecture (timm SigLIP so400m, ToMe, Nemotron-Nano-9B-v2), random bf16 weights, WITH
#      TransV (uni_7_0.5-attn_39_0.1, CrossAttention): LLM prefill time, vision time, peak memory at 1k / 5k /
#      10k frames (bench/long_video.ts --series timeviper-transv; the target is 10k frames on one 80 GB H100);
#   2. the same WITHOUT TransV (which sizes fit);
#   3. bench/mambamia.ts: the compressor's frames/s and tokens/s at 1k and 10k frames of 100 and 729 patches, then
#      TSTAR's end-to-end prefill against Qwen2-VL-7B's on the same videos, with tokens per video.
#
#   OUT=/tmp/out bash bench/gpu/families.sh                   # results under $OUT/families/
#   FAMILIES_TINY=1 OUT=/tmp/out bash bench/gpu/families.sh    # a dry run of the same steps, tiny configs, on the CPU
# Writes: tome.txt, timeviper.json (+ .png; both TimeViper series), timeviper_rows.txt (rows as they finished),
# mambamia.json / mambamia.md, log.txt, and summary.md (the tables).
set -u
OUT=${OUT:-.bench-out}
R="$OUT/families"
mkdir -p "$R"
T0=$SECONDS
TOTAL=${FAMILIES_SECONDS:-400}
step() { echo "[$((SECONDS - T0)) s] $*" | tee -a "$R/log.txt"; }
# The seconds a step may take: its cap, or what is left of the total (less 10 s to write the summary).
left() { local l=$((TOTAL - 10 - (SECONDS - T0))); [ "$l" -gt "$1" ] && l=$1; echo $((l > 0 ? l : 0)); }
command -v node >/dev/null || source .device/setup.sh
TINY=${FAMILIES_TINY:+--tiny}
FRAMES=1024,5120,10240
[ -n "$TINY" ] && FRAMES=4,8,16

if [ -z "$TINY" ] && [ ! -f native/cuda/build/longshot_cuda.node ]; then
  step "building the CUDA addon"
  timeout "$(left 150)" npm run build:native >"$R/build_native.txt" 2>&1 || tail -5 "$R/build_native.txt"
fi

tv() {  # $1: series name, $2: cap in seconds
  local t; t=$(left "$2")
  [ "$t" -lt 20 ] && { step "$1: skipped (time is up)"; return; }
  step "$1 (up to $t s)"
  timeout "$t" node --import tsx bench/long_video.ts $TINY --series "$1" --timeviper-frames "$FRAMES" \
    --out "$R/$1" 2> >(grep --line-buffered -E "^$1 " | tee -a "$R/timeviper_rows.txt" >&2) |
    tail -8 | tee -a "$R/log.txt"
  echo "rc=${PIPESTATUS[0]}" | tee -a "$R/log.txt"
}
# ToMe alone (bench/tome.ts: 256 frames of 729 × 1152 bf16, the device matching), a few seconds.
t=$(left 30)
if [ "$t" -ge 10 ]; then
  step "bench/tome.ts (up to $t s)"
  D=cuda F=256; [ -n "$TINY" ] && D=cpu F=8
  timeout "$t" node --import tsx bench/tome.ts --device $D --frames $F --dtype bf16 2>&1 | tail -3 | tee "$R/tome.txt" >>"$R/log.txt"
fi

tv timeviper-transv 130
tv timeviper 110

t=$(left 170)
if [ "$t" -ge 30 ]; then
  step "bench/mambamia.ts (up to $t s; its own budget $((t - 40)) s)"
  timeout "$t" node --import tsx bench/mambamia.ts $TINY --budget $((t - 40)) --out "$R" >"$R/mambamia.txt" 2>&1
  echo "rc=$?" | tee -a "$R/log.txt"
  tail -30 "$R/mambamia.txt"
else
  step "bench/mambamia.ts: skipped (time is up)"
fi

{
  echo "# TimeViper and TSTAR on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
  for s in timeviper-transv timeviper; do
    echo; echo "## $s"
    if [ -f "$R/$s.json" ]; then
      node --import tsx bench/long_video.ts $TINY --replot "$R/$s.json" 2>/dev/null | sed -n '/^longshot/,$p'
    else
      echo "(no table: the rows that finished are in timeviper_rows.txt)"; grep "^$s " "$R/timeviper_rows.txt"
    fi
  done
  echo; [ -f "$R/mambamia.md" ] && cat "$R/mambamia.md" || echo "(no mambamia.md)"
  echo; [ -f "$R/tome.txt" ] && cat "$R/tome.txt"
} >"$R/summary.md" 2>&1
step "done"
cat "$R/summary.md"
