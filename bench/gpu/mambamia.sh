#!/usr/bin/env bash
# MambaMia on the GPU machine (about 1 minute; at most 3): the parity fixtures made again with the derivative's
# MambaMia2Model on CUDA (its own forward, fast-path assert included; mamba_ssm's fused kernel stood in for by the
# float64 torch scan of tools/reference/mambamia_fixtures.py), compared with the committed CPU fixtures, and our
# compressor's parity test run against the CUDA-made ones.
# Needs the git-ignored .ref/unimambamia-av/ (tools/reference/get_mambamia_ref.sh) carried along.
#
#   OUT=/tmp/out bash bench/gpu/mambamia.sh        # results under $OUT/mambamia/
set -u
OUT=${OUT:-.bench-out}
R="$OUT/mambamia"
mkdir -p "$R"
T0=$SECONDS
step() { echo "[$((SECONDS - T0)) s] $*" | tee -a "$R/log.txt"; }

step "fixtures from the derivative's MambaMia2Model on CUDA"
PYTHONUNBUFFERED=1 timeout 60 python3 tools/reference/mambamia_fixtures.py --device cuda --out "$R/fixtures" \
  >"$R/fixtures.txt" 2>&1
echo "rc=$?" | tee -a "$R/log.txt"
tail -8 "$R/fixtures.txt"

step "CUDA-made outputs against the committed CPU ones (max |Δ| / max |ref|)"
timeout 30 python3 - "$R/fixtures" test/fixtures/mambamia <<'EOF' 2>&1 | tee -a "$R/log.txt"
import json, struct, sys, os
import numpy as np
def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    return {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], np.float32).reshape(v["shape"])
            for k, v in header.items() if k != "__metadata__"}
gpu, cpu = sys.argv[1], sys.argv[2]
for case in sorted(json.load(open(os.path.join(cpu, "manifest.json")))["cases"]):
    a = read(os.path.join(gpu, case, "reference.safetensors"))
    b = read(os.path.join(cpu, case, "reference.safetensors"))
    e = np.abs(a["output"] - b["output"]).max() / np.abs(b["output"]).max()
    print(f"{case}: features equal {np.array_equal(a['features'], b['features'])}, output rel err {e:.2e}")
EOF

step "our compressor against the CUDA-made fixtures (CPU backend)"
cp -r "$R/fixtures/." test/fixtures/mambamia/
timeout 90 npm test -- test/models/mambamia-parity.test.ts >"$R/parity_test.txt" 2>&1
echo "rc=$?" | tee -a "$R/log.txt"
grep -E '^ℹ (tests|pass|fail)|✖' "$R/parity_test.txt" | tee -a "$R/log.txt"
git checkout -- test/fixtures/mambamia 2>/dev/null
step done
