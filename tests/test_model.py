"""The model: artifacts round-trip exactly, tampering is refused, and a fine-tune learns a learnable pattern."""

import hashlib

import numpy as np
import pandas as pd
import pytest

from freshrec.errors import ModelError
from freshrec.metrics import binary_metrics
from freshrec.model import build_model, load_artifact, load_tokenizer, new_model_config, read_artifact_config, save_artifact
from freshrec.training import TrainConfig, predict, train

TOPICS = {"football": "sports", "guitar": "music", "recipe": "cooking", "laptop": "technology"}


def examples(n: int, seed: int) -> pd.DataFrame:
    """Users like items of the topic they liked before: learnable from text alone."""
    rng = np.random.default_rng(seed)
    words = list(TOPICS)
    likes = rng.choice(words, n)
    shown = np.where(rng.random(n) < 0.5, likes, rng.choice(words, n))
    return pd.DataFrame({
        "user_text": [f"liked: {w} review; {w} guide" for w in likes],
        "item_text": [f"{w} special | {TOPICS[w]}" for w in shown],
        "label": (likes == shown).astype(int),
        # no history yet: neutral like-rates, so only the text can tell
        "user_rate": 0.5, "item_rate": 0.5, "user_log_n": 0.0, "item_log_n": 0.0,
    })


def config(mode: str):
    return new_model_config("tiny", mode, max_item_tokens=16, max_user_tokens=24, history_len=2, seed=0)


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_artifact_round_trip_gives_identical_predictions(mode):
    cfg = config(mode)
    model = build_model(cfg)
    tok = load_tokenizer("tiny")
    data = examples(40, 0)
    train(model, tok, cfg, data, TrainConfig(model="tiny", train_mode=mode, max_steps=3))
    artifact = save_artifact(model, cfg)
    assert artifact.sha256 == hashlib.sha256(artifact.data).hexdigest()
    assert artifact.data[:8] != b"\x80\x04\x95"  # safetensors, not a pickle
    assert read_artifact_config(artifact.data).train_mode == mode
    again, cfg2 = load_artifact(artifact.data, artifact.sha256)
    np.testing.assert_array_equal(predict(model, tok, cfg, data), predict(again, tok, cfg2, data))


def test_tampered_artifact_is_refused():
    cfg = config("full")
    artifact = save_artifact(build_model(cfg), cfg)
    tampered = bytearray(artifact.data)
    tampered[-1] ^= 0xFF
    with pytest.raises(ModelError, match="altered"):
        load_artifact(bytes(tampered), artifact.sha256)


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ModelError, match="neither 'minilm', 'tiny' nor a folder"):
        new_model_config("no/such/model", "lora", max_item_tokens=8, max_user_tokens=8, history_len=1, seed=0)


def test_fine_tune_lowers_held_out_log_loss():
    cfg = config("full")
    model = build_model(cfg)
    tok = load_tokenizer("tiny")
    train_set, held_out = examples(800, 1), examples(300, 2)
    before = binary_metrics(held_out["label"], predict(model, tok, cfg, held_out))
    stats = train(model, tok, cfg, train_set, TrainConfig(model="tiny", train_mode="full", learning_rate=3e-3,
                                                         max_steps=150, epochs=6))
    after = binary_metrics(held_out["label"], predict(model, tok, cfg, held_out))
    assert stats.steps == 150
    assert after["logloss"] < before["logloss"] - 0.05
    assert after["auc"] > 0.75
