#!/usr/bin/env python3
"""Makes the TimeViper parity fixtures (test/fixtures/timeviper/) by running the OFFICIAL TimeViper modules
(xiaomi-research/TimeViper, read from the git-ignored .ref/TimeViper/ that tools/reference/get_timeviper_ref.sh
fills) on tiny random configs, with timm's SigLIP and transformers' SiglipVisionModel beside them.

    PYTHONUNBUFFERED=1 python3 tools/reference/timeviper_fixtures.py --out $OUT/timeviper

Needs torch 2.x, timm, transformers, safetensors; runs on the CPU in float32 (a few seconds).

What is substituted, because mamba_ssm / causal_conv1d / flash_attn are not installed (docs/timeviper.md says it too):
  - `mamba_ssm.ops.triton.layernorm_gated.rmsnorm_fn` (imported unconditionally by modeling_nano.py) by a torch
    function computing mamba_ssm's reference `rms_norm_ref` (x·silu(z), then RMSNorm per group, × weight); the other
    mamba_ssm kernels are absent, so the vendored NemotronHMamba2Mixer takes its own `torch_forward` path;
  - flash_attention_2 by the vendored `NemotronHSdpaAttention` (SDPA, causal when no mask is given), with
    `NemotronHModel._update_causal_mask` returning None as it does under flash_attention_2 (the vendored sdpa path
    would keep a full-length mask after a drop);
  - `torch.cuda.default_stream` (NemotronHBlock.forward enters the device's default stream) returns None on the
    CPU, where `torch.cuda.stream(None)` is a no-op;
  - in the vendored Mamba-2 `torch_forward` (prefill), B and C are tiled over the heads with `.repeat` (head h
    reads group h mod n_groups), where the mamba_ssm kernels the official code runs give head h the group
    h // (heads / n_groups), as the vendored decode path and transformers' own fallback do: the two lines are
    patched to `.repeat_interleave` in a temporary copy (n_groups = 1 would hide it; Nano-9B has 8 groups);
  - the vendored cache's `ssm_states` / `conv_states` lists get the `.device` the torch decode path reads;
  - transformers names that modeling_nano.py imports but this transformers version lacks (docstring decorators,
    `is_*_available` probes) by no-op stand-ins; the list is written to manifest.json (`shims`).

Writes under --out (staged in a temporary folder first):
  timeviper.tar    the fixture folder; unpack with `tar -xf timeviper.tar -C test/fixtures/timeviper`
  manifest.json    what the fixtures hold and the checks made here
Fixture folder:
  siglip.safetensors      timm tower `timm.*` weights, HF tower `hf.*` weights, pixels, and their features
  siglip.json             both towers' configs and the feature block
  tome.safetensors        per case: x, merged (official merge_tokens), groups (membership [F, keep, P] from the
                          official merge functions), and the projector case's weights and output
  <case>/config.json      our TimeViper config (llm_config, vision_config, pdrop_type, merge_module, ...)
  <case>/model.safetensors  the official state-dict layout (vision_backbone.featurizer.*, projector.projector.*,
                          llm_backbone.llm.backbone.*, llm_backbone.llm.lm_head.weight, merge_modules, alpha)
  <case>/reference.safetensors  pixels, visual [T, 16, H] (projected frame tokens), input_ids, prefill_logits [V]
                          (last row), greedy_tokens [S],
                          step_logits [S, V] (prefill's last row, then each cached decode step's)
  transv/model.pth        torch.save of the same state dict (for the safe .pth reader)
  dtypes.pth              torch.save of bf16 / f16 / i64 / f32 tensors, three of them views of one storage
  dtypes.safetensors      the same tensors (contiguous copies) to compare with
"""

import argparse
import contextlib
import importlib
import importlib.util
import json
import math
import os
import re
import shutil
import sys
import tarfile
import tempfile
import traceback
import types
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

REF = Path(os.environ.get("TIMEVIPER_REF", ".ref/TimeViper"))
ERRORS = []
SHIMS = []
CHECKS = {}
WRITTEN = {}  # case → its state dict, so that a case with the same weights links to the first file
VOCAB = 320
IMAGE_ID = 310
GREEDY_STEPS = 6

