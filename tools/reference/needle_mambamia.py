"""The tiny TSTAR-MambaMia for the needle task, as train_needle.py trains it (`--model mambamia`): the Qwen2-VL vision
tower of the other tiny models, a bidirectional MambaMia compressor with gated aggregation (docs/mambamia.md), and
a Qwen2 decoder reading the compressed tokens as a flat run at 1-D positions. It is written in the layout longshot's
TSTAR family reads (src/models/tstar: `visual.*`, `mm_projector.*`, `model.*`, `lm_head`; docs/tstar.md) and
computes what the TypeScript model computes.

    python3 tools/reference/train_needle.py ... --model mambamia          # training (the GPU machine)
    /usr/bin/python3 tools/reference/needle_mambamia.py --fixture test/fixtures/needle_mambamia   # parity fixture

The fixture is a smaller random model (config.json, model.safetensors) with reference.safetensors: pixel_values
[groups·patches, 1176] in the processor's row order, input_ids [L] (the prompt with one <|video_pad|> where the video
goes), video_tokens [n, hidden] (the compressor's output), tail_logits [m, vocab] (the last m rows of the logits,
all after the video); test/models/tstar-needle-parity.test.ts compares the TypeScript model with them.
"""

import argparse
import json
import math
import os
import sys
import types

import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
try:
    import safetensors.torch  # noqa: F401
except ImportError:  # this machine's torch 1.13 has no safetensors: writing is all the fixture needs
    from mambamia_fixtures import write_safetensors

    sys.modules["safetensors"] = types.ModuleType("safetensors")
    sys.modules["safetensors.torch"] = types.SimpleNamespace(
        save_file=lambda sd, path, metadata=None: write_safetensors(path, sd), load_file=None
    )
if not hasattr(F, "scaled_dot_product_attention"):  # torch 1.13: the same attention written out (fixture only)

    def _sdpa(q, k, v, attn_mask=None, is_causal=False):
        s = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        if is_causal:
            s = s.masked_fill(torch.ones(s.shape[-2:], dtype=torch.bool, device=s.device).triu(1), float("-inf"))
        if attn_mask is not None:
            s = s.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else s + attn_mask
        return torch.softmax(s.float(), -1).to(q.dtype) @ v

    F.scaled_dot_product_attention = _sdpa
import train_needle as tn  # noqa: E402

# The compressor of the tiny model: k = 8 of the 16 merged tokens of each 2-frame group at 112×112 (2 queries per
# group, so a video of T frames gives T tokens), bidirectional and gated as in the paper, sum of the directions as in
# the derivative, all frames kept (s = 1).
COMPRESSOR = {"hidden_size": 128, "num_hidden_layers": 2, "expand": 2, "head_dim": 32, "n_groups": 1,
              "conv_kernel": 4, "chunk_size": 64, "mambamia_chunk_size": 8}
EPS = 1e-5
GATE_EPS = 0.01


def make_tstar_config(qwen, d_state, compressor=COMPRESSOR):
    """A TSTAR config.json from a Qwen2-VL one of train_needle.make_config: its tower, its decoder as `text_config`."""
    vision = dict(qwen["vision_config"])
    text = {k: v for k, v in qwen.items() if k not in ("vision_config", "architectures", "model_type")}
    text["model_type"] = "qwen2"
    h = compressor["hidden_size"]
    projector = dict(compressor, input_size=vision["hidden_size"], output_size=qwen["hidden_size"], state_size=d_state,
                     num_heads=compressor["expand"] * h // compressor["head_dim"], use_bias=False, use_conv_bias=True,
                     norm_before_gate=True, layer_norm_epsilon=EPS, version="v2", mambamia_gated_aggregation=True,
                     mambamia_bidirectional_combine="sum", mambamia_gate_epsilon=GATE_EPS, mambamia_frame_sampling=1)
    return {"architectures": ["TstarForConditionalGeneration"], "model_type": "tstar", "torch_dtype": "float32",
            "vision_config": vision, "mm_projector_config": projector, "text_config": text,
            "video_token_id": tn.VIDEO_PAD}


