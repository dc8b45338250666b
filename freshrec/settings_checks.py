"""The checks settings run when they are loaded: thresholds, model folders, writable folders, drift methods.

Each returns why a value cannot work (or raises with that sentence), so a mistake stops at load time, in one
sentence, before any work (issue 17, item 4). settings.py declares the values; this module knows how to check them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter


THRESHOLD_METRICS = ("auc", "logloss", "ndcg_at_10")


class _Threshold(BaseModel):
    """One entry of FRESHREC_PUBLISH_THRESHOLDS, as freshrec.gate.MetricThreshold reads it."""
    model_config = ConfigDict(extra="forbid", strict=True)
    metric: Literal["auc", "logloss", "ndcg_at_10"]
    higher_is_better: bool = True
    value: float | None = None
    change: float | None = None


_THRESHOLDS = TypeAdapter(list[_Threshold])
# Files one of which a Hugging Face tokenizer needs (fast tokenizer, WordPiece, BPE, SentencePiece).
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model")


def evidently_stattests(kind: str) -> list[str]:
    """Names of the drift methods the installed Evidently knows for 'numerical' or 'categorical' columns."""
    from evidently.legacy.calculations import stattests  # noqa: F401  (registers every built-in test)
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
    from evidently.legacy.core import ColumnType

    column_type = ColumnType.Numerical if kind == "numerical" else ColumnType.Categorical
    return sorted(name for name, by_type in _registered_stat_tests.items() if column_type in by_type)


def model_folder_problem(folder: Path) -> str | None:
    """Why a model folder cannot be loaded with its tokenizer (checked from its files, nothing is loaded)."""
    if not folder.is_dir():
        return f"{str(folder)!r} is not a folder"
    if not (folder / "config.json").is_file():
        return f"{str(folder)!r} has no config.json"
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return f"{str(folder)!r} has no tokenizer ({' / '.join(TOKENIZER_FILES)})"
    return None


def folder_problem(folder: Path) -> str | None:
    """Why freshrec could not create or write the folder (nothing is created here)."""
    path = folder.expanduser().absolute()
    while not path.exists():
        if path.parent == path:
            return "no part of it exists"
        path = path.parent
    if not path.is_dir():
        return f"{str(path)!r} is a file, not a folder"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"{str(path)!r} is not writable"
    return None


def check_thresholds(raw: list[dict]) -> list[dict]:
    """FRESHREC_PUBLISH_THRESHOLDS as the gate reads it, or a ValueError naming the entry and an example."""
    from pydantic import ValidationError

    try:
        _THRESHOLDS.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ", ".join(f"entry {p}" if isinstance(p, int) else str(p) for p in first["loc"])
        raise ValueError(f"{where}: {first['msg']} (metrics: {', '.join(THRESHOLD_METRICS)}; e.g. "
                         '[{"metric": "auc", "higher_is_better": true, "value": 0.55, "change": -0.01}])'
                         ) from None
    return raw


def check_names(names):
    if any(not n.strip() for n in names):
        raise ValueError('an entry is blank; write a JSON list of names, e.g. ["click", "skip"]')
    return names


def check_drift_method(method: str | None, kind: str) -> str | None:
    if method is None:
        return None
    known = evidently_stattests(kind)
    if method not in known:
        raise ValueError(f"Evidently has no {kind} drift method {method!r}; use one of {', '.join(known)}")
    return method


def check_model(model: str) -> str:
    if model in ("minilm", "tiny"):
        return model
    missing = model_folder_problem(Path(model).expanduser())
    if missing:
        raise ValueError(f"{missing}; use minilm, tiny or a Hugging Face model folder with its tokenizer")
    return model