# Tiny shapes. SigLIP: 30 px with 4 px patches = a 7×7 grid (the last 2 px dropped, as 384/14 drops 6).
VIT = dict(img_size=30, patch_size=4, embed_dim=64, depth=4, num_heads=4, mlp_ratio=3.7362)
# The LLM: attention blocks at 3 and 6; pdrop stages at 2 (a Mamba block, uniform) and 6 (attention-guided).
LLM = dict(
    vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=9, hybrid_override_pattern="M-M*-M*-M",
    num_attention_heads=4, head_dim=12, num_key_value_heads=2, ssm_state_size=8, mamba_num_heads=8,
    mamba_n_groups=2, mamba_head_dim=8, mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=8,
    residual_in_fp32=True, layer_norm_epsilon=1e-5, mlp_hidden_act="relu2", mamba_hidden_act="silu",
    attention_bias=False, mlp_bias=False, use_bias=False, mamba_conv_bias=True, mamba_proj_bias=False,
    tie_word_embeddings=False, pad_token_id=0, bos_token_id=1, eos_token_id=2,
)
# 64 vision tokens: the uniform stage keeps 22 (63 / 21 is an exact step, so torch's CPU and CUDA linspace
# kernels agree), the attention-guided one 16.
PDROP = "uni_2_0.34375-attn_6_0.25"
FRAMES = 4
PREFIX_IDS = [5, 17, 42, 8, 99]
SUFFIX_IDS = [23, 64, 7, 150, 3, 77, 12]
CASES = {
    "plain": dict(use_pdrop=False, pdrop_type=None, merge_module="no_merge"),
    "drop": dict(use_pdrop=True, pdrop_type=PDROP, merge_module="no_merge"),
    "transv": dict(use_pdrop=True, pdrop_type=PDROP, merge_module="CrossAttention"),
}


def step(name):
    """Runs one fixture section; a failure is recorded and the others still run."""

    def wrap(fn):
        def run(*a, **k):
            try:
                return fn(*a, **k)
            except Exception:
                ERRORS.append(f"{name}: {traceback.format_exc()}")
                print(f"FAILED {name}\n{traceback.format_exc()}", flush=True)
                return None

        return run

    return wrap


# ---- the official modules, with the substitutions above --------------------------------------------------------


