"""Whole-model gradient fixtures for `longshot train`: f32 gradients of the training loss (cross-entropy on the
answer tokens, mean, as train_needle.py trains) of a tiny Vamba built by tools/reference/train_needle.py's
PyTorch model, with its weights, input and loss, in test/fixtures/grads/vamba.safetensors. The test
test/train/grad-fixtures.test.ts loads the same weights into longshot's Vamba and compares valueAndGrad's
gradients with these.

    /usr/bin/python3 tools/reference/grad_fixtures.py --out test/fixtures/grads

Made with torch 1.13 on CPU (no safetensors module: train_needle.py's own writer). Tiny on purpose (hidden 16,
2 layers, an 8-wide vision tower, vocabulary 32, one 2-frame 56×56 video): ≈ 200 KB.
"""

import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_needle as tn  # noqa: E402


def tiny_config():
    a = argparse.Namespace(hidden=16, heads=2, layers=2, vision_dim=8, vision_heads=2, vision_depth=1, d_state=8, mamba_headdim=8)
    c = tn.make_config("vamba", 32, a)
    c["intermediate_size"] = 32
    return c


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.manual_seed(0)
    c = tiny_config()
    model = tn.Vamba(c).float()
    with torch.no_grad():  # α off its 0.5 default, so that the two attention paths weigh differently
        for i, layer in enumerate(model.model.layers):
            layer.alpha.fill_(0.3 + 0.4 * i)
    g = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (1, 2, 56, 56, 3), generator=g, dtype=torch.uint8)
    prompt = torch.randint(7, 32, (9,), generator=g)
    answer = torch.tensor([11, 17, tn.IM_END])
    s = torch.cat([prompt, answer])[None]
    tgt = torch.full_like(s, -100)
    tgt[0, len(prompt) - 1 : s.shape[1] - 1] = answer
    logits = model(tn.patchify(frames), 4, 4, s)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)
    loss.backward()
    out = {"frames": frames[0].contiguous(), "prompt": prompt.int(), "answer": answer.int(), "loss": loss.detach().reshape(1)}
    for n, prm in model.named_parameters():
        out[f"weight.{n}"] = prm.detach().contiguous()
        # The last layer's video block feeds nothing: no gradient (zeros, as valueAndGrad gives).
        out[f"grad.{n}"] = torch.zeros_like(prm) if prm.grad is None else prm.grad.detach().contiguous()
    os.makedirs(a.out, exist_ok=True)
    tn.save_file(out, os.path.join(a.out, "vamba.safetensors"), metadata={"config": __import__("json").dumps(c), "torch": torch.__version__})
    print(f"loss {loss.item():.6f}; {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
