"""Whole-model gradient fixture for Nemotron-H: a tiny NemotronHForCausalLM written here from the maths (as
transformers' NemotronH modelling computes it), run in f32 on a token sequence, with the mean cross-entropy on
given targets; its weights, the tokens, the loss and every parameter's gradient go to
test/fixtures/grads/nemotron_h.safetensors. test/train/grad-fixtures.test.ts loads the weights into longshot's
NemotronHForCausalLM and compares valueAndGrad's loss and gradients with these.

    /usr/bin/python3 tools/reference/nemotron_h_grad_fixtures.py --out test/fixtures/grads \\
        --check test/fixtures/nemotron_h

`--check` first runs the model here on the transformers parity fixtures (tools/reference/nemotron_h_fixtures.py:
transformers' NemotronHForCausalLM, its torch path) and asserts the same logits (within ~1e-6 of the largest).

The model (per block: x + mixer(RMSNorm(x)), the residual kept in f32 as residual_in_fp32 asks):
  M  Mamba-2: in_proj → [z | xBC | dt]; depthwise causal conv1d (bias) + SiLU on xBC → x, B, C (n_groups groups,
     head h reads group h // (heads / n_groups)); dt = clamp(softplus(dt + dt_bias), time_step_limit);
     A = −exp(A_log); the SSM as its token-by-token recurrence (no chunks: longshot's chunked scan with
     chunk_size 4 is what is checked) plus the D skip; y·silu(z), RMS-normed per group of I / n_groups channels,
     × norm.weight; out_proj. I = mamba_num_heads · mamba_head_dim (≠ expand · hidden, as in Nano-9B-v2).
  *  causal GQA attention without positions or biases, scale head_dim^−½ (head_dim · heads ≠ hidden).
  -  down(relu(up(x))²).
Then norm_f and an untied lm_head. time_step_limit binds (some steps are clamped at either end, so the clamp's
gradient is exercised); every clamped or free dt is at least 1e-3 (relative) away from a bound, so f32 rounding
cannot move one across. The f32 gradients are also computed in float64; the largest f32 ↔ f64 difference
(relative to each tensor's largest gradient) is printed and stored in the metadata (`f32_vs_f64`).

Made with torch 1.13 on CPU (no safetensors module: train_needle.py's writer). ≈ 120 KB.
"""

import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_needle import load_file, save_file  # noqa: E402

