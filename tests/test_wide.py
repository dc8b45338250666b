"""The wide part's online posterior (freshrec/wide.py): online equals batch, forgetting follows a shift, the offset
is respected, and the gradient steps leave it alone."""

import numpy as np
import pandas as pd
import pytest

from freshrec import wide
from freshrec.features import side_columns
from freshrec.model import build_model, new_model_config


CONFIG = dict(max_item_tokens=8, max_user_tokens=8, history_len=2, seed=0, recent_rate=True)


def tiny_model():
    cfg = new_model_config("tiny", "full", **CONFIG)
    return build_model(cfg), cfg


def hand_set(model):
    """The new model's hand-set prior (its initial weights, precision WIDE_PRIOR_PRECISION per weight)."""
    return wide.current(model, side_columns(new_model_config("tiny", "full", **CONFIG)))


def rows(rng, n: int, truth: np.ndarray, offset: np.ndarray | None = None):
    """Side inputs (rates and counts as the model reads them) and labels drawn from logit = inputs . truth."""
    side = np.c_[rng.uniform(0.05, 0.95, (n, 2)), rng.uniform(0, 5, (n, 2)), rng.uniform(0.05, 0.95, (n, 2))]
    x = np.c_[np.log(side[:, :2] / (1 - side[:, :2])), side[:, 2:4] / 4, np.log(side[:, 4:] / (1 - side[:, 4:]))]
    z = x @ truth + (0 if offset is None else offset)
    return side.astype(np.float32), (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.float64)


def test_updating_chunk_by_chunk_without_forgetting_lands_where_one_fit_on_all_rows_does():
    rng = np.random.default_rng(0)
    truth = np.array([0.6, 1.2, 0.0, -0.3, 0.0, 0.9])
    side, labels = rows(rng, 8000, truth)
    batch_model, _ = tiny_model()
    once = wide.fit(batch_model, side, labels, hand_set(batch_model))
    online_model, _ = tiny_model()
    posterior = hand_set(online_model)
    for lo in range(0, 8000, 1000):
        posterior = wide.fit(online_model, side[lo:lo + 1000], labels[lo:lo + 1000],
                             posterior.decayed(1000, 1e12) if lo else posterior)
    assert posterior.rows == once.rows == 8000
    np.testing.assert_allclose(posterior.mean, once.mean, atol=0.03)
    np.testing.assert_allclose(posterior.mean[:-1], truth, atol=0.15)  # and both find the truth
    # the model carries the posterior's mean
    np.testing.assert_allclose(online_model.wide.weight.detach().numpy()[0], posterior.mean[:-1], atol=1e-6)


def test_forgetting_follows_a_change_in_what_the_inputs_say_and_without_it_the_old_evidence_holds():
    rng = np.random.default_rng(1)
    before, after = np.array([1.0, 1.0, 0, 0, 0, 2.0]), np.array([1.0, 1.0, 0, 0, 0, -0.5])
    chunks = [rows(rng, 1000, before) for _ in range(8)] + [rows(rng, 1000, after) for _ in range(4)]
    ends = {}
    for memory in (1500, 1e12):
        model, _ = tiny_model()
        posterior = hand_set(model)
        for side, labels in chunks:
            posterior = wide.fit(model, side, labels, posterior.decayed(len(labels), memory))
        ends[memory] = posterior.mean[5]  # the recent rate's weight
    assert abs(ends[1500] - after[5]) < 0.4  # a short memory has moved to the new weight
    assert ends[1e12] > after[5] + 0.6  # all of history still pulls it towards the old one


def test_the_fit_learns_only_what_the_offset_does_not_already_say():
    """A warm start's offset is the rest of the model's logit: the wide part must not count it twice."""
    rng = np.random.default_rng(2)
    offset = rng.normal(0, 1.5, 6000)
    truth = np.array([1.0, 1.0, 0, 0, 0, 0.0])
    side, labels = rows(rng, 6000, truth, offset)
    with_offset, _ = tiny_model()
    fitted = wide.fit(with_offset, side, labels, hand_set(with_offset), offset)
    rates = [0, 1, 5]  # the rates' weights (the log counts' are noisier: they move with the bias)
    np.testing.assert_allclose(fitted.mean[rates], truth[rates], atol=0.1)
    ignoring, _ = tiny_model()  # without it, the inputs' weights shrink towards zero (the offset is noise to them)
    assert wide.fit(ignoring, side, labels, hand_set(ignoring)).mean[1] < 0.85


def test_residual_logits_are_the_score_less_the_wide_term_and_a_posterior_for_other_inputs_is_not_used():
    import torch

    model, cfg = tiny_model()
    rng = np.random.default_rng(3)
    side, _ = rows(rng, 50, np.zeros(6))
    wide_term = model.wide(model.side_inputs(torch.as_tensor(side))).detach().double().numpy()[:, 0]
    rest = rng.normal(0, 1, 50)
    scores = 1 / (1 + np.exp(-(wide_term + rest)))
    np.testing.assert_allclose(wide.residual_logits(model, side, scores), rest, atol=1e-4)

    posterior = hand_set(model)
    stored = posterior.to_json()
    back = wide.WidePosterior.from_json(stored, side_columns(cfg))
    np.testing.assert_array_equal(back.mean, posterior.mean)
    np.testing.assert_array_equal(back.precision, posterior.precision)
    assert back.inputs == tuple(side_columns(cfg))
    other = side_columns(new_model_config("tiny", "full", **CONFIG, category_rate=True))
    assert len(other) == len(back.inputs) and wide.WidePosterior.from_json(stored, other) is None  # other inputs
    assert wide.WidePosterior.from_json(None, side_columns(cfg)) is None
    assert posterior.decayed(1000, 1000).precision[0, 0] == pytest.approx(posterior.precision[0, 0] / np.e)


@pytest.mark.train
def test_gradient_steps_leave_the_wide_part_alone():
    from freshrec.features import side_columns
    from freshrec.model import load_tokenizer
    from freshrec.settings import load_settings
    from freshrec.trainer import train

    model, cfg = tiny_model()
    rng = np.random.default_rng(4)
    n = 64
    side, labels = rows(rng, n, np.array([1.0, 1.0, 0, 0, 0, 1.0]))
    examples = pd.DataFrame({name: side[:, j] for j, name in enumerate(side_columns(cfg))}).assign(
        user_text=[f"liked: film {i % 7}" for i in range(n)], item_text=[f"film {i % 9}" for i in range(n)],
        label=labels, item_id=np.arange(n), history_item_ids=[[]] * n)
    before = model.wide.weight.detach().clone()
    head_before = model.head[0].weight.detach().clone()
    stats = train(model, load_tokenizer("tiny"), cfg, examples, load_settings(model="tiny").training)
    assert stats.steps > 0
    assert (model.wide.weight.detach() == before).all()
    assert not (model.head[0].weight.detach() == head_before).all()  # while the rest learns
    from freshrec.artifacts import load_artifact, save_artifact

    stored, _ = load_artifact(save_artifact(model, cfg).data)  # and the version keeps it
    assert (stored.wide.weight.detach() == before).all()
