"""Trains the tiny needle-in-a-haystack models: a Vamba (Qwen2-VL vision tower, decoder layers with self- and
cross-attention, Mamba-2 video blocks) and, for comparison, a Qwen2-VL of the same size (video tokens inside the
sequence, M-RoPE). Both are written in the Hugging Face layout that longshot's loaders read (src/models/vamba,
src/models/qwen2vl): config.json, model.safetensors, tokenizer files, generation and preprocessor configs.

Data: shards from tools/needle/export_training_data.ts (uint8 frames, the tokenized official Vamba prompt and the
answer; a v2 shard asks each video several times, a variant drawn per step). The frames are memory-mapped from
the shards (put them in /dev/shm): several trainers on one GPU share one copy in host memory and each copies
only its batches to the device, prepared by a background thread. Preprocessing is Qwen2-VL's (rescale, normalise with the CLIP mean/std, patchify in the processor's row
order); at 112×112 smart_resize keeps the size, so no resampling happens on either side.

    python3 tools/reference/train_needle.py --data /tmp/train --eval /tmp/eval --out /tmp/models \\
        --tokenizer-dir /tmp/tok --model vamba --steps 3000 --seed 0

`--model timeviper` trains tools/reference/needle_timeviper.py's TimeViper on the same data (its nano_base prompt
rebuilt from the exported one).

The model code is compact and trainable (autograd, batched); `--check` compares its pieces with transformers'
modules (vision tower, Qwen2-VL text model) and a sequential Mamba-2 recurrence before training.
"""

import argparse
import json
import math
import os
import queue
import random
import shutil
import struct
import threading
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
PATCH, TEMPORAL, MERGE = 14, 2, 2

# Token ids of the needle tokenizer (src/needle/tokenizer.ts: the special tokens come first).
ENDOFTEXT, IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD = range(7)


# ---- preprocessing ---------------------------------------------------------------------------------------


def patchify(frames):
    """uint8 frames [B, T, H, W, 3] → Qwen2-VL pixel rows [B, T/2, (H/14)·(W/14), 3·2·14·14] (processor order:
    merge blocks row-major, 2×2 patches inside each, values C, T, P, P)."""
    B, T, H, W, _ = frames.shape
    mean = torch.tensor(MEAN, device=frames.device).view(1, 1, 3, 1, 1)
    std = torch.tensor(STD, device=frames.device).view(1, 1, 3, 1, 1)
    x = (frames.permute(0, 1, 4, 2, 3).float() * (1 / 255) - mean) / std
    gh, gw = H // PATCH, W // PATCH
    x = x.reshape(B, T // TEMPORAL, TEMPORAL, 3, gh // MERGE, MERGE, PATCH, gw // MERGE, MERGE, PATCH)
    x = x.permute(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)
    return x.reshape(B, T // TEMPORAL, gh * gw, 3 * TEMPORAL * PATCH * PATCH)


# ---- shared pieces ---------------------------------------------------------------------------------------


def attention(q, k, v, is_causal=False):
    """softmax(q kᵀ / √d) v: torch's fused kernel where it exists (torch ≥ 2.0), else the same in plain ops
    (the CPU test machine's torch 1.13)."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if is_causal:
        L, N = s.shape[-2:]
        s = s.masked_fill(~torch.ones(L, N, dtype=torch.bool, device=s.device).tril(), float("-inf"))
    return s.softmax(-1) @ v



def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def mrope_tables(pos3, head_dim, theta, section):
    """cos/sin [..., L, head_dim] for M-RoPE positions pos3 [3, ..., L]: frequency band i reads row i % 3."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=pos3.device, dtype=torch.float32) / head_dim))
    f = pos3.float()[..., None] * inv
    emb = torch.cat((f, f), -1)
    parts = emb.split(list(section) * 2, dim=-1)
    picked = torch.cat([p[i % 3] for i, p in enumerate(parts)], -1)
    return picked.cos(), picked.sin()


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        return (self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))).to(dtype)


