"""Inference with a model version: the device, tokenized texts, and P(engage) for examples; what serving, the
trainer and the benchmarks share."""

from __future__ import annotations

import numpy as np
import pandas as pd

from freshrec.cpu import cpu_threads
from freshrec.model import ModelConfig


def cuda_requested(requested: str) -> bool:
    """Whether training will run on a GPU (without initialising one on a CPU machine)."""
    if requested == "cpu":
        return False
    import torch

    return requested == "cuda" or torch.cuda.is_available()


def pick_device(requested: str, threads: int = 0):
    """The torch device; on the CPU also sets the intra-op threads (freshrec.cpu.cpu_threads)."""
    import torch

    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            from freshrec.errors import ModelError
            raise ModelError("FRESHREC_DEVICE is 'cuda' but PyTorch sees no GPU: install a CUDA build of torch "
                             "(docs/operating.md, GPU) or set FRESHREC_DEVICE=auto.")
        return torch.device("cuda")
    torch.set_num_threads(cpu_threads(threads))
    return torch.device("cpu")


def _autocast(device):
    import contextlib

    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class TokenizedTexts:
    """Each distinct text tokenized once; batches are padded to their own longest text."""

    def __init__(self, tokenizer, texts, max_len: int):
        self.unique, self.index = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
        self.max_len = max_len
        self.ids = tokenizer(list(self.unique), truncation=True, max_length=max_len)["input_ids"]
        self.lengths = np.fromiter((len(s) for s in self.ids), dtype=np.int64, count=len(self.ids))
        self.pad = tokenizer.pad_token_id or 0

    def batch(self, unique_positions: np.ndarray, device):
        import torch

        seqs = [self.ids[i] for i in unique_positions]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            ids[row, :len(seq)] = torch.as_tensor(seq)
            mask[row, :len(seq)] = 1
        if device.type == "cuda":
            return ids.pin_memory().to(device, non_blocking=True), mask.pin_memory().to(device, non_blocking=True)
        return ids, mask


def encode_chunk(device) -> int:
    """Texts per forward pass of the encoder: small on a CPU, where a pass costs what its padded tokens cost
    whatever the batch; large on a GPU, which needs wide batches to be busy."""
    return 256 if device.type == "cuda" else 16


def encode(model, texts: TokenizedTexts, positions: np.ndarray, device):
    """The model's embeddings of the distinct texts at `positions`, in that order, encoded in chunks of similar
    token length (encode_chunk): a chunk is padded to its longest text, so a 15-token title batched beside a
    96-token history would cost as much as another history. Gradients flow when they are enabled."""
    import torch

    positions = np.asarray(positions, dtype=np.int64)
    chunk = encode_chunk(device)
    order = np.argsort(texts.lengths[positions], kind="stable")
    parts = [model.embed(*texts.batch(positions[order[lo:lo + chunk]], device)) for lo in range(0, len(order), chunk)]
    out = torch.cat(parts)
    return out[torch.as_tensor(np.argsort(order, kind="stable"), device=out.device)]


def embed_texts(model, tokenizer, texts: list[str], max_len: int, device) -> np.ndarray:
    """The model's embedding of each text (every distinct text encoded once), as a numpy array."""
    import torch

    tokens = TokenizedTexts(tokenizer, texts, max_len)
    if not len(tokens.unique):
        return np.zeros((0, 0), dtype=np.float32)
    with torch.no_grad(), _autocast(device):
        out = encode(model, tokens, np.arange(len(tokens.unique)), device).float().cpu().numpy()
    return out[tokens.index]


