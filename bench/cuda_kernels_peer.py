"""PyTorch peers for the hand-written CUDA kernels (native/cuda/{attention,ssd,conv1d}.cu).

Runs on the GPU machine in the same job as `kernels_test bench ours.json` and prints one table:
  attention — torch SDPA (flash/cuDNN backends; per-segment batched for the vision encoder, enable_gqa for GQA)
  ssd       — the chunked `segment_sum` algorithm of transformers' Mamba2Mixer.torch_forward (f32, B/C
              repeated to heads as there). Its broadcast-multiply-sum products are written as einsum
              contractions: taken literally they materialise [b, c, l, h, p, n] tensors (60 GB at 16k tokens)
  conv1d    — torch's depthwise conv1d (groups = channels) + SiLU
Usage: python3 bench/cuda_kernels_peer.py --ours ours.json --out peer.json
"""

import argparse
import json

import torch
import torch.nn.functional as F


def time_ms(fn):
    fn()
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    fn()
    e1.record()
    torch.cuda.synchronize()
    once = e0.elapsed_time(e1)
    reps = max(1, min(20, int(200 / max(once, 0.01))))
    e0.record()
    for _ in range(reps):
        fn()
    e1.record()
    torch.cuda.synchronize()
    return e0.elapsed_time(e1) / reps


def rand(*shape, dtype=torch.bfloat16):
    return (torch.rand(*shape, device="cuda", dtype=torch.float32) - 0.5).to(dtype)


def sdpa_vision(nseg, seg_len=1196, heads=16, d=80):
    q, k, v = (rand(nseg, seg_len, heads, d).transpose(1, 2) for _ in range(3))
    return time_ms(lambda: F.scaled_dot_product_attention(q, k, v))


def sdpa_gqa(sq, skv, hq=28, hkv=4, d=128, causal=False):
    q = rand(1, sq, hq, d).transpose(1, 2)
    k, v = (rand(1, skv, hkv, d).transpose(1, 2) for _ in range(2))
    return time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True))


def segment_sum(x):
    """transformers' segment_sum: exp-able cumulative sums over every (i ≥ j) pair of the last axis."""
    t = x.size(-1)
    x = x[..., None].expand(*x.size(), t)
    lower = torch.tril(torch.ones(t, t, dtype=torch.bool, device=x.device), diagonal=-1)
    x = x.masked_fill(~lower, 0)
    seg = torch.cumsum(x, dim=-2)
    lower = torch.tril(torch.ones(t, t, dtype=torch.bool, device=x.device), diagonal=0)
    return seg.masked_fill(~lower, -torch.inf)


def ssd_torch(x, dt, A, B, C, D, chunk=256):
    """Mamba2Mixer.torch_forward's chunked scan (no cache), f32 like transformers."""
    b, L, h, p = x.shape
    pad = (chunk - L % chunk) % chunk
    x, dt, B, C = x.float(), dt.float(), B.float(), C.float()
    B = B.repeat_interleave(h // B.size(2), dim=2)
    C = C.repeat_interleave(h // C.size(2), dim=2)
    D_res = D[:, None] * x
    xs = x * dt[..., None]
    Ad = A[None, None] * dt

    def chunked(t):
        t = F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad))
        return t.reshape(b, -1, chunk, *t.shape[2:])

    xs, Ad, B, C = chunked(xs), chunked(Ad), chunked(B), chunked(C)
    Ad = Ad.permute(0, 3, 1, 2)  # b h c l
    A_cumsum = torch.cumsum(Ad, dim=-1)
    Lm = torch.exp(segment_sum(Ad))
    G = torch.einsum("bclhn,bcshn->bclsh", C, B)
    M = G * Lm.permute(0, 2, 3, 4, 1)
    Y_diag = torch.einsum("bclsh,bcshp->bclhp", M, xs)
    decay_states = torch.exp(A_cumsum[:, :, :, -1:] - A_cumsum)
    B_decay = B * decay_states.permute(0, 2, 3, 1)[..., None]
    states = torch.einsum("bclhn,bclhp->bchpn", B_decay, xs)
    states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)
    decay_chunk = torch.exp(segment_sum(F.pad(A_cumsum[:, :, :, -1], (1, 0))))
    new_states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)
    states = new_states[:, :-1]
    Y_off = torch.einsum("bclhn,bchpn->bclhp", C, states) * torch.exp(A_cumsum).permute(0, 2, 3, 1)[..., None]
    y = (Y_diag + Y_off).reshape(b, -1, h, p)[:, :L] + D_res
    return y.to(torch.bfloat16), new_states[:, -1]