class Attention(nn.Module):
    """Qwen2 attention (biased q/k/v, GQA). Also Vamba's cross-attention: the same four projections and names."""

    def __init__(self, c):
        super().__init__()
        H, self.nh, self.nkv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
        self.hd = H // self.nh
        self.q_proj = nn.Linear(H, self.nh * self.hd)
        self.k_proj = nn.Linear(H, self.nkv * self.hd)
        self.v_proj = nn.Linear(H, self.nkv * self.hd)
        self.o_proj = nn.Linear(self.nh * self.hd, H, bias=False)

    def forward(self, x, kv_src=None, rope=None, causal=True, key_mask=None):
        src = x if kv_src is None else kv_src
        B, L, _ = x.shape
        N = src.shape[1]
        q = self.q_proj(x).view(B, L, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(src).view(B, N, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(src).view(B, N, self.nkv, self.hd).transpose(1, 2)
        if rope is not None:
            cos, sin = rope  # [B or 1, L, hd]
            cos, sin = cos[:, None].to(q.dtype), sin[:, None].to(q.dtype)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
        rep = self.nh // self.nkv
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        o = attention(q, k, v, is_causal=causal)
        return self.o_proj(o.transpose(1, 2).reshape(B, L, -1))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        H, I = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(H, I, bias=False)
        self.up_proj = nn.Linear(H, I, bias=False)
        self.down_proj = nn.Linear(I, H, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


# ---- Qwen2-VL vision tower (official names), batched over equal-size temporal groups ----------------------


class VisionBlock(nn.Module):
    def __init__(self, E, nh, ratio):
        super().__init__()
        self.nh = nh
        self.norm1 = nn.LayerNorm(E, eps=1e-6)
        self.norm2 = nn.LayerNorm(E, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(E, 3 * E)
        self.attn.proj = nn.Linear(E, E)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(E, int(E * ratio))
        self.mlp.fc2 = nn.Linear(int(E * ratio), E)

    def forward(self, x, cos, sin):
        G, n, E = x.shape  # G temporal groups of n patches: each group attends only within itself
        hd = E // self.nh
        qkv = self.attn.qkv(self.norm1(x)).view(G, n, 3, self.nh, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        o = attention(q, k, v)
        x = x + self.attn.proj(o.transpose(1, 2).reshape(G, n, E))
        y = self.mlp.fc1(self.norm2(x))
        return x + self.mlp.fc2(y * torch.sigmoid(1.702 * y))


class VisionTower(nn.Module):
    def __init__(self, v, hidden):
        super().__init__()
        E = self.E = v["embed_dim"]
        self.nh = v["num_heads"]
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv3d(3, E, (TEMPORAL, PATCH, PATCH), (TEMPORAL, PATCH, PATCH), bias=False)
        self.blocks = nn.ModuleList(VisionBlock(E, self.nh, v["mlp_ratio"]) for _ in range(v["depth"]))
        self.merger = nn.Module()
        self.merger.ln_q = nn.LayerNorm(E, eps=1e-6)
        self.merger.mlp = nn.Sequential(nn.Linear(4 * E, 4 * E), nn.GELU(), nn.Linear(4 * E, hidden))

    def rope(self, gh, gw, device):
        """cos/sin [n, hd] of the 2-D rotary embedding at each patch's (row, col), in processor order."""
        hd = self.E // self.nh
        hpos = torch.arange(gh, device=device)[:, None].expand(gh, gw)
        wpos = torch.arange(gw, device=device)[None, :].expand(gh, gw)
        order = lambda p: p.reshape(gh // 2, 2, gw // 2, 2).permute(0, 2, 1, 3).flatten()  # noqa: E731
        pos = torch.stack([order(hpos), order(wpos)], -1).float()
        inv = 1.0 / (10000 ** (torch.arange(0, hd // 2, 2, device=device, dtype=torch.float32) / (hd // 2)))
        f = (pos[:, :, None] * inv).reshape(pos.shape[0], -1)
        emb = torch.cat([f, f], -1)
        return emb.cos(), emb.sin()

    def forward(self, pix, gh, gw):
        """pix [B, G, n, 1176] → merged tokens [B, G·n/4, hidden]."""
        B, G, n, D = pix.shape
        x = F.linear(pix.reshape(B * G, n, D), self.patch_embed.proj.weight.reshape(self.E, -1))
        cos, sin = self.rope(gh, gw, pix.device)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        for b in self.blocks:
            x = b(x, cos, sin)
        x = self.merger.ln_q(x).reshape(B * G, n // 4, 4 * self.E)
        return self.merger.mlp(x).reshape(B, G * n // 4, -1)


# ---- Mamba-2 (mamba_ssm names and semantics: n_groups, gate before a grouped norm, eps 1e-5) ---------------


def segsum(x):
    """[..., T] → [..., T, T] with out[i, j] = Σ_{j<k≤i} x[k] (−inf above the diagonal)."""
    T = x.shape[-1]
    x = x[..., None].expand(*x.shape, T)
    x = x.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device), -1), 0)
    s = torch.cumsum(x, dim=-2)
    return s.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device), 0), float("-inf"))


def ssd(X, A, Bm, Cm, chunk):
    """Chunked state-space duality (Mamba-2 paper, minimal form). X [b, l, h, p] (already × dt), A [b, l, h]
    (already × dt), B/C [b, l, h, n]; l a multiple of chunk. Returns Y [b, l, h, p]."""
    b, l, h, p = X.shape
    c = l // chunk
    X, Bm, Cm = (t.reshape(b, c, chunk, *t.shape[2:]) for t in (X, Bm, Cm))
    A = A.reshape(b, c, chunk, h).permute(0, 3, 1, 2)  # b h c l
    Acs = torch.cumsum(A, -1)
    L = torch.exp(segsum(A))
    Y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", Cm, Bm, L, X)
    decay_states = torch.exp(Acs[..., -1:] - Acs)
    states = torch.einsum("bclhn,bhcl,bclhp->bchpn", Bm, decay_states, X)
    states = torch.cat([torch.zeros_like(states[:, :1]), states], 1)
    decay_chunk = torch.exp(segsum(F.pad(Acs[..., -1], (1, 0))))
    states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)[:, :-1]
    Y_off = torch.einsum("bclhn,bchpn,bhcl->bclhp", Cm, states, torch.exp(Acs))
    return (Y_diag + Y_off).reshape(b, l, h, p)


class Mamba2Mixer(nn.Module):
    def __init__(self, d_model, m, chunk=64):
        super().__init__()
        self.di = m["expand"] * d_model
        self.N, self.ng, self.P = m["d_state"], m["ngroups"], m["headdim"]
        self.nh = self.di // self.P
        self.chunk = chunk
        conv_dim = self.di + 2 * self.ng * self.N
        self.in_proj = nn.Linear(d_model, 2 * self.di + 2 * self.ng * self.N + self.nh, bias=False)
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, m["d_conv"], groups=conv_dim, padding=m["d_conv"] - 1)
        dt = torch.exp(torch.rand(self.nh) * (math.log(0.1) - math.log(0.001)) + math.log(0.001)).clamp(min=1e-4)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.empty(self.nh).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(self.nh))
        self.norm = nn.Module()
        self.norm.weight = nn.Parameter(torch.ones(self.di))
        self.out_proj = nn.Linear(self.di, d_model, bias=False)

    def gates(self, u):
        """Everything before the scan: (x, B, C per head, dt, z)."""
        Bsz, L, _ = u.shape
        z, xBC, dt = self.in_proj(u).split([self.di, self.di + 2 * self.ng * self.N, self.nh], -1)
        xBC = F.silu(self.conv1d(xBC.transpose(1, 2))[..., :L].transpose(1, 2))
        x, Bm, Cm = xBC.split([self.di, self.ng * self.N, self.ng * self.N], -1)
        rep = self.nh // self.ng
        Bm = Bm.reshape(Bsz, L, self.ng, self.N).repeat_interleave(rep, 2)
        Cm = Cm.reshape(Bsz, L, self.ng, self.N).repeat_interleave(rep, 2)
        dt = F.softplus(dt.float() + self.dt_bias)
        return x.reshape(Bsz, L, self.nh, self.P), Bm, Cm, dt, z

    def finish(self, y, x, z):
        Bsz, L = y.shape[:2]
        y = (y + self.D[:, None] * x.float()).reshape(Bsz, L, self.di)
        g = (y * F.silu(z.float())).reshape(Bsz, L, self.ng, -1)
        g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + 1e-5)
        return self.out_proj((g.reshape(Bsz, L, self.di) * self.norm.weight).to(z.dtype))

    def forward(self, u):
        x, Bm, Cm, dt, z = self.gates(u)
        L = u.shape[1]
        pad = (-L) % self.chunk
        A = -torch.exp(self.A_log.float())
        with torch.autocast(u.device.type, enabled=False):
            X, Ad = x.float() * dt[..., None], A * dt
            Bf, Cf = Bm.float(), Cm.float()
            if pad:  # zero input and zero decay at the end change nothing before it
                X, Ad, Bf, Cf = (F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad)) for t in (X, Ad, Bf, Cf))
            y = ssd(X, Ad, Bf, Cf, self.chunk)[:, :L]
        return self.finish(y, x, z)

    def forward_recurrent(self, u):
        """The same mixer as a step-by-step recurrence (for --check)."""
        x, Bm, Cm, dt, z = self.gates(u)
        A = -torch.exp(self.A_log.float())
        s = torch.zeros(u.shape[0], self.nh, self.P, self.N, device=u.device)
        ys = []
        for t in range(u.shape[1]):
            s = torch.exp(dt[:, t] * A)[..., None, None] * s + (dt[:, t, :, None] * x[:, t].float())[..., None] * Bm[:, t, :, None].float()
            ys.append((s * Cm[:, t, :, None].float()).sum(-1))
        return self.finish(torch.stack(ys, 1), x, z)