# config.json in the published spelling (parseNemotronHConfig reads it from the fixture's metadata).
CONFIG = {
    "architectures": ["NemotronHForCausalLM"],
    "model_type": "nemotron_h",
    "torch_dtype": "float32",
    "vocab_size": 37,
    "hidden_size": 24,
    "hybrid_override_pattern": "M-M*-",
    "num_hidden_layers": 5,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 7,
    "attention_bias": False,
    "intermediate_size": 38,
    "mlp_hidden_act": "relu2",
    "mlp_bias": False,
    "mamba_num_heads": 6,
    "mamba_head_dim": 5,
    "n_groups": 3,
    "ssm_state_size": 4,
    "conv_kernel": 4,
    "chunk_size": 4,
    "expand": 2,
    "mamba_hidden_act": "silu",
    "use_conv_bias": True,
    "use_bias": False,
    "mamba_proj_bias": False,
    "time_step_limit": [0.02, 0.3],
    "layer_norm_epsilon": 1e-5,
    "residual_in_fp32": True,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
}
LENGTH = 15  # tokens in: SSD chunks of 4, 4, 4, 3
IGNORED = 4  # the first targets are -100 (a prompt), as training masks them


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Mamba2(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.nh, self.hd, self.N, self.ng = c["mamba_num_heads"], c["mamba_head_dim"], c["ssm_state_size"], c["n_groups"]
        self.I = self.nh * self.hd
        self.conv_dim = self.I + 2 * self.ng * self.N
        self.k = c["conv_kernel"]
        self.limit = c["time_step_limit"]
        self.eps = c["layer_norm_epsilon"]
        H = c["hidden_size"]
        self.in_proj = nn.Linear(H, self.I + self.conv_dim + self.nh, bias=False)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, self.k, groups=self.conv_dim, bias=True)
        self.dt_bias = nn.Parameter(torch.zeros(self.nh))
        self.A_log = nn.Parameter(torch.zeros(self.nh))
        self.D = nn.Parameter(torch.ones(self.nh))
        self.norm = nn.Module()
        self.norm.weight = nn.Parameter(torch.ones(self.I))
        self.out_proj = nn.Linear(self.I, H, bias=False)
        self.dts = []  # every dt before the clamp, for the distance-to-bound check

    def forward(self, h):
        T = h.shape[0]
        z, xbc, dt = self.in_proj(h).split([self.I, self.conv_dim, self.nh], -1)
        # Causal: k−1 zeros before the first token.
        xbc = F.silu(F.conv1d(F.pad(xbc.T[None], (self.k - 1, 0)), self.conv1d.weight, self.conv1d.bias, groups=self.conv_dim)[0].T)
        x, B, C = xbc.split([self.I, self.ng * self.N, self.ng * self.N], -1)
        dt = F.softplus(dt + self.dt_bias)
        self.dts.append(dt.detach())
        dt = dt.clamp(self.limit[0], self.limit[1])
        A = -torch.exp(self.A_log)
        x = x.reshape(T, self.nh, self.hd)
        B = B.reshape(T, self.ng, self.N).repeat_interleave(self.nh // self.ng, 1)
        C = C.reshape(T, self.ng, self.N).repeat_interleave(self.nh // self.ng, 1)
        s = torch.zeros(self.nh, self.hd, self.N, dtype=h.dtype)
        ys = []
        for t in range(T):
            s = s * torch.exp(dt[t] * A)[:, None, None] + (dt[t, :, None] * x[t])[:, :, None] * B[t][:, None, :]
            ys.append((s * C[t][:, None, :]).sum(-1) + self.D[:, None] * x[t])
        y = torch.stack(ys).reshape(T, self.I) * F.silu(z)
        g = y.reshape(T, self.ng, self.I // self.ng)
        y = (g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + self.eps)).reshape(T, self.I) * self.norm.weight
        return self.out_proj(y)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        H, self.nq, self.nkv, self.hd = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        self.q_proj = nn.Linear(H, self.nq * self.hd, bias=False)
        self.k_proj = nn.Linear(H, self.nkv * self.hd, bias=False)
        self.v_proj = nn.Linear(H, self.nkv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.nq * self.hd, H, bias=False)

    def forward(self, h):
        T = h.shape[0]
        q = self.q_proj(h).reshape(T, self.nq, self.hd).transpose(0, 1)
        k = self.k_proj(h).reshape(T, self.nkv, self.hd).transpose(0, 1).repeat_interleave(self.nq // self.nkv, 0)
        v = self.v_proj(h).reshape(T, self.nkv, self.hd).transpose(0, 1).repeat_interleave(self.nq // self.nkv, 0)
        s = q @ k.transpose(1, 2) / math.sqrt(self.hd)
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        return self.o_proj((s.softmax(-1) @ v).transpose(0, 1).reshape(T, self.nq * self.hd))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.up_proj = nn.Linear(c["hidden_size"], c["intermediate_size"], bias=False)
        self.down_proj = nn.Linear(c["intermediate_size"], c["hidden_size"], bias=False)

    def forward(self, h):
        return self.down_proj(F.relu(self.up_proj(h)).pow(2))


class Block(nn.Module):
    def __init__(self, c, kind):
        super().__init__()
        self.norm = RMSNorm(c["hidden_size"], c["layer_norm_epsilon"])
        self.mixer = {"M": Mamba2, "*": Attention, "-": MLP}[kind](c)
        self.residual_in_fp32 = c["residual_in_fp32"]

    def forward(self, x):
        residual = x.float() if self.residual_in_fp32 else x
        return residual + self.mixer(self.norm(x))


class NemotronH(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.embeddings = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.backbone.layers = nn.ModuleList(Block(c, ch) for ch in c["hybrid_override_pattern"])
        self.backbone.norm_f = RMSNorm(c["hidden_size"], c["layer_norm_epsilon"])
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)

    def forward(self, ids):
        x = self.backbone.embeddings(ids)
        for layer in self.backbone.layers:
            x = layer(x)
        return self.lm_head(self.backbone.norm_f(x))


def init_(model, c, g):
    """Random weights of useful size: norms near 1, dt in the clamp's range on both sides, A_log for decays
    visible within a few chunks, linears ~ 1/√fan_in."""
    nh = c["mamba_num_heads"]
    for name, p in model.named_parameters():
        with torch.no_grad():
            r = torch.randn(p.shape, generator=g)
            if name.endswith("norm.weight") or name.endswith("norm_f.weight"):
                p.copy_(1 + 0.1 * r)
            elif name.endswith("embeddings.weight"):
                p.copy_(r)
            elif name.endswith("dt_bias"):
                dt = torch.exp(torch.rand(p.shape, generator=g) * (math.log(0.5) - math.log(0.01)) + math.log(0.01))
                p.copy_(dt + torch.log(-torch.expm1(-dt)))
            elif name.endswith("A_log"):
                p.copy_(torch.log(torch.rand(p.shape, generator=g) * 7 + 1))
            elif name.endswith(".D"):
                p.copy_(1 + 0.2 * r)
            elif name.endswith("conv1d.weight"):
                p.copy_(r / math.sqrt(c["conv_kernel"]))
            elif name.endswith("conv1d.bias"):
                p.copy_(0.2 * r)
            else:
                w = r / math.sqrt(p.shape[1])
                if name.endswith("in_proj.weight"):
                    w[-nh:] *= 0.5  # dt rows: steps spread around the clamp, not pinned to one bound
                p.copy_(w)


def run(model, ids, targets):
    for m in model.modules():
        if isinstance(m, Mamba2):
            m.dts = []
    model.zero_grad()
    logits = model(ids)
    loss = F.cross_entropy(logits, targets, ignore_index=-100)
    loss.backward()
    return loss


def check(root):
    """This model against transformers: each case of the parity fixtures (tools/reference/nemotron_h_fixtures.py,
    transformers' NemotronHForCausalLM) loaded here must give the logits transformers gave."""
    worst = 0.0
    for case in sorted(os.listdir(root)):
        d = os.path.join(root, case)
        if not os.path.isdir(d):
            continue
        with open(os.path.join(d, "config.json")) as f:
            c = json.loads(f.read().replace("Infinity", "1e999"))
        c.setdefault("time_step_limit", [0.0, float("inf")])
        model = NemotronH(c).float()
        model.load_state_dict(load_file(os.path.join(d, "model.safetensors")))
        ref = load_file(os.path.join(d, "reference.safetensors"))
        with torch.no_grad():
            got = model(ref["full_ids"])
        e = ((got - ref["logits"]).abs().max() / ref["logits"].abs().max()).item()
        print(f"{case}: logits within {e:.1e} of transformers'")
        worst = max(worst, e)
    assert worst < 1e-4, "this model does not compute what transformers' NemotronH does"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--check", metavar="DIR", help="first compare the model with transformers' (test/fixtures/nemotron_h)")
    a = p.parse_args()
    if a.check:
        check(a.check)
    torch.manual_seed(0)
    c = CONFIG
    g = torch.Generator().manual_seed(7)
    model = NemotronH(c).float()
    init_(model, c, g)
    ids = torch.randint(3, c["vocab_size"], (LENGTH + 1,), generator=g)
    inputs, targets = ids[:-1], ids[1:].clone()
    targets[:IGNORED] = -100
    loss = run(model, inputs, targets)

    lo, hi = c["time_step_limit"]
    dts = torch.cat([m.dts[0].reshape(-1) for m in model.modules() if isinstance(m, Mamba2)])
    gap = torch.minimum((dts - lo).abs() / lo, (dts - hi).abs() / hi).min().item()
    below, above = (dts < lo).sum().item(), (dts > hi).sum().item()
    assert below and above and gap > 1e-3, f"dt clamp: {below} below, {above} above, closest {gap:.2e} (pick other seeds)"

    out = {"input_ids": inputs.int(), "targets": targets.int(), "loss": loss.detach().reshape(1)}
    grads = {}
    for n, prm in model.named_parameters():
        out[f"weight.{n}"] = prm.detach().contiguous()
        grads[n] = prm.grad.detach().clone()
        out[f"grad.{n}"] = grads[n].contiguous()

    # The same in float64: how far f32 itself is from exact (the test's tolerance must exceed this).
    m64 = NemotronH(c).double()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    loss64 = run(m64, inputs, targets)
    worst = 0.0
    for n, prm in m64.named_parameters():
        scale = prm.grad.abs().max().item()
        assert scale > 0, f"{n}: zero gradient"
        worst = max(worst, (grads[n].double() - prm.grad).abs().max().item() / scale)
    print(f"loss {loss.item():.6f} (f64 {loss64.item():.6f}); {sum(p.numel() for p in model.parameters())} parameters;"
          f" dt clamped {below} below / {above} above of {dts.numel()}, closest {gap:.1e} from a bound;"
          f" f32 vs f64 gradients: {worst:.1e} of each tensor's largest")
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "nemotron_h.safetensors")
    save_file(out, path, metadata={"config": json.dumps(c), "torch": torch.__version__, "f32_vs_f64": f"{worst:.2e}"})
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
