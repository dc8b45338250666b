"""The one settings object: typed groups of values, each value settable as FRESHREC_<NAME>.

`Settings` is read once from the environment (load_settings) and passed explicitly; its groups are the parts
each stage reads (settings.ingestion, .quality, .training, .drift, .gate, .serving). Every default is written
here, once: the core's configuration objects are these groups, not copies of them. The environment names stay
flat (FRESHREC_MAX_TRAIN_SECONDS, not FRESHREC_TRAINING__...), so a group is a view, never a second source.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from freshrec import settings_checks as checks
from freshrec.errors import ConfigError

ENV_PREFIX = "FRESHREC_"


class IngestionSettings(BaseModel):
    """Pull: which cursor, how much per cycle, when a run starts."""

    model_config = ConfigDict(frozen=True)

    consumer: str = Field("default", min_length=1, description="Name of the ingestion cursor this deployment owns.")
    schedule_interval_s: int = Field(300, gt=0, description="Seconds between scheduled update cycles.")
    catch_up_seconds: float = Field(240.0, ge=0, description="How long one run keeps running further cycles "
                                    "while rows are still waiting (a backlog after an outage).")
    max_batch_rows: int = Field(50_000, gt=0, description="Most rows one cycle pulls; a backlog takes several cycles.")
    horizon_stall_s: float = Field(60.0, gt=0, description="Report a stall when committed rows wait this long "
                                   "behind another session's open transaction.")
    trigger_rows: int = Field(0, ge=0, description="`freshrec serve` starts a run as soon as this many rows wait "
                              "past the cursor (besides the interval); 0: the interval alone.")
    trigger_poll_s: float = Field(5.0, gt=0, description="How often `freshrec serve` counts the waiting rows.")


class QualityRules(BaseModel):
    """Validate and denoise: the rules a row must pass (freshrec.quality; the GX suite is built from them)."""

    model_config = ConfigDict(frozen=True)

    event_types: tuple[str, ...] = Field(("impression", "click", "skip", "like", "purchase", "rating", "view"),
                                         min_length=1)
    max_dwell_ms: int = Field(3_600_000, gt=0)
    clock_skew_s: int = Field(300, ge=0, description="How far in the future occurred_at may lie.")
    duplicate_window_s: float = Field(2.0, ge=0, description="Same user, item and event within this window: duplicate.")
    bot_events_per_minute: int = Field(120, gt=0, description="A user above this rate in a batch is treated as a bot.")
    batch_reject_share: float = Field(0.5, gt=0, le=1, description="Share of rows breaking any one rule (GX mostly = 1 - this) above which a batch trains nothing.")
    max_field_chars: int = Field(1000, gt=0, description="Text values (event_type) longer than this are "
                                 "quarantined as oversized_field; the pull cuts them just above it.")
    min_occurred_at: datetime = Field(datetime(1990, 1, 1, tzinfo=timezone.utc), description="Earliest "
                                      "plausible occurred_at (ISO time); earlier rows (zero-epoch 1970, 1900, "
                                      "-infinity) are quarantined as implausible_timestamp.")

    @field_validator("event_types")
    @classmethod
    def _event_types_are_not_blank(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        return checks.check_names(names)


class TrainingSettings(BaseModel):
    """Fine-tune: the model, its inputs, the training budget, replay and rebase."""

    model_config = ConfigDict(frozen=True)

    model: str = Field("minilm", description="'minilm' (packaged all-MiniLM-L6-v2), 'tiny' (random, for tests) "
                       "or a path to a Hugging Face model folder.")
    train_mode: Literal["lora", "full"] = "lora"
    update_scope: Literal["encoder", "head"] = Field(
        "head", description="What a warm-start update trains: 'encoder' (the encoder as FRESHREC_TRAIN_MODE "
        "says, and the head) or 'head' (the head, wide part and id table on the frozen encoder's embeddings, each "
        "text encoded once, forward only: several times cheaper a row on a CPU, so every fresh row trains; the "
        "encoder then learns in cold starts and rebases). See docs/design.md, the model.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    cpu_threads: int = Field(0, ge=0, description="PyTorch threads on the CPU; 0: every usable core but one "
                             "(PostgreSQL, Prefect and serving share the node). OpenMP's wait policy is "
                             "OMP_WAIT_POLICY, PASSIVE unless set (see freshrec/cpu.py).")
    min_train_rows: int = Field(32, ge=1)
    holdout_share: float = Field(0.2, gt=0, lt=1)
    holdout: Literal["newest", "newest_per_user", "users"] = Field(
        "newest", description="Which rows of a batch the publish gate compares on (freshrec.features."
        "split_holdout): the newest share, each user's newest share, or whole users.")
    replay_ratio: float = Field(2.0, ge=0, description="Replayed older rows per new training row, drawn uniformly "
                                "from the whole history. Bursty streams (a few users per cycle) need a high "
                                "ratio, or fine-tuning forgets everyone else: see docs/evaluation.md.")
    max_backlog_rows: int = Field(50_000, gt=0, description="Most rows the training backlog keeps, the newest; "
                                  "older ones leave it untrained (counted as backlog_expired). A cycle reads "
                                  "the newest first, no more than its step budget can train.")
    learning_rate: float = Field(1e-3, gt=0)
    batch_size: int = Field(32, gt=0, description="Examples per step on the CPU.")
    gpu_batch_size: int = Field(256, gt=0, description="Examples per step on a GPU (fills the card better).")
    grad_accum_steps: int = Field(1, gt=0, description="Micro-batches per optimizer step.")
    max_train_steps: int = Field(200, gt=0)
    max_train_seconds: float = Field(120.0, gt=0)
    epochs: int = Field(2, gt=0)
    history_len: int = Field(5, ge=0, description="Recent positive items that make up the user text (and the "
                             "user side of the item-id term).")
    id_buckets: int = Field(0, ge=0, description="Rows of the item-id embedding table of new models, e.g. "
                            "32768 (0, the default: text and like-rates only; see docs/evaluation.md). Item ids "
                            "equal modulo the table size share a row.")
    category_rate: bool = Field(True, description="New models read the user's like-rate in the item's categories "
                                "(items.category, comma-separated) instead of their overall like-rate; see "
                                "docs/evaluation.md.")
    recent_rate: bool = Field(True, description="New models also read the user's like-rate over their last 10 "
                              "interactions (shrunk towards their overall rate), the taste of the moment that "
                              "lifetime rates average away; its weight is learned online with the other rates' "
                              "(wide.py). See docs/design.md, the model.")
    item_quality: bool = Field(True, description="New models also read the quality of the items the user met: "
                               "the mean like-rate of their earlier items, each at the time they met it "
                               "(item_rate_log), which tells a user who likes what everyone likes from one who is "
                               "generous with everything; weighed online with the other rates (wide.py).")
    session_rate: bool = Field(True, description="New models also read the user's like-rate over their last 3 "
                               "interactions (shrunk towards their overall rate): the mood of the session, which "
                               "the 10-interaction recent rate blurs; weighed online with the other rates (wide.py).")
    rebase_every: int = Field(0, ge=0, description="Every this many candidates, train one from the base model "
                              "on a recent window instead of warm-starting (freshrec/rebase.py); 0: only when "
                              "asked with `freshrec models rebase`.")
    rebase_rows: int = Field(20_000, gt=0, description="Newest clean rows a rebase trains on, besides the batch.")
    rebase_train_seconds: float = Field(600.0, gt=0, description="Training time budget of a model trained from "
                                        "the base: a rebase candidate, and the first model (cold start) when it is "
                                        "above FRESHREC_MAX_TRAIN_SECONDS.")
    wide_memory_rows: int = Field(10_000, gt=0, description="The wide part (the like-rates' weights) weighs the "
                                  "evidence of about this many newest rows: older rows fade exponentially as new "
                                  "ones arrive (freshrec/wide.py; see docs/design.md, the model).")
    embedding_cache_rows: int = Field(300_000, ge=0, description="Text embeddings of the champion's frozen "
                                      "encoder kept in PostgreSQL between head-only cycles (about 1.6 KB each "
                                      "with MiniLM), so no text is encoded twice until a rebase changes the "
                                      "encoder (freshrec/embedding_store.py); 0: keep none.")
    max_item_tokens: int = Field(48, gt=4)
    max_user_tokens: int = Field(96, gt=4)

    @field_validator("model")
    @classmethod
    def _model_folder_is_complete(cls, model: str) -> str:
        return checks.check_model(model)


class DriftSettings(BaseModel):
    """Measure drift: Evidently's tests, the reference a published model keeps, when a batch counts as drifted."""

    model_config = ConfigDict(frozen=True)

    drift_share: float = Field(0.4, gt=0, le=1, description="Share of the counted drift columns that must drift "
                               "to flag dataset drift (0.4: 4 of 10; see docs/design.md, drift).")
    drift_sample_cap: int = Field(20_000, gt=0)
    drift_reference_rows: int = Field(2000, gt=0, description="Rows of its cycle's batch a published model keeps, "
                                      "with its scores, as the reference later batches are compared with.")
    drift_min_rows: int = Field(30, gt=0, description="Fewer rows on either side: 'too small to judge'.")
    drift_num_method: str | None = Field(None, description="Evidently stat test for numeric columns (e.g. ks, "
                                         "wasserstein, psi); unset: chosen by sample size.")
    drift_cat_method: str | None = Field(None, description="Evidently stat test for categories (e.g. chisquare, "
                                         "jensenshannon, psi); unset: chosen by sample size.")
    drift_num_threshold: float | None = Field(None, gt=0, description="Threshold of the numeric test.")
    drift_cat_threshold: float | None = Field(None, gt=0, description="Threshold of the category test.")
    drift_monitor_only: list[str] = Field(["hour"], description="Columns shown in the drift report but not "
                                          "counted towards dataset drift (seasonal ones).")

    # Each validator needs a name of its own: Settings combines the groups, and same-named ones replace each other.
    @field_validator("drift_monitor_only")
    @classmethod
    def _monitor_only_names_are_not_blank(cls, names: list[str]) -> list[str]:
        return checks.check_names(names)

    @field_validator("drift_num_method", "drift_cat_method")
    @classmethod
    def _drift_method_is_known(cls, method: str | None, info) -> str | None:
        return checks.check_drift_method(method, "numerical" if info.field_name == "drift_num_method"
                                         else "categorical")


