"""freshrec.artifacts: a version's bytes round-trip exactly (safetensors, never pickle), carry their config, and
tampered bytes are refused before anything is built."""

import hashlib

import numpy as np
import pytest

from freshrec.artifacts import load_artifact, read_artifact_config, save_artifact
from freshrec.errors import ModelError
from freshrec.inference import predict
from freshrec.model import build_model, load_tokenizer
from freshrec.settings import TrainingSettings
from freshrec.trainer import train

from helpers import config, examples


@pytest.mark.train
@pytest.mark.parametrize("mode", ["full", "lora"])
def test_artifact_round_trip_gives_identical_predictions(mode):
    cfg = config(mode)
    model = build_model(cfg)
    tok = load_tokenizer("tiny")
    data = examples(40, 0)
    train(model, tok, cfg, data, TrainingSettings(model="tiny", train_mode=mode, max_train_steps=3))
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
