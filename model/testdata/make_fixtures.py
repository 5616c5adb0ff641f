#!/usr/bin/env python3
"""Make loom's model fixtures with Hugging Face transformers.

For each model directory (a Hugging Face model written by loom, holding
loom_fixture.json with the model's description, its prompt token ids and
the number of greedy steps), this loads the model in float32 with
transformers, runs the prompt and records, for every prompt position:

  - the logits of every `stride`-th token id (0, stride, 2*stride, ...),
  - the 8 most likely ids,
  - the log-sum-exp over the whole vocabulary,

then decodes greedily for the given number of steps (recomputing the whole
sequence at each step, so no cache is involved) and records the ids and
the margin between the best and second-best logit at each step. It also
records the first values of the embedding table as transformers loaded
them, so a test can tell "other weights" from "other arithmetic".

The result is written to OUT/<name>.json: loom_fixture.json plus these
outputs. model/arch's TestFixtures compares loom against it.

Usage: make_fixtures.py --out OUT DIR [DIR ...]
"""
import argparse
import json
import os

import torch
import transformers
from transformers import AutoModelForCausalLM


def load(path, device):
    kw = {"attn_implementation": "eager"}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kw)
    except TypeError:  # transformers 4 names it torch_dtype
        model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32, **kw)
    return model.eval().to(device)


def short(values):
    """Floats with 9 significant digits: enough for float32, half the text."""
    return [float(f"{v:.9g}") for v in values]


def fixture(path, stride, device):
    with open(os.path.join(path, "loom_fixture.json")) as f:
        fx = json.load(f)
    model = load(path, device)
    emb = model.get_input_embeddings().weight
    fx["hf_embed_head"] = short(emb[0, : len(fx["embed_head"])].float().tolist())

    prompt = fx["prompt_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([prompt], device=device)).logits[0].double()
    fx["stride"] = stride
    fx["logits"] = [short(row[::stride].tolist()) for row in logits]
    fx["top_ids"] = [torch.topk(row, 8).indices.tolist() for row in logits]
    fx["logsumexp"] = short(torch.logsumexp(logits, dim=-1).tolist())

    seq, greedy, margins = list(prompt), [], []
    with torch.no_grad():
        for _ in range(fx["steps"]):
            last = model(torch.tensor([seq], device=device)).logits[0, -1].double()
            top = torch.topk(last, 2)
            greedy.append(int(top.indices[0]))
            margins.append(float(f"{float(top.values[0] - top.values[1]):.6g}"))
            seq.append(greedy[-1])
    fx["greedy_ids"] = greedy
    fx["greedy_margins"] = margins
    fx["transformers"] = f"transformers {transformers.__version__}, torch {torch.__version__}, {device}, float32, eager attention"
    return fx


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", help="Hugging Face model directories written by loom")
    ap.add_argument("--out", required=True, help="folder for the <name>.json fixtures")
    ap.add_argument("--stride", type=int, default=61, help="keep the logits of every STRIDE-th id")
    ap.add_argument("--device", default="cpu", help="torch device (cpu keeps float32 exact)")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    os.makedirs(args.out, exist_ok=True)
    for d in args.dirs:
        fx = fixture(d, args.stride, args.device)
        out = os.path.join(args.out, fx["name"] + ".json")
        with open(out, "w") as f:
            json.dump(fx, f, indent=1)
        print(f"{out}: {len(fx['prompt_ids'])} positions, greedy {fx['greedy_ids'][:8]}... ({fx['transformers']})")


if __name__ == "__main__":
    main()