class GateSettings(BaseModel):
    """Publish: the gate's thresholds and guards, and how many rejected candidates keep their bytes."""

    model_config = ConfigDict(frozen=True)

    publish_thresholds: list[dict] = Field(
        [{"metric": "auc", "higher_is_better": True, "value": 0.55, "change": -0.01},
         {"metric": "logloss", "higher_is_better": False, "change": -0.02}],
        description="Per metric (auc, logloss, ndcg_at_10): a value threshold and a change threshold against "
        "the champion (negative: a tolerance). An empty list publishes nothing.")
    gate_confidence: float = Field(0.9, ge=0.5, lt=1, description="Confidence of the one-sided bound on "
                                   "candidate - champion (paired bootstrap over the held-out users) that each "
                                   "change threshold is judged on.")
    min_eval_rows: int = Field(30, gt=0, description="Fewest held-out rows a publish decision may rest on.")
    gate_window_cycles: int = Field(3, ge=1, description="The gate judges on the held-out rows of this many "
                                    "cycles: this batch's and those of the cycles before it, kept out of training "
                                    "until they leave the window. More users for a bursty stream whose batch is "
                                    "a few users' sessions, at the price of training those rows later.")
    strict_after_drift: bool = Field(True, description="After dataset or prediction drift the candidate must also "
                                     "be ahead of the champion on each change metric's point difference, not only "
                                     "clear its threshold's bound. false: drift only excuses the stability guard.")
    max_probe_change: float = Field(0.15, gt=0, description="Stability guard: mean change of the scores on the "
                                    "probe set a candidate may bring without drift to explain it.")
    probe_size: int = Field(256, gt=0, description="Pairs in the fixed probe set.")
    keep_rejected_artifacts: int = Field(20, ge=0, description="Rejected candidates that keep their bytes.")

    @field_validator("publish_thresholds")
    @classmethod
    def _thresholds_are_understood(cls, raw: list[dict]) -> list[dict]:
        return checks.check_thresholds(raw)


