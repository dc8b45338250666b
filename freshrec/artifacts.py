"""A model version's bytes: one safetensors file (never pickle) whose header carries the JSON config, so the
bytes describe themselves; its sha256 is checked before anything is built from it.

With LoRA on a base that loads from disk (MiniLM, a local folder), only the adapter and head are stored; a
randomly initialised base ('tiny') is stored whole. The model itself: model.py.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass

from freshrec.errors import ModelError
from freshrec.model import TINY, ModelConfig, build_model, check_base_model

METADATA_KEY = "freshrec_config"


@dataclass(frozen=True)
class ChampionModel:
    """The serving champion as the trainer and the registry pass it: its bytes, their sha256 and its drift reference."""
    version: int
    artifact: bytes
    sha256: str
    reference_sample: list[dict] | None



@dataclass(frozen=True)
class Artifact:
    data: bytes
    sha256: str
    config: dict

    @property
    def size(self) -> int:
        return len(self.data)


def _stored_names(model, config: ModelConfig) -> list[str]:
    """Which tensors a version must carry: everything trained, and the base too when it cannot be reloaded."""
    state = model.state_dict()
    if config.train_mode == "full" or config.base_model == TINY:
        return list(state)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    return [name for name in state if name in trainable]


def save_artifact(model, config: ModelConfig) -> Artifact:
    from safetensors.torch import save

    state = model.state_dict()
    tensors = {name: state[name].detach().to("cpu").contiguous() for name in _stored_names(model, config)}
    meta = json.dumps(config.to_json(), sort_keys=True)
    data = save(tensors, metadata={METADATA_KEY: meta})
    return Artifact(data, hashlib.sha256(data).hexdigest(), config.to_json())


def read_artifact_config(data: bytes) -> ModelConfig:
    """The config from a safetensors header, without reading the tensors."""
    try:
        (header_len,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + header_len])
        return ModelConfig.from_json(json.loads(header["__metadata__"][METADATA_KEY]))
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"The artifact is not a freshrec safetensors file ({exc}): re-publish the version.") from None


def check_artifact(data: bytes, expected_sha256: str,
                   allowed_base_models: tuple[str, ...] | list[str] | None) -> None:
    """Before anything is built from an artifact: its bytes match the sha256 and its base model is allowed."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ModelError(
            f"The artifact's sha256 is {actual[:12]}..., not the recorded {expected_sha256[:12]}...: "
            "the bytes were altered; roll back to another version (freshrec models rollback)."
        )
    check_base_model(read_artifact_config(data).base_model, allowed_base_models)


def load_artifact(data: bytes, expected_sha256: str | None = None):
    """Rebuild a model from artifact bytes (verifying their sha256 first); returns (model, config)."""
    from safetensors.torch import load

    if expected_sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256:
            raise ModelError(
                f"The artifact's sha256 is {actual[:12]}..., not the recorded {expected_sha256[:12]}...: "
                "the bytes were altered; roll back to another version (freshrec models rollback)."
            )
    config = read_artifact_config(data)
    model = build_model(config)
    tensors = load(data)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if unexpected:
        raise ModelError(f"The artifact holds tensors this model does not have ({unexpected[:3]}...): "
                         "it was made for another base model; set FRESHREC_MODEL to match it.")
    required = set(_stored_names(model, config))
    absent = required & set(missing)
    if absent:
        raise ModelError(f"The artifact lacks tensors {sorted(absent)[:3]}...: it is incomplete; re-publish it.")
    return model, config
