"""A PyTorch reference of Vamba (research/vamba.md §2), for parity fixtures.

Built from Hugging Face transformers' own modules where they exist — the Qwen2-VL vision tower and merger,
Qwen2-VL's text attention / MLP / RMSNorm / rotary tables, and Mamba2Mixer (torch path, configured like
mamba_ssm: n_groups, gate before norm, eps 1e-5) — and written equation by equation where they do not: the
two-stream layer wiring, the cross-attention, α mixing.

Every transformers module used here is also checked at run time against a plain float64 transcription of
the same equations (`*_equations` below), so a transformers API change cannot silently produce a fixture
from a wrong configuration: `Vamba.report` lists which path produced each piece and how far the two were.
Runs on CPU in float32 (no CUDA kernels involved).
"""

import inspect
import math

import torch
import torch.nn.functional as F
from torch import nn

try:
    from transformers.models.mamba2 import modeling_mamba2 as hm
    from transformers.models.mamba2.configuration_mamba2 import Mamba2Config
    from transformers.models.qwen2_vl import configuration_qwen2_vl as cq
    from transformers.models.qwen2_vl import modeling_qwen2_vl as hq
except ImportError:  # only to exercise the equation paths without transformers; fixtures need it
    hm = Mamba2Config = cq = hq = None


def rel_err(a, b):
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


# ---- plain equations (float64) ------------------------------------------------------------------------


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope_tables(positions3, head_dim, theta, mrope_section):
    """cos/sin [L, head_dim] for M-RoPE: positions3 [3, L] (t, h, w); frequency band i reads row i % 3."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    rows = positions3.double()[:, :, None] * inv_freq[None, None, :]  # [3, L, D/2]
    emb = torch.cat((rows, rows), dim=-1)  # [3, L, D]
    sections = list(mrope_section) * 2
    parts = emb.split(sections, dim=-1)
    picked = torch.cat([p[i % 3] for i, p in enumerate(parts)], dim=-1)
    return picked.cos(), picked.sin()


def apply_rope(x, cos, sin):
    """x [heads, L, D], cos/sin [L, D]."""
    return x * cos[None] + rotate_half(x) * sin[None]


def rms_norm_equations(x, w, eps):
    x = x.double()
    return w.double() * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def attention_equations(q, k, v, causal):
    """q [hq, Lq, D], k/v [hkv, Lk, D] → [Lq, hq·D]."""
    rep = q.shape[0] // k.shape[0]
    k = k.repeat_interleave(rep, 0)
    v = v.repeat_interleave(rep, 0)
    w = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])
    if causal:
        L = q.shape[1]
        w = w.masked_fill(torch.triu(torch.ones(L, L, dtype=torch.bool), 1), float("-inf"))
    return (w.softmax(-1) @ v).transpose(0, 1).reshape(q.shape[1], -1)


def mamba2_mixer_equations(p, u, m):
    """The mamba_ssm Mamba2 mixer as a sequential recurrence (float64). p: parameter dict (mixer names),
    u [L, d_model], m: mixer config dict."""
    u = u.double()
    p = {k: v.double() for k, v in p.items()}
    d_ssm, ng, N, nh = m["d_inner"], m["ngroups"], m["d_state"], m["nheads"]
    P = d_ssm // nh
    L = u.shape[0]
    zxbcdt = u @ p["in_proj.weight"].T
    z, xBC, dt = zxbcdt.split([d_ssm, d_ssm + 2 * ng * N, nh], dim=-1)
    k = p["conv1d.weight"].shape[-1]
    w = p["conv1d.weight"][:, 0, :]  # [C, k]
    padded = torch.cat([torch.zeros(k - 1, xBC.shape[1], dtype=xBC.dtype), xBC], 0)
    conv = torch.stack([(padded[t : t + k].T * w).sum(-1) for t in range(L)]) + p["conv1d.bias"]
    xBC = F.silu(conv)
    x, B, C = xBC.split([d_ssm, ng * N, ng * N], dim=-1)
    x = x.view(L, nh, P)
    B = B.view(L, ng, N).repeat_interleave(nh // ng, 1)
    C = C.view(L, ng, N).repeat_interleave(nh // ng, 1)
    dt = F.softplus(dt + p["dt_bias"])
    A = -torch.exp(p["A_log"])
    state = torch.zeros(nh, P, N, dtype=torch.float64)
    ys = []
    for t in range(L):
        decay = torch.exp(dt[t] * A)[:, None, None]
        state = decay * state + dt[t][:, None, None] * x[t][:, :, None] * B[t][:, None, :]
        ys.append((state * C[t][:, None, :]).sum(-1) + p["D"][:, None] * x[t])
    y = torch.stack(ys).reshape(L, d_ssm)
    g = (y * F.silu(z)).view(L, ng, d_ssm // ng)
    g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + 1e-5)
    return (g.reshape(L, d_ssm) * p["norm.weight"]) @ p["out_proj.weight"].T


# ---- transformers' Mamba2Mixer configured as mamba_ssm --------------------------------------------------


class GroupedGatedRMSNorm(nn.Module):
    """mamba_ssm's RMSNormGated(norm_before_gate=False, group_size=d_ssm // ngroups): rms(y·silu(z)) per group."""

    def __init__(self, weight, group_size, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone())
        self.group_size = group_size
        self.eps = eps

    def forward(self, y, gate=None):
        dtype = y.dtype
        y = y.float()
        if gate is not None:
            y = y * F.silu(gate.float())
        g = y.unflatten(-1, (-1, self.group_size))
        g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * g.flatten(-2).to(dtype)


