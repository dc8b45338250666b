"""freshrec.trainer: the learning-rate state, optimizer steps with gradient accumulation, fresh rows before
replay, and a fine-tune that learns a learnable pattern."""

import numpy as np
import torch
import pytest

from freshrec.inference import predict
from freshrec.metrics import binary_metrics
from freshrec.model import build_model, load_tokenizer
from freshrec.settings import TrainingSettings
from freshrec.trainer import LR_FLOOR, LrState, budget_reach, replay_rows, train

from helpers import config, examples


def test_lr_shrinks_after_a_worse_candidate_and_recovers_slowly():
    s = LrState.initial(1e-3, None)
    assert s == LrState(1e-3, 1e-3)
    worse = s.after(candidate_loss=0.70, champion_loss=0.65)
    assert worse.lr == pytest.approx(5e-4)
    assert worse.after(0.60, 0.65).lr == pytest.approx(6.25e-4)  # recovers by 1.25x ...
    assert LrState(9e-4, 1e-3).after(0.60, 0.65).lr == pytest.approx(1e-3)  # ... never above the base
    low = LrState(1e-3 * LR_FLOOR, 1e-3)
    assert low.after(0.9, 0.1).lr == pytest.approx(1e-3 * LR_FLOOR)  # never below the floor
    assert s.after(None, 0.5) == s  # no champion: nothing to compare
    assert LrState.initial(2e-3, {"lr": 1e-4, "base_lr": 1e-3}) == LrState(2e-3, 2e-3)  # new base: start over
    assert LrState.initial(1e-3, {"lr": 1e-4, "base_lr": 1e-3}) == LrState(1e-4, 1e-3)


@pytest.mark.train
def test_a_cycle_reads_no_more_rows_than_its_budget_is_expected_to_train():
    # no speed measured yet: the step budget
    assert budget_reach(10**6, 60.0, None) == 10**6
    # 10 examples/s for 60 s, with half again as headroom; the step budget still caps it
    assert budget_reach(10**6, 60.0, 10.0) == 900 and budget_reach(500, 60.0, 10.0) == 500
    # replay: the ratio within the reach, less the fresh rows
    assert replay_rows(300, 2.0, 10**6) == 600 and replay_rows(300, 2.0, 900) == 600
    assert replay_rows(300, 2.0, 600) == 300
    # a reach that cannot even cover the fresh rows still draws what the first pass tops its steps up with
    assert replay_rows(300, 2.0, 150) == 100
    # a small ratio is never raised
    assert replay_rows(300, 0.1, 150) == 30


def test_gradient_accumulation_counts_optimizer_steps():
    from freshrec.model import build_model, load_tokenizer

    cfg = config("full")
    stats = train(build_model(cfg), load_tokenizer("tiny"), cfg, examples(256, 0),
                  TrainingSettings(model="tiny", train_mode="full", batch_size=32, grad_accum_steps=4, epochs=1))
    assert (stats.steps, stats.examples) == (2, 256)


@pytest.mark.unit
def test_first_pass_covers_every_fresh_row_before_replay_repeats():
    from freshrec.trainer import FIRST_PASS_REPLAY_SHARE, batch_order

    n, fresh, size = 300, 100, 32
    batches = batch_order(n, fresh, size, epochs=2, rng=np.random.default_rng(0))
    take = size - round(size * FIRST_PASS_REPLAY_SHARE)
    first_pass = batches[:-(-fresh // take)]
    covered = np.concatenate(first_pass)
    assert set(range(fresh)) <= set(covered.tolist())  # every fresh row in the first steps
    assert all(len(b) <= size for b in batches)
    assert all((b >= fresh).any() for b in first_pass)  # no step of only the present
    # the first epoch takes every row exactly once, replay included; the second is a plain shuffle of all
    second_epoch = -(-n // size)
    assert sorted(np.concatenate(batches[:-second_epoch]).tolist()) == list(range(n))
    assert sorted(np.concatenate(batches[-second_epoch:]).tolist()) == list(range(n))
    # no fresh rows: a plain shuffle
    plain = np.concatenate(batch_order(50, 0, 16, 1, np.random.default_rng(1)))
    assert sorted(plain.tolist()) == list(range(50))


def test_fresh_rows_in_priority_order_train_the_first_block_first():
    from freshrec.trainer import FIRST_PASS_REPLAY_SHARE, batch_order

    n, fresh, size, block = 500, 200, 16, 64  # rows [0, fresh) newest first, as fine_tune orders them
    batches = batch_order(n, fresh, size, epochs=1, rng=np.random.default_rng(0), block=block)
    take = size - round(size * FIRST_PASS_REPLAY_SHARE)
    first_pass = np.concatenate([b[b < fresh] for b in batches[:-(-fresh // take)]])
    assert sorted(first_pass.tolist()) == list(range(fresh))  # every fresh row, once
    blocks = first_pass // block
    assert (np.diff(blocks) >= 0).all()  # a budget that stops early has trained the newest blocks
    assert first_pass[:block].tolist() != list(range(block))  # shuffled within a block


@pytest.mark.slow
@pytest.mark.train
def test_fine_tune_lowers_held_out_log_loss():
    cfg = config("full")
    model = build_model(cfg)
    tok = load_tokenizer("tiny")
    train_set, held_out = examples(800, 1), examples(300, 2)
    before = binary_metrics(held_out["label"], predict(model, tok, cfg, held_out))
    stats = train(model, tok, cfg, train_set, TrainingSettings(model="tiny", train_mode="full", learning_rate=3e-3,
                                                         max_train_steps=150, epochs=6))
    after = binary_metrics(held_out["label"], predict(model, tok, cfg, held_out))
    assert stats.steps == 150
    assert after["logloss"] < before["logloss"] - 0.05
    assert after["auc"] > 0.75


@pytest.mark.train
def test_a_head_only_update_leaves_the_encoder_as_it_was_encodes_each_text_once_and_still_learns():
    cfg = config("lora")
    model = build_model(cfg)
    tok = load_tokenizer("tiny")
    encoder_before = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("encoder.")}
    head_before = {n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith("encoder.")}
    train_set, held_out = examples(600, 1), examples(300, 2)
    before = binary_metrics(held_out["label"], predict(model, tok, cfg, held_out))
    encoded = []
    embed = model.embed
    model.embed = lambda ids, mask: encoded.append(len(ids)) or embed(ids, mask)
    stats = train(model, tok, cfg, train_set, TrainingSettings(model="tiny", learning_rate=3e-3, epochs=4,
                                                               max_train_steps=1000), head_only=True)
    del model.embed
    assert stats.steps == 4 * -(-600 // 32) and stats.fresh_rows_trained == 600
    distinct = train_set["user_text"].nunique() + train_set["item_text"].nunique()
    assert sum(encoded) == distinct  # four epochs, each distinct text through the encoder once
    assert all(torch.equal(p, encoder_before[n]) for n, p in model.named_parameters() if n.startswith("encoder."))
    assert any(not torch.equal(p, head_before[n]) for n, p in model.named_parameters() if n in head_before)
    after = binary_metrics(held_out["label"], predict(model, tok, cfg, held_out))
    assert after["logloss"] < before["logloss"] - 0.02