def gated_rmsnorm(y, z, weight, groups):
    """RMSNorm(y) per group, × weight, × silu(z) (norm before the gate), in f32."""
    B, L, D = y.shape
    g = y.reshape(B, L, groups, D // groups)
    g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + EPS)
    return g.reshape(B, L, D) * weight * F.silu(z.float())


class Scan(nn.Module):
    """One direction's conv1d, dt_bias, A_log, D and gated norm (the backward one's names end in _b)."""

    def __init__(self, conv_dim, nh, di, k):
        super().__init__()
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, k, groups=conv_dim, padding=k - 1)
        dt = torch.exp(torch.rand(nh) * (math.log(0.1) - math.log(0.001)) + math.log(0.001)).clamp(min=1e-4)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.empty(nh).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(nh))
        self.norm_weight = nn.Parameter(torch.ones(di))


class MiaMixer(nn.Module):
    """MambaMia2Mixer v2 as mamba_ssm's fused kernel computes it: shared in_proj, both scans, sum, shared out_proj."""

    def __init__(self, H, p):
        super().__init__()
        self.nh, self.P, self.N, self.G = p["num_heads"], p["head_dim"], p["state_size"], p["n_groups"]
        self.di = self.nh * self.P
        self.chunk = p["chunk_size"]
        conv_dim = self.di + 2 * self.G * self.N
        self.in_proj = nn.Linear(H, self.di + conv_dim + self.nh, bias=False)
        self.fwd = Scan(conv_dim, self.nh, self.di, p["conv_kernel"])
        self.bwd = Scan(conv_dim, self.nh, self.di, p["conv_kernel"])
        self.out_proj = nn.Linear(self.di, H, bias=False)

    def scan(self, zxbcdt, s):
        B, L, _ = zxbcdt.shape
        z, xBC, dt = zxbcdt.split([self.di, self.di + 2 * self.G * self.N, self.nh], -1)
        xBC = F.silu(s.conv1d(xBC.transpose(1, 2))[..., :L].transpose(1, 2))
        x, Bm, Cm = xBC.split([self.di, self.G * self.N, self.G * self.N], -1)
        rep = self.nh // self.G
        Bm = Bm.reshape(B, L, self.G, self.N).repeat_interleave(rep, 2)
        Cm = Cm.reshape(B, L, self.G, self.N).repeat_interleave(rep, 2)
        x = x.reshape(B, L, self.nh, self.P)
        with torch.autocast(zxbcdt.device.type, enabled=False):
            dt = F.softplus(dt.float() + s.dt_bias)
            A = -torch.exp(s.A_log.float())
            X, Ad, Bf, Cf = x.float() * dt[..., None], A * dt, Bm.float(), Cm.float()
            pad = (-L) % self.chunk
            if pad:  # zero input and zero decay at the end change nothing before it
                X, Ad, Bf, Cf = (F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad)) for t in (X, Ad, Bf, Cf))
            y = tn.ssd(X, Ad, Bf, Cf, self.chunk)[:, :L] + s.D[:, None] * x.float()
            return gated_rmsnorm(y.reshape(B, L, self.di), z, s.norm_weight, self.G)

    def forward(self, u):
        p = self.in_proj(u)
        y = self.scan(p, self.fwd) + self.scan(p.flip(1), self.bwd).flip(1)
        return self.out_proj(y.to(u.dtype))


