#!/usr/bin/env python3
"""Config-compatibility fixtures: tiny random Qwen2-VL models as transformers' `save_pretrained` writes them.

Run on the GPU machine (transformers 5.17, torch 2.11; everything on CPU in f32):
    python3 tools/reference/config_fixtures.py --out "$OUT/configs"

Writes under --out, one folder per case (copy them to test/fixtures/configs/):
  v5-small-vocab/  vocab 1000 with the text config's default bos/eos ids (151643/151645, outside the vocabulary),
                   every text key the test does not need left at the class default, odd sizes;
                   config.json, generation_config.json, model.safetensors, reference.safetensors (logits of a
                   text prompt, a one-token image and a 2x3-token image, with the pixel values), reference.json
  v5-two-sections/ TRL's tiny Qwen2-VL shape (mrope_section [1, 1], head_dim 4), the same files
  meta.json        versions, the class defaults as transformers reports them, whether transformers builds and
                   runs each deliberately odd config (tells which configs the loader must accept), and where it
                   keeps and applies tie_word_embeddings
Every step is guarded: a failure is recorded in meta.json (errors) and the rest still runs.
"""

import argparse
import json
import os
import sys
import traceback

import numpy as np
import torch

ERRORS: list[str] = []


def guarded(name, fn, default=None):
    try:
        return fn()
    except Exception:  # noqa: BLE001 - every failure is recorded, the run goes on
        msg = f"{name}: {traceback.format_exc()}"
        print("ERROR", msg, file=sys.stderr)
        ERRORS.append(msg)
        return default


# Special ids the model looks up sit at the top of the tiny vocabulary; bos/eos are not passed, so the text
# config keeps transformers' defaults.
SMALL_VOCAB_IDS = dict(
    vision_start_token_id=995,
    vision_end_token_id=996,
    vision_token_id=997,
    image_token_id=998,
    video_token_id=999,
)

CASES = {
    "v5-small-vocab": dict(
        seed=31,
        text=dict(
            vocab_size=1000,
            hidden_size=24,
            intermediate_size=40,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            rope_parameters={"rope_type": "default", "mrope_section": [2, 2, 2]},
        ),
        vision=dict(depth=1, embed_dim=16, num_heads=2, mlp_ratio=2, hidden_size=24),
        ids=SMALL_VOCAB_IDS,
        weights=True,
    ),
    # trl-internal-testing's tiny Qwen2-VL (scripts/generate_tiny_models/.../qwen2_vl_for_conditional_generation.py)
    # uses two M-RoPE sections; the vocabulary is cut here so the fixture stays small.
    "v5-two-sections": dict(
        seed=32,
        text=dict(
            vocab_size=1000,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            rope_parameters={"rope_type": "default", "mrope_section": [1, 1]},
        ),
        vision=dict(depth=2, embed_dim=64, hidden_size=16),
        ids=SMALL_VOCAB_IDS,
        weights=True,
    ),
}

# Configs a loader might wrongly reject or wrongly accept: does transformers build and run them?
def _mrope(section):
    return {"rope_type": "default", "mrope_section": section}


PROBES = {
    # head_dim 26 // 4 = 6: three rotary frequencies, so the sections stay consistent and only the split is odd.
    "hidden_not_divisible_by_heads": dict(
        text=dict(hidden_size=26, num_attention_heads=4, rope_parameters=_mrope([1, 1, 1])),
        vision=dict(hidden_size=26),
    ),
    "heads_not_multiple_of_kv_heads": dict(
        text=dict(num_attention_heads=3, num_key_value_heads=2, rope_parameters=_mrope([1, 1, 2]))
    ),
    "head_dim_key_ignored": dict(text=dict(head_dim=64)),
    "video_token_outside_vocab": dict(ids=dict(video_token_id=5000)),
    "vision_head_dim_not_multiple_of_4": dict(vision=dict(embed_dim=12, num_heads=2)),
    "merger_width_differs_from_text": dict(vision=dict(hidden_size=32)),
}


def make_config(case):
    from transformers import Qwen2VLConfig

    return Qwen2VLConfig(text_config=dict(case["text"]), vision_config=dict(case["vision"]), **case["ids"])


def build(case):
    from transformers import Qwen2VLForConditionalGeneration

    config = make_config(case)
    guarded("set eager", lambda: setattr(config, "_attn_implementation", "eager"))
    torch.manual_seed(case["seed"])
    model = Qwen2VLForConditionalGeneration(config).float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and ("norm" in name or "ln_q" in name) and name.endswith("weight"):
                p.uniform_(0.9, 1.1)
            else:
                p.normal_(0.0, 0.1)
    return model


def prompts(case):
    ids = case["ids"]
    rng = np.random.default_rng(case["seed"] + 1)
    text = lambda n: rng.integers(3, 900, size=n).tolist()  # noqa: E731
    # One image of 2x2 patches (grid [1, 2, 2]) merges into one token.
    patch = 3 * 2 * 14 * 14
    pixels = rng.standard_normal((4, patch)).astype(np.float32)
    image_ids = text(3) + [ids["vision_start_token_id"], ids["image_token_id"], ids["vision_end_token_id"]] + text(4)
    # One image of 4x6 patches merges into 2x3 tokens whose t, h and w positions differ (the one-token image's
    # coincide), so its logits depend on how mrope_section splits the rotary dims. Its own generator keeps the
    # prompts above as they were.
    wide_rng = np.random.default_rng(case["seed"] + 2)
    wide_pixels = wide_rng.standard_normal((24, patch)).astype(np.float32)
    wide_ids = (
        wide_rng.integers(3, 900, size=2).tolist()
        + [ids["vision_start_token_id"]] + [ids["image_token_id"]] * 6 + [ids["vision_end_token_id"]]
        + wide_rng.integers(3, 900, size=3).tolist()
    )
    return {
        "text": (text(7), None),
        "image": (image_ids, {"pixel_values": pixels, "image_grid_thw": np.array([[1, 2, 2]], dtype=np.int64)}),
        "wide_image": (wide_ids, {"pixel_values": wide_pixels, "image_grid_thw": np.array([[1, 4, 6]], dtype=np.int64)}),
    }


