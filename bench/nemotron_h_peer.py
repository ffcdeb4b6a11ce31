"""The PyTorch peer of bench/nemotron_h.ts: transformers 5.17's NemotronHForCausalLM with the
NVIDIA-Nemotron-Nano-9B-v2 architecture, random bf16 weights made on the GPU by from_config, SDPA attention.

mamba_ssm / causal_conv1d are not installed on the GPU machine, so `use_mamba_kernels=False` and every Mamba-2
block runs transformers' torch fallback (`torch_forward`: the chunked SSD in plain torch ops). That fallback is
slow and memory-hungry at long contexts; it is the peer as that machine has it, and the report says so.

Prefill = the prompt in pieces of --piece tokens through transformers' own cache (logits_to_keep=1), to the
first greedy token read back: the torch fallback's SSD materialises a [chunks, chunk, chunk, heads, state]
product (Nano, chunk 128: 69 G elements for one 32k forward, 4.3 G for a 2048-token piece), so one long
forward does not fit on the GPU; pieces do, and do the same work. Decode = greedy steps through the cache, each token read back (as `generate` does), at
--context only.
Robust within --budget seconds: a size whose predicted time (from the last, linear in tokens) would overrun
is skipped and marked so, an alarm interrupts one that runs past the budget anyway, an out-of-memory is
recorded and ends the series. Prints one JSON line (a Series) last; progress goes to stderr.

  python3 bench/nemotron_h_peer.py --sizes 8192,32768,131072 --context 32768 --decode 64 --budget 90
"""

import argparse
import inspect
import json
import os
import signal
import sys
import tempfile
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--sizes", default="8192,32768,131072")
p.add_argument("--context", type=int, default=32768)
p.add_argument("--decode", type=int, default=64)
p.add_argument("--budget", type=float, default=110)
p.add_argument("--piece", type=int, default=2048, help="prefill piece (tokens; 0 = one forward)")
p.add_argument("--tiny", action="store_true")
a, _ = p.parse_known_args()  # the TS runner may pass knobs meant for its own series

from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402

NANO = dict(
    architectures=["NemotronHForCausalLM"], model_type="nemotron_h", vocab_size=131072, hidden_size=4480,
    hybrid_override_pattern="M-M-M-MM-M-M-M*-M-M-M*-M-M-M-M*-M-M-M-M*-M-MM-M-M-M-M-M-",
    num_hidden_layers=56, intermediate_size=15680, num_attention_heads=40, num_key_value_heads=8, head_dim=128,
    mamba_num_heads=128, mamba_head_dim=80, n_groups=8, ssm_state_size=128, conv_kernel=4, chunk_size=128,
    layer_norm_epsilon=1e-5, max_position_embeddings=131072, mlp_hidden_act="relu2", use_conv_bias=True,
    residual_in_fp32=False, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0,
)
if a.tiny:
    with open("test/fixtures/nemotron_h/nano-like/config.json") as f:
        NANO = json.load(f)


def log(*x):
    print("peer", *x, file=sys.stderr, flush=True)


class Timeout(Exception):
    pass


def on_alarm(*_):
    raise Timeout()


signal.signal(signal.SIGALRM, on_alarm)

dev = "cuda" if torch.cuda.is_available() else "cpu"
dtype = torch.bfloat16 if dev == "cuda" else torch.float32
sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
t0 = time.perf_counter()
with tempfile.TemporaryDirectory() as d:
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(NANO, f)
    config = AutoConfig.from_pretrained(d, use_mamba_kernels=False)
torch.set_default_dtype(dtype)  # parameters are made in bf16 directly, on the GPU
with torch.device(dev):
    try:
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    except Exception as e:  # noqa: BLE001 - a build without SDPA for this model: eager attention
        log("sdpa refused, eager attention:", str(e)[:200])
        model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
torch.set_default_dtype(torch.float32)
model.eval()
sync()
setup = time.perf_counter() - t0
mnh = sys.modules.get(type(model).__module__)
fast = bool(getattr(mnh, "is_fast_path_available", False))
log(f"model made in {setup:.1f} s; mamba fast path available: {fast}; attention: {model.config._attn_implementation}")


gen = torch.Generator(device=dev).manual_seed(5)
vocab = NANO["vocab_size"]
# Only the last row's logits in prefill, where this transformers' forward takes it (as generate asks).
last_only = dict(logits_to_keep=1) if "logits_to_keep" in inspect.signature(model.forward).parameters else {}


def measure(tokens, decode):
    """Prefill in pieces through transformers' own cache (the calling convention of
    tools/reference/nemotron_h_fixtures.py, which 5.17 computes right), then greedy steps, each read back."""
    ids = torch.randint(3, int(vocab * 0.9), (1, tokens), generator=gen, device=dev)
    if dev == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    sync()
    t1 = time.perf_counter()
    with torch.inference_mode():
        cache = None
        for piece in torch.split(ids, a.piece if a.piece > 0 else tokens, dim=1):
            kw = dict(input_ids=piece, use_cache=True, **last_only)
            if cache is not None:
                kw["past_key_values"] = cache
            out = model(**kw)
            cache = out.past_key_values
        tok = int(out.logits[0, -1].argmax())
        t2 = time.perf_counter()
        for _ in range(decode):
            out = model(input_ids=torch.tensor([[tok]], device=dev), past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            tok = int(out.logits[0, -1].argmax())
        t3 = time.perf_counter()
    ttft = t2 - t1
    row = dict(tokens=tokens, status="ok", prefillS=round(ttft, 3), prefillTokS=round(tokens / ttft))
    if decode:
        row["decodeTokS"] = round(decode / (t3 - t2), 3)
    if dev == "cuda":
        row["peakGiB"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    return row


sizes = sorted({*(int(s) for s in a.sizes.split(",")), a.context})
started = time.perf_counter()
rows = []
last = None
try:
    signal.alarm(max(1, int(a.budget)))
    measure(min(sizes[0], 1024), 2)  # warm-up: kernels, allocator, lazy init
    for tokens in sizes:
        left = a.budget - (time.perf_counter() - started)
        decode = a.decode if tokens == a.context else 0
        guess = last["prefillS"] * tokens / last["tokens"] + decode * 0.2 if last else 0
        if guess > left:
            rows.append(dict(tokens=tokens, status="skipped", note=f"predicted {guess:.0f} s > {left:.0f} s left"))
            log(json.dumps(rows[-1]))
            continue
        try:
            last = measure(tokens, decode)
            rows.append(last)
        except torch.cuda.OutOfMemoryError as e:
            rows.append(dict(tokens=tokens, status="oom", note=str(e).split("\n")[0][:200]))
            log(json.dumps(rows[-1]))
            break
        log(json.dumps(rows[-1]))
except Timeout:
    done = {r["tokens"] for r in rows}
    rows += [dict(tokens=t, status="skipped", note=f"ran past the {a.budget:.0f} s budget")
             for t in sizes if t not in done]
finally:
    signal.alarm(0)

name = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
print(json.dumps(dict(name="transformers NemotronH (torch fallback, SDPA)", device=name, setupS=round(setup, 3),
                      mambaFastPath=fast, pieceTokens=a.piece, rows=rows)))