# ---- Vamba ------------------------------------------------------------------------------------------------


class VambaLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        H, eps = c["hidden_size"], c["rms_norm_eps"]
        self.input_layernorm = RMSNorm(H, eps)
        self.self_attn = Attention(c)
        self.cross_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(H, eps)
        self.mlp = MLP(c)
        self.vision_mixer = nn.Module()
        self.vision_mixer.norm = RMSNorm(H, 1e-5)
        self.vision_mixer.mixer = Mamba2Mixer(H, c["vision_mamba_mixer_config"])
        self.alpha = nn.Parameter(torch.tensor([0.5]))

    def forward(self, Hs, V, rope, last):
        x = self.input_layernorm(Hs)
        sa = self.self_attn(x, rope=rope, causal=True)
        ca = self.cross_attn(x, kv_src=V, causal=False)
        a = self.alpha.clamp(0, 1)
        Hs = Hs + a * sa + (1 - a) * ca
        if not last:  # the last layer's video update feeds nothing
            V = V + self.vision_mixer.mixer(self.vision_mixer.norm(V))
        return Hs + self.mlp(self.post_attention_layernorm(Hs)), V


class Decoder(nn.Module):
    def __init__(self, c, layer):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(layer(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])


class Vamba(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.visual = VisionTower(c["vision_config"], c["hidden_size"])
        self.model = Decoder(c, VambaLayer)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)

    def forward(self, pix, gh, gw, ids):
        """Logits [B, L, vocab] of text ids [B, L] (the Vamba prompt: no video tokens in the sequence)."""
        c = self.c
        V = self.visual(pix, gh, gw)
        L = ids.shape[1]
        pos = torch.arange(L, device=ids.device)[None, None].expand(3, 1, L)
        rope = mrope_tables(pos, c["hidden_size"] // c["num_attention_heads"], c["rope_theta"], c["rope_scaling"]["mrope_section"])
        Hs = self.model.embed_tokens(ids)
        n = len(self.model.layers)
        for i, layer in enumerate(self.model.layers):
            Hs, V = layer(Hs, V, rope, i == n - 1)
        return self.lm_head(self.model.norm(Hs))


# ---- Qwen2-VL baseline ------------------------------------------------------------------------------------


class Qwen2Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        H, eps = c["hidden_size"], c["rms_norm_eps"]
        self.input_layernorm = RMSNorm(H, eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(H, eps)
        self.mlp = MLP(c)

    def forward(self, Hs, rope):
        Hs = Hs + self.self_attn(self.input_layernorm(Hs), rope=rope, causal=True)
        return Hs + self.mlp(self.post_attention_layernorm(Hs))


def expand_video_pads(ids, n_video):
    """Inserts n_video <|video_pad|> after <|vision_start|> (as the Qwen2-VL processor expands them)."""
    s = int((ids[0] == VISION_START).nonzero()[0])
    pads = torch.full((ids.shape[0], n_video), VIDEO_PAD, dtype=ids.dtype, device=ids.device)
    return torch.cat([ids[:, : s + 1], pads, ids[:, s + 1 :]], 1), s + 1


def qwen2vl_positions(L, start, grid, device):
    """get_rope_index for one video span of merged grid (t, h, w) starting at `start`: [3, L]."""
    t, h, w = grid
    n = t * h * w
    pos = torch.empty(3, L, dtype=torch.long, device=device)
    pos[:, :start] = torch.arange(start, device=device)
    i = torch.arange(n, device=device)
    pos[0, start : start + n] = start + i // (h * w)
    pos[1, start : start + n] = start + (i // w) % h
    pos[2, start : start + n] = start + i % w
    nxt = start + max(t, h, w)
    pos[:, start + n :] = torch.arange(nxt, nxt + L - start - n, device=device)
    return pos


class Qwen2VL(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.visual = VisionTower(c["vision_config"], c["hidden_size"])
        self.model = Decoder(c, Qwen2Layer)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)

    def forward(self, pix, gh, gw, ids):
        """Logits [B, L', vocab] for the prompt with the video pads expanded (L' = L + video tokens)."""
        c = self.c
        V = self.visual(pix, gh, gw)
        ids, start = expand_video_pads(ids, V.shape[1])
        grid = (pix.shape[1], gh // 2, gw // 2)
        pos = qwen2vl_positions(ids.shape[1], start, grid, ids.device)[:, None]
        rope = mrope_tables(pos, c["hidden_size"] // c["num_attention_heads"], c["rope_theta"], c["rope_scaling"]["mrope_section"])
        Hs = self.model.embed_tokens(ids)
        Hs = torch.cat([Hs[:, :start], V.to(Hs.dtype), Hs[:, start + V.shape[1] :]], 1)
        for layer in self.model.layers:
            Hs = layer(Hs, rope)
        Hs = torch.cat([Hs[:, :start], Hs[:, start + V.shape[1] :]], 1)  # drop the video rows: align with ids
        return self.lm_head(self.model.norm(Hs))


def model_class(kind):
    """The model `--model` names: vamba, qwen2vl, timeviper (tools/reference/needle_timeviper.py) or mambamia
    (TSTAR-MambaMia, tools/reference/needle_mambamia.py)."""
    if kind == "timeviper":
        return timeviper().NeedleTimeViper
    if kind == "mambamia":
        from needle_mambamia import TstarMambaMia

        return TstarMambaMia
    return Vamba if kind == "vamba" else Qwen2VL


# ---- configs and saving -----------------------------------------------------------------------------------


def make_config(kind, vocab, a):
    c = {
        "architectures": ["Qwen2VLForConditionalGeneration"],
        "model_type": "qwen2_vl",
        "torch_dtype": "float32",
        "hidden_size": a.hidden,
        "intermediate_size": 2 * a.hidden,
        "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads,
        "num_key_value_heads": a.heads // 2,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "rope_scaling": {"type": "mrope", "mrope_section": mrope_section(a.hidden // a.heads)},
        "max_position_embeddings": 32768,
        "vocab_size": vocab,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "use_sliding_window": False,
        "bos_token_id": ENDOFTEXT,
        "eos_token_id": IM_END,
        "pad_token_id": ENDOFTEXT,
        "vision_start_token_id": VISION_START,
        "vision_end_token_id": VISION_END,
        "vision_token_id": IMAGE_PAD,
        "image_token_id": IMAGE_PAD,
        "video_token_id": VIDEO_PAD,
        "vision_config": {
            "depth": a.vision_depth,
            "embed_dim": a.vision_dim,
            "num_heads": a.vision_heads,
            "mlp_ratio": 2,
            "patch_size": PATCH,
            "temporal_patch_size": TEMPORAL,
            "spatial_merge_size": MERGE,
            "in_channels": 3,
            "hidden_size": a.hidden,
            "hidden_act": "quick_gelu",
            "model_type": "qwen2_vl",
        },
    }
    if kind == "vamba":
        c.update(
            {
                "use_alpha_balancing": True,
                "cross_attn_use_position_embeddings": False,
                "cross_attn_use_layer_norm": False,
                "distill_coeff": 0.0,
                "vision_mamba_mixer_config": {
                    "enable": True,
                    "d_state": a.d_state,
                    "d_conv": 4,
                    "expand": 2,
                    "headdim": a.mamba_headdim,
                    "ngroups": 1,
                    "chunk_size": 64,
                },
            }
        )
    return c


def mrope_section(hd):
    """Qwen2-VL's [16, 24, 24] of 64 frequency bands, scaled to hd/2 bands."""
    half = hd // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def save_model(model, config, out, tok_dir, dtype):
    os.makedirs(out, exist_ok=True)
    sd = {k: v.detach().to(dtype).contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    config = dict(config, torch_dtype="bfloat16" if dtype == torch.bfloat16 else "float32")
    # How longshot samples videos for this model (src/facade/video-defaults.ts): every frame at its 112×112.
    config["longshot_video_defaults"] = {"sampling": "uniform", "frames": 1024, "maxEdge": 112, "minEdge": 112}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": ENDOFTEXT, "eos_token_id": [IM_END], "pad_token_id": ENDOFTEXT, "do_sample": False}, f, indent=2)
    # Frames stay 112×112: smart_resize rounds to multiples of 28 within these pixel bounds.
    pre = {
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2VLProcessor",
        "do_resize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "do_convert_rgb": True,
        "image_mean": list(MEAN),
        "image_std": list(STD),
        "min_pixels": 56 * 56,
        "max_pixels": 224 * 224,
        "patch_size": PATCH,
        "temporal_patch_size": TEMPORAL,
        "merge_size": MERGE,
    }
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tok_dir, name), os.path.join(out, name))


# ---- data -------------------------------------------------------------------------------------------------


def safetensors_views(path):
    """{name: (dtype, shape, uint8 view)} of a safetensors file, memory-mapped (nothing is read yet)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    base = 8 + n
    return {k: (v["dtype"], v["shape"], mm[base + v["data_offsets"][0] : base + v["data_offsets"][1]]) for k, v in header.items() if k != "__metadata__"}


DTYPES = {"U8": torch.uint8, "I32": torch.int32, "I64": torch.int64, "F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def load_file(path):
    """The tensors of a safetensors file (read here rather than by the safetensors package, which the CPU test
    machine lacks)."""
    out = {}
    for k, (dtype, shape, view) in safetensors_views(path).items():
        raw = torch.frombuffer(bytearray(view.tobytes()), dtype=torch.uint8) if view.size else torch.empty(0, dtype=torch.uint8)
        out[k] = raw.view(DTYPES[dtype]).reshape(shape)
    return out


def save_file(tensors, path, metadata=None):
    """Writes a safetensors file: a JSON header of dtypes, shapes and byte ranges, then the data, 8-aligned."""
    names = {v: k for k, v in DTYPES.items()}
    header, blobs, offset = {"__metadata__": metadata} if metadata else {}, [], 0
    for k, t in tensors.items():
        b = t.contiguous().view(-1).view(torch.uint8).numpy().tobytes()
        header[k] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


class Data:
    """Exported samples bucketed by frame count: frames memory-mapped uint8 [T, H, W, 3], token ids in memory
    (one or more askings per video: prompt ids, answer ids, form)."""

    def __init__(self, dirs, device):
        self.buckets = {}
        for d in filter(None, dirs.split(",")):
            idx = json.load(open(os.path.join(d, "index.json")))
            by_shard = {}
            for m in idx["samples"]:
                by_shard.setdefault(m["shard"], []).append(m)
            for shard, ms in sorted(by_shard.items()):
                views = safetensors_views(os.path.join(d, f"shard-{shard:05d}.safetensors"))
                ints = lambda k: torch.from_numpy(np.frombuffer(views[k][2].tobytes(), dtype=np.int32).astype(np.int64))  # noqa: E731
                for m in ms:
                    i = m["i"]
                    _, shape, frames = views[f"{i}.frames"]
                    b = self.buckets.setdefault(m["frames"], {"frames": [], "asks": [], "meta": [], "shape": shape[1:]})
                    b["frames"].append(frames)
                    forms = m.get("forms") or ["mcq" if m["mcq"] else "short"]
                    sfx = lambda j: f"_{j}" if j else ""  # noqa: E731
                    b["asks"].append([(ints(f"{i}.input_ids{sfx(j)}"), ints(f"{i}.answer_ids{sfx(j)}"), f) for j, f in enumerate(forms)])
                    b["meta"].append(m)
        self.buckets = dict(sorted(self.buckets.items()))
        self.device = device

    def sizes(self):
        return {T: len(b["asks"]) for T, b in self.buckets.items()}

    def host_batch(self, T, rows, variants, with_answer=True):
        """(frames [B, T, H, W, 3] uint8 on the host, ids [B, L] right-padded, target [B, L] with -100 outside
        answers); `variants[k]` picks the asking of row k."""
        b = self.buckets[T]
        seqs, tgts = [], []
        for r, v in zip(rows, variants):
            p, a, _ = b["asks"][r][v]
            s = torch.cat([p, a]) if with_answer else p
            t = torch.full_like(s, -100)
            if with_answer:
                t[len(p) - 1 : len(s) - 1] = a  # position j predicts token j + 1
            seqs.append(s)
            tgts.append(t)
        L = max(len(s) for s in seqs)
        ids = torch.full((len(rows), L), ENDOFTEXT, dtype=torch.long)
        tgt = torch.full((len(rows), L), -100, dtype=torch.long)
        for k, (s, t) in enumerate(zip(seqs, tgts)):
            ids[k, : len(s)] = s
            tgt[k, : len(t)] = t
        frames = torch.from_numpy(np.stack([b["frames"][r] for r in rows]).reshape(len(rows), T, *b["shape"]))
        return frames, ids, tgt

    def to_device(self, batch):
        return tuple(t.to(self.device, non_blocking=t.is_pinned()) for t in batch)

    def batch(self, T, rows, variants=None, with_answer=True):
        return self.to_device(self.host_batch(T, rows, variants or [0] * len(rows), with_answer))


class Batches:
    """Training batches drawn (length by share of the data, videos over 128 frames `long_weight` times as often,
    then rows, then an asking per row) and prepared in pinned host memory by a background thread, a few ahead
    of the training step."""

    def __init__(self, data, per_batch, seed, long_weight=1.0, ahead=3, rng_state=None):
        self.data, self.per_batch, self.long_weight = data, per_batch, long_weight
        self.rng = random.Random(seed)
        if rng_state is not None:  # a paused run goes on where its draws were (the few prepared ahead are skipped)
            self.rng.setstate(rng_state)
        self.q = queue.Queue(maxsize=ahead)
        threading.Thread(target=self.fill, daemon=True).start()

    def fill(self):
        sizes = self.data.sizes()
        lengths = list(sizes)
        weights = [sizes[T] * (self.long_weight if T > 128 else 1) for T in lengths]
        pin = self.data.device == "cuda"
        while True:
            T = self.rng.choices(lengths, weights)[0]
            rows = self.rng.sample(range(sizes[T]), min(self.per_batch[T], sizes[T]))
            asks = self.data.buckets[T]["asks"]
            variants = [self.rng.randrange(len(asks[r])) for r in rows]
            batch = self.data.host_batch(T, rows, variants)
            self.q.put(tuple(t.pin_memory() for t in batch) if pin else batch)

    def next(self):
        return self.data.to_device(self.q.get())


# ---- train / eval -----------------------------------------------------------------------------------------


def remap_vocab(sd, old_tok, new_tok, log):
    """Token rows of `sd` (trained with the tokenizer old_tok) moved to the ids of new_tok, so that training with
    a new vocabulary continues from old weights: a new word takes the row of the same old word, else of its
    capitalised form ("what" ← "What"); the rest start at the mean row."""
    old = json.load(open(old_tok))["model"]["vocab"]
    new = json.load(open(new_tok))["model"]["vocab"]
    found = 0
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        w_old = sd[key]
        w_new = w_old.mean(0, keepdim=True).repeat(len(new), 1)
        found = 0
        for word, i in new.items():
            j = old.get(word, old.get(word.capitalize()))
            if j is not None:
                w_new[i] = w_old[j]
                found += 1
        sd[key] = w_new
    log(f"vocabulary remapped: {found} of {len(new)} tokens kept their trained rows")
    return sd


def timeviper():
    """tools/reference/needle_timeviper.py: a TimeViper behind this trainer's model interface (--model timeviper)."""
    import needle_timeviper

    return needle_timeviper


def train(kind, c, data, a, log):
    torch.manual_seed(a.seed)
    model = model_class(kind)(c).to(a.device)
    if a.init:  # continue from earlier weights (e.g. the shipped models/): GPU time adds up across runs
        src = os.path.join(a.init, f"needle-{kind}-tiny")
        sd = {k: v.float() for k, v in load_file(os.path.join(src, "model.safetensors")).items()}
        emb = sd.get("model.embed_tokens.weight")  # vamba / qwen2vl names; other families keep their vocabulary
        if emb is not None and emb.shape[0] != c["vocab_size"]:
            sd = remap_vocab(sd, os.path.join(src, "tokenizer.json"), os.path.join(a.tokenizer_dir, "tokenizer.json"), log)
        model.load_state_dict(sd, strict=True)
        log(f"[{kind}] initialised from {src}")
    n_params = sum(p.numel() for p in model.parameters())
    log(f"[{kind}] {n_params:,} parameters")
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.98))
    # A paused run (--state) goes on from its weights, optimizer state, step and data draws.
    first, skipped, rng_state = 1, 0, None
    if a.state and os.path.exists(a.state):
        st = torch.load(a.state, map_location=a.device, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        first, skipped, rng_state = st["step"] + 1, st["skipped"], st["rng"]
        log(f"[{kind}] resumed from {a.state} at step {first}")
    # Equal tokens per step: fewer videos in a batch of long ones.
    per_batch = {T: max(2, int(a.batch * a.base_frames / T)) for T in data.sizes()}
    batches = Batches(data, per_batch, a.seed, a.long_weight, rng_state=rng_state)
    t0 = time.time()
    step, ema = first - 1, None
    # One JSON line per step (step, loss, lr, seconds of this call): the loss curve bench/gpu/train.sh draws.
    loss_log = open(a.loss_log, "a" if first > 1 else "w") if a.loss_log else None
    for step in range(first, a.steps + 1):
        # Cosine decay over the steps, or over --max-seconds when that runs out first.
        progress = min(1.0, max(step / a.steps, (time.time() - t0) / a.max_seconds))
        lr = a.lr * min(1.0, step / a.warmup) * (0.5 * (1 + math.cos(math.pi * progress)) * 0.95 + 0.05)
        for g in opt.param_groups:
            g["lr"] = lr
        frames, ids, tgt = batches.next()
        with torch.autocast(a.device, dtype=torch.bfloat16, enabled=a.device == "cuda"):
            pix = patchify(frames)
            logits = model(pix, frames.shape[2] // PATCH, frames.shape[3] // PATCH, ids)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if not torch.isfinite(norm):  # one bad batch must not poison the weights (a 150 s run diverged at step 850)
            skipped += 1
            continue
        opt.step()
        if loss_log:
            loss_log.write(json.dumps({"step": step, "loss": loss.item(), "lr": lr, "seconds": time.time() - t0}) + "\n")
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 100 == 0 or step == 1:
            log(f"[{kind}] step {step} loss {ema:.4f} lr {lr:.2e} {time.time() - t0:.0f}s")
        if time.time() - t0 > a.max_seconds:
            log(f"[{kind}] time cap reached at step {step}")
            break
        if a.state and step < a.steps and time.time() - t0 > a.stop_seconds:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "skipped": skipped, "rng": batches.rng.getstate()}, a.state)
            log(f"[{kind}] paused at step {step} after {time.time() - t0:.1f}s: {a.state}")
            return model, {"paused": step, "steps": step, "first": first, "seconds": round(time.time() - t0, 1), "params": n_params}
    log(f"[{kind}] trained {step} steps in {time.time() - t0:.1f}s ({skipped} skipped: non-finite gradients)")
    return model, {"steps": step, "first": first, "seconds": round(time.time() - t0, 1), "params": n_params}


@torch.no_grad()
def evaluate(model, data, a, log, kind, name, max_new=6):
    """Greedy answers to every asking of every sample of one held-out set (recomputing the whole prompt each
    step, as a check of the TS runtime's cached decoding); exact match on the short answer or the option
    letter. Tallies [right, asked] by length, by task/form and for the unanswerable questions."""
    model.eval()
    row = {"correct": 0, "total": 0, "seconds": 0.0, "by_length": {}, "by_task": {}, "unanswerable": [0, 0], "peak_mib": {}}
    for T, b in data.buckets.items():
        if a.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for r, asks in enumerate(b["asks"]):
            m = b["meta"][r]
            for v, (_, answer, form) in enumerate(asks):
                frames, ids, _ = data.batch(T, [r], [v], with_answer=False)
                t0 = time.time()
                with torch.autocast(a.device, dtype=torch.bfloat16, enabled=a.device == "cuda"):
                    pix = patchify(frames)
                    out = []
                    for _ in range(max_new):
                        tok = int(model(pix, frames.shape[2] // PATCH, frames.shape[3] // PATCH, ids)[0, -1].argmax())
                        if tok == IM_END:
                            break
                        out.append(tok)
                        ids = torch.cat([ids, torch.tensor([[tok]], device=ids.device)], 1)
                ok = int(out == answer[:-1].tolist())
                row["correct"] += ok
                row["total"] += 1
                row["seconds"] += time.time() - t0
                groups = [row["by_length"].setdefault(str(T), [0, 0]), row["by_task"].setdefault(f"{m['task']}/{form}", [0, 0])]
                if m.get("options", {}).get("unanswerable"):
                    groups.append(row["unanswerable"])
                for g in groups:
                    g[0] += ok
                    g[1] += 1
        if a.device == "cuda":
            row["peak_mib"][str(T)] = round(torch.cuda.max_memory_allocated() / 2**20)
    model.train()
    row["accuracy"] = row["correct"] / max(1, row["total"])
    log(f"[{kind}] eval {name}: {row['correct']}/{row['total']} = {row['accuracy']:.3f} ({row['seconds'] / max(1, row['total']):.3f}s/question) lengths {row['by_length']} tasks {row['by_task']} unanswerable {row['unanswerable']}")
    return row


# ---- checks against transformers ---------------------------------------------------------------------------


def checks(c_vamba, c_qwen, data, a, log):
    """Compares the vision tower and the Qwen2-VL baseline with transformers' modules, and the SSD with the
    recurrence. Failures are logged, never fatal (the TypeScript evaluation is the final word)."""
    T = min(data.sizes())
    frames, ids, _ = data.batch(T, [0], with_answer=False)
    pix = patchify(frames)
    gh, gw = frames.shape[2] // PATCH, frames.shape[3] // PATCH
    grid = torch.tensor([[pix.shape[1], gh, gw]], device=a.device)
    rel = lambda x, y: float((x.double() - y.double()).abs().max() / y.double().abs().max())  # noqa: E731
    torch.manual_seed(1)
    m = Vamba(c_vamba).to(a.device).eval()
    with torch.no_grad():
        u = torch.randn(2, 100, c_vamba["hidden_size"], device=a.device)
        mix = m.model.layers[0].vision_mixer.mixer
        log(f"check ssd vs recurrence: rel err {rel(mix(u), mix.forward_recurrent(u)):.2e}")
    try:
        from transformers.models.qwen2_vl import configuration_qwen2_vl as cq
        from transformers.models.qwen2_vl import modeling_qwen2_vl as hq

        v = c_vamba["vision_config"]
        vc = cq.Qwen2VLVisionConfig(**{k: v[k] for k in ("depth", "embed_dim", "num_heads", "mlp_ratio", "patch_size", "temporal_patch_size", "spatial_merge_size", "in_channels", "hidden_act")}, hidden_size=c_vamba["hidden_size"])
        vc._attn_implementation = "eager"
        hv = hq.Qwen2VisionTransformerPretrainedModel(vc).to(a.device).eval()
        hv.load_state_dict(m.visual.state_dict(), strict=True)
        with torch.no_grad():
            out = hv(pix.reshape(-1, pix.shape[-1]), grid_thw=grid)
            ref = out.pooler_output if hasattr(out, "pooler_output") else out
            log(f"check vision tower vs transformers: rel err {rel(m.visual(pix, gh, gw)[0], ref.reshape(-1, ref.shape[-1])):.2e}")
    except Exception as e:  # noqa: BLE001
        log(f"check vision tower: transformers comparison failed: {e!r}")
    try:
        from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

        q = Qwen2VL(c_qwen).to(a.device).eval()
        hc = Qwen2VLConfig(**{k: v for k, v in c_qwen.items() if k not in ("architectures",)})
        hc._attn_implementation = "eager"
        hm = Qwen2VLForConditionalGeneration(hc).to(a.device).eval()
        sd = {}
        for k, v in q.state_dict().items():
            if k.startswith("visual."):
                sd["model." + k] = v
            elif k.startswith("model."):
                sd["model.language_model." + k[len("model.") :]] = v
            else:
                sd[k] = v
        r = hm.load_state_dict(sd, strict=False)
        log(f"check qwen2vl load: missing {r.missing_keys} unexpected {r.unexpected_keys}")
        with torch.no_grad():
            ours = q(pix, gh, gw, ids)
            full, _ = expand_video_pads(ids, pix.shape[1] * gh * gw // 4)
            theirs = hm(input_ids=full, mm_token_type_ids=(full == VIDEO_PAD).int() * 2, pixel_values_videos=pix.reshape(-1, pix.shape[-1]), video_grid_thw=grid).logits
            n_video = full.shape[1] - ids.shape[1]
            s = int((ids[0] == VISION_START).nonzero()[0]) + 1
            # Only the rows up to the video: after it, transformers 5.x resumes text positions at
            # start + max(h, w) where get_rope_index (and our TypeScript rope-index.ts) use max(t, h, w).
            log(f"check qwen2vl vs transformers (rows before the video): rel err {rel(ours[:, :s], theirs[:, :s]):.2e}")
    except Exception as e:  # noqa: BLE001
        log(f"check qwen2vl: transformers comparison failed: {e!r}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="export dir(s), comma-separated")
    p.add_argument("--eval", default="", help="held-out export dir(s), comma-separated")
    p.add_argument("--out", required=True)
    p.add_argument("--tokenizer-dir", required=True)
    p.add_argument("--model", default="vamba,qwen2vl", help="vamba, qwen2vl and/or timeviper, comma-separated")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--max-seconds", type=float, default=1e9)
    p.add_argument("--state", default="", help="pause/resume file: a run paused by --stop-seconds goes on from it")
    p.add_argument("--stop-seconds", type=float, default=1e9, help="with --state: pause after this many seconds of this call (the schedule is the steps')")
    p.add_argument("--batch", type=int, default=32, help="videos per batch at --base-frames frames")
    p.add_argument("--base-frames", type=int, default=32)
    p.add_argument("--long-weight", type=float, default=1.0, help="how much more often a video over 128 frames is drawn")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", default="", help="a directory holding needle-<model>-tiny/ to start from (e.g. models)")
    p.add_argument("--hidden", type=int, default=192)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--vision-dim", type=int, default=128)
    p.add_argument("--vision-heads", type=int, default=4)
    p.add_argument("--vision-depth", type=int, default=2)
    p.add_argument("--d-state", type=int, default=32)
    p.add_argument("--mamba-headdim", type=int, default=32)
    p.add_argument("--save-dtype", default="bfloat16")
    p.add_argument("--check", action="store_true")
    p.add_argument("--loss-log", default="", help="write every step's loss as a JSON line to this file")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    logf = open(os.path.join(a.out, "train_log.txt"), "a")

    def log(s):
        print(s, flush=True)
        logf.write(s + "\n")
        logf.flush()

    log(f"args {vars(a)}")
    vocab = len(json.load(open(os.path.join(a.tokenizer_dir, "tokenizer.json")))["model"]["vocab"])
    t0 = time.time()
    data = Data(a.data, a.device)
    log(f"train data {data.sizes()} loaded in {time.time() - t0:.1f}s")
    # Each held-out set (an export directory) is scored on its own, under its directory's name.
    held = {os.path.basename(d.rstrip("/")): Data(d, a.device) for d in a.eval.split(",") if d}
    for name, d in held.items():
        log(f"eval set {name}: {d.sizes()}")
    configs = {k: make_config(k, vocab, a) for k in ("vamba", "qwen2vl")}
    if "timeviper" in a.model.split(","):
        configs["timeviper"] = timeviper().make_needle_config(a)
    if "mambamia" in a.model.split(","):
        from needle_mambamia import make_tstar_config

        configs["mambamia"] = make_tstar_config(configs["qwen2vl"], a.d_state)
    if a.check:
        checks(configs["vamba"], configs["qwen2vl"], data, a, log)
    report = {}
    dtype = torch.bfloat16 if a.save_dtype == "bfloat16" else torch.float32
    for kind in a.model.split(","):
        model, info = train(kind, configs[kind], data, a, log)
        if "paused" in info:  # to be resumed with the same --state: no model, no evaluation yet
            report[kind] = info
            json.dump(report, open(os.path.join(a.out, "report.json"), "w"), indent=1)
            continue
        out = os.path.join(a.out, f"needle-{kind}-tiny")
        if kind == "timeviper":
            timeviper().save_needle(model, out, a.tokenizer_dir, dtype)
        else:
            save_model(model, configs[kind], out, a.tokenizer_dir, dtype)
        report[kind] = info
        info["eval"] = {}
        for name, d in held.items():  # the report is rewritten after each set: a time limit keeps what was done
            json.dump(report, open(os.path.join(a.out, "report.json"), "w"), indent=1)
            info["eval"][name] = evaluate(model, d, a, log, kind, name)
        json.dump(report, open(os.path.join(a.out, "report.json"), "w"), indent=1)
        del model
        torch.cuda.empty_cache() if a.device == "cuda" else None
    log(f"done in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