class ServingSettings(BaseModel):
    """Serve: the read-only role, the HTTP service, which base models a stored artifact may name."""

    model_config = ConfigDict(frozen=True)

    serving_role: str | None = Field("freshrec_serving", pattern=r"^[a-z_][a-z0-9_]*$",
                                     description="Read-only role that scoring and the watcher run as; empty: "
                                     "the connecting user's own rights.")
    api_host: str = Field("127.0.0.1", min_length=1, description="Address `freshrec api` listens on (0.0.0.0: "
                          "every interface).")
    api_port: int = Field(8000, ge=1, le=65535, description="Port `freshrec api` listens on.")
    public_url: str | None = Field(None, pattern=r"^https?://[^\s/]+(/\S*)?$", description="Address under which "
                                   "readers reach `freshrec api` (e.g. http://freshrec.internal:8000); when set, "
                                   "the Prefect drift-report artifacts link to <public_url>/reports/<cycle_id> "
                                   "instead of a local file.")
    api_max_candidates: int = Field(20_000, gt=0, description="Newest catalogue items `freshrec api` ranks "
                                    "(embedded once per champion version).")
    api_catalogue_refresh_s: float = Field(60.0, ge=0, description="Age after which `freshrec api` re-reads the "
                                           "catalogue (only new items are embedded).")
    allowed_base_models: list[str] = Field([], description="Base model folders a stored artifact may name, "
                                           "besides minilm, tiny and FRESHREC_MODEL (JSON list). An artifact "
                                           "naming any other is refused when loaded or promoted.")


