"""Embeddings of texts by a frozen encoder, kept in PostgreSQL between cycles (0014_text_embeddings.sql).

A head-only warm start (FRESHREC_UPDATE_SCOPE=head) trains on its champion's encoder's embeddings and never
changes that encoder, so until a rebase publishes a new one, every cycle would encode the same texts again: the
backlog rows and replayed rows it trains on, the gate window's earlier held-out rows, the probe set. Encoding is
most of a head-only cycle's cost on a CPU. The store keeps each vector under a fingerprint of the encoder's weights
(encoder_key) and of the text with its token limit, so a vector is only ever read for the encoder and token limit
that made it, exactly as computed (float32). FrozenEncoderCache (inference.py) reads it before encoding and writes
what it encodes. It is a cache: losing it costs encoding again, nothing else.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
from sqlalchemy.engine import Engine

from freshrec.sqlfiles import query

log = logging.getLogger(__name__)

DTYPE = np.float32


def encoder_key(model) -> str:
    """A fingerprint of the model's encoder: every weight's name, dtype, shape and value (LoRA adapters included).
    Two encoders with the same key embed every text alike."""
    import torch

    digest = hashlib.blake2b(digest_size=20)
    state = model.encoder.state_dict()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def text_key(max_len: int, text: str) -> bytes:
    return hashlib.blake2b(f"{max_len}\x1f{text}".encode(), digest_size=16).digest()


class EmbeddingStore:
    """The kept embeddings of one encoder (encoder_key). Reads and writes run in transactions of their own, apart
    from the cycle's commit: a vector is valid whatever the cycle decides."""

    def __init__(self, engine: Engine, encoder: str, max_rows: int):
        self.engine, self.encoder, self.max_rows = engine, encoder, max_rows
        self.hits = self.stored = 0

    def get(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        if not keys:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(query("embeddings_get"), {"encoder": self.encoder, "keys": keys}).all()
        found = {bytes(key): np.frombuffer(bytes(vector), dtype=DTYPE) for key, vector in rows}
        self.hits += len(found)
        return found

    def put(self, keys: list[bytes], vectors: np.ndarray) -> None:
        if not keys:
            return
        vectors = np.ascontiguousarray(vectors, dtype=DTYPE)
        with self.engine.begin() as conn:
            conn.execute(query("embeddings_put"), {"encoder": self.encoder, "keys": keys,
                                                   "vectors": [row.tobytes() for row in vectors]})
        self.stored += len(keys)

    def prune(self) -> int:
        """Drop the oldest vectors past max_rows, of any encoder (a replaced encoder's are the oldest); returns
        how many went."""
        with self.engine.begin() as conn:
            gone = conn.execute(query("embeddings_prune"), {"max_rows": self.max_rows}).rowcount
        if gone:
            log.info("embedding store: dropped the %d oldest vectors, past %d", gone, self.max_rows)
        return gone
