#!/usr/bin/env bash
# MambaMia on the GPU machine (about 3.5 minutes, bounded at 6; plus ~70 s to build the CUDA addon when it is not built):
#   1. the parity fixtures made again with the derivative's MambaMia2Model on CUDA (its own forward, fast-path assert
#      included; mamba_ssm's fused kernel stood in for by the float64 torch scan of tools/reference/mambamia_fixtures.py),
#      compared with the committed CPU fixtures, and our compressor's parity test run against the CUDA-made ones;
#   2. test-cuda/mambamia.test.ts (the same fixtures and the tiny TSTAR's on CUDA, f32 and bf16);
#   3. bench/mambamia.ts: the compressor's frames/s and tokens/s at 1k and 10k frames of 100 and 729 patches, and
#      TSTAR's end-to-end prefill against Qwen2-VL-7B's on the same videos (mambamia.json, mambamia.md).
# Needs the git-ignored .ref/unimambamia-av/ (tools/reference/get_mambamia_ref.sh) and .device/ carried along.
#
#   OUT=/tmp/out bash bench/gpu/mambamia.sh        # results under $OUT/mambamia/
#   OUT=/tmp/out bash bench/gpu/mambamia.sh --parity-only
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
[ "${1:-}" = --parity-only ] && { step done; exit 0; }

[ -f native/cuda/build/longshot_cuda.node ] || npm run build:native >"$R/build_native.txt" 2>&1 || tail -5 "$R/build_native.txt"
step "test-cuda/mambamia.test.ts (the fixtures on CUDA, f32 and bf16; reductions against the CPU)"
timeout 120 npm run test:cuda -- test-cuda/mambamia.test.ts >"$R/test_cuda.txt" 2>&1
echo "rc=$?" | tee -a "$R/log.txt"
grep -E '^ℹ (tests|pass|fail)|✖|NOT RUN' "$R/test_cuda.txt" | tee -a "$R/log.txt"

step "bench/mambamia.ts (compressor throughput; TSTAR vs Qwen2-VL end to end)"
timeout 200 node --import tsx bench/mambamia.ts --budget 110 --out "$R" >"$R/bench.txt" 2>&1
echo "rc=$?" | tee -a "$R/log.txt"
tail -30 "$R/bench.txt"
step done
