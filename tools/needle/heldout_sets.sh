#!/usr/bin/env bash
# Writes the needle held-out sets that `longshot needle eval` scores in TypeScript (MP4s decoded through the
# media pipeline), with seeds no training data uses (training: 1000–1013, 2000–2013, 2100–2103; the PyTorch
# held-out sets of bench/gpu/needle-train.sh: 9101–9107; bench/tiny_models.ts: 9300 + log2(frames), 9304–9310). Then, for a model:
#
#   bash tools/needle/heldout_sets.sh /tmp/heldout [scale]     # scale divides the sizes (a quick look)
#   longshot needle eval --model models/needle-vamba-tiny --data $(ls -d /tmp/heldout/* | paste -sd,)
#
# Each set changes one thing from the generator's plain videos (112×112, 2 fps, its sentences and scenes);
# all allow "not shown" and 0 among the options (--not-shown).
set -euo pipefail
OUT=${1:?output directory}
DIV=${2:-1}
n() { echo $((($1 + DIV - 1) / DIV)); }
gen() { node --import tsx src/cli/run.ts needle generate --json --out "$OUT/$1" "${@:2}" >/dev/null; }
gen 16-64 --count "$(n 60)" --frames 16,32,64 --seed 9201 --not-shown 0 &
gen 256 --count "$(n 20)" --frames 256 --seed 9202 --not-shown 0 &
gen 1024 --count "$(n 10)" --frames 1024 --seed 9203 --not-shown 0 &
gen count --count "$(n 30)" --frames 32,64,256 --tasks count --seed 9204 --not-shown 0 &
wait
gen reworded --count "$(n 40)" --frames 16,32,64 --phrasing reworded --seed 9205 --not-shown 0 &
gen unanswerable --count "$(n 40)" --frames 16,32,64 --tasks color,word,digit,count --not-shown 1 --seed 9206 &
# Real ffmpeg test sources (lavfi) at camera-like sizes and rates, resized to the model's frames on decoding.
gen ffmpeg-patterns --count "$(n 40)" --frames 16,32,64 --haystack testsrc2,smptebars,mandelbrot,noise,grey \
  --size 320x240,640x360,176x144 --fps 10,25,30 --seed 9207 --not-shown 0 &
wait
ls -d "$OUT"/*
