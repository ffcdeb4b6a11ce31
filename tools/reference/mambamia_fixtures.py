#!/usr/bin/env python3
"""Makes the MambaMia parity fixtures (test/fixtures/mambamia/): tiny random compressors run through the derivative's
own `MambaMia2Model` (naver-ai/unimambamia-av, UniMambaMia/modeling_mambamia2.py, read from the git-ignored
.ref/unimambamia-av/ that tools/reference/get_mambamia_ref.sh fills; its code is never committed here).

    /usr/bin/python3 tools/reference/mambamia_fixtures.py --out test/fixtures/mambamia            # CPU, torch 1.13
    python3 tools/reference/mambamia_fixtures.py --device cuda --out $OUT/mambamia/fixtures       # the GPU machine

What stands in for what the derivative needs and this script does not have (docs/mambamia.md, "Parity"):
  * mamba_ssm's fused `mamba_split_conv1d_scan_combined` → `split_conv1d_scan` below, the same maths written in
    torch and computed in float64: split [z | xBC | dt], depthwise causal conv1d + SiLU on xBC, dt = softplus(dt +
    dt_bias) (clamped to dt_limit when given), the exact sequential SSD recurrence h ← exp(dt·A)·h + dt·x·Bᵀ,
    y = C·h + D·x, the grouped gated RMSNorm (group size d_inner / n_groups; norm before or after the SiLU gate) and
    the optional out_proj. The other kernels the module imports (selective_state_update, causal_conv1d_*) are never
    called on this path and are stubs.
  * transformers' scaffolding the module imports (PreTrainedModel, PretrainedConfig, ACT2FN, logging, docstring
    decorators, the is_*_available probes) → minimal stand-ins, so the same code runs on torch 1.13 here and on the
    GPU machine's transformers 5 alike.
  * On a CPU, `MambaMia2Mixer.forward` (which asserts the CUDA fast path) is pointed at its `cuda_kernels_forward`;
    with --device cuda the module's own forward runs, assert included.
  * The wrapper around the stack (input_proj, one shared query after every k patches, the query slots, output_proj)
    follows audio_compressor.py's forward; it is written here because that file builds the stack with a fixed
    head_dim 64 and n_groups 1.
  * Bidirectional + gated aggregation (the paper's compressor) is not a version of the derivative: the `bi_gated`
    case builds a "v2" stack and turns each block's own v04 gated aggregation on (block.version = "v04", its
    weight_fc / gate_fc added), so both halves are the derivative's code.
  * The secondary sampling s is not in the derivative: the sampled case applies docs/mambamia.md's rule here.

Per case <name>/: config.json (our compressor keys), model.safetensors (the derivative's parameter names, without
the empty `model.embeddings.weight` table), reference.safetensors (features [frames, patches, input_size] and
output [tokens, output_size], f32). manifest.json lists the cases and the derivative's error for a sequence that is
not whole groups of k + 1.
"""

import argparse
import json
import math
import os
import struct
import sys
import types

import torch
import torch.nn.functional as F
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REF = os.path.join(ROOT, ".ref", "unimambamia-av", "UniMambaMia")


# ---- the stand-in for mamba_ssm's fused kernel --------------------------------------------------------------------