Group = TypeVar("Group", bound=BaseModel)


class Settings(BaseSettings, IngestionSettings, QualityRules, TrainingSettings, DriftSettings, GateSettings,
               ServingSettings):
    """freshrec's configuration: where things live, plus every group. Core functions take a group (or this)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)

    database_url: SecretStr | None = Field(
        None,
        description="SQLAlchemy URL of the PostgreSQL database, e.g. postgresql+psycopg2://user:pw@host:5432/db. "
        "Unset: freshrec starts an embedded PostgreSQL with its data under data_dir.",
    )
    data_dir: Path = Field(Path("freshrec-data"), description="Local folder for the embedded PostgreSQL and reports.")
    embedded_database: str = Field("freshrec", pattern=r"^[a-z][a-z0-9_]{0,62}$",
                                   description="Database used in the embedded PostgreSQL (the demo's is freshrec_demo).")
    reports_dir: Path | None = Field(None, description="Where drift reports are written (default: <data_dir>/reports).")

    def part(self, group: type[Group]) -> Group:
        """This object's values of one group, as that group (already validated: nothing is checked twice)."""
        return group.model_construct(**{name: getattr(self, name) for name in group.model_fields})

    @property
    def ingestion(self) -> IngestionSettings:
        return self.part(IngestionSettings)

    @property
    def quality(self) -> QualityRules:
        return self.part(QualityRules)

    @property
    def training(self) -> TrainingSettings:
        return self.part(TrainingSettings)

    @property
    def drift(self) -> DriftSettings:
        return self.part(DriftSettings)

    @property
    def gate(self) -> GateSettings:
        return self.part(GateSettings)

    @property
    def serving(self) -> ServingSettings:
        return self.part(ServingSettings)

    @property
    def base_models_allowed(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([self.model, *self.allowed_base_models]))

    @model_validator(mode="after")
    def _folders_are_writable(self) -> Settings:
        folders = [("data_dir", self.data_dir, "FRESHREC_DATA_DIR")] if self.database_url is None else []
        # (the embedded PostgreSQL keeps its data in data_dir; drift reports go to the reports folder)
        folders.append(("reports_dir", self.resolved_reports_dir, "FRESHREC_REPORTS_DIR" if self.reports_dir
                        else "FRESHREC_REPORTS_DIR (or FRESHREC_DATA_DIR)"))
        for name, folder, env in folders:
            problem = checks.folder_problem(folder)
            if problem:
                raise ValueError(f"{name} {str(folder)!r}: {problem}; point {env} at a folder this user can write")
        return self

    @property
    def resolved_reports_dir(self) -> Path:
        return self.reports_dir if self.reports_dir is not None else self.data_dir / "reports"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment (plus explicit overrides); a bad value is one clear sentence."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except SettingsError as exc:  # a list/dict setting whose environment value is not JSON
        found = re.search(r'field "(\w+)"', str(exc))
        name = found.group(1) if found else "?"
        env = ENV_PREFIX + name.upper()
        cause = str(exc.__cause__).splitlines()[0] if exc.__cause__ else str(exc)
        raise ConfigError(f"Setting {name} ({env}={os.environ.get(env)!r}) is not valid JSON ({cause}); "
                          f"write {env} as JSON, e.g. {_JSON_EXAMPLES.get(name, '[...]')}.") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "?"
        if name == "__root__" or not first["loc"]:  # a check across fields: its message names the setting
            raise ConfigError(f"{first['msg'].removeprefix('Value error, ')}.") from None
        env = ENV_PREFIX + name.upper()
        value = first.get("input")
        shown = repr(value) if len(repr(value)) <= 200 else repr(value)[:200] + "..."
        raise ConfigError(
            f"Setting {name} ({env}={shown}) is invalid: {first['msg'].removeprefix('Value error, ')}; "
            f"fix {env} or the matching command-line option."
        ) from None


_JSON_EXAMPLES = {
    "publish_thresholds": '[{"metric": "auc", "value": 0.55, "change": -0.01}]',
    "event_types": '["click", "skip", "like"]',
    "drift_monitor_only": '["hour"]',
    "allowed_base_models": '["/models/my-encoder"]',
}
