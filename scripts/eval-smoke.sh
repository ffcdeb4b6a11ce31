#!/usr/bin/env bash
# longshot eval end to end with the shipped tiny models: needle and VNBench-format data, in process and
# through `longshot serve` as an endpoint; the predictions must be identical. Usage: eval-smoke.sh cpu|cuda
set -euo pipefail
DEV=${1:-cuda}; L="node --import tsx src/cli/run.ts"; D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
$L needle generate --out "$D/needle" --count ${COUNT:-6} --frames 16,32 --seed 1 --json
mkdir "$D/hay"
ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc=size=320x240:rate=10 -t 16 -pix_fmt yuv420p "$D/hay/a.mp4"
ffmpeg -hide_banner -loglevel error -f lavfi -i mandelbrot=size=320x240:rate=10 -t 16 -pix_fmt yuv420p "$D/hay/b.mp4"
$L needle vnbench --haystack "$D/hay" --out "$D/vnbench" --needle-sec 1 --json
for M in models/needle-vamba-tiny models/needle-qwen2vl-tiny; do
  m=$(basename $M)
  for B in needle vnbench; do
    $L eval $B --data "$D/$B" --model $M --device $DEV --frames 32 --out "$D/out/$m-$B-local" --json > /dev/null
  done
  $L serve --model $M --device $DEV --allowed-root "$D" --port 8011 & PID=$!
  until curl -sf http://127.0.0.1:8011/health > /dev/null; do sleep 1; done
  for B in needle vnbench; do
    $L eval $B --data "$D/$B" --endpoint http://127.0.0.1:8011 --frames 32 --out "$D/out/$m-$B-http" > /dev/null
    cmp <(sort "$D/out/$m-$B-local/predictions.jsonl") <(sort "$D/out/$m-$B-http/predictions.jsonl")
    echo "$m $B: $(wc -l < "$D/out/$m-$B-http/predictions.jsonl") identical predictions"; cat "$D/out/$m-$B-local/results.md"
  done
  kill $PID; wait $PID 2>/dev/null || true
done
