#!/usr/bin/env python3
"""The transformers baseline for `loom bench`, run on the GPU machine.

Builds a Llama-shaped model with random BF16 weights directly on the GPU
(speed does not depend on the weight values), then measures, with CUDA
events, the same figures `loom bench --json` reports:

  * prefill: one forward pass over a --prompt-len prompt (time to first
    token, tokens/s, achieved TFLOP/s);
  * decode: greedy `generate` with a static KV cache at each --batch, timed
    as the difference between generating --gen tokens and 1 token, so the
    prefill is not counted (tokens/s per sequence and aggregate, ms/token).

It prints one JSON object per measurement on stdout (and a summary on
stderr). Needs torch and transformers; no network: nothing is downloaded.

Example:
  python3 bench/hf_baseline.py --preset llama3-8b --prompt-len 2048 --gen 64 --batch 1,8,32
"""
import argparse
import json
import statistics
import sys
import time

import torch

PRESETS = {
    # name: (vocab, dim, hidden, layers, heads, kv_heads, rope_theta, context)
    "llama3-8b": (128256, 4096, 14336, 32, 32, 8, 500000.0, 8192),
    "llama2-7b": (32000, 4096, 11008, 32, 32, 32, 10000.0, 4096),
    "tinyllama-1.1b": (32000, 2048, 5632, 22, 32, 4, 10000.0, 2048),
    "stories110m": (32000, 768, 2048, 12, 12, 12, 10000.0, 1024),
}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def build(preset, dtype):
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab, dim, hidden, layers, heads, kv, theta, ctx = PRESETS[preset]
    cfg = LlamaConfig(
        vocab_size=vocab, hidden_size=dim, intermediate_size=hidden,
        num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv, rope_theta=theta, max_position_embeddings=ctx,
        rms_norm_eps=1e-5, tie_word_embeddings=False,
    )
    t0 = time.time()
    with torch.device("cuda"):
        torch.set_default_dtype(dtype)
        model = LlamaForCausalLM(cfg)
        torch.set_default_dtype(torch.float32)
    model = model.to(dtype).eval()
    # Small random weights keep activations finite through 32 layers.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.02)
    torch.cuda.synchronize()
    nparams = sum(p.numel() for p in model.parameters())
    log(f"built {preset} ({nparams/1e9:.2f} B parameters) in {time.time()-t0:.1f} s")
    return model, cfg, nparams


def timed(fn, reps, warmup=1):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="llama3-8b", choices=sorted(PRESETS))
    ap.add_argument("--prompt-len", type=int, default=2048)
    ap.add_argument("--decode-prompt-len", type=int, default=128)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--batch", default="1,8,32")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="let generate() torch.compile the static-cache forward")
    args = ap.parse_args()

    torch.manual_seed(0)
    dtype = torch.bfloat16
    model, cfg, nparams = build(args.preset, dtype)
    dev = torch.cuda.get_device_name(0)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    common = {"engine": "transformers", "version": __import__("transformers").__version__,
              "torch": torch.__version__, "device": dev, "preset": args.preset, "dtype": "bf16"}

    # Prefill: one forward over the prompt, logits for the last position only.
    ids = torch.randint(0, cfg.vocab_size, (1, args.prompt_len), device="cuda")
    with torch.no_grad():
        t = timed(lambda: model(ids, logits_to_keep=1, use_cache=False), args.reps)
    flops = 2 * nparams * args.prompt_len  # matmul FLOPs; attention excluded
    rec = dict(common, kind="prefill", batch=1, prompt_len=args.prompt_len,
               ttft_ms=t * 1e3, prefill_tok_s=args.prompt_len / t, prefill_tflops=flops / t / 1e12)
    print(json.dumps(rec), flush=True)
    log(f"prefill {args.prompt_len}: {t*1e3:.1f} ms, {args.prompt_len/t:.0f} tok/s, {flops/t/1e12:.1f} TFLOP/s")

    for b in [int(x) for x in args.batch.split(",") if x]:
        ids = torch.randint(0, cfg.vocab_size, (b, args.decode_prompt_len), device="cuda")
        mask = torch.ones_like(ids)

        def gen(n):
            return model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                do_sample=False, cache_implementation="static", disable_compile=not args.compile,
                pad_token_id=0)

        with torch.no_grad():
            t1 = timed(lambda: gen(1), args.reps)
            tn = timed(lambda: gen(args.gen), args.reps)
        per_tok = (tn - t1) / (args.gen - 1)
        rec = dict(common, kind="decode", batch=b, prompt_len=args.decode_prompt_len, gen=args.gen,
                   decode_ms_per_step=per_tok * 1e3, decode_tok_s=1 / per_tok,
                   decode_tok_s_aggregate=b / per_tok,
                   decode_gbs=weight_bytes / per_tok / 1e9, compiled=bool(args.compile))
        print(json.dumps(rec), flush=True)
        log(f"decode batch {b}: {per_tok*1e3:.2f} ms/step, {b/per_tok:.1f} tok/s aggregate, "
            f"{weight_bytes/per_tok/1e9:.0f} GB/s of weights")


if __name__ == "__main__":
    main()