def rmsnorm_fn(x, weight, bias=None, z=None, eps=1e-6, group_size=None, norm_before_gate=True, upcast=True):
    """mamba_ssm's `rms_norm_ref` (layernorm_gated.py) in torch."""
    dtype = x.dtype
    x, w = x.float(), weight.float()
    if z is not None and not norm_before_gate:
        x = x * F.silu(z.float())
    g = x.shape[-1] if group_size is None else group_size
    xg = x.reshape(*x.shape[:-1], x.shape[-1] // g, g)
    out = (xg * torch.rsqrt(xg.pow(2).mean(-1, keepdim=True) + eps)).reshape(x.shape) * w
    if bias is not None:
        out = out + bias.float()
    if z is not None and norm_before_gate:
        out = out * F.silu(z.float())
    return out.to(dtype)


def install_stubs():
    for name in ["mamba_ssm", "mamba_ssm.ops", "mamba_ssm.ops.triton"]:
        sys.modules.setdefault(name, types.ModuleType(name))
    ln = types.ModuleType("mamba_ssm.ops.triton.layernorm_gated")
    ln.rmsnorm_fn = rmsnorm_fn
    sys.modules["mamba_ssm.ops.triton.layernorm_gated"] = ln
    import transformers.utils.import_utils as iu

    for probe in ["is_mamba_2_ssm_available", "is_causal_conv1d_available", "is_flash_attn_2_available"]:
        setattr(iu, probe, lambda *a, **k: False)
    torch.cuda.default_stream = lambda *a, **k: None
    SHIMS.append("mamba_ssm.ops.triton.layernorm_gated.rmsnorm_fn (torch rms_norm_ref)")
    SHIMS.append("torch.cuda.default_stream -> None")


def shim_for(name, module):
    same = [a for a in dir(module) if a.lower() == name.lower()]  # e.g. PretrainedConfig -> PreTrainedConfig
    if same:
        return getattr(module, same[0])
    if name.startswith("is_"):
        return lambda *a, **k: False
    if "docstring" in name or name.startswith(("add_", "replace_")):
        return lambda *a, **k: (lambda f: f)
    return type(name, (), {})


def import_with_shims(modname):
    for _ in range(60):
        try:
            return importlib.import_module(modname)
        except ImportError as e:
            m = re.search(r"cannot import name '(\w+)' from '([\w.]+)'", str(e))
            if not m:
                raise
            name, src = m.groups()
            module = importlib.import_module(src)
            setattr(module, name, shim_for(name, module))
            SHIMS.append(f"{src}.{name}")
            for k in [k for k in sys.modules if k == modname or k.startswith("tv_nano.")]:
                sys.modules.pop(k)
    raise ImportError(f"{modname}: too many missing names")


def official_tome():
    spec = importlib.util.spec_from_file_location("tv_tome", REF / "timeviper/model/projector/tome.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# The vendored torch fallback tiles B and C over the heads with .repeat (head h reads group h mod G), while the
# mamba_ssm kernels the official code runs (and transformers' fixed fallback) give head h group h // (H / G).
GROUP_TILING = (
    "B = B.repeat(1, 1, self.num_heads // self.n_groups, 1)",
    "C = C.repeat(1, 1, self.num_heads // self.n_groups, 1)",
)


def patched_nano_dir():
    """A copy of the vendored nano package with the fallback's B/C head mapping made the kernels' one."""
    src = REF / "timeviper/model/llm/llm_repo/nano"
    dst = Path(tempfile.mkdtemp()) / "nano"
    shutil.copytree(src, dst)
    path = dst / "modeling_nano.py"
    text = path.read_text()
    for line in GROUP_TILING:
        if line not in text:
            raise RuntimeError(f"modeling_nano.py changed: no line {line!r} to patch")
        name = line[0]
        text = text.replace(
            line, f"{name} = {name}.repeat_interleave(self.num_heads // self.n_groups, dim=2)"
        )
    path.write_text(text)
    SHIMS.append("modeling_nano.py torch_forward: B/C .repeat over heads -> .repeat_interleave (the kernels' grouping)")
    return dst


def official_nano():
    install_stubs()
    pkg = types.ModuleType("tv_nano")
    pkg.__path__ = [str(patched_nano_dir())]
    sys.modules["tv_nano"] = pkg
    cfg = import_with_shims("tv_nano.configuration_nano")
    mn = import_with_shims("tv_nano.modeling_nano")
    mn.NEMOTRONH_ATTENTION_CLASSES["flash_attention_2"] = mn.NemotronHSdpaAttention
    mn.NemotronHModel._update_causal_mask = lambda self, *a, **k: None
    return cfg, mn


class DeviceList(list):
    """A list of per-layer states with the `.device` the vendored torch decode path reads off it (written for a
    stacked tensor; the vendored cache keeps lists)."""

    device = torch.device("cpu")


def new_cache(mn, config):
    """The vendored HybridMambaAttentionDynamicCache, its state lists given a `.device`; if this transformers'
    DynamicCache cannot be its base (its key_cache became a property), the same class source without that base.
    Both are recorded in the shims."""
    try:
        cache = mn.HybridMambaAttentionDynamicCache(config, 1, dtype=torch.float32)
    except Exception as e:
        import inspect

        src = inspect.getsource(mn.HybridMambaAttentionDynamicCache)
        src = src.replace("(DynamicCache)", "", 1).replace("super().__init__()", "pass", 1)
        src = re.sub(r"\n\s*__slots__ = .*\n", "\n", src)
        ns = dict(vars(mn))
        exec(compile(src, "HybridMambaAttentionDynamicCache", "exec"), ns)
        SHIMS.append(f"HybridMambaAttentionDynamicCache without the DynamicCache base ({type(e).__name__}: {e})")
        mn.HybridMambaAttentionDynamicCache = ns["HybridMambaAttentionDynamicCache"]
        cache = mn.HybridMambaAttentionDynamicCache(config, 1, dtype=torch.float32)
    cache.ssm_states = DeviceList(cache.ssm_states)
    cache.conv_states = DeviceList(cache.conv_states)
    note = "HybridMambaAttentionDynamicCache.{ssm,conv}_states: lists with a .device (the torch decode path reads it)"
    if note not in SHIMS:
        SHIMS.append(note)
    return cache


# ---- random weights ---------------------------------------------------------------------------------------------


def randomize(module, gen, skip=()):
    """Uniform weights scaled by fan-in, norms around 1, biases small; no value exactly 0 or 1."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if any(s in name for s in skip):
                continue
            u = torch.rand(p.shape, generator=gen) * 2 - 1
            if name.endswith("A_log"):
                v = torch.log(torch.rand(p.shape, generator=gen) * 3 + 0.5)
            elif name.endswith("dt_bias"):
                v = u * 0.5 - 1.0
            elif name.endswith(".D"):
                v = 0.5 + u * 0.3
            elif "norm" in (name.split(".")[-2] if "." in name else ""):
                v = (1 + 0.2 * u) if name.endswith("weight") else 0.1 * u
            elif p.dim() >= 2:
                v = u * (1.5 / math.sqrt(p.shape[-1] if p.dim() == 2 else p[0].numel()))
            else:
                v = 0.1 * u
            v[v == 0] = 1e-3
            p.copy_(v)


# ---- SigLIP -----------------------------------------------------------------------------------------------------


def make_vit(gen):
    import timm

    vit = timm.create_model("vit_so400m_patch14_siglip_384", pretrained=False, num_classes=0, **VIT).eval()
    randomize(vit, gen)
    with torch.no_grad():
        vit.pos_embed.mul_(20)  # position embeddings as large as the patch embeddings
    return vit


def vit_features(vit, pixels):
    """TimeViper's featurizer: get_intermediate_layers(n={len(blocks) - 2})[0], no final norm."""
    with torch.no_grad():
        return vit.get_intermediate_layers(pixels, n={len(vit.blocks) - 2})[0]


def vit_config(vit, act):
    return dict(
        hidden_size=VIT["embed_dim"], intermediate_size=vit.blocks[0].mlp.fc1.out_features,
        num_hidden_layers=VIT["depth"], num_attention_heads=VIT["num_heads"], image_size=VIT["img_size"],
        patch_size=VIT["patch_size"], num_channels=3, layer_norm_eps=1e-6, hidden_act=act,
    )


@step("siglip")
def siglip_fixture(d, gen):
    from transformers import SiglipVisionConfig, SiglipVisionModel

    vit = make_vit(gen)
    pixels = torch.rand(2, 3, VIT["img_size"], VIT["img_size"], generator=gen) * 2 - 1
    timm_feats = vit_features(vit, pixels)
    # Our own check of what the features are: blocks 0..depth-2 by hand, no final norm.
    with torch.no_grad():
        x = vit.patch_embed(pixels) + vit.pos_embed
        for blk in vit.blocks[: VIT["depth"] - 1]:
            x = blk(x)
    CHECKS["siglip_timm_by_hand"] = (x - timm_feats).abs().max().item()
    hf_cfg = SiglipVisionConfig(
        hidden_size=48, intermediate_size=80, num_hidden_layers=3, num_attention_heads=4, image_size=30,
        patch_size=4, num_channels=3, layer_norm_eps=1e-6, hidden_act="gelu_pytorch_tanh",
    )
    hf = SiglipVisionModel(hf_cfg).eval()
    randomize(hf, gen)
    with torch.no_grad():
        hf_feats = hf(pixel_values=pixels, output_hidden_states=True).hidden_states[hf_cfg.num_hidden_layers - 1]
    tensors = {f"timm.{k}": v.contiguous() for k, v in vit.state_dict().items()}
    tensors.update({f"hf.{k}": v.contiguous() for k, v in hf.state_dict().items()})
    tensors.update(pixels=pixels, timm_features=timm_feats.contiguous(), hf_features=hf_feats.contiguous())
    save_file(tensors, str(d / "siglip.safetensors"))
    hf_json = {k: getattr(hf_cfg, k) for k in vit_config(vit, "gelu")}
    (d / "siglip.json").write_text(
        json.dumps({"timm": vit_config(vit, "gelu"), "hf": hf_json, "feature_block": -2}, indent=1)
    )


# ---- ToMe and the projector -------------------------------------------------------------------------------------


def tome_groups(tome, x, keep):
    """Membership [F, keep, P] of each merged token, through the official bipartite_soft_matching rounds."""
    f, p, c = x.shape
    member = torch.eye(p).expand(f, p, p).contiguous()
    size = None
    cur = x
    mod = tome.ToMe16_mlp_hd64(c, 8)
    # the official schedule, by running merge_tokens' loop with the membership carried along
    rounds, tmp = [], p
    while tmp != keep:
        if tmp - keep <= tmp // 2:
            rounds.append(tmp - keep)
            break
        rounds.append(tmp // 2)
        tmp -= tmp // 2
    for r in rounds:
        b, n, _ = cur.shape
        metric = cur.reshape(b, n, mod.num_attention_heads, c // mod.num_attention_heads).mean(2)
        merge, _ = tome.bipartite_soft_matching(metric, r)
        cur, size = tome.merge_wavg(merge, cur, size)
        member = merge(member, mode="sum")
    return member, cur


@step("tome")
def tome_fixture(d, gen, tome):
    tensors = {}
    for case, (frames, tokens, channels, keep) in {
        "grid729": (2, 729, 160, 16),
        "even50": (3, 50, 32, 5),
    }.items():
        x = torch.randn(frames, tokens, channels, generator=gen)
        mod = tome.ToMe16_mlp_hd64(channels, 8, num_compressed_tokens=keep)
        with torch.no_grad():
            merged = mod.merge_tokens(x, target_num_token=keep, token_order="raw")
            member, again = tome_groups(tome, x, keep)
        CHECKS[f"tome_{case}_groups_reproduce"] = (again - merged).abs().max().item()
        tensors.update({f"{case}.x": x, f"{case}.merged": merged.contiguous(), f"{case}.groups": member})
    # The projector after ToMe, per frame (compress=True, local_num_frames=1), as projector_forward calls it.
    x = torch.randn(3, 49, 64, generator=gen)
    mod = tome.ToMe16_mlp_hd64(64, 40).eval()
    randomize(mod, gen)
    with torch.no_grad():
        out = mod(x, compress=True, local_num_frames=1)
    tensors.update({"projector.x": x, "projector.out": out.contiguous()})
    tensors.update({f"projector.projector.{k}": v for k, v in mod.projector.state_dict().items()})
    save_file(tensors, str(d / "tome.safetensors"))


# ---- the whole model --------------------------------------------------------------------------------------------


def llm_config_json(case):
    out = {k: v for k, v in LLM.items()}
    out.update(model_type="nemotron_h", mamba_dt_limit=[0.0, None])
    out.pop("mamba_dt_limit")
    return out


@step("models")
def model_fixtures(d, gen, tome, cfg_mod, mn):
    vit = make_vit(gen)
    proj = tome.ToMe16_mlp_hd64(VIT["embed_dim"], LLM["hidden_size"]).eval()
    randomize(proj, gen)
    pixels = torch.rand(FRAMES, 3, VIT["img_size"], VIT["img_size"], generator=gen) * 2 - 1
    with torch.no_grad():
        visual = proj(vit_features(vit, pixels), compress=True, local_num_frames=1)  # [T, 16, H]
    input_ids = torch.tensor([PREFIX_IDS + [IMAGE_ID] * FRAMES + SUFFIX_IDS])
    base_state = None
    for case, extra in CASES.items():
        config = cfg_mod.NemotronHConfig(**LLM, **extra)
        with contextlib.suppress(Exception):
            config._attn_implementation = "sdpa"
        lm = mn.NemotronHForCausalLM(config).eval()
        if base_state is None:
            randomize(lm, gen)
            base_state = {k: v.clone() for k, v in lm.state_dict().items()}
        else:
            missing, unexpected = lm.load_state_dict(base_state, strict=False)
            assert not unexpected, unexpected
            assert all("merge_modules" in k or k.endswith("alpha") for k in missing), missing
            randomize(lm, gen, skip=[k for k in base_state])
            if lm.backbone.alpha is not None:
                with torch.no_grad():
                    lm.backbone.alpha.copy_(torch.tensor([0.7, -0.45])[: lm.backbone.alpha.numel()])
        lm.set_pdrop_args(**lm.backbone.pdrop_args)
        embed = lm.backbone.embeddings
        with torch.no_grad():
            fused = torch.cat([embed(torch.tensor([PREFIX_IDS])), visual.reshape(1, -1, LLM["hidden_size"]),
                               embed(torch.tensor([SUFFIX_IDS]))], dim=1)
        n_vis = visual.shape[0] * visual.shape[1]
        pdrop = {
            "first_vision_token_positions": torch.tensor([len(PREFIX_IDS)]),
            "text_prompt_lens": [input_ids.shape[1] - FRAMES],
            "num_vision_tokens": [n_vis],
            "is_interleaved": False,
        }
        cache = new_cache(mn, config)
        steps, tokens = [], []
        with torch.no_grad():
            out = lm(inputs_embeds=fused, past_key_values=cache, use_cache=True, train_pdrop_args=pdrop)
            logits = out.logits[0, -1]
            pos = fused.shape[1]
            for _ in range(GREEDY_STEPS):
                steps.append(logits.clone())
                tok = int(logits.argmax())
                tokens.append(tok)
                out = lm(input_ids=torch.tensor([[tok]]), past_key_values=cache, use_cache=True,
                         cache_position=torch.tensor([pos]), train_pdrop_args=pdrop)
                logits = out.logits[0, -1]
                pos += 1
            # without the cache: the prefill alone, to check the cached prefill's last row
            plain = lm(inputs_embeds=fused, use_cache=False, train_pdrop_args=pdrop).logits[0, -1]
        CHECKS[f"{case}_prefill_cache_vs_none"] = (plain - steps[0]).abs().max().item()
        CHECKS[f"{case}_attention_cache_lengths"] = [
            int(cache.key_cache[i].shape[-2]) for i, c in enumerate(LLM["hybrid_override_pattern"]) if c == "*"
        ]
        state = {f"vision_backbone.featurizer.{k}": v for k, v in vit.state_dict().items()}
        state.update({f"projector.projector.{k}": v for k, v in proj.projector.state_dict().items()})
        state.update({f"llm_backbone.llm.{k}": v for k, v in lm.state_dict().items()})
        state = {k: v.contiguous() for k, v in state.items()}
        cd = d / case
        cd.mkdir()
        # A case whose weights equal an earlier one's (drop's stages have no parameters: plain's weights) links
        # to that file instead of a second copy (the tracked tree travels to the GPU machine under a size limit).
        same = next(
            (c for c, s in WRITTEN.items() if s.keys() == state.keys() and all(torch.equal(s[k], state[k]) for k in s)),
            None,
        )
        if same:
            (cd / "model.safetensors").symlink_to(Path("..") / same / "model.safetensors")
        else:
            save_file(state, str(cd / "model.safetensors"))
        WRITTEN[case] = state
        if case == "transv":
            torch.save(state, str(cd / "model.pth"))
        save_file(
            {"pixels": pixels, "visual": visual.contiguous(), "input_ids": input_ids[0], "prefill_logits": steps[0],
             "greedy_tokens": torch.tensor(tokens), "step_logits": torch.stack(steps)},
            str(cd / "reference.safetensors"),
        )
        config_json = {
            "model_type": "timeviper",
            "architectures": ["TimeViper"],
            "llm_config": llm_config_json(case),
            "vision_config": vit_config(vit, "gelu"),
            "vision_layout": "timm",
            "vision_feature_block": -2,
            "num_compressed_tokens": 16,
            "projector_hidden_act": "gelu",
            "image_token_index": IMAGE_ID,
            "use_pdrop": extra["use_pdrop"],
            "pdrop_type": extra["pdrop_type"],
            "merge_module": extra["merge_module"],
        }
        (cd / "config.json").write_text(json.dumps(config_json, indent=1))
        print(f"{case}: greedy {tokens}, caches {CHECKS[f'{case}_attention_cache_lengths']}", flush=True)


@step("pth")
def pth_fixture(d, gen):
    base = torch.randn(6, 8, generator=gen)
    tensors = {
        "bf16": torch.randn(3, 5, generator=gen).to(torch.bfloat16),
        "f16": torch.randn(4, generator=gen).to(torch.float16),
        "i64": torch.arange(-3, 9, dtype=torch.int64).reshape(3, 4),
        "f32": base,
        "f32_rows": base[2:5],  # a view: same storage, offset 16
        "f32_t": base.t(),  # a strided (transposed) view of it
        "scalar": torch.tensor(2.5),
    }
    torch.save(tensors, str(d / "dtypes.pth"))
    save_file({k: v.contiguous().clone() for k, v in tensors.items()}, str(d / "dtypes.safetensors"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp())
    try:
        gen = torch.Generator().manual_seed(20260101)
        tome = official_tome()
        siglip_fixture(stage, gen)
        tome_fixture(stage, gen, tome)
        loaded = step("import modeling_nano")(official_nano)()
        if loaded:
            model_fixtures(stage, gen, tome, *loaded)
        pth_fixture(stage, gen)
        manifest = {
            "official_commit": (REF / "COMMIT").read_text().strip() if (REF / "COMMIT").exists() else None,
            "torch": torch.__version__,
            "shims": SHIMS,
            "checks": CHECKS,
            "errors": ERRORS,
            "pdrop_type": PDROP,
            "frames": FRAMES,
        }
        try:
            import timm
            import transformers

            manifest.update(timm=timm.__version__, transformers=transformers.__version__)
        except Exception:
            pass
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=1))
        shutil.copy(stage / "manifest.json", out / "manifest.json")
        with tarfile.open(out / "timeviper.tar", "w") as tar:
            for p in sorted(stage.iterdir()):
                tar.add(p, arcname=p.name)
        print(json.dumps(manifest, indent=1))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    sys.exit(1 if ERRORS else 0)


if __name__ == "__main__":
    main()
