"""Parity fixture for the shipped needle models (test/fixtures/needle/parity.json): the PyTorch training code's
logits for a few exported samples, which the TypeScript stack must reproduce from the same rendered frames
(test/needle/parity.test.ts). This pins train-time and inference-time preprocessing and model code together.

The models may use different tokenizer versions (the shipped Vamba tokenizer v2, Qwen2-VL v1): export the same
samples once per version and name each model's export; the frames are the same, the token ids differ.

    node --import tsx tools/needle/export_training_data.ts --out /tmp/fx1 --count 4 --frames 16 --seed 4242 --tokenizer 1
    node --import tsx tools/needle/export_training_data.ts --out /tmp/fx2 --count 4 --frames 16 --seed 4242 --tokenizer 2
    python3 tools/reference/needle_fixtures.py --data vamba=/tmp/fx2 qwen2vl=/tmp/fx1 --out test/fixtures/needle/parity.json
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
    p.add_argument("--data", required=True, nargs="+", help="one kind=dir export per model (vamba, qwen2vl)")
    p.add_argument("--models", default="models")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    exports = dict(d.split("=", 1) for d in a.data)
    if sorted(exports) != ["qwen2vl", "vamba"]:
        sys.exit("--data: give vamba=<dir> and qwen2vl=<dir>")
    index = {k: json.load(open(os.path.join(d, "index.json"))) for k, d in exports.items()}
    shard = {k: load_file(os.path.join(d, "shard-00000.safetensors")) for k, d in exports.items()}
    models = {}
    for kind, cls in (("vamba", tn.Vamba), ("qwen2vl", tn.Qwen2VL)):
        d = os.path.join(a.models, f"needle-{kind}-tiny")
        m = cls(json.load(open(os.path.join(d, "config.json"))))
        m.load_state_dict({k: v.float() for k, v in load_file(os.path.join(d, "model.safetensors")).items()})
        models[kind] = m.eval()
    samples = []
    for s, other in zip(index["vamba"]["samples"], index["qwen2vl"]["samples"]):
        i = s["i"]
        row = {k: s[k] for k in ("seed", "task", "frames", "mcq")}
        if row != {k: other[k] for k in row} or not torch.equal(shard["vamba"][f"{i}.frames"], shard["qwen2vl"][f"{i}.frames"]):
            sys.exit(f"sample {i}: the exports differ (same --seed, --count and --frames for both)")
        row["id"] = f"train-{i}"
        pix = tn.patchify(shard["vamba"][f"{i}.frames"][None])
        for kind, m in models.items():
            ids = shard[kind][f"{i}.input_ids"].long()[None]
            row[f"{kind}_input_ids"] = ids[0].tolist()
            with torch.no_grad():
                row[f"{kind}_logits"] = [round(x, 6) for x in m(pix, 8, 8, ids)[0, -1].tolist()]
        samples.append(row)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    json.dump({"side": index["vamba"]["side"], "fps": 2, "needle_frames": 2, "samples": samples}, open(a.out, "w"))


if __name__ == "__main__":
    main()
