"""PyTorch peer of bench/cuda_ops.ts: the same ops at the same shapes, timed with CUDA events.
Writes {op name: milliseconds} to --out (read by cuda_ops.ts --peer) and prints a table.
    python3 bench/cuda_ops_peer.py --out $OUT/cuda_ops_peer.json [--quick]
"""
import argparse
import json

import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--out", required=True)
ap.add_argument("--quick", action="store_true")
args = ap.parse_args()

torch.backends.cuda.matmul.allow_tf32 = False  # f32 parity mode, as the addon (CUBLAS_COMPUTE_32F)
dev = "cuda"
bf16 = torch.bfloat16
res = {}


def timed(name, fn, min_time=0.05 if args.quick else 0.2):
    fn()
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    n, el = 0, 0.0
    start.record()
    while n < 3 or el < min_time * 1000:
        fn()
        n += 1
        end.record()
        end.synchronize()
        el = start.elapsed_time(end)
    res[name] = el / n
    print(f"{name:60s} {res[name]:9.3f} ms", flush=True)


def gemm(name, m, k, n, dtype=bf16):
    x = torch.randn(m, k, device=dev, dtype=dtype)
    w = torch.randn(n, k, device=dev, dtype=dtype)
    timed(name, lambda: F.linear(x, w))
    del x, w


gemm("gemm bf16 8192x8192x8192 (peak)", 8192, 8192, 8192)
SHAPES = [
    ("q/o proj 3584→3584", 3584, 3584),
    ("k/v proj 3584→512", 3584, 512),
    ("mlp up/gate 3584→18944", 3584, 18944),
    ("mlp down 18944→3584", 18944, 3584),
    ("mamba in_proj 3584→14704", 3584, 14704),
    ("mamba out_proj 7168→3584", 7168, 3584),
    ("vision qkv 1280→3840", 1280, 3840),
    ("vision merger 5120→5120", 5120, 5120),
    ("lm_head 3584→152064", 3584, 152064),
]
for m in [4096] if args.quick else [4096, 16384]:
    for label, k, n in SHAPES:
        gemm(f"gemm bf16 M={m} {label}", m, k, n)
gemm("gemm f32 M=4096 3584→3584 (no TF32)", 4096, 3584, 3584, torch.float32)

T = 4096 if args.quick else 16384
x = torch.randn(T, 3584, device=dev, dtype=bf16)
w = torch.randn(3584, device=dev, dtype=bf16)
g = torch.randn(T, 3584, device=dev, dtype=bf16)
timed(f"rmsNorm bf16 {T}x3584", lambda: F.rms_norm(x, (3584,), w, 1e-6))


def gated(x, g, w):  # mamba_ssm's gated RMSNorm in eager PyTorch (group 448), f32 statistics
    z = (x.float() * F.silu(g.float())).view(T, 8, 448)
    z = z * torch.rsqrt(z.pow(2).mean(-1, keepdim=True) + 1e-6)
    return (z.view(T, 3584) * w.float()).to(bf16)


timed(f"gated rmsNorm bf16 {T}x3584 (group 448)", lambda: gated(x, g, w))
timed(f"softmax bf16 {T}x3584", lambda: torch.softmax(x, -1))
del x, g, w
x = torch.randn(T, 1280, device=dev, dtype=bf16)
w = torch.randn(1280, device=dev, dtype=bf16)
timed(f"layerNorm bf16 {T}x1280", lambda: F.layer_norm(x, (1280,), w, w, 1e-6))
del x, w
a = torch.randn(T, 18944, device=dev, dtype=bf16)
b = torch.randn(T, 18944, device=dev, dtype=bf16)
bias = torch.randn(18944, device=dev, dtype=bf16)
timed(f"silu bf16 {T}x18944", lambda: F.silu(a))
timed(f"mul bf16 {T}x18944", lambda: a * b)
timed(f"add bias (broadcast) bf16 {T}x18944", lambda: a + bias)
timed(f"cast bf16→f32 {T}x18944", lambda: a.float())
del a, b, bias
x = torch.randn(1, T, 28, 128, device=dev, dtype=bf16)
cos = torch.randn(T, 128, device=dev)
sin = torch.randn(T, 128, device=dev)


def rotary(x):  # HF apply_rotary_pos_emb (rotate_half), f32 tables as the runtime's
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    x1, x2 = x[..., :64], x[..., 64:]
    return (x.float() * c + torch.cat((-x2, x1), -1).float() * s).to(bf16)


timed(f"rotary bf16 {T}x28x128", lambda: rotary(x))
timed(f"permute bf16 [{T},28,128]→[28,{T},128]", lambda: x.permute(0, 2, 1, 3).contiguous())
del x
table = torch.randn(152064, 3584, device=dev, dtype=bf16)
ids = (torch.arange(T, device=dev) * 7919) % 152064
timed(f"embedding bf16 {T} rows of 3584", lambda: F.embedding(ids, table))
with open(args.out, "w") as f:
    json.dump(res, f, indent=1)
print(f"wrote {args.out} on {torch.cuda.get_device_name()}")
