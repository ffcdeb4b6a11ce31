"""The PyTorch peer of bench/long_video.ts: transformers' Qwen2-VL-7B (SDPA, bf16) with random weights made
on the GPU by from_config, on the same synthetic video sizes (644x364 after smart_resize: 1196 patches and 299
tokens per two frames). Prefill = time to the first generated token of `generate` (logits_to_keep=1 is what
generate asks for in prefill); vision = the time inside the vision tower (forward hooks, synchronised);
decoding rate over the remaining tokens (min_new_tokens keeps random weights from stopping early). Stops at the
first out-of-memory; skips sizes that would overrun the time budget. Prints one JSON line (a Series).

  python3 bench/long_video_peer.py --frames 16,64,256 --budget 150 --decode 256
"""

import argparse
import json
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--frames", default="16,64,256,512,1024,2048,3600")
p.add_argument("--budget", type=float, default=150)
p.add_argument("--decode", type=int, default=256)
p.add_argument("--tiny", action="store_true")
a, _ = p.parse_known_args()  # the TS runner passes its tuning knobs to every series

from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration  # noqa: E402
from transformers.generation.streamers import BaseStreamer  # noqa: E402

text = dict(
    vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
    num_attention_heads=28, num_key_value_heads=4, rms_norm_eps=1e-6, max_position_embeddings=32768,
    rope_theta=1000000.0, rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]},
    tie_word_embeddings=False, hidden_act="silu", use_sliding_window=False,
)
vision = dict(depth=32, embed_dim=1280, mlp_ratio=4, num_heads=16, in_chans=3, in_channels=3, hidden_size=3584,
              patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
if a.tiny:
    text.update(vocab_size=320, hidden_size=64, intermediate_size=112, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]})
    vision.update(depth=2, embed_dim=32, num_heads=2, mlp_ratio=2, hidden_size=64, patch_size=4)
ids = dict(vision_start_token_id=151652, vision_end_token_id=151653, vision_token_id=151654,
           image_token_id=151655, video_token_id=151656, bos_token_id=151643, eos_token_id=151645)
if a.tiny:
    ids = dict(vision_start_token_id=310, vision_end_token_id=311, vision_token_id=312, image_token_id=313,
               video_token_id=314, bos_token_id=300, eos_token_id=301)
config = Qwen2VLConfig(text_config=text, vision_config=vision, **text, **ids)
config._attn_implementation = "sdpa"

dev = "cuda" if torch.cuda.is_available() else "cpu"
dtype = torch.bfloat16 if dev == "cuda" else torch.float32
t0 = time.perf_counter()
torch.set_default_dtype(dtype)  # parameters are made in bf16 directly, on the GPU
with torch.device(dev):
    model = Qwen2VLForConditionalGeneration._from_config(config, attn_implementation="sdpa")
torch.set_default_dtype(torch.float32)
model.eval()
sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
sync()
setup = time.perf_counter() - t0
visual = getattr(model, "visual", None) or model.model.visual
spans = []


def vision_started(*_):
    sync()
    spans.append([time.perf_counter()])


def vision_ended(*_):
    sync()
    spans[-1].append(time.perf_counter())


visual.register_forward_pre_hook(vision_started)
visual.register_forward_hook(vision_ended)


class Clock(BaseStreamer):
    """Timestamps of each generated token (the first put is the prompt)."""

    def __init__(self):
        self.times = []
        self.prompt = True

    def put(self, value):
        if self.prompt:
            self.prompt = False
            return
        self.times.append(time.perf_counter())

    def end(self):
        pass


H, W = (24, 40) if a.tiny else (364, 644)
gh, gw = H // vision["patch_size"], W // vision["patch_size"]
row_len = 3 * 2 * vision["patch_size"] ** 2
gen = torch.Generator(device=dev).manual_seed(0)
vocab = text["vocab_size"]
rows = []
started = time.perf_counter()
sizes = [int(f) for f in a.frames.split(",")]
# The first size runs twice and its first run is dropped (kernel selection, allocator, lazy init).
for i, frames in enumerate([sizes[0]] + sizes):
    groups = frames // 2
    tokens = groups * gh * gw // 4
    row = dict(frames=frames, videoTokens=tokens, status="ok")
    rows.append(row)
    last = rows[-2] if len(rows) > 1 else None
    guess = 0
    if last and last.get("prefillS"):
        guess = last["prefillS"] * (frames / last["frames"]) ** 1.5 + a.decode / max(last["decodeTokS"], 1)
    spent = time.perf_counter() - started
    if spent + guess > a.budget:
        row.update(status="skipped", note=f"~{guess:.0f} s would pass the {a.budget:.0f} s budget")
        break
    try:
        q = torch.randint(1, int(vocab * 0.9), (36,), generator=gen, device=dev)
        input_ids = torch.cat([
            q[:12],
            torch.tensor([ids["vision_start_token_id"]], device=dev),
            torch.full((tokens,), ids["video_token_id"], device=dev),
            torch.tensor([ids["vision_end_token_id"]], device=dev),
            q[12:],
        ])[None]
        pixels = torch.empty(groups * gh * gw, row_len, device=dev, dtype=dtype).uniform_(-1.8, 2.1, generator=gen)
        grid = torch.tensor([[groups, gh, gw]], device=dev)
        torch.cuda.empty_cache() if dev == "cuda" else None
        torch.cuda.reset_peak_memory_stats() if dev == "cuda" else None
        spans.clear()
        clock = Clock()
        sync()
        t1 = time.perf_counter()
        with torch.inference_mode():
            model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                           pixel_values_videos=pixels, video_grid_thw=grid, max_new_tokens=a.decode,
                           min_new_tokens=a.decode, do_sample=False, streamer=clock)
        ttft = clock.times[0] - t1
        vis = sum(s[1] - s[0] for s in spans)
        n = len(clock.times)
        row.update(visionS=round(vis, 3), llmS=round(ttft - vis, 3), prefillS=round(ttft, 3),
                   decodeTokS=round((n - 1) / (clock.times[-1] - clock.times[0]), 3) if n > 1 else 0,
                   note="a second question re-runs the whole prefill (no video cache in transformers)")
        if dev == "cuda":
            row.update(peakGiB=round(torch.cuda.max_memory_allocated() / 2**30, 3),
                       reservedGiB=round(torch.cuda.max_memory_reserved() / 2**30, 3))
        del pixels
    except torch.cuda.OutOfMemoryError as e:
        row.update(status="oom", note=str(e).split("\n")[0][:300])
        break
    print("peer", "" if i else "warm-up", json.dumps(row), file=__import__("sys").stderr, flush=True)
    if i == 0:
        rows.pop()
        started = time.perf_counter()

name = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
print(json.dumps(dict(name="transformers Qwen2-VL (SDPA)", device=name, setupS=round(setup, 3), rows=rows)))
