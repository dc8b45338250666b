"""Output conventions: --json prints one JSON object on stdout; progress and logs go to stderr."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any


def setup_logging(verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("freshrec")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


def emit(obj: Any, as_json: bool, human: str | None = None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(obj, default=str) + "\n")
    elif human is not None:
        sys.stdout.write(human.rstrip("\n") + "\n")
    sys.stdout.flush()


def progress(message: str) -> None:
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()