class FrozenEncoderCache:
    """Embeddings of distinct texts by an encoder that does not change while the cache lives: a champion and a
    candidate warm-started from it that trains only its head (FRESHREC_UPDATE_SCOPE=head) share one encoder, so a
    text the champion scored is not encoded again to train or score the candidate. Forward only, no dropout."""

    def __init__(self, model, device, store=None):
        self.model, self.device = model, device
        self.store = store  # embedding_store.EmbeddingStore of this encoder: vectors kept from earlier cycles
        self.vectors: dict[tuple[int, str], object] = {}  # (token limit, text) -> embedding
        self.encoded = 0  # texts this cache encoded (not found in memory or in the store)

    def fill(self, texts: TokenizedTexts, positions: np.ndarray | None = None) -> None:
        """Encode the texts at `positions` (default: all of them) that the cache lacks, together: the more texts
        one call encodes, the closer in length each chunk's texts are (encode). With a store, texts it holds are
        read from it and those encoded now are written to it."""
        import torch

        positions = np.arange(len(texts.unique)) if positions is None else np.unique(positions)
        new = [i for i in positions if (texts.max_len, texts.unique[i]) not in self.vectors]
        if not new:
            return
        if self.store is not None:
            from freshrec.embedding_store import text_key

            keys = {i: text_key(texts.max_len, texts.unique[i]) for i in new}
            kept = self.store.get(list(keys.values()))
            for i in new:
                if keys[i] in kept:
                    self.vectors[(texts.max_len, texts.unique[i])] = torch.from_numpy(kept[keys[i]].copy()).to(
                        self.device)
            new = [i for i in new if keys[i] not in kept]
            if not new:
                return
        encoder_mode = self.model.encoder.training
        self.model.encoder.eval()
        with torch.no_grad(), _autocast(self.device):
            vectors = encode(self.model, texts, np.asarray(new), self.device).float()
        self.model.encoder.train(encoder_mode)
        self.encoded += len(new)
        self.vectors.update({(texts.max_len, texts.unique[i]): v for i, v in zip(new, vectors)})
        if self.store is not None:
            self.store.put([keys[i] for i in new], vectors.cpu().numpy())

    def __call__(self, texts: TokenizedTexts, positions: np.ndarray):
        import torch

        self.fill(texts, positions)
        return torch.stack([self.vectors[(texts.max_len, texts.unique[i])] for i in positions])


def _pair_logits(model, users: TokenizedTexts, items: TokenizedTexts, rows: np.ndarray, device,
                 side: np.ndarray | None = None, ids: tuple | None = None,
                 cache: FrozenEncoderCache | None = None):
    """Logits for the example rows, encoding each distinct user and item text of the batch once (with a cache:
    only those it has not seen)."""
    import torch

    u_pos, u_inv = np.unique(users.index[rows], return_inverse=True)
    i_pos, i_inv = np.unique(items.index[rows], return_inverse=True)
    if cache is not None:
        u, i = cache(users, u_pos), cache(items, i_pos)
    else:
        u, i = encode(model, users, u_pos, device), encode(model, items, i_pos, device)
    extra = torch.as_tensor(side[rows], device=device) if side is not None else None
    picked = None
    if ids is not None:
        at = torch.as_tensor(rows)
        picked = (ids[0][at].to(device), ids[1][at].to(device))
    return model.score_pairs(u[torch.as_tensor(u_inv, device=device)], i[torch.as_tensor(i_inv, device=device)],
                             extra, picked)


def _texts(tokenizer, config: ModelConfig, examples: pd.DataFrame) -> tuple[TokenizedTexts, TokenizedTexts]:
    return (TokenizedTexts(tokenizer, examples["user_text"].to_numpy(), config.max_user_tokens),
            TokenizedTexts(tokenizer, examples["item_text"].to_numpy(), config.max_item_tokens))


def _side(config: ModelConfig, examples: pd.DataFrame) -> np.ndarray | None:
    from freshrec.features import side_columns

    return examples[side_columns(config)].to_numpy(dtype=np.float32) if config.side_features else None


def _ids(config: ModelConfig, examples: pd.DataFrame) -> tuple | None:
    from freshrec.model import id_inputs

    if not config.id_buckets:
        return None
    return id_inputs(config, examples["item_id"].to_numpy(dtype=np.int64), examples["history_item_ids"].tolist())


def predict(model, tokenizer, config: ModelConfig, examples: pd.DataFrame, device=None,
            batch_size: int = 256, cache: FrozenEncoderCache | None = None) -> np.ndarray:
    """P(engage) for each example (cache: embeddings of the model's encoder, filled and reused; without one, a
    cache of this call's: each distinct text is encoded once, all of them before scoring, in chunks of similar
    length)."""
    import torch

    if examples.empty:
        return np.zeros(0)
    device = device or next(model.parameters()).device
    model.to(device).eval()
    users, items = _texts(tokenizer, config, examples)
    cache = cache if cache is not None else FrozenEncoderCache(model, device)
    cache.fill(users)
    cache.fill(items)
    side = _side(config, examples)
    ids = _ids(config, examples)
    out = []
    with torch.no_grad(), _autocast(device):
        for lo in range(0, len(examples), batch_size):
            rows = np.arange(lo, min(len(examples), lo + batch_size))
            logits = _pair_logits(model, users, items, rows, device, side, ids, cache)
            out.append(torch.sigmoid(logits.float()).cpu().numpy())
    return np.concatenate(out)