def ssd_bench(L, h=112, p=64, n=128, g=1):
    x = rand(1, L, h, p)
    dt = torch.full((1, L, h), 0.05, device="cuda")
    A = -torch.ones(h, device="cuda")
    B, C = rand(1, L, g, n), rand(1, L, g, n)
    D = torch.ones(h, device="cuda")
    return time_ms(lambda: ssd_torch(x, dt, A, B, C, D))


def conv_bench(L, ch):
    x = rand(1, L, ch)
    w = rand(ch, 1, 4)
    bias = rand(ch)

    def run():
        y = F.conv1d(x.transpose(1, 2), w, bias, padding=3, groups=ch)[..., :L]
        return F.silu(y).transpose(1, 2).contiguous()

    return time_ms(run)


def peer_for(name):
    parts = name.split()
    if name.startswith("vision"):
        return lambda: sdpa_vision(int(parts[-1].split("x")[1]))
    if name.startswith("causal"):
        n = int(parts[-1])
        return lambda: sdpa_gqa(n, n, causal=True)
    if name.startswith("decode"):
        return lambda: sdpa_gqa(1, int(parts[-1][2:]))
    if name.startswith("cross"):
        return lambda: sdpa_gqa(256, int(parts[-1][2:]))
    if name.startswith("ssd"):
        return lambda: ssd_bench(int(parts[-1][1:]))
    if name.startswith("conv1d"):
        return lambda: conv_bench(int(parts[-1][1:]), 7168 + 256)
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--skip", default="", help="comma-separated name prefixes to skip on the torch side")
    args = ap.parse_args()
    ours = json.load(open(args.ours))
    skip = [s for s in args.skip.split(",") if s]
    rows = []
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
    hdr = f"{'case':<44} {'ours ms':>10} {'TFLOP/s':>8} {'GB/s':>7} {'torch ms':>10} {'TFLOP/s':>8} {'ours vs torch':>13}"
    print(hdr)
    for r in ours:
        fn = peer_for(r["name"])
        torch_ms, note = None, ""
        if fn and not any(r["name"].startswith(s) for s in skip):
            try:
                torch_ms = fn()
            except torch.OutOfMemoryError:
                note = "torch OOM"
            except Exception as e:  # report, keep going
                note = f"torch error: {type(e).__name__}: {str(e)[:80]}"
            torch.cuda.empty_cache()
        row = dict(r, torch_ms=torch_ms, note=note)
        row["ours_tflops"] = r["flops"] / r["ms"] / 1e9
        row["ours_gbs"] = r["bytes"] / r["ms"] / 1e6
        row["torch_tflops"] = r["flops"] / torch_ms / 1e9 if torch_ms else None
        row["speed_vs_torch"] = torch_ms / r["ms"] if torch_ms else None
        rows.append(row)
        tms = f"{torch_ms:10.3f}" if torch_ms else f"{'-':>10}"
        ttf = f"{row['torch_tflops']:8.1f}" if torch_ms else f"{'-':>8}"
        ratio = f"{100 * row['speed_vs_torch']:12.0f}%" if torch_ms else f"{note[:13]:>13}"
        print(f"{r['name']:<44} {r['ms']:10.3f} {row['ours_tflops']:8.1f} {row['ours_gbs']:7.0f} {tms} {ttf} {ratio}", flush=True)
    json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
