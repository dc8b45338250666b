"""freshrec.embedding_store on the real PostgreSQL: kept vectors come back exactly, under their encoder only."""

import numpy as np
import torch

from freshrec.embedding_store import EmbeddingStore, encoder_key, text_key
from freshrec.inference import FrozenEncoderCache, TokenizedTexts
from freshrec.model import build_model, load_tokenizer, new_model_config
from conftest import count


def tiny_model(seed: int = 0):
    config = new_model_config("tiny", "lora", max_item_tokens=16, max_user_tokens=16, history_len=2, seed=seed)
    return build_model(config).eval()


def test_a_vector_comes_back_exactly_and_only_for_its_encoder_and_token_limit(engine):
    store = EmbeddingStore(engine, "a", max_rows=100)
    vectors = np.random.default_rng(0).normal(size=(2, 8)).astype(np.float32)
    keys = [text_key(16, "one"), text_key(16, "two")]
    store.put(keys, vectors)
    store.put(keys[:1], vectors[1:] + 1)  # a second write of a kept text changes nothing
    found = store.get(keys + [text_key(32, "one")])
    assert set(found) == set(keys) and np.array_equal(found[keys[0]], vectors[0])
    assert np.array_equal(found[keys[1]], vectors[1])
    assert EmbeddingStore(engine, "b", max_rows=100).get(keys) == {}


def test_pruning_keeps_the_newest_rows_of_any_encoder(engine):
    old, new = EmbeddingStore(engine, "old", max_rows=3), EmbeddingStore(engine, "new", max_rows=3)
    old.put([text_key(8, f"o{i}") for i in range(4)], np.zeros((4, 2), np.float32))
    new.put([text_key(8, f"n{i}") for i in range(2)], np.ones((2, 2), np.float32))
    assert new.prune() == 3 and count(engine, "text_embeddings") == 3
    assert len(old.get([text_key(8, "o3")])) == 1 and len(new.get([text_key(8, "n0"), text_key(8, "n1")])) == 2


def test_the_encoder_key_follows_every_weight():
    model = tiny_model()
    key = encoder_key(model)
    assert encoder_key(tiny_model()) == key  # the same weights
    with torch.no_grad():
        next(p for n, p in model.encoder.named_parameters() if "lora_B" in n).add_(0.01)  # an adapter moves
    assert encoder_key(model) != key
    head_moved = tiny_model()
    with torch.no_grad():
        head_moved.head[0].weight.add_(1.0)
    assert encoder_key(head_moved) == key  # the head is not the encoder


def test_a_second_cache_on_the_store_encodes_nothing_and_gets_the_same_vectors(engine):
    model = tiny_model()
    texts = TokenizedTexts(load_tokenizer("tiny"), ["a red film", "a blue book", "a red film"], 16)
    store = EmbeddingStore(engine, encoder_key(model), max_rows=100)
    first = FrozenEncoderCache(model, torch.device("cpu"), store)
    before = first(texts, np.arange(len(texts.unique)))
    assert first.encoded == 2 and store.stored == 2
    second = FrozenEncoderCache(model, torch.device("cpu"), EmbeddingStore(engine, store.encoder, 100))
    assert torch.equal(second(texts, np.arange(len(texts.unique))), before) and second.encoded == 0
