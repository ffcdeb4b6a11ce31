"""Parity fixture for the shipped needle models (test/fixtures/needle/parity.json): the PyTorch training code's
logits for a few exported samples, which the TypeScript stack must reproduce from the same rendered frames
(test/needle/parity.test.ts). This pins train-time and inference-time preprocessing and model code together.

    node --import tsx tools/needle/export_training_data.ts --out /tmp/fx --count 4 --frames 16 --seed 4242 [--tokenizer 2]
    python3 tools/reference/needle_fixtures.py --data /tmp/fx --out test/fixtures/needle/parity.json
"""

import argparse
import json
import os
import sys

import torch


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_needle as tn  # noqa: E402
from train_needle import load_file  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--models", default="models")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    index = json.load(open(os.path.join(a.data, "index.json")))
    shard = load_file(os.path.join(a.data, "shard-00000.safetensors"))
    models = {}
    for kind, cls in (("vamba", tn.Vamba), ("qwen2vl", tn.Qwen2VL)):
        d = os.path.join(a.models, f"needle-{kind}-tiny")
        m = cls(json.load(open(os.path.join(d, "config.json"))))
        m.load_state_dict({k: v.float() for k, v in load_file(os.path.join(d, "model.safetensors")).items()})
        models[kind] = m.eval()
    samples = []
    for s in index["samples"]:
        i = s["i"]
        frames = shard[f"{i}.frames"][None]
        ids = shard[f"{i}.input_ids"].long()[None]
        row = {k: s[k] for k in ("seed", "task", "frames", "mcq")}
        row["id"] = f"train-{i}"
        row["input_ids"] = ids[0].tolist()
        with torch.no_grad():
            pix = tn.patchify(frames)
            for kind, m in models.items():
                row[f"{kind}_logits"] = [round(x, 6) for x in m(pix, 8, 8, ids)[0, -1].tolist()]
        samples.append(row)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    json.dump({"side": index["side"], "fps": 2, "needle_frames": 2, "samples": samples}, open(a.out, "w"))


if __name__ == "__main__":
    main()
