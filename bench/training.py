"""Training throughput: freshrec's update step against a bare PyTorch loop on the same model and batch.

    python -m bench.training [--model minilm] [--modes lora full] [--batch 32] [--seq 64] [--steps 12]
                             [--device cpu|cuda] [--json]

Both loops train the same CtrModel (user and item towers over one encoder, LoRA or full), with AdamW and
gradient clipping, on batches whose every user and item text is distinct and at least --seq tokens long, so
both encode exactly batch x seq tokens per tower per step (freshrec's de-duplication of repeated texts cannot
help it here). A third loop is freshrec's head-only update (FRESHREC_UPDATE_SCOPE=head) on the same rows: every
text is new to it, so it pays one forward pass per text and no backward pass through the encoder
(head_only_ratio: its examples/s over the full update's). The bare loop gets pre-tokenized tensors; freshrec's
`train()` does its own batching, padding and device copies. Each mode runs in a fresh process (so peak RSS is per
mode), and within it the three loops alternate, after warm-up steps, three times; the medians are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

WORDS = ("football marathon tennis stadium recipe pasta baking kitchen laptop cloud gadget robotics beach passport "
         "island hotel guitar concert album jazz stocks budget savings console quest esports sneakers denim").split()


def texts(n: int, seq: int, seed: int) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(seed)
    # ~1.3 tokens per word: 'seq' words always reach the token limit, so every text is truncated to seq tokens.
    return [f"{i} " + " ".join(rng.choice(WORDS, seq)) for i in range(n)]


def run_mode(model_name: str, mode: str, batch: int, seq: int, steps: int, device_name: str) -> dict:
    import numpy as np
    import pandas as pd
    import torch

    from freshrec.features import SIDE_COLUMNS
    from freshrec.model import build_model, load_tokenizer, new_model_config
    from freshrec.inference import _autocast, pick_device
    from freshrec.settings import TrainingSettings
    from freshrec.trainer import train

    device = pick_device(device_name)
    cfg = new_model_config(model_name, mode, max_item_tokens=seq, max_user_tokens=seq, history_len=5, seed=0)
    tok = load_tokenizer(model_name)
    n = batch * steps
    rng = np.random.default_rng(3)
    data = pd.DataFrame({"user_text": texts(n, seq, 1), "item_text": texts(n, seq, 2), "label": rng.integers(0, 2, n),
                         "user_rate": rng.random(n), "item_rate": rng.random(n), "user_log_n": rng.random(n) * 5,
                         "item_log_n": rng.random(n) * 5})
    train_cfg = TrainingSettings(model=model_name, train_mode=mode, device=device_name, batch_size=batch,
                                 gpu_batch_size=batch, max_train_steps=steps, epochs=1, max_train_seconds=1e9)

    # The bare loop: same model, same optimizer, tensors prepared once, nothing else.
    bare_model = build_model(cfg).to(device).train()
    params = [p for p in bare_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def tensors(col):
        enc = tok(list(data[col]), padding="max_length", truncation=True, max_length=seq, return_tensors="pt")
        return enc["input_ids"].to(device), enc["attention_mask"].to(device)

    u_ids, u_mask = tensors("user_text")
    i_ids, i_mask = tensors("item_text")
    labels = torch.as_tensor(data["label"].to_numpy(dtype=np.float32), device=device)
    side = torch.as_tensor(data[SIDE_COLUMNS].to_numpy(dtype=np.float32), device=device)
    assert int(u_mask.sum()) == n * seq and int(i_mask.sum()) == n * seq, "texts shorter than --seq"

    def bare(k: int) -> float:
        started = time.perf_counter()
        for s in range(k):
            sl = slice(s * batch, (s + 1) * batch)
            with _autocast(device):
                u = bare_model.embed(u_ids[sl], u_mask[sl])
                i = bare_model.embed(i_ids[sl], i_mask[sl])
                logits = bare_model.score_pairs(u, i, side[sl])
            loss = loss_fn(logits.float(), labels[sl])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return k * batch / (time.perf_counter() - started)

    fr_model = build_model(cfg)

    def freshrec(k: int) -> float:
        stats = train(fr_model, tok, cfg, data.iloc[: k * batch],
                      train_cfg.model_copy(update={"max_train_steps": k}))
        if device.type == "cuda":
            torch.cuda.synchronize()
        return stats.examples / stats.seconds

    def head_only(k: int) -> float:  # FRESHREC_UPDATE_SCOPE=head: distinct texts, so each one encoded once
        stats = train(fr_model, tok, cfg, data.iloc[: k * batch],
                      train_cfg.model_copy(update={"max_train_steps": k}), head_only=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return stats.examples / stats.seconds

    bare(2), freshrec(2), head_only(2)  # warm-up: allocator, kernels, thread pools
    runs = {"bare": [], "freshrec": [], "head_only": []}
    for _ in range(3):
        runs["bare"].append(bare(steps))
        runs["freshrec"].append(freshrec(steps))
        runs["head_only"].append(head_only(steps))
    b, f = statistics.median(runs["bare"]), statistics.median(runs["freshrec"])
    h = statistics.median(runs["head_only"])
    return {"model": model_name, "mode": mode, "device": device.type, "batch": batch, "seq": seq,
            "trainable_params": sum(p.numel() for p in params),
            "bare_examples_per_s": round(b, 1), "freshrec_examples_per_s": round(f, 1), "ratio": round(f / b, 3),
            "freshrec_tokens_per_s": round(f * 2 * seq),
            "head_only_examples_per_s": round(h, 1), "head_only_ratio": round(h / f, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "peak_gpu_mb": (round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.type == "cuda" else None),
            "runs": runs}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--modes", nargs="+", default=["lora", "full"], choices=["lora", "full"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one-mode", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one_mode:
        print(json.dumps(run_mode(args.model, args.one_mode, args.batch, args.seq, args.steps, args.device)))
        return []
    results = []
    for mode in args.modes:
        cmd = [sys.executable, "-m", "bench.training", "--one-mode", mode, "--model", args.model, "--batch",
               str(args.batch), "--seq", str(args.seq), "--steps", str(args.steps), "--device", args.device]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ})
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(results))
    else:
        cols = ["model", "mode", "device", "batch", "seq", "trainable_params", "bare_examples_per_s",
                "freshrec_examples_per_s", "ratio", "freshrec_tokens_per_s", "head_only_examples_per_s",
                "head_only_ratio", "peak_rss_mb", "peak_gpu_mb"]
        print(" | ".join(cols))
        for r in results:
            print(" | ".join(str(r[c]) for c in cols))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
