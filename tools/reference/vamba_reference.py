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

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.mamba2 import modeling_mamba2 as hm
from transformers.models.mamba2.configuration_mamba2 import Mamba2Config
from transformers.models.qwen2_vl import configuration_qwen2_vl as cq
from transformers.models.qwen2_vl import modeling_qwen2_vl as hq


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
    """u [1, L, d] float32 → [1, L, d] through transformers' torch path (no CUDA kernels)."""
    with torch.no_grad():
        return mixer.torch_forward(u)


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
    """Holds the weights (official names) and runs the reference forward."""

    def __init__(self, config, state_dict):
        self.c = config
        self.sd = {k: v.float() for k, v in state_dict.items()}
        self.report = {}
        c = config
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

        self.visual = hq.Qwen2VisionTransformerPretrainedModel(vision_config(c))
        self.visual.load_state_dict(sub(self.sd, "visual."), strict=True)
        self.visual.eval()

        tc = text_config(c)
        self.rotary = hq.Qwen2VLRotaryEmbedding(config=tc)
        mlp_cls = getattr(hq, "Qwen2MLP", None)
        if mlp_cls is None:
            from transformers.models.qwen2.modeling_qwen2 import Qwen2MLP as mlp_cls
        self.layers = []
        for i in range(self.n_layers):
            p = f"model.layers.{i}."
            attn = hq.Qwen2VLAttention(tc, layer_idx=i)
            loaded = attn.load_state_dict(sub(self.sd, p + "self_attn."), strict=False)
            if loaded.missing_keys or loaded.unexpected_keys:
                raise RuntimeError(f"Qwen2VLAttention weights do not fit: {loaded}")
            mlp = mlp_cls(tc)
            mlp.load_state_dict(sub(self.sd, p + "mlp."), strict=True)
            ln_in = hq.Qwen2RMSNorm(self.H, eps=self.eps)
            ln_in.load_state_dict(sub(self.sd, p + "input_layernorm."), strict=True)
            ln_post = hq.Qwen2RMSNorm(self.H, eps=self.eps)
            ln_post.load_state_dict(sub(self.sd, p + "post_attention_layernorm."), strict=True)
            vnorm = hq.Qwen2RMSNorm(self.H, eps=1e-5)  # mamba_ssm RMSNorm: default eps 1e-5
            vnorm.load_state_dict(sub(self.sd, p + "vision_mixer.norm."), strict=True)
            mixer, note = hf_mamba2_mixer(self.m, sub(self.sd, p + "vision_mixer.mixer."))
            self.report["mixer_norm"] = note
            for mod in (attn, mlp, ln_in, ln_post, vnorm):
                mod.eval()
            self.layers.append(dict(attn=attn, mlp=mlp, ln_in=ln_in, ln_post=ln_post, vnorm=vnorm, mixer=mixer))
        self.worst = {}

    def _note(self, what, err):
        self.worst[what] = max(self.worst.get(what, 0.0), err)

    # -- pieces, each computed by transformers and checked against the equations ----------------------

    def tables(self, positions3):
        """cos/sin [L, hd] (float32) for positions3 [3, L]: transformers' rotary + M-RoPE section pick."""
        cos_e, sin_e = rope_tables(positions3, self.hd, self.theta, self.sec)
        try:
            x = torch.zeros(1, positions3.shape[1], self.H)
            cos, sin = self.rotary(x, positions3[:, None, :])
            if cos.dim() == 4:  # [3, 1, L, D]: pick the sections as apply_multimodal_rotary_pos_emb does
                parts_c = cos[:, 0].split(list(self.sec) * 2, dim=-1)
                parts_s = sin[:, 0].split(list(self.sec) * 2, dim=-1)
                cos = torch.cat([q[i % 3] for i, q in enumerate(parts_c)], -1)
                sin = torch.cat([q[i % 3] for i, q in enumerate(parts_s)], -1)
            else:
                cos, sin = cos.reshape(-1, self.hd), sin.reshape(-1, self.hd)
            self._note("rotary", max(rel_err(cos, cos_e), rel_err(sin, sin_e)))
            hf = (self.rotary(x, positions3[:, None, :]), cos.float(), sin.float())
        except Exception as e:  # noqa: BLE001
            self.report["rotary"] = f"transformers rotary failed ({e!r}): equations used"
            hf = (None, cos_e.float(), sin_e.float())
        return hf

    def self_attention(self, i, x, raw_tables, cos, sin):
        """x [L, H] → [L, H]; causal, RoPE on text positions 0..L-1."""
        s = self.sd
        p = f"model.layers.{i}.self_attn."
        L = x.shape[0]
        q = (x.double() @ s[p + "q_proj.weight"].double().T + s[p + "q_proj.bias"].double()).view(L, self.nh, self.hd).transpose(0, 1)
        k = (x.double() @ s[p + "k_proj.weight"].double().T + s[p + "k_proj.bias"].double()).view(L, self.nkv, self.hd).transpose(0, 1)
        v = (x.double() @ s[p + "v_proj.weight"].double().T + s[p + "v_proj.bias"].double()).view(L, self.nkv, self.hd).transpose(0, 1)
        q, k = apply_rope(q, cos.double(), sin.double()), apply_rope(k, cos.double(), sin.double())
        eq = attention_equations(q, k, v, causal=True) @ s[p + "o_proj.weight"].double().T
        try:
            mask = torch.triu(torch.full((L, L), float("-inf")), 1)[None, None]
            with torch.no_grad():
                out = self.layers[i]["attn"](hidden_states=x[None], attention_mask=mask, position_embeddings=raw_tables)
            out = (out[0] if isinstance(out, tuple) else out)[0]
            self._note("self_attn", rel_err(out, eq))
            return out.float()
        except Exception as e:  # noqa: BLE001
            self.report["self_attn"] = f"transformers Qwen2VLAttention failed ({e!r}): equations used"
            return eq.float()

    def cross_k_v(self, i, V, k_tables):
        """The layer's cross-attention K/V from the video tokens V [N, H] (RoPE on K when configured)."""
        s = self.sd
        p = f"model.layers.{i}.cross_attn."
        N = V.shape[0]
        k = (V.double() @ s[p + "k_proj.weight"].double().T + s[p + "k_proj.bias"].double()).view(N, self.nkv, self.hd).transpose(0, 1)
        v = (V.double() @ s[p + "v_proj.weight"].double().T + s[p + "v_proj.bias"].double()).view(N, self.nkv, self.hd).transpose(0, 1)
        if k_tables is not None:
            k = apply_rope(k, *k_tables)
        return k, v

    def cross_attention(self, i, x, V, q_tables, k_tables):
        """Vamba's cross-attention: queries from the normalised text x [L, H], keys/values from V [N, H]."""
        s = self.sd
        p = f"model.layers.{i}.cross_attn."
        L = x.shape[0]
        q = (x.double() @ s[p + "q_proj.weight"].double().T + s[p + "q_proj.bias"].double()).view(L, self.nh, self.hd).transpose(0, 1)
        if q_tables is not None:
            q = apply_rope(q, *q_tables)
        k, v = self.cross_k_v(i, V, k_tables)
        return (attention_equations(q, k, v, causal=False) @ s[p + "o_proj.weight"].double().T).float()

    def mamba_block(self, i, V):
        """V + Mixer(RMSNorm_1e-5(V)), transformers' modules, checked against the recurrence."""
        lay = self.layers[i]
        with torch.no_grad():
            normed = lay["vnorm"](V)
        eq = mamba2_mixer_equations(sub(self.sd, f"model.layers.{i}.vision_mixer.mixer."), normed, self.m)
        try:
            out = run_mixer(lay["mixer"], normed[None])[0]
            self._note("mamba2_mixer", rel_err(out, eq))
        except Exception as e:  # noqa: BLE001
            self.report["mamba2_mixer"] = f"transformers Mamba2Mixer failed ({e!r}): equations used"
            out = eq.float()
        self._note("vision_norm", rel_err(normed, rms_norm_equations(V, self.sd[f"model.layers.{i}.vision_mixer.norm.weight"], 1e-5)))
        return V + out

    # -- the model -------------------------------------------------------------------------------------

    def encode_video(self, pixel_values, grid_thw):
        with torch.no_grad():
            out = self.visual(pixel_values.float(), grid_thw=grid_thw)
        t, h, w = [int(v) for v in grid_thw[0]]
        ms = self.c["vision_config"]["spatial_merge_size"]
        return vision_outputs(out, t * (h // ms) * (w // ms), self.H).float()

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
        pos = torch.arange(L).view(1, -1).expand(3, -1)
        raw, cos, sin = self.tables(pos)
        q_tables = k_tables = None
        if self.use_pos:
            q_tables = (cos.double(), sin.double())
            _, kc, ks = self.tables(self.video_positions(grid_thw))
            k_tables = (kc.double(), ks.double())
        for i, lay in enumerate(self.layers):
            with torch.no_grad():
                x = lay["ln_in"](Hs)
            self._note("rms_norm", rel_err(x, rms_norm_equations(Hs, s[f"model.layers.{i}.input_layernorm.weight"], self.eps)))
            sa = self.self_attention(i, x, raw, cos, sin)
            if self.use_ln:
                with torch.no_grad():
                    V = lay["ln_in"](V)  # the same module and weights as the text: replaces V
            ca = self.cross_attention(i, x, V, q_tables, k_tables)
            if self.use_alpha:
                a = float(s[f"model.layers.{i}.alpha"].clamp(0, 1))
                Hs = Hs + a * sa + (1 - a) * ca
            else:
                Hs = Hs + sa + ca
            V = self.mamba_block(i, V)
            with torch.no_grad():
                Hs = Hs + lay["mlp"](lay["ln_post"](Hs))
        with torch.no_grad():
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
