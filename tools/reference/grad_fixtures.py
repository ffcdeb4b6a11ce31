"""Whole-model gradient fixtures for `longshot train`: f32 gradients of the training loss (cross-entropy on the
answer tokens, mean, as train_needle.py trains) of a tiny Vamba built by tools/reference/train_needle.py's
PyTorch model, with its weights, input and loss, in test/fixtures/grads/vamba.safetensors. The test
test/train/grad-fixtures.test.ts loads the same weights into longshot's Vamba and compares valueAndGrad's
gradients with these.

    /usr/bin/python3 tools/reference/grad_fixtures.py --out test/fixtures/grads

Made with torch 1.13 on CPU (no safetensors module: train_needle.py's own writer). Tiny on purpose (hidden 16,
2 layers, an 8-wide vision tower, vocabulary 32, one 2-frame 56×56 video): ≈ 200 KB.

`--model timeviper` writes timeviper.safetensors instead: a tiny TimeViper of tools/reference/needle_timeviper.py
(a 16-wide 1-block SigLIP at 112 px, ToMe to 16 tokens per frame, the projector, Nemotron-H blocks M*-M of width
16; no drop stages: that PyTorch model has none), two frames computed from a formula (the test computes the same),
checked by test/train/timeviper-grads.test.ts.
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


def timeviper_frames(frames, side):
    """uint8 [frames, side, side, 3]: value (37·j + 101·f) mod 256 at element j of frame f."""
    j = torch.arange(side * side * 3)
    return torch.stack([(37 * j + 101 * f) % 256 for f in range(frames)]).to(torch.uint8).reshape(frames, side, side, 3)


def timeviper(out):
    import needle_timeviper as tv

    a = argparse.Namespace(hidden=16, heads=2, pattern="M*-M", mamba_headdim=8, d_state=8, vision_dim=16, vision_heads=2, vision_depth=1)
    vocab, image = 32, 32
    c = tv.make_config(vocab, image, a)
    torch.manual_seed(0)
    model = tv.TimeViper(c).float()
    frames = timeviper_frames(2, tv.SIDE)
    g = torch.Generator().manual_seed(1)
    prompt = torch.cat([torch.randint(7, 32, (3,), generator=g), torch.tensor([image, image]), torch.randint(7, 32, (4,), generator=g)])
    answer = torch.tensor([11, 17, tn.IM_END])
    s = torch.cat([prompt, answer])[None]
    tgt = torch.full_like(s, -100)
    tgt[0, len(prompt) - 1 : s.shape[1] - 1] = answer
    logits = model(frames[None], s)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)
    loss.backward()
    res = {"prompt": prompt.int(), "answer": answer.int(), "loss": loss.detach().reshape(1)}
    for n, prm in model.named_parameters():
        if prm.grad is None:  # the tower's last block and final norm: in the layout, not in the features
            continue
        res[f"weight.{n}"] = prm.detach().contiguous()
        res[f"grad.{n}"] = prm.grad.detach().contiguous()
    os.makedirs(out, exist_ok=True)
    tn.save_file(res, os.path.join(out, "timeviper.safetensors"), metadata={"config": __import__("json").dumps(c), "torch": torch.__version__})
    print(f"loss {loss.item():.6f}; {sum(p.numel() for p in model.parameters())} parameters")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--model", default="vamba", choices=["vamba", "timeviper"])
    a = p.parse_args()
    if a.model == "timeviper":
        return timeviper(a.out)
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
