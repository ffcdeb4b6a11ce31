"""Whole-model gradient fixture of a tiny TSTAR-MambaMia for `longshot train`: f32 gradients of the training loss
(cross-entropy on the answer tokens, mean, as train_needle.py trains) of the PyTorch TSTAR-MambaMia of
tools/reference/needle_mambamia.py (Qwen2-VL's vision tower, the bidirectional gated MambaMia compressor written
from the paper and the derivative's code, a Qwen2 decoder), with its weights, input and loss, in
test/fixtures/grads/mambamia.safetensors. test/train/grad-mambamia.test.ts loads the same weights into longshot's
TSTAR (src/train/tstar.ts) and compares valueAndGrad's loss and gradients with these.

    /usr/bin/python3 tools/reference/grad_fixtures_mambamia.py --out test/fixtures/grads

Made with torch 1.13 on CPU (train_needle.py's safetensors writer). Tiny on purpose (LLM hidden 16 with 2 layers
and a vocabulary of 16, a 4-wide 1-block vision tower, an 8-wide 2-block compressor with k = 2 and scan chunks of 4
— one 2-frame 56×56 video gives one group of 4 merged tokens, a 6-token compressor sequence over two chunks and 2
compressed tokens): ≈ 140 KB.
"""

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import needle_mambamia as nm  # noqa: E402  (also gives torch 1.13 what train_needle.py needs)
import train_needle as tn  # noqa: E402

COMPRESSOR = dict(nm.COMPRESSOR, hidden_size=8, head_dim=8, chunk_size=4, mambamia_chunk_size=2)
VOCAB = 16


def tiny_config():
    a = argparse.Namespace(hidden=16, heads=2, layers=2, vision_dim=4, vision_heads=1, vision_depth=1, d_state=8,
                           mamba_headdim=8)
    q = tn.make_config("qwen2vl", VOCAB, a)
    q["intermediate_size"] = 32
    return nm.make_tstar_config(q, a.d_state, COMPRESSOR)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.manual_seed(0)
    c = tiny_config()
    model = nm.TstarMambaMia(c).float()
    with torch.no_grad():  # off the round initial values (norms, biases, near-zero pooling heads), as needle_mambamia's fixture
        for name, prm in model.named_parameters():
            if prm.dim() == 1 and ("norm" in name or name.endswith("bias")):
                prm.add_(0.1 * torch.randn_like(prm))
            elif name.endswith("weight_fc.weight") or name.endswith("gate_fc.weight"):
                prm.copy_(0.3 * torch.randn_like(prm))
    g = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (1, 2, 56, 56, 3), generator=g, dtype=torch.uint8)
    words = torch.randint(7, VOCAB, (7,), generator=g)
    prompt = torch.cat([torch.tensor([tn.IM_START]), words[:2], torch.tensor([tn.VISION_START, tn.VISION_END]), words[2:]])
    answer = torch.tensor([11, 13, tn.IM_END])
    s = torch.cat([prompt, answer])[None]
    tgt = torch.full_like(s, -100)
    tgt[0, len(prompt) - 1 : s.shape[1] - 1] = answer
    logits = model(tn.patchify(frames), 4, 4, s)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)
    loss.backward()
    out = {"frames": frames[0].contiguous(), "prompt": prompt.int(), "answer": answer.int(),
           "loss": loss.detach().reshape(1)}
    # state_dict(keep_vars=True) names the parameters as the checkpoint does (the derivative's scan names).
    for n, prm in model.state_dict(keep_vars=True).items():
        out[f"weight.{n}"] = prm.detach().contiguous()
        out[f"grad.{n}"] = prm.grad.detach().contiguous()
    os.makedirs(a.out, exist_ok=True)
    tn.save_file(out, os.path.join(a.out, "mambamia.safetensors"),
                 metadata={"config": json.dumps(c), "torch": torch.__version__})
    print(f"loss {loss.item():.6f}; {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
