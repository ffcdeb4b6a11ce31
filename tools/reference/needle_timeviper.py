"""A tiny TimeViper for the needle task, in PyTorch (trainable, batched), written to be exactly what longshot's
TypeScript TimeViper computes (src/models/timeviper, docs/timeviper.md): a timm-layout SigLIP whose second-to-last
block gives the features (no final norm), ToMe to 16 tokens per frame (TimeViper's bipartite rounds, size-weighted
averages, the official token order), the projector MLP (exact GELU) and a Nemotron-H LLM (Mamba-2 blocks from
train_needle.py's mixer, NoPE attention without biases, relu² MLPs), saved in the official state-dict layout with
our TimeViper config.json.

Frames are 112×112 (the needle data's), so SigLIP's squash-resize keeps them as they are: 8×8 = 64 patches of 14,
merged to 16 tokens per frame in two rounds (64 → 32 → 16). The prompt holds one `<image>` per frame, in one run.

    node --import tsx tools/needle/write_tokenizer.ts /tmp/tok 1
    python3 tools/reference/needle_timeviper.py --fixture test/fixtures/timeviper/needle-tiny --tokenizer-dir /tmp/tok

writes a small random model and the logits of one prompt, and (in tokenizer/) the needle tokenizer with our
prompt's specials and the trainer's rewrite of an exported prompt: the parity fixture of
test/models/timeviper-needle.test.ts.
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
import train_needle as tn  # noqa: E402

SIDE, PATCH, KEEP, METRIC_HEADS = 112, 14, 16, 16


def make_config(vocab, image_token, a):
    """Our TimeViper config.json for a needle model over a vocabulary of `vocab` embedded tokens."""
    return {
        "model_type": "timeviper",
        "architectures": ["TimeViper"],
        "llm_config": {
            "model_type": "nemotron_h",
            "vocab_size": vocab,
            "hidden_size": a.hidden,
            "intermediate_size": 2 * a.hidden,
            "num_hidden_layers": len(a.pattern),
            "hybrid_override_pattern": a.pattern,
            "num_attention_heads": a.heads,
            "num_key_value_heads": max(1, a.heads // 2),
            "head_dim": a.hidden // a.heads,
            "mamba_num_heads": 2 * a.hidden // a.mamba_headdim,
            "mamba_head_dim": a.mamba_headdim,
            "mamba_n_groups": 1,
            "ssm_state_size": a.d_state,
            "mamba_d_conv": 4,
            "mamba_expand": 2,
            "mamba_chunk_size": 64,
            "residual_in_fp32": False,
            "layer_norm_epsilon": 1e-5,
            "mlp_hidden_act": "relu2",
            "eos_token_id": tn.IM_END,
            "pad_token_id": tn.ENDOFTEXT,
            "bos_token_id": tn.ENDOFTEXT,
        },
        "vision_config": {
            "hidden_size": a.vision_dim,
            "intermediate_size": 2 * a.vision_dim,
            "num_hidden_layers": a.vision_depth + 1,  # the last block is there (timm's layout) but unused
            "num_attention_heads": a.vision_heads,
            "image_size": SIDE,
            "patch_size": PATCH,
            "num_channels": 3,
            "layer_norm_eps": 1e-6,
            "hidden_act": "gelu",
        },
        "vision_layout": "timm",
        "vision_feature_block": -2,
        "num_compressed_tokens": KEEP,
        "projector_hidden_act": "gelu",
        "image_token_index": image_token,
        "use_pdrop": False,
        "merge_module": "no_merge",
    }


# ---- vision: timm VisionTransformer names --------------------------------------------------------------------


class ViTAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(tn.attention(q, k, v).transpose(1, 2).reshape(B, N, C))


class ViTMlp(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, hidden), nn.Linear(hidden, d)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class ViTBlock(nn.Module):
    def __init__(self, d, heads, hidden):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d, eps=1e-6), nn.LayerNorm(d, eps=1e-6)
        self.attn, self.mlp = ViTAttention(d, heads), ViTMlp(d, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.proj = nn.Conv2d(3, d, PATCH, PATCH)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class SigLIP(nn.Module):
    def __init__(self, v):
        super().__init__()
        d, g = v["hidden_size"], v["image_size"] // v["patch_size"]
        self.patch_embed = PatchEmbed(d)
        self.pos_embed = nn.Parameter(torch.randn(1, g * g, d) * 0.02)
        self.blocks = nn.ModuleList(
            [ViTBlock(d, v["num_attention_heads"], v["intermediate_size"]) for _ in range(v["num_hidden_layers"])]
        )
        self.norm = nn.LayerNorm(d, eps=1e-6)  # timm's final norm: in the layout, not in the features

    def features(self, pixels):
        """The second-to-last block's output, no final norm (TimeViper's get_intermediate_layers)."""
        x = self.patch_embed(pixels) + self.pos_embed
        for blk in self.blocks[:-1]:
            x = blk(x)
        return x


def tome(x, keep=KEEP):
    """TimeViper's ToMe per frame: x [N, P, C] → [N, keep, C] (rounds of half the tokens, then the rest)."""
    rounds, p = [], x.shape[1]
    while p != keep:
        if p - keep <= p // 2:
            rounds.append(p - keep)
            break
        rounds.append(p // 2)
        p -= p // 2
    size = torch.ones_like(x[..., :1])
    for r in rounds:
        n, t, c = x.shape
        with torch.no_grad():
            metric = x.reshape(n, t, METRIC_HEADS, c // METRIC_HEADS).mean(2)
            metric = metric / metric.norm(dim=-1, keepdim=True)
            scores = metric[:, ::2] @ metric[:, 1::2].transpose(-1, -2)
            best, partner = scores.max(-1)
            order = best.argsort(-1, descending=True)
            unmerged, merged = order[:, r:], order[:, :r]
            into = partner.gather(-1, merged)

        def merge(v):
            a, b = v[:, ::2], v[:, 1::2]
            w = v.shape[-1]
            kept = a.gather(1, unmerged[..., None].expand(-1, -1, w))
            moved = a.gather(1, merged[..., None].expand(-1, -1, w))
            return torch.cat([kept, b.scatter_add(1, into[..., None].expand(-1, -1, w), moved)], 1)

        x, size = merge(x * size), merge(size)
        x = x / size
    return x


# ---- the LLM: Nemotron-H ---------------------------------------------------------------------------------------


class NemotronAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        H, self.nh, self.nkv, self.hd = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        self.q_proj = nn.Linear(H, self.nh * self.hd, bias=False)
        self.k_proj = nn.Linear(H, self.nkv * self.hd, bias=False)
        self.v_proj = nn.Linear(H, self.nkv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.nh * self.hd, H, bias=False)

    def forward(self, x):
        B, L, _ = x.shape
        q = self.q_proj(x).view(B, L, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, L, self.nkv, self.hd).transpose(1, 2).repeat_interleave(self.nh // self.nkv, 1)
        v = self.v_proj(x).view(B, L, self.nkv, self.hd).transpose(1, 2).repeat_interleave(self.nh // self.nkv, 1)
        return self.o_proj(tn.attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, L, -1))


class NemotronMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.up_proj = nn.Linear(c["hidden_size"], c["intermediate_size"], bias=False)
        self.down_proj = nn.Linear(c["intermediate_size"], c["hidden_size"], bias=False)

    def forward(self, x):
        return self.down_proj(F.relu(self.up_proj(x)).square())


class NemotronBlock(nn.Module):
    def __init__(self, c, kind):
        super().__init__()
        self.norm = tn.RMSNorm(c["hidden_size"], c["layer_norm_epsilon"])
        if kind == "M":
            m = {"expand": 2, "d_state": c["ssm_state_size"], "ngroups": c["mamba_n_groups"], "headdim": c["mamba_head_dim"], "d_conv": 4}
            self.mixer = tn.Mamba2Mixer(c["hidden_size"], m, c["mamba_chunk_size"])
        else:
            self.mixer = NemotronAttention(c) if kind == "*" else NemotronMLP(c)

    def forward(self, x):
        return x + self.mixer(self.norm(x))


class Backbone(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = nn.Embedding(c["vocab_size"], c["hidden_size"])
        if "initializer_range" in c:  # as Hugging Face draws embeddings (longshot's TimeViper from scratch too)
            nn.init.normal_(self.embeddings.weight, std=c["initializer_range"])
        self.layers = nn.ModuleList([NemotronBlock(c, k) for k in c["hybrid_override_pattern"]])
        self.norm_f = tn.RMSNorm(c["hidden_size"], c["layer_norm_epsilon"])


class TimeViper(nn.Module):
    """Module paths give the official names: vision_backbone.featurizer.*, projector.projector.{0,2}.*,
    llm_backbone.llm.backbone.*, llm_backbone.llm.lm_head."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        c, v = config["llm_config"], config["vision_config"]
        self.vision_backbone = nn.Module()
        self.vision_backbone.featurizer = SigLIP(v)
        self.projector = nn.Module()
        self.projector.projector = nn.Sequential(
            nn.Linear(v["hidden_size"], c["hidden_size"]), nn.GELU(), nn.Linear(c["hidden_size"], c["hidden_size"])
        )
        self.llm_backbone = nn.Module()
        self.llm_backbone.llm = nn.Module()
        self.llm_backbone.llm.backbone = Backbone(c)
        self.llm_backbone.llm.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)

    def forward(self, frames, ids):
        """Logits [B, L, vocab] aligned with ids, whose T `<image>` placeholders form one run at the same place in
        every row: each placeholder's row is its frame's last token's. frames: uint8 [B, T, H, W, 3]."""
        pix = (frames.permute(0, 1, 4, 2, 3).float() / 255 - 0.5) / 0.5
        return self.forward_pixels(pix, ids)

    def forward_pixels(self, pix, ids):
        """The same from SigLIP-normalised pixels [B, T, 3, H, W]."""
        image = self.config["image_token_index"]
        B, T = pix.shape[:2]
        start = int((ids[0] == image).nonzero()[0])
        llm = self.llm_backbone.llm
        emb = llm.backbone.embeddings
        x = tome(self.vision_backbone.featurizer.features(pix.reshape(B * T, *pix.shape[2:])))
        visual = self.projector.projector(x).reshape(B, T * KEEP, -1)
        h = torch.cat([emb(ids[:, :start]), visual.to(emb.weight.dtype), emb(ids[:, start + T :])], 1)
        for layer in llm.backbone.layers:
            h = layer(h)
        rows = torch.cat(
            [
                torch.arange(start),
                start + KEEP * torch.arange(1, T + 1) - 1,
                torch.arange(start + KEEP * T, h.shape[1]),
            ]
        ).to(h.device)
        return llm.lm_head(llm.backbone.norm_f(h[:, rows]))


def save_model(model, out, dtype=torch.float32):
    os.makedirs(out, exist_ok=True)
    sd = {k: v.detach().to(dtype).contiguous().cpu() for k, v in model.state_dict().items()}
    tn.save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    config = {k: v for k, v in model.config.items() if not k.startswith("_")}
    config["llm_config"] = dict(config["llm_config"], torch_dtype="bfloat16" if dtype == torch.bfloat16 else "float32")
    # How longshot samples videos for this model: every frame at its 112×112 (the trained setting).
    config["longshot_video_defaults"] = {"sampling": "uniform", "frames": 1024, "maxEdge": 112, "minEdge": 112}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


# ---- the needle trainer's interface (train_needle.py --model timeviper) --------------------------------------

# The nano_base prompt around the user message, as longshot's runner writes it (src/models/timeviper/prompt.ts).
HEAD_TEXT = ["<SPECIAL_10>", "System", "<SPECIAL_12>", "<SPECIAL_11>", "User"]
TAIL_TEXT = ["<SPECIAL_12>", "<SPECIAL_11>", "Assistant"]
ADDED = ["<SPECIAL_10>", "<SPECIAL_11>", "<SPECIAL_12>", "<image>"]


def needle_vocabulary(tok_dir):
    """The needle tokenizer's ids of our prompt's pieces: the three specials are appended (and embedded),
    `<image>` after them (never embedded); words as its WordPiece reads them (lower-cased if it lower-cases)."""
    tok = json.load(open(os.path.join(tok_dir, "tokenizer.json")))
    vocab = tok["model"]["vocab"]
    n = len(vocab)
    ids = {t: n + i for i, t in enumerate(ADDED)}
    lower = "Lowercase" in json.dumps(tok.get("normalizer"))
    word = lambda w: ids.get(w, vocab.get(w.lower() if lower else w, vocab["[UNK]"]))  # noqa: E731
    return {"vocab": n + 3, "image": ids["<image>"], "head": [word(w) for w in HEAD_TEXT], "tail": [word(w) for w in TAIL_TEXT]}


# The needle model's blocks: 4 Mamba-2, 2 attention, 2 MLP.
NEEDLE_PATTERN = "M-M*M-M*"


def make_needle_config(a):
    v = needle_vocabulary(a.tokenizer_dir)
    c = make_config(v["vocab"], v["image"], argparse.Namespace(**{**vars(a), "pattern": NEEDLE_PATTERN}))
    c["_needle_prompt"] = {"head": v["head"], "tail": v["tail"]}
    return c


def save_needle(model, out, tok_dir, dtype):
    """The checkpoint and the needle tokenizer with our prompt's specials added."""
    save_model(model, out, dtype)
    write_tokenizer(tok_dir, out)


def write_tokenizer(tok_dir, out):
    tok = json.load(open(os.path.join(tok_dir, "tokenizer.json")))
    n = len(tok["model"]["vocab"])
    entry = {"single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    tok["added_tokens"] = tok.get("added_tokens", []) + [dict(id=n + i, content=t, **entry) for i, t in enumerate(ADDED)]
    json.dump(tok, open(os.path.join(out, "tokenizer.json"), "w"))
    cfg = json.load(open(os.path.join(tok_dir, "tokenizer_config.json")))
    if "added_tokens_decoder" in cfg:
        for i, t in enumerate(ADDED):
            cfg["added_tokens_decoder"][str(n + i)] = dict(content=t, **entry)
    json.dump(cfg, open(os.path.join(out, "tokenizer_config.json"), "w"), indent=2)


def unpatchify(pix, gh, gw):
    """train_needle.patchify's rows [B, T/2, gh·gw, 3·2·14·14] (CLIP-normalised) → SigLIP-normalised pixels
    [B, T, 3, H, W]."""
    B, T2 = pix.shape[:2]
    M, P, TP = tn.MERGE, tn.PATCH, tn.TEMPORAL
    x = pix.reshape(B, T2, gh // M, gw // M, M, M, 3, TP, P, P).permute(0, 1, 7, 6, 2, 4, 8, 3, 5, 9)
    x = x.reshape(B, T2 * TP, 3, gh * P, gw * P)
    mean = torch.tensor(tn.MEAN, device=pix.device).view(1, 1, 3, 1, 1)
    std = torch.tensor(tn.STD, device=pix.device).view(1, 1, 3, 1, 1)
    return ((x * std + mean) - 0.5) / 0.5


def nano_base_ids(row, frames, config):
    """An exported prompt row (ids) → (our nano_base prompt ids for its question, where its prompt ends)."""
    prompt = config["_needle_prompt"]
    ve = row.index(tn.VISION_END)
    q_end = row.index(tn.IM_END, ve)
    p_end = len(row) - row[::-1].index(tn.IM_START) + 1  # after "<|im_start|> assistant"
    new = prompt["head"] + [config["image_token_index"]] * frames + row[ve + 1 : q_end] + prompt["tail"]
    return new, p_end


class NeedleTimeViper(TimeViper):
    """TimeViper behind train_needle.py's model interface: forward(pix, gh, gw, ids) with Qwen2-VL pixel rows and
    the exported Vamba-style prompt (`<|vision_start|><|vision_end|>question<|im_end|>\n<|im_start|>assistant\n`
    then the answer). Each row is rewritten as our nano_base prompt — one `<image>` per frame, the same question
    ids, the same answer — and the logits of its answer rows are put back where the trainer's targets are."""

    def forward(self, pix, gh, gw, ids):
        T = pix.shape[1] * tn.TEMPORAL
        rows, spans = [], []
        for row in ids.tolist():
            new, p_end = nano_base_ids(row, T, self.config)
            spans.append((p_end, len(new)))
            rows.append(new + row[p_end:])
        L = max(len(r) for r in rows)
        tv = torch.full((len(rows), L), tn.ENDOFTEXT, dtype=torch.long, device=ids.device)
        for b, r in enumerate(rows):
            tv[b, : len(r)] = torch.tensor(r, device=ids.device)
        logits = self.forward_pixels(unpatchify(pix, gh, gw), tv)
        out = logits.new_zeros(ids.shape[0], ids.shape[1], logits.shape[-1])
        for b, (p_end, tv_end) in enumerate(spans):
            n = ids.shape[1] - p_end + 1  # the row predicting the first answer token, and those after it
            out[b, p_end - 1 :] = logits[b, tv_end - 1 : tv_end - 1 + n]
        return out


def randomize(model, seed):
    """Weights large enough that every piece matters (a test fixture, not an initialisation)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            u = torch.rand(p.shape, generator=g) * 2 - 1
            if name.endswith("A_log"):
                p.copy_(torch.log(torch.rand(p.shape, generator=g) * 3 + 0.5))
            elif name.endswith("dt_bias"):
                p.copy_(u * 0.5 - 1)
            elif name.endswith(".D") or "norm" in name.split(".")[-2]:
                p.copy_(1 + 0.2 * u if name.endswith("weight") or name.endswith(".D") else 0.1 * u)
            elif p.dim() >= 2:
                p.copy_(u * 1.5 / math.sqrt(p[0].numel()))
            else:
                p.copy_(0.1 * u)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--fixture", required=True, help="where to write the parity fixture (a checkpoint + reference)")
    p.add_argument("--frames", type=int, default=3)
    p.add_argument("--tokenizer-dir", help="a needle tokenizer (tools/needle/write_tokenizer.ts): also check the prompt")
    p.add_argument("--question-ids", default="35,52,95,86,50,24", help="a question's ids in that tokenizer")
    a = p.parse_args()
    args = argparse.Namespace(
        hidden=48, heads=4, pattern="M*-M", mamba_headdim=16, d_state=8, vision_dim=32, vision_heads=2, vision_depth=2
    )
    vocab, image = 40, 41
    config = make_config(vocab, image, args)
    torch.manual_seed(0)
    model = TimeViper(config).eval()
    randomize(model, 3)
    g = torch.Generator().manual_seed(4)
    frames = torch.randint(0, 256, (1, a.frames, SIDE, SIDE, 3), generator=g, dtype=torch.uint8)
    ids = torch.tensor([[7, 3, 9] + [image] * a.frames + [12, 5, 30, 2, 18]])
    with torch.no_grad():
        logits = model(frames, ids)[0]
    save_model(model, a.fixture)
    tn.save_file(
        {"frames": frames[0].contiguous(), "input_ids": ids[0], "logits": logits.contiguous()},
        os.path.join(a.fixture, "reference.safetensors"),
    )
    if a.tokenizer_dir:
        # The trainer's rewrite of an exported prompt (system, user with the vision markers and the question,
        # assistant), for the TypeScript runner to reproduce from the question's text.
        c = make_needle_config(argparse.Namespace(**vars(args), tokenizer_dir=a.tokenizer_dir))
        q = [int(t) for t in a.question_ids.split(",")]
        row = [tn.IM_START, 9, tn.IM_END, tn.IM_START, 9, tn.VISION_START, tn.VISION_END, *q, tn.IM_END, tn.IM_START, 9]
        ids, p_end = nano_base_ids(row, 2, c)
        assert p_end == len(row)
        tok = os.path.join(a.fixture, "tokenizer")
        os.makedirs(tok, exist_ok=True)
        write_tokenizer(a.tokenizer_dir, tok)
        json.dump({"frames": 2, "question_ids": q, "prompt_ids": ids}, open(os.path.join(tok, "prompt.json"), "w"))
    print(f"wrote {a.fixture}: logits {list(logits.shape)}")


if __name__ == "__main__":
    main()