def hf_mamba2_mixer(m, params):
    """transformers' Mamba2Mixer with the given mixer parameters (mamba_ssm names). Returns (mixer, note)."""
    cfg = Mamba2Config(
        num_heads=m["nheads"],
        head_dim=m["d_inner"] // m["nheads"],
        hidden_size=m["d_model"],
        state_size=m["d_state"],
        expand=m["d_inner"] // m["d_model"],
        n_groups=m["ngroups"],
        conv_kernel=m["d_conv"],
        chunk_size=m["chunk_size"],
        use_conv_bias=True,
        use_bias=False,
        layer_norm_epsilon=1e-5,
        rms_norm=True,
        time_step_limit=(0.0, float("inf")),
        hidden_act="silu",
        vocab_size=16,
        num_hidden_layers=1,
    )
    mixer = hm.Mamba2Mixer(cfg, layer_idx=0)
    mixer.load_state_dict({k: v.float() for k, v in params.items()}, strict=True)
    mixer.eval()
    # transformers' gated norm may normalise over the whole d_ssm; mamba_ssm normalises per group.
    note = "transformers gated norm"
    y = torch.randn(1, 3, m["d_inner"])
    z = torch.randn(1, 3, m["d_inner"])
    ref = GroupedGatedRMSNorm(mixer.norm.weight, m["d_inner"] // m["ngroups"])
    with torch.no_grad():
        if rel_err(mixer.norm(y, z), ref(y, z)) > 1e-5:
            mixer.norm = ref
            note = "transformers gated norm is not grouped: replaced by mamba_ssm's grouped RMSNormGated"
    return mixer, note


def run_mixer(mixer, u):
    """u [1, L, d] float32 → [1, L, d] through transformers' torch path (CPU tensors: no CUDA kernels)."""
    with torch.no_grad():
        if hasattr(mixer, "torch_forward"):
            return mixer.torch_forward(u)
        out = mixer(u)
        return out[0] if isinstance(out, tuple) else out


def mixer_reference(m, params, u):
    """(output [1, L, d], note, rel err vs the recurrence): transformers' mixer when it runs, else the recurrence."""
    eq = mamba2_mixer_equations(params, u[0], m)[None]
    try:
        mixer, note = hf_mamba2_mixer(m, params)
        y = run_mixer(mixer, u)
        err = rel_err(y, eq)
        if err > 1e-3:
            return eq.float(), f"{note}; transformers DISAGREES (rel err {err:.2e}): the recurrence is the reference", err
        return y.float(), note, err
    except Exception as e:  # noqa: BLE001
        sig = ""
        if hm is not None:
            try:
                sig = f"; Mamba2Mixer methods {[k for k in dir(hm.Mamba2Mixer) if 'forward' in k]}"
                sig += f", forward{inspect.signature(hm.Mamba2Mixer.forward)}"
            except Exception:  # noqa: BLE001
                pass
        return eq.float(), f"transformers Mamba2Mixer failed ({e!r}{sig}): the recurrence is the reference", 0.0


def vision_equations(sd, c, pixel_values, grid_thw):
    """The Qwen2-VL vision tower + merger (research/vamba.md §1.1) in float64."""
    v = c["vision_config"]
    E, nh, ms = v["embed_dim"], v["num_heads"], v["spatial_merge_size"]
    hd = E // nh
    g = lambda n: sd["visual." + n].double()  # noqa: E731
    x = pixel_values.double() @ g("patch_embed.proj.weight").reshape(E, -1).T
    t, h, w = [int(a) for a in grid_thw[0]]
    hpos = torch.arange(h)[:, None].expand(h, w)
    wpos = torch.arange(w)[None, :].expand(h, w)
    order = lambda p: p.reshape(h // ms, ms, w // ms, ms).permute(0, 2, 1, 3).flatten()  # noqa: E731
    pos = torch.stack([order(hpos), order(wpos)], -1).repeat(t, 1).double()  # [N, 2]
    inv = 1.0 / (10000 ** (torch.arange(0, hd // 2, 2, dtype=torch.float64) / (hd // 2)))
    freqs = (pos[:, :, None] * inv).reshape(pos.shape[0], -1)
    emb = torch.cat([freqs, freqs], -1)
    cos, sin = emb.cos()[:, None], emb.sin()[:, None]
    N = x.shape[0]
    seg = h * w
    ln = lambda y, n: F.layer_norm(y, (E,), g(n + ".weight"), g(n + ".bias"), 1e-6)  # noqa: E731
    for b in range(v["depth"]):
        p = f"blocks.{b}."
        y = ln(x, p + "norm1")
        qkv = (y @ g(p + "attn.qkv.weight").T + g(p + "attn.qkv.bias")).reshape(N, 3, nh, hd)
        q, k, vv = qkv[:, 0], qkv[:, 1], qkv[:, 2]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        outs = []
        for s0 in range(0, N, seg):
            qs, ks, vs = (a[s0 : s0 + seg].transpose(0, 1) for a in (q, k, vv))
            outs.append(attention_equations(qs, ks, vs, causal=False))
        x = x + torch.cat(outs) @ g(p + "attn.proj.weight").T + g(p + "attn.proj.bias")
        y = ln(x, p + "norm2") @ g(p + "mlp.fc1.weight").T + g(p + "mlp.fc1.bias")
        y = y * torch.sigmoid(1.702 * y)
        x = x + y @ g(p + "mlp.fc2.weight").T + g(p + "mlp.fc2.bias")
    y = ln(x, "merger.ln_q").reshape(-1, E * ms * ms)
    y = F.gelu(y @ g("merger.mlp.0.weight").T + g("merger.mlp.0.bias"))
    return y @ g("merger.mlp.2.weight").T + g("merger.mlp.2.bias")


# ---- the Vamba model ----------------------------------------------------------------------------------


def text_config(c):
    kw = dict(
        vocab_size=c["vocab_size"],
        hidden_size=c["hidden_size"],
        intermediate_size=c["intermediate_size"],
        num_hidden_layers=c["num_hidden_layers"],
        num_attention_heads=c["num_attention_heads"],
        num_key_value_heads=c["num_key_value_heads"],
        rms_norm_eps=c["rms_norm_eps"],
        max_position_embeddings=c["max_position_embeddings"],
        hidden_act="silu",
        attention_dropout=0.0,
        use_sliding_window=False,
        tie_word_embeddings=False,
    )
    sec = c["rope_scaling"]["mrope_section"]
    try:
        tc = cq.Qwen2VLTextConfig(
            **kw,
            rope_parameters={"rope_type": "default", "rope_theta": c["rope_theta"], "mrope_section": sec},
        )
    except TypeError:
        tc = cq.Qwen2VLTextConfig(**kw, rope_theta=c["rope_theta"], rope_scaling={"type": "mrope", "mrope_section": sec})
    tc._attn_implementation = "eager"
    return tc


def vision_config(c):
    v = c["vision_config"]
    vc = cq.Qwen2VLVisionConfig(
        depth=v["depth"],
        embed_dim=v["embed_dim"],
        hidden_size=c["hidden_size"],
        num_heads=v["num_heads"],
        mlp_ratio=v["mlp_ratio"],
        patch_size=v["patch_size"],
        temporal_patch_size=v["temporal_patch_size"],
        spatial_merge_size=v["spatial_merge_size"],
        in_channels=v["in_channels"],
        hidden_act="quick_gelu",
    )
    vc._attn_implementation = "eager"
    return vc


def mixer_dims(c):
    m = c["vision_mamba_mixer_config"]
    d_inner = m["expand"] * c["hidden_size"]
    return dict(
        d_model=c["hidden_size"],
        d_inner=d_inner,
        d_state=m["d_state"],
        d_conv=m["d_conv"],
        ngroups=m["ngroups"],
        nheads=d_inner // m["headdim"],
        chunk_size=m["chunk_size"],
    )


def sub(sd, prefix):
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def vision_outputs(out, n_tokens, hidden):
    """The merger output [n_tokens, hidden] from whatever the vision tower returns."""
    cands = [out] if torch.is_tensor(out) else [v for v in (out.values() if hasattr(out, "values") else out) if torch.is_tensor(v)]
    for t in cands:
        t2 = t.reshape(-1, t.shape[-1])
        if t2.shape == (n_tokens, hidden):
            return t2
    raise RuntimeError(f"vision tower returned no [{n_tokens}, {hidden}] tensor: {[tuple(t.shape) for t in cands]}")


class Vamba:
    """Holds the weights (official names) and runs the reference forward. Each piece is computed by the
    transformers module when it runs and checked against the equations (`worst`); when a transformers
    module cannot be built or called, the equations stand in and `report` says so."""

    def __init__(self, config, state_dict):
        self.c = c = config
        self.sd = {k: v.float() for k, v in state_dict.items()}
        self.report = {}
        self.worst = {}
        self.H = c["hidden_size"]
        self.nh = c["num_attention_heads"]
        self.nkv = c["num_key_value_heads"]
        self.hd = self.H // self.nh
        self.n_layers = c["num_hidden_layers"]
        self.sec = c["rope_scaling"]["mrope_section"]
        self.theta = c["rope_theta"]
        self.eps = c["rms_norm_eps"]
        self.use_alpha = c["use_alpha_balancing"]
        self.use_pos = c["cross_attn_use_position_embeddings"]
        self.use_ln = c["cross_attn_use_layer_norm"]
        self.m = mixer_dims(c)
        self.visual = self._build("vision tower", self._build_visual)
        tc = self._build("text config", lambda: text_config(c))
        self.rotary = self._build("rotary", lambda: hq.Qwen2VLRotaryEmbedding(config=tc))
        self.layers = [
            {k: self._build(f"{k}", lambda k=k, i=i: self._build_piece(k, i, tc)) for k in ("attn", "mlp", "ln_in", "ln_post", "vnorm", "mixer")}
            for i in range(self.n_layers)
        ]

    def _build(self, what, fn):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001
            self.report[what] = f"transformers module unavailable ({e!r}): equations used"
            return None

    def _build_visual(self):
        vis = hq.Qwen2VisionTransformerPretrainedModel(vision_config(self.c))
        vis.load_state_dict(sub(self.sd, "visual."), strict=True)
        return vis.eval()

    def _build_piece(self, kind, i, tc):
        p = f"model.layers.{i}."

        def loaded(mod, prefix):
            r = mod.load_state_dict(sub(self.sd, p + prefix), strict=False)
            if r.missing_keys or r.unexpected_keys:
                raise RuntimeError(f"{type(mod).__name__} weights do not fit: {r}")
            return mod.eval()

        if kind == "attn":
            return loaded(hq.Qwen2VLAttention(tc, layer_idx=i), "self_attn.")
        if kind == "mlp":
            mlp_cls = getattr(hq, "Qwen2MLP", None)
            if mlp_cls is None:
                from transformers.models.qwen2.modeling_qwen2 import Qwen2MLP as mlp_cls
            return loaded(mlp_cls(tc), "mlp.")
        # transformers 5.17 no longer defines Qwen2RMSNorm in the Qwen2-VL module (the committed fixtures used
        # the equations for the RMSNorms); take it from Qwen2, its origin.
        rms_cls = getattr(hq, "Qwen2RMSNorm", None)
        if rms_cls is None:
            from transformers.models.qwen2.modeling_qwen2 import Qwen2RMSNorm as rms_cls
        if kind == "ln_in":
            return loaded(rms_cls(self.H, eps=self.eps), "input_layernorm.")
        if kind == "ln_post":
            return loaded(rms_cls(self.H, eps=self.eps), "post_attention_layernorm.")
        if kind == "vnorm":  # mamba_ssm RMSNorm: the same math, default eps 1e-5
            return loaded(rms_cls(self.H, eps=1e-5), "vision_mixer.norm.")
        mixer, note = hf_mamba2_mixer(self.m, sub(self.sd, p + "vision_mixer.mixer."))
        self.report["mixer_norm"] = note
        return mixer

    def _pick(self, what, eq, hf_fn):
        """The transformers result (checked against eq) when it runs, else eq."""
        if hf_fn is not None:
            try:
                with torch.no_grad():
                    out = hf_fn()
                out = out.reshape(eq.shape)
                err = rel_err(out, eq)
                self.worst[what] = max(self.worst.get(what, 0.0), err)
                if err <= 1e-3:
                    return out.float()
                self.report[what] = f"transformers DISAGREES with the equations (rel err {err:.2e}): equations used"
            except Exception as e:  # noqa: BLE001
                self.report[what] = f"transformers call failed ({e!r}): equations used"
        return eq.float()

    def _hf(self, mod, fn):
        return None if mod is None else fn

    # -- pieces ------------------------------------------------------------------------------------------

    def tables(self, positions3):
        """(transformers' raw cos/sin or None, cos [L, hd], sin [L, hd]) for positions3 [3, L]."""
        cos_e, sin_e = rope_tables(positions3, self.hd, self.theta, self.sec)
        raw = None
        if self.rotary is not None:
            try:
                x = torch.zeros(1, positions3.shape[1], self.H)
                raw = self.rotary(x, positions3[:, None, :])
            except Exception as e:  # noqa: BLE001
                self.report["rotary"] = f"transformers rotary failed ({e!r}): equations used"

        def picked(t):
            if t.dim() == 4:  # [3, 1, L, D]: pick the sections as apply_multimodal_rotary_pos_emb does
                parts = t[:, 0].split(list(self.sec) * 2, dim=-1)
                return torch.cat([q[i % 3] for i, q in enumerate(parts)], -1)
            return t.reshape(-1, self.hd)

        cos = self._pick("rotary", cos_e, None if raw is None else lambda: picked(raw[0]))
        sin = self._pick("rotary", sin_e, None if raw is None else lambda: picked(raw[1]))
        return raw, cos, sin

    def rms(self, mod, x, weight_name, eps):
        eq = rms_norm_equations(x, self.sd[weight_name], eps)
        return self._pick("rms_norm", eq, self._hf(mod, lambda: mod(x)))

    def proj(self, x, p):
        w = self.sd[p + ".weight"].double()
        b = self.sd.get(p + ".bias")
        y = x.double() @ w.T
        return y if b is None else y + b.double()

    def self_attention(self, i, x, raw, cos, sin):
        """x [L, H] → [L, H]; causal, RoPE on text positions 0..L-1."""
        p = f"model.layers.{i}.self_attn."
        L = x.shape[0]
        q = self.proj(x, p + "q_proj").view(L, self.nh, self.hd).transpose(0, 1)
        k = self.proj(x, p + "k_proj").view(L, self.nkv, self.hd).transpose(0, 1)
        v = self.proj(x, p + "v_proj").view(L, self.nkv, self.hd).transpose(0, 1)
        q, k = apply_rope(q, cos.double(), sin.double()), apply_rope(k, cos.double(), sin.double())
        eq = self.proj(attention_equations(q, k, v, causal=True), p + "o_proj")
        attn = self.layers[i]["attn"]
        mask = torch.triu(torch.full((L, L), float("-inf")), 1)[None, None]

        def hf():
            out = attn(hidden_states=x[None], attention_mask=mask, position_embeddings=raw)
            return (out[0] if isinstance(out, tuple) else out)[0]

        return self._pick("self_attn", eq, None if attn is None or raw is None else hf)

    def cross_attention(self, i, x, V, q_tables, k_tables):
        """Vamba's cross-attention (equations): queries from the normalised text x [L, H], keys/values from
        V [N, H], no mask, GQA, RoPE on q and k only when configured."""
        p = f"model.layers.{i}.cross_attn."
        L, N = x.shape[0], V.shape[0]
        q = self.proj(x, p + "q_proj").view(L, self.nh, self.hd).transpose(0, 1)
        k = self.proj(V, p + "k_proj").view(N, self.nkv, self.hd).transpose(0, 1)
        v = self.proj(V, p + "v_proj").view(N, self.nkv, self.hd).transpose(0, 1)
        if q_tables is not None:
            q = apply_rope(q, *q_tables)
            k = apply_rope(k, *k_tables)
        return self.proj(attention_equations(q, k, v, causal=False), p + "o_proj").float()

    def mlp(self, i, x):
        p = f"model.layers.{i}.mlp."
        eq = self.proj(F.silu(self.proj(x, p + "gate_proj")) * self.proj(x, p + "up_proj"), p + "down_proj")
        mod = self.layers[i]["mlp"]
        return self._pick("mlp", eq, self._hf(mod, lambda: mod(x)))

    def mamba_block(self, i, V):
        """V + Mixer(RMSNorm_1e-5(V)): transformers' modules, checked against the recurrence."""
        lay = self.layers[i]
        p = f"model.layers.{i}.vision_mixer."
        normed = self.rms(lay["vnorm"], V, p + "norm.weight", 1e-5)
        eq = mamba2_mixer_equations(sub(self.sd, p + "mixer."), normed, self.m)
        mixer = lay["mixer"]
        return V + self._pick("mamba2_mixer", eq, self._hf(mixer, lambda: run_mixer(mixer, normed[None])[0]))

    # -- the model ---------------------------------------------------------------------------------------

    def encode_video(self, pixel_values, grid_thw):
        t, h, w = [int(v) for v in grid_thw[0]]
        ms = self.c["vision_config"]["spatial_merge_size"]
        eq = vision_equations(self.sd, self.c, pixel_values, grid_thw)
        vis = self.visual
        return self._pick(
            "vision_tower",
            eq,
            self._hf(vis, lambda: vision_outputs(vis(pixel_values.float(), grid_thw=grid_thw), t * (h // ms) * (w // ms), self.H)),
        )

    def video_positions(self, grid_thw):
        """(t, h/2, w/2) grid indices of each video token, from 0 (get_encoder_position_ids)."""
        t, h, w = [int(v) for v in grid_thw[0]]
        ms = self.c["vision_config"]["spatial_merge_size"]
        h, w = h // ms, w // ms
        ti = torch.arange(t).view(-1, 1).expand(-1, h * w).flatten()
        hi = torch.arange(h).view(1, -1, 1).expand(t, -1, w).flatten()
        wi = torch.arange(w).view(1, 1, -1).expand(t, h, -1).flatten()
        return torch.stack([ti, hi, wi])

    def forward(self, input_ids, video_embeds, grid_thw):
        """Logits [L, vocab] for the text input_ids [L] given the merger output video_embeds [N, H]."""
        s = self.sd
        L = input_ids.shape[0]
        Hs = s["model.embed_tokens.weight"][input_ids].float()
        V = video_embeds.float()
        raw, cos, sin = self.tables(torch.arange(L).view(1, -1).expand(3, -1))
        q_tables = k_tables = None
        if self.use_pos:
            q_tables = (cos.double(), sin.double())
            _, kc, ks = self.tables(self.video_positions(grid_thw))
            k_tables = (kc.double(), ks.double())
        for i, lay in enumerate(self.layers):
            p = f"model.layers.{i}."
            x = self.rms(lay["ln_in"], Hs, p + "input_layernorm.weight", self.eps)
            sa = self.self_attention(i, x, raw, cos, sin)
            if self.use_ln:  # the same module and weights as the text; replaces V
                V = self.rms(lay["ln_in"], V, p + "input_layernorm.weight", self.eps)
            ca = self.cross_attention(i, x, V, q_tables, k_tables)
            if self.use_alpha:
                a = float(s[p + "alpha"].clamp(0, 1))
                Hs = Hs + a * sa + (1 - a) * ca
            else:
                Hs = Hs + sa + ca
            V = self.mamba_block(i, V)
            Hs = Hs + self.mlp(i, self.rms(lay["ln_post"], Hs, p + "post_attention_layernorm.weight", self.eps))
        Hs = rms_norm_equations(Hs, s["model.norm.weight"], self.eps).float()
        return Hs @ s["lm_head.weight"].T

    def greedy(self, input_ids, video_embeds, grid_thw, n):
        """n greedy tokens by recomputing the whole text each step; also each step's last-row logits."""
        ids = input_ids.clone()
        toks, step_logits = [], []
        for _ in range(n):
            last = self.forward(ids, video_embeds, grid_thw)[-1]
            tok = int(last.argmax())
            toks.append(tok)
            step_logits.append(last)
            ids = torch.cat([ids, torch.tensor([tok])])
        return torch.tensor(toks), torch.stack(step_logits)
