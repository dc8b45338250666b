"""freshrec.model: a clear error for an unknown base model, the item-id term learns what the text cannot, and the
packaged models load without the network (artifacts: test_artifacts.py)."""

import socket

import numpy as np
import pandas as pd
import pytest

from freshrec.errors import ModelError
from freshrec.artifacts import load_artifact, save_artifact
from freshrec.metrics import binary_metrics
from freshrec.model import build_model, id_inputs, load_tokenizer, new_model_config
from freshrec.inference import predict
from freshrec.settings import TrainingSettings
from freshrec.trainer import train

from helpers import config


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ModelError, match="neither 'minilm', 'tiny' nor a folder"):
        new_model_config("no/such/model", "lora", max_item_tokens=8, max_user_tokens=8, history_len=1, seed=0)


def same_text_examples(n: int, seed: int) -> pd.DataFrame:
    """Two taste groups over items whose texts are all alike: only the item ids (the user's liked items and the
    shown item) tell whether the user will like it."""
    rng = np.random.default_rng(seed)
    group_items = {0: np.arange(100, 110), 1: np.arange(200, 210)}
    taste, shown_group = rng.integers(0, 2, n), rng.integers(0, 2, n)
    return pd.DataFrame({
        "user_text": "liked: a film; a film", "item_text": "a film | drama",
        "item_id": [int(rng.choice(group_items[g])) for g in shown_group],
        "history_item_ids": [[int(i) for i in rng.choice(group_items[t], 2, replace=False)] for t in taste],
        "label": (taste == shown_group).astype(int),
        "user_rate": 0.5, "item_rate": 0.5, "user_log_n": 0.0, "item_log_n": 0.0,
    })


@pytest.mark.train
@pytest.mark.parametrize("id_buckets", [64, 0])
def test_item_id_term_learns_what_the_text_cannot(id_buckets):
    cfg = new_model_config("tiny", "lora", max_item_tokens=16, max_user_tokens=24, history_len=2, seed=0,
                           id_buckets=id_buckets)
    model = build_model(cfg)
    tok = load_tokenizer("tiny")
    train(model, tok, cfg, same_text_examples(800, 1),
          TrainingSettings(model="tiny", learning_rate=3e-3, max_train_steps=100, epochs=4))
    held_out = same_text_examples(300, 2)
    auc = binary_metrics(held_out["label"], predict(model, tok, cfg, held_out))["auc"]
    if id_buckets:
        assert auc > 0.9
        again, cfg2 = load_artifact(save_artifact(model, cfg).data)
        np.testing.assert_array_equal(predict(model, tok, cfg, held_out), predict(again, tok, cfg2, held_out))
    else:  # identical texts and neutral rates: nothing to learn from
        assert auc < 0.65


def test_id_inputs_fold_ids_into_the_table_and_pad_unknowns():
    cfg = new_model_config("tiny", "lora", max_item_tokens=8, max_user_tokens=8, history_len=3, seed=0, id_buckets=10)
    items, history = id_inputs(cfg, [7, 23, -1], [[1, 12, 5, 9], [], None])
    assert items.tolist() == [7, 3, 10]  # 23 shares row 3; -1 (an old probe pair) gets the zero padding row
    assert history.tolist() == [[1, 2, 5], [10, 10, 10], [10, 10, 10]]  # most recent history_len, padded
    assert id_inputs(config("lora"), [1], [[2]]) is None  # a version without the id term


def test_models_load_without_the_network(monkeypatch):
    from freshrec.model import build_model, load_tokenizer, new_model_config

    def refuse(self, address):
        raise OSError(f"network access attempted: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    load_tokenizer.cache_clear()
    cfg = new_model_config("minilm", "lora", max_item_tokens=16, max_user_tokens=16, history_len=2, seed=0)
    model = build_model(cfg)
    assert cfg.hidden_size == 384 and sum(p.numel() for p in model.parameters() if p.requires_grad) < 1_000_000  # LoRA + head, not 22M
    assert load_tokenizer("minilm")("hello")["input_ids"][0] == 101


@pytest.mark.parametrize("category_rate,recent_rate", [(True, True), (False, True), (True, False)])
def test_an_untrained_model_is_exactly_the_like_rate_prior_and_fitting_its_wide_part_finds_the_recent_rate(
        category_rate, recent_rate):
    """The wide part starts as logit(user rate, or their rate in the item's categories) + logit(item rate) and the
    deep part adds nothing: the bench's per-event prior contender. A new model's wide part is then fitted to its
    training rows from the hand-set prior (wide.fit): on rows whose labels follow the recent rate, it learns to
    weigh it."""
    import torch

    from freshrec.features import CATEGORY_RATE, RECENT_RATE, side_columns
    from freshrec import wide

    cfg = new_model_config("tiny", "full", max_item_tokens=8, max_user_tokens=8, history_len=2, seed=0,
                           category_rate=category_rate, recent_rate=recent_rate)
    rng = np.random.default_rng(0)
    n = 4000
    examples = pd.DataFrame({"user_text": [f"liked: film {i % 50}" for i in range(n)],
                             "item_text": [f"film {i % 50} | drama" for i in range(n)],
                             "user_rate": rng.uniform(0.1, 0.9, n), "item_rate": rng.uniform(0.1, 0.9, n),
                             "user_log_n": rng.uniform(0, 5, n), "item_log_n": rng.uniform(0, 5, n),
                             CATEGORY_RATE: rng.uniform(0.1, 0.9, n), RECENT_RATE: rng.uniform(0.1, 0.9, n),
                             "item_id": np.arange(n), "history_item_ids": [[]] * n})
    assert len(side_columns(cfg)) == 4 + 2 * recent_rate
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    prior = logit(examples[CATEGORY_RATE if category_rate else "user_rate"]) + logit(examples["item_rate"])
    model = build_model(cfg)
    sample = examples.head(50)
    got = predict(model, load_tokenizer("tiny"), cfg, sample)
    np.testing.assert_allclose(got, torch.sigmoid(torch.as_tensor(prior[:50].to_numpy())).numpy(), atol=1e-5)

    # labels drawn from the item rate and, twice as strongly, the recent rate: the fit finds that, and the scores
    truth = logit(examples["item_rate"]) + (2 * logit(examples[RECENT_RATE]) if recent_rate else 0)
    labels = (rng.random(n) < 1 / (1 + np.exp(-truth))).astype(np.float32)
    side = examples[side_columns(cfg)].to_numpy(np.float32)
    fitted = wide.fit(model, side, labels, wide.current(model, side_columns(cfg)))
    weights = pd.Series(fitted.mean[:-1], index=side_columns(cfg)).groupby(level=0).sum()  # user_rate may be twice
    assert fitted.rows == n and abs(weights["item_rate"] - 1) < 0.2
    assert abs(weights[side_columns(cfg)[0]]) < 0.3  # the user's long-run rate says nothing here
    if recent_rate:
        assert abs(weights[RECENT_RATE] - 2) < 0.3
    scores = predict(model, load_tokenizer("tiny"), cfg, examples)
    assert binary_metrics(labels, scores)["auc"] > binary_metrics(labels, 1 / (1 + np.exp(-prior)))["auc"] + 0.05
    few = build_model(cfg)  # with a handful of rows the prior holds it near the hand-set sum
    wide.fit(few, side[:5], labels[:5], wide.current(few, side_columns(cfg)))
    assert np.abs(few.wide.weight.detach().numpy()[0, :2] - 1).max() < 0.5