def forward(model, ids, image):
    ids_t = torch.tensor([ids], dtype=torch.long)
    kw = {"input_ids": ids_t, "attention_mask": torch.ones_like(ids_t)}
    if image is not None:
        kw["pixel_values"] = torch.from_numpy(image["pixel_values"])
        kw["image_grid_thw"] = torch.from_numpy(image["image_grid_thw"])
        types = torch.zeros_like(ids_t)
        types[ids_t == model.config.image_token_id] = 1
        kw["mm_token_type_ids"] = types  # transformers 5.x reads the token types for M-RoPE
    with torch.no_grad():
        return model(**kw).logits[0].float().numpy()


def case_fixture(out, name, case):
    from safetensors.numpy import save_file
    from transformers import Qwen2VLForConditionalGeneration

    d = os.path.join(out, name)
    model = build(case)
    if case["weights"]:
        model.save_pretrained(d)
    else:
        os.makedirs(d, exist_ok=True)
        model.config.save_pretrained(d)
        guarded(f"{name} generation_config", lambda: model.generation_config.save_pretrained(d))
    meta = {"case": case, "num_parameters": sum(p.numel() for p in model.parameters())}
    tensors, results = {}, {}
    for pname, (ids, image) in prompts(case).items():
        logits = guarded(f"{name}/{pname} forward", lambda: forward(model, ids, image))
        results[pname] = {"input_ids": ids, "ran": logits is not None}
        if logits is not None:
            tensors[f"{pname}.logits"] = np.ascontiguousarray(logits)
        if image is not None:
            tensors[f"{pname}.pixel_values"] = image["pixel_values"]
            tensors[f"{pname}.image_grid_thw"] = image["image_grid_thw"].astype(np.int32)
    meta["prompts"] = results

    if case["weights"]:
        # What from_pretrained makes of the saved folder: the same logits, and the config values it settled on.
        def reload():
            m2 = Qwen2VLForConditionalGeneration.from_pretrained(d, dtype=torch.float32).eval()
            ids, image = prompts(case)["image"]
            meta["reload_max_abs_diff"] = float(np.abs(forward(m2, ids, image) - tensors["image.logits"]).max())
            meta["loaded_config"] = m2.config.to_dict()

        guarded(f"{name} reload", reload)
    save_file(tensors, os.path.join(d, "reference.safetensors"))
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(meta, f, indent=1, default=str)


def tie_probe():
    """Where 5.17 keeps tie_word_embeddings when only the top-level argument is given, and what it ties."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    base = CASES["v5-small-vocab"]
    config = Qwen2VLConfig(
        text_config=dict(base["text"]), vision_config=dict(base["vision"]), tie_word_embeddings=True, **base["ids"]
    )
    model = Qwen2VLForConditionalGeneration(config)
    saved = json.loads(config.to_json_string())
    return {
        "top": saved.get("tie_word_embeddings"),
        "text_config": saved.get("text_config", {}).get("tie_word_embeddings", "absent"),
        "tied": model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr(),
    }


def probe(name, patch):
    base = CASES["v5-small-vocab"]
    case = {
        "seed": 1,
        "text": {**base["text"], **patch.get("text", {})},
        "vision": {**base["vision"], **patch.get("vision", {})},
        "ids": {**base["ids"], **patch.get("ids", {})},
    }
    r = {"patch": patch}
    try:
        model = build(case)
        r["built"] = True
    except Exception as e:  # noqa: BLE001 - the outcome is the data
        return {**r, "built": False, "error": f"{type(e).__name__}: {e}"}
    # The query width says which head size transformers settled on (hidden // heads, or a head_dim key).
    r["q_proj_shape"] = next(
        list(m.weight.shape) for n, m in model.named_modules() if n.endswith("layers.0.self_attn.q_proj")
    )
    for pname, (ids, image) in prompts(case).items():
        try:
            forward(model, ids, image)
            r[f"{pname}_ran"] = True
        except Exception as e:  # noqa: BLE001
            r[f"{pname}_ran"] = False
            r[f"{pname}_error"] = f"{type(e).__name__}: {e}"
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(8)
    os.makedirs(args.out, exist_ok=True)
    import transformers
    from transformers import Qwen2VLConfig

    meta = {"transformers": transformers.__version__, "torch": torch.__version__}
    print(meta, flush=True)
    meta["class_defaults"] = guarded("class defaults", lambda: Qwen2VLConfig().to_dict())
    meta["class_defaults_diff"] = guarded("class defaults diff", lambda: Qwen2VLConfig().to_diff_dict())
    for name, case in CASES.items():
        guarded(name, lambda: case_fixture(args.out, name, case))
    meta["probes"] = {name: guarded(f"probe {name}", lambda: probe(name, p)) for name, p in PROBES.items()}
    meta["tie_probe"] = guarded("tie probe", tie_probe)
    meta["errors"] = ERRORS
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, default=str)
    print("errors:", len(ERRORS))


if __name__ == "__main__":
    main()
