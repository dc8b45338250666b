"""GPU correctness: the same model and batch give the same loss on the GPU (bf16 autocast) as on the CPU (fp32).

    python -m bench.gpu_consistency [--model minilm] [--batch 64] [--tolerance 0.02]

Exits 1 when the losses differ by more than the tolerance, 2 when no GPU is visible.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--mode", default="lora", choices=["lora", "full"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--tolerance", type=float, default=0.02)
    args = parser.parse_args(argv)

    import numpy as np
    import pandas as pd
    import torch

    if not torch.cuda.is_available():
        print("no GPU visible to PyTorch: nothing to compare", file=sys.stderr)
        return 2
    from bench.training import texts
    from freshrec.features import SIDE_COLUMNS
    from freshrec.model import build_model, load_tokenizer, new_model_config
    from freshrec.inference import TokenizedTexts, _autocast, _pair_logits

    cfg = new_model_config(args.model, args.mode, max_item_tokens=args.seq, max_user_tokens=args.seq,
                           history_len=5, seed=0)
    tok = load_tokenizer(args.model)
    rng = np.random.default_rng(3)
    data = pd.DataFrame({"user_text": texts(args.batch, args.seq, 1), "item_text": texts(args.batch, args.seq, 2),
                         "label": rng.integers(0, 2, args.batch), "user_rate": rng.random(args.batch),
                         "item_rate": rng.random(args.batch), "user_log_n": rng.random(args.batch) * 5,
                         "item_log_n": rng.random(args.batch) * 5})
    side = data[SIDE_COLUMNS].to_numpy(dtype=np.float32)
    users = TokenizedTexts(tok, data["user_text"].to_numpy(), args.seq)
    items = TokenizedTexts(tok, data["item_text"].to_numpy(), args.seq)
    rows = np.arange(args.batch)
    labels = torch.as_tensor(data["label"].to_numpy(dtype=np.float32))
    cpu_model = build_model(cfg).train()
    gpu_model = copy.deepcopy(cpu_model).cuda()
    out = {}
    for name, model, device in (("cpu_fp32", cpu_model, torch.device("cpu")),
                                ("gpu_bf16", gpu_model, torch.device("cuda"))):
        torch.manual_seed(0)
        model.eval()  # no dropout: both see the same function
        with _autocast(device):
            logits = _pair_logits(model, users, items, rows, device, side)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.to(device))
        loss.backward()
        grad = torch.sqrt(sum((p.grad.float() ** 2).sum() for p in model.parameters() if p.grad is not None))
        out[name] = {"loss": float(loss), "grad_norm": float(grad)}
    out["loss_diff"] = abs(out["cpu_fp32"]["loss"] - out["gpu_bf16"]["loss"])
    out["ok"] = out["loss_diff"] <= args.tolerance
    print(json.dumps(out))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