class MiaBlock(nn.Module):
    def __init__(self, H, p):
        super().__init__()
        self.k = p["mambamia_chunk_size"]
        self.norm = tn.RMSNorm(H, EPS)
        self.mixer = MiaMixer(H, p)
        self.weight_fc = nn.Linear(H, self.k)
        self.gate_fc = nn.Linear(H, 1)
        with torch.no_grad():  # the derivative's init: near-uniform weights, gate near 0.5
            for fc in (self.weight_fc, self.gate_fc):
                fc.weight.mul_(1e-3)
                fc.bias.zero_()

    def forward(self, x):
        h = self.norm(x)
        B, L, H = h.shape
        g4 = h.reshape(B, L // (self.k + 1), self.k + 1, H)
        patches, q = g4[:, :, : self.k], g4[:, :, self.k]
        w = torch.softmax(self.weight_fc(q), -1)
        pooled = (patches * w.unsqueeze(-1)).sum(2)
        g = torch.sigmoid(self.gate_fc(q)) * (1 - 2 * GATE_EPS) + GATE_EPS
        h = torch.cat([patches, ((1 - g) * q + g * pooled).unsqueeze(2)], 2).reshape(B, L, H)
        return x + self.mixer(h)


class Compressor(nn.Module):
    """input_proj → a query after every k tokens → blocks → norm_f → the query slots → output_proj."""

    def __init__(self, p):
        super().__init__()
        H = p["hidden_size"]
        self.k = p["mambamia_chunk_size"]
        self.query_token = nn.Parameter(torch.randn(H) / math.sqrt(H))
        self.input_proj = nn.Linear(p["input_size"], H)
        self.output_proj = nn.Linear(H, p["output_size"])
        for lin in (self.input_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.model = nn.Module()
        self.model.layers = nn.ModuleList(MiaBlock(H, p) for _ in range(p["num_hidden_layers"]))
        self.model.norm_f = tn.RMSNorm(H, EPS)

    def forward(self, feats):
        """feats [B, groups, per, input] → tokens [B, groups·per / k, output]."""
        B = feats.shape[0]
        x = self.input_proj(feats.reshape(B, -1, self.k, feats.shape[-1]))
        n, H = x.shape[1], x.shape[-1]
        x = torch.cat([x, self.query_token.to(x.dtype).expand(B, n, 1, H)], 2).reshape(B, n * (self.k + 1), H)
        for layer in self.model.layers:
            x = layer(x)
        return self.output_proj(self.model.norm_f(x).reshape(B, n, self.k + 1, H)[:, :, self.k])


# Scan parameters (mixer.fwd.* / mixer.bwd.* here) under the derivative's flat names.
SCAN_NAMES = {
    f"{prefix}{ours}": theirs.format(b=sfx, A="A_b_log" if sfx else "A_log")
    for prefix, sfx in (("fwd.", ""), ("bwd.", "_b"))
    for ours, theirs in (("conv1d.weight", "conv1d{b}.weight"), ("conv1d.bias", "conv1d{b}.bias"),
                         ("dt_bias", "dt_bias{b}"), ("A_log", "{A}"), ("D", "D{b}"), ("norm_weight", "norm{b}.weight"))
}


class TstarMambaMia(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.t = c["text_config"]
        v = c["vision_config"]
        self.visual = tn.VisionTower(v, v["hidden_size"])
        self.mm_projector = Compressor(c["mm_projector_config"])
        self.model = tn.Decoder(self.t, tn.Qwen2Layer)
        self.lm_head = nn.Linear(self.t["hidden_size"], self.t["vocab_size"], bias=False)

    def compress(self, pix, gh, gw):
        V = self.visual(pix, gh, gw)
        B, G = pix.shape[:2]
        return self.mm_projector(V.reshape(B, G, (gh // 2) * (gw // 2), V.shape[-1]))

    def forward(self, pix, gh, gw, ids):
        """Logits [B, L, vocab] aligned with ids (the compressed video's rows dropped), as train_needle's models."""
        Q = self.compress(pix, gh, gw)
        ids, start = tn.expand_video_pads(ids, Q.shape[1])
        L = ids.shape[1]
        pos = torch.arange(L, device=ids.device)[None, None].expand(3, 1, L)
        t = self.t
        rope = tn.mrope_tables(pos, t["hidden_size"] // t["num_attention_heads"], t["rope_theta"],
                               t["rope_scaling"]["mrope_section"])
        Hs = self.model.embed_tokens(ids)
        Hs = torch.cat([Hs[:, :start], Q.to(Hs.dtype), Hs[:, start + Q.shape[1]:]], 1)
        for layer in self.model.layers:
            Hs = layer(Hs, rope)
        Hs = torch.cat([Hs[:, :start], Hs[:, start + Q.shape[1]:]], 1)
        return self.lm_head(self.model.norm(Hs))

    def state_dict(self, *args, **kwargs):
        """The derivative's names for the scan parameters (what longshot and MambaMia checkpoints use)."""
        sd = super().state_dict(*args, **kwargs)
        out = type(sd)()
        for k, v in sd.items():
            head, sep, tail = k.partition(".mixer.")
            out[f"{head}{sep}{SCAN_NAMES.get(tail, tail)}" if sep else k] = v
        return out

    def load_state_dict(self, sd, strict=True):
        back = {v: k for k, v in SCAN_NAMES.items()}
        mapped = {}
        for k, v in sd.items():
            head, sep, tail = k.partition(".mixer.")
            mapped[f"{head}{sep}{back.get(tail, tail)}" if sep else k] = v
        return super().load_state_dict(mapped, strict=strict)


def write_fixture(out):
    """A small random TSTAR-MambaMia and its outputs on random frames (see the module docstring)."""
    torch.manual_seed(0)
    a = argparse.Namespace(hidden=64, heads=4, layers=2, vision_dim=32, vision_heads=2, vision_depth=1, d_state=16,
                           mamba_headdim=16)
    qwen = tn.make_config("qwen2vl", 100, a)
    c = make_tstar_config(qwen, a.d_state, dict(COMPRESSOR, hidden_size=32, head_dim=16, chunk_size=16,
                                                mambamia_chunk_size=4))
    m = TstarMambaMia(c).eval()
    with torch.no_grad():  # no parameter left at a round init value (gates, norms, biases)
        for name, p in m.named_parameters():
            if p.dim() == 1 and ("norm" in name or name.endswith("bias")):
                p.add_(0.1 * torch.randn_like(p))
            elif name.endswith("weight_fc.weight") or name.endswith("gate_fc.weight"):
                p.copy_(0.3 * torch.randn_like(p))
    frames = torch.randint(0, 256, (1, 6, 56, 56, 3), dtype=torch.uint8)
    pix = tn.patchify(frames)
    gh = gw = 56 // tn.PATCH
    ids = torch.tensor([[tn.IM_START, 20, 21, tn.IM_END, tn.IM_START, 22, tn.VISION_START, tn.VISION_END, 30, 31, 32,
                         tn.IM_END, tn.IM_START, 23, 40, 41, 42]])
    with torch.no_grad():
        video = m.compress(pix, gh, gw)[0]
        logits = m(pix, gh, gw, ids)[0]
    ids1 = torch.cat([ids[0, :7], torch.tensor([tn.VIDEO_PAD]), ids[0, 7:]])
    tail = 6
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    sys.modules["safetensors.torch"].save_file({k: v.float() for k, v in m.state_dict().items()},
                                               os.path.join(out, "model.safetensors"))
    from mambamia_fixtures import write_safetensors

    write_safetensors(os.path.join(out, "reference.safetensors"), {
        "pixel_values": pix[0].reshape(-1, pix.shape[-1]), "input_ids": ids1.float(), "video_tokens": video,
        "tail_logits": logits[-tail:]})
    print(f"fixture: {sum(p.numel() for p in m.parameters()):,} parameters, {video.shape[0]} video tokens, "
          f"prompt {ids1.numel()} ids (+{video.shape[0] - 1} expanded)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", required=True, help="folder for the parity fixture")
    write_fixture(ap.parse_args().fixture)
