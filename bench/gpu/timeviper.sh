#!/usr/bin/env bash
# TimeViper reference fixtures on the GPU machine (about 1 minute; bounded at 5): runs the official TimeViper
# modules (.ref/TimeViper/, carried by the coordinator; fill it with tools/reference/get_timeviper_ref.sh) with
# timm and transformers on tiny random configs, on the CPU in float32. Writes $OUT/timeviper/{timeviper.tar,
# manifest.json, log.txt}; unpack the tar with `tar -xf timeviper.tar -C test/fixtures/timeviper`.
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT/timeviper"
[ -f .ref/TimeViper/timeviper/model/projector/tome.py ] || {
  echo "no .ref/TimeViper: run tools/reference/get_timeviper_ref.sh where the mirror is, and carry .ref" | tee "$OUT/timeviper/log.txt"
  exit 1
}
PYTHONUNBUFFERED=1 timeout 300 python3 tools/reference/timeviper_fixtures.py --out "$OUT/timeviper" 2>&1 |
  tee "$OUT/timeviper/log.txt" | tail -40