def split_conv1d_scan(zxbcdt, conv1d_weight, conv1d_bias, dt_bias, A, D, chunk_size, initial_states=None,
                      seq_idx=None, dt_limit=(0.0, float("inf")), return_final_states=False, activation="silu",
                      rmsnorm_weight=None, rmsnorm_eps=1e-6, outproj_weight=None, outproj_bias=None, headdim=None,
                      ngroups=1, norm_before_gate=True):
    """mamba_split_conv1d_scan_combined's maths in float64 (sequential scan; chunk_size does not change the result)."""
    assert initial_states is None and seq_idx is None and not return_final_states and activation in ("silu", "swish")
    dtype = zxbcdt.dtype
    u = zxbcdt.double()
    batch, seqlen, _ = u.shape
    nheads = D.shape[0]
    dim = nheads * headdim
    conv_dim = conv1d_weight.shape[0]
    dstate = (conv_dim - dim) // (2 * ngroups)
    assert u.shape[-1] == 2 * dim + 2 * ngroups * dstate + nheads, "d_nonssm parts are not used by MambaMia2"
    z, xbc, dt = torch.split(u, [dim, conv_dim, nheads], dim=-1)
    k = conv1d_weight.shape[-1]
    xbc = F.conv1d(xbc.transpose(1, 2), conv1d_weight.double().unsqueeze(1),
                   None if conv1d_bias is None else conv1d_bias.double(), padding=k - 1, groups=conv_dim)
    xbc = F.silu(xbc[..., :seqlen].transpose(1, 2))
    x, B, C = torch.split(xbc, [dim, ngroups * dstate, ngroups * dstate], dim=-1)
    dt = F.softplus(dt + dt_bias.double())
    if tuple(dt_limit) != (0.0, float("inf")):
        dt = dt.clamp(min=dt_limit[0], max=dt_limit[1])
    x = x.reshape(batch, seqlen, nheads, headdim)
    rep = nheads // ngroups
    B = B.reshape(batch, seqlen, ngroups, dstate).repeat_interleave(rep, dim=2)
    C = C.reshape(batch, seqlen, ngroups, dstate).repeat_interleave(rep, dim=2)
    A = A.double()
    h = torch.zeros(batch, nheads, headdim, dstate, dtype=torch.float64, device=u.device)
    ys = []
    for t in range(seqlen):
        dA = torch.exp(dt[:, t] * A)  # [batch, heads]
        h = h * dA[:, :, None, None] + (dt[:, t, :, None] * x[:, t])[..., None] * B[:, t, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", h, C[:, t]) + D.double()[None, :, None] * x[:, t])
    y = torch.stack(ys, dim=1).reshape(batch, seqlen, dim)
    if rmsnorm_weight is not None:
        gate = F.silu(z)
        if not norm_before_gate:
            y = y * gate
        g = y.reshape(batch, seqlen, ngroups, dim // ngroups)
        g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + rmsnorm_eps)
        y = g.reshape(batch, seqlen, dim) * rmsnorm_weight.double()
        if norm_before_gate:
            y = y * gate
    else:
        y = y * F.silu(z)
    if outproj_weight is not None:
        y = F.linear(y, outproj_weight.double(), None if outproj_bias is None else outproj_bias.double())
    return y.to(dtype)


def _unused_kernel(*_a, **_k):
    raise RuntimeError("this mamba_ssm / causal_conv1d kernel is not on MambaMia2's no-cache path")


# ---- stand-ins for transformers' scaffolding -------------------------------------------------------------------------


class _Logger:
    def warning_once(self, *_a, **_k):
        pass

    warning = info = warning_once


class _PretrainedConfig:
    def __init__(self, **kwargs):
        self.output_hidden_states = False
        self.use_return_dict = False
        for key, value in kwargs.items():
            setattr(self, key, value)


class _PreTrainedModel(nn.Module):
    def __init__(self, config, *_a, **_k):
        super().__init__()
        self.config = config

    def post_init(self):
        pass


def _identity_decorator(*_a, **_k):
    return lambda f: f


def _module(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m


def install_stand_ins():
    _module("transformers", PretrainedConfig=_PretrainedConfig, PreTrainedModel=_PreTrainedModel)
    _module("transformers.activations", ACT2FN={"silu": nn.SiLU()})
    _module("transformers.modeling_utils", PreTrainedModel=_PreTrainedModel)
    _module("transformers.configuration_utils", PretrainedConfig=_PretrainedConfig)
    _module("transformers.utils", ModelOutput=object, logging=types.SimpleNamespace(get_logger=lambda _n: _Logger()),
            add_code_sample_docstrings=_identity_decorator, add_start_docstrings=_identity_decorator,
            add_start_docstrings_to_model_forward=_identity_decorator)
    _module("transformers.utils.import_utils", is_causal_conv1d_available=lambda: True,
            is_mamba_2_ssm_available=lambda: True)
    for name in ("mamba_ssm", "mamba_ssm.ops", "mamba_ssm.ops.triton"):
        _module(name)
    _module("mamba_ssm.ops.triton.selective_state_update", selective_state_update=_unused_kernel)
    _module("mamba_ssm.ops.triton.ssd_combined", mamba_chunk_scan_combined=_unused_kernel,
            mamba_split_conv1d_scan_combined=split_conv1d_scan)
    _module("causal_conv1d", causal_conv1d_fn=_unused_kernel, causal_conv1d_update=_unused_kernel)
    try:
        import einops  # noqa: F401
    except ImportError:
        _module("einops", rearrange=_unused_kernel)


def import_derivative(device):
    if not os.path.exists(os.path.join(REF, "modeling_mambamia2.py")):
        sys.exit(f"mambamia_fixtures: {REF} has no modeling_mambamia2.py; run tools/reference/get_mambamia_ref.sh")
    install_stand_ins()
    sys.path.insert(0, REF)
    import configuration_mambamia2
    import modeling_mambamia2

    if device == "cpu":
        modeling_mambamia2.MambaMia2Mixer.forward = modeling_mambamia2.MambaMia2Mixer.cuda_kernels_forward
    return configuration_mambamia2.MambaMia2Config, modeling_mambamia2


# ---- the cases -------------------------------------------------------------------------------------------------------

# Tiny sizes: 6 heads of 8 in 2 groups (grouped norm), d_state 8, SSD chunk 7 (our scan then sees partial chunks),
# input/output widths unlike hidden (both projections present), k = 4.
BASE = dict(input_size=20, output_size=28, hidden_size=24, num_hidden_layers=2, expand=2, num_heads=6, head_dim=8,
            state_size=8, n_groups=2, conv_kernel=4, use_bias=False, use_conv_bias=True, norm_before_gate=True,
            chunk_size=7, layer_norm_epsilon=1e-5, mambamia_chunk_size=4)

CASES = {
    # name: (our config keys over BASE, frames, patches per frame)
    "uni": (dict(version="v0"), 3, 8),
    "uni_gated": (dict(version="v04"), 3, 8),
    "bi": (dict(version="v2"), 3, 8),
    "bi_gated": (dict(version="v2", mambamia_gated_aggregation=True), 3, 8),
    "bi_gated_sampled": (dict(version="v2", mambamia_gated_aggregation=True, mambamia_frame_sampling=0.5,
                              mambamia_frame_sampling_keep="last", use_bias=True, norm_before_gate=False), 5, 4),
}


def kept_frames(frames, s, keep):
    """docs/mambamia.md's rule, written independently of src/models/mambamia/sampling.ts."""
    if keep == "last":
        return [i for i in range(frames) if math.floor((i + 1) * s + 1e-9) > math.floor(i * s + 1e-9)]
    return [i for i in range(frames) if math.ceil((i + 1) * s - 1e-9) > math.ceil(i * s - 1e-9)]


def build(MambaMia2Config, mm, cfg, seed):
    torch.manual_seed(seed)
    version = cfg["version"]
    gated = cfg.get("mambamia_gated_aggregation", version == "v04")
    c = MambaMia2Config(vocab_size=0, hidden_size=cfg["hidden_size"], num_hidden_layers=cfg["num_hidden_layers"],
                        head_dim=cfg["head_dim"], num_heads=cfg["num_heads"], n_groups=cfg["n_groups"],
                        expand=cfg["expand"], state_size=cfg["state_size"], conv_kernel=cfg["conv_kernel"],
                        use_bias=cfg["use_bias"], use_conv_bias=cfg["use_conv_bias"],
                        norm_before_gate=cfg["norm_before_gate"], chunk_size=cfg["chunk_size"],
                        layer_norm_epsilon=cfg["layer_norm_epsilon"], use_cache=False, version=version,
                        mambamia_chunk_size=cfg["mambamia_chunk_size"], residual_in_fp32=False)
    model = mm.MambaMia2Model(c)
    if gated and version != "v04":
        for block in model.layers:  # the derivative's own v04 aggregation over its v2 mixer
            block.version = "v04"
            block.drop = nn.Dropout(p=0.1)
            block.weight_fc = nn.Linear(c.hidden_size, c.mambamia_chunk_size)
            block.gate_fc = nn.Linear(c.hidden_size, 1)
    h = cfg["hidden_size"]
    wrapper = nn.Module()
    wrapper.model = model
    wrapper.query_token = nn.Parameter(torch.randn(h) / math.sqrt(h))
    wrapper.input_proj = nn.Linear(cfg["input_size"], h)
    wrapper.output_proj = nn.Linear(h, cfg["output_size"])
    with torch.no_grad():  # random values everywhere, none exactly 0 or 1
        for name, p in wrapper.named_parameters():
            if p.numel() == 0:
                continue
            if name.endswith("A_log") or name.endswith("A_b_log"):
                p.copy_(torch.log(torch.rand_like(p) * 3 + 0.5))
            elif name.endswith("dt_bias") or name.endswith("dt_bias_b"):
                p.copy_(torch.rand_like(p) * 2 - 2.5)
            elif name.endswith("norm.weight") or name.endswith("norm_b.weight") or name.endswith("norm_f.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif p.dim() >= 2:
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[-1]))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    wrapper.eval()
    return wrapper


def compress(wrapper, features, k):
    """audio_compressor.py's forward over [frames·patches / k, k, input] blocks (see the module docstring)."""
    frames, patches, width = features.shape
    blocks = features.reshape(-1, k, width)
    n = blocks.shape[0]
    hidden = wrapper.input_proj(blocks)
    queries = wrapper.query_token.view(1, 1, -1).expand(n, 1, -1)
    hidden = torch.cat([hidden, queries], dim=1).reshape(1, -1, hidden.size(-1))
    out = wrapper.model(inputs_embeds=hidden)
    hidden = (out[0] if isinstance(out, tuple) else out.last_hidden_state).squeeze(0)
    return hidden.view(n, k + 1, -1)[:, k, :]


def write_safetensors(path, tensors):
    header, blobs, at = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [at, at + len(data)]}
        blobs.append(data)
        at += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    MambaMia2Config, mm = import_derivative(args.device)
    torch.set_grad_enabled(False)
    manifest = {"source": "naver-ai/unimambamia-av UniMambaMia/modeling_mambamia2.py", "torch": torch.__version__,
                "device": args.device, "cases": {}}
    for seed, (name, (over, frames, patches)) in enumerate(CASES.items()):
        cfg = {**BASE, **over}
        k = cfg["mambamia_chunk_size"]
        wrapper = build(MambaMia2Config, mm, cfg, 1000 + seed).to(args.device)
        features = torch.randn(frames, patches, cfg["input_size"]).to(args.device)  # the CPU generator on any device
        out = compress(wrapper, features, k)
        s = cfg.get("mambamia_frame_sampling", 1)
        if s < 1:
            per = patches // k
            rows = [f * per + j for f in kept_frames(frames, s, cfg["mambamia_frame_sampling_keep"]) for j in range(per)]
            out = out[rows]
        out = wrapper.output_proj(out)
        folder = os.path.join(args.out, name)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        params = {n: p for n, p in wrapper.state_dict().items() if n != "model.embeddings.weight"}
        write_safetensors(os.path.join(folder, "model.safetensors"), params)
        write_safetensors(os.path.join(folder, "reference.safetensors"), {"features": features, "output": out})
        manifest["cases"][name] = {"frames": frames, "patches": patches, "tokens": out.shape[0],
                                   "parameters": sum(p.numel() for p in params.values())}
        print(f"{name}: {frames}×{patches} patches → {list(out.shape)}, max |out| {out.abs().max().item():.4f}")
    # The derivative's own refusal of a sequence that is not whole groups of k + 1 (its v04 block).
    wrapper = build(MambaMia2Config, mm, {**BASE, "version": "v04"}, 7).to(args.device)
    try:
        wrapper.model(inputs_embeds=torch.randn(1, 2 * (BASE["mambamia_chunk_size"] + 1) + 3, BASE["hidden_size"]).to(
            args.device))
        manifest["bad_length_error"] = None
    except ValueError as e:
        manifest["bad_length_error"] = str(e)
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    print("bad length:", manifest["bad_length_error"])


if __name__ == "__main__":
    main()
