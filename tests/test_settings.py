"""freshrec.settings: defaults and the FRESHREC_ prefix, secrets kept out of repr, and every mistake one sentence
naming the variable, checked when the settings load (the commands' side: test_cli.py)."""

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from freshrec.errors import ConfigError
from freshrec.ingest import DEFAULT_MAX_FIELD_CHARS
from freshrec.settings import QualityRules, load_settings

from helpers import a_file


def test_defaults_and_env_prefix(monkeypatch):
    monkeypatch.setenv("FRESHREC_MAX_BATCH_ROWS", "1234")
    monkeypatch.setenv("FRESHREC_MODEL", "tiny")
    s = load_settings()
    assert s.max_batch_rows == 1234
    assert s.model == "tiny"
    assert s.database_url is None
    assert s.resolved_reports_dir == s.data_dir / "reports"


def test_secret_url_is_not_printed(monkeypatch):
    monkeypatch.setenv("FRESHREC_DATABASE_URL", "postgresql://u:hunter2@db/x")
    s = load_settings()
    assert "hunter2" not in repr(s)
    assert s.database_url.get_secret_value().endswith("@db/x")


def test_invalid_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("FRESHREC_MAX_BATCH_ROWS", "lots")
    with pytest.raises(ConfigError) as err:
        load_settings()
    msg = str(err.value)
    assert "FRESHREC_MAX_BATCH_ROWS" in msg and "'lots'" in msg and "\n" not in msg


# (case, environment, fragments the one line must contain)
BAD_SETTINGS = [
    ("thresholds not JSON", {"FRESHREC_PUBLISH_THRESHOLDS": "[{metric: auc"},
     ["FRESHREC_PUBLISH_THRESHOLDS", "not valid JSON"]),
    ("thresholds an object", {"FRESHREC_PUBLISH_THRESHOLDS": '{"metric": "auc"}'},
     ["FRESHREC_PUBLISH_THRESHOLDS", "valid list"]),
    ("threshold value 'high'", {"FRESHREC_PUBLISH_THRESHOLDS": '[{"metric": "auc", "value": "high"}]'},
     ["FRESHREC_PUBLISH_THRESHOLDS", "entry 0, value", "valid number"]),
    ("unknown metric", {"FRESHREC_PUBLISH_THRESHOLDS": '[{"metric": "f1", "value": 0.5}]'},
     ["entry 0, metric", "ndcg_at_10"]),
    ("misspelt key", {"FRESHREC_PUBLISH_THRESHOLDS": '[{"metric": "auc", "valeu": 0.5}]'},
     ["entry 0, valeu", "not permitted"]),
    ("direction a string", {"FRESHREC_PUBLISH_THRESHOLDS": '[{"metric": "auc", "higher_is_better": "yes"}]'},
     ["higher_is_better", "valid boolean"]),
    ("event types not JSON", {"FRESHREC_EVENT_TYPES": "click,skip"},
     ["FRESHREC_EVENT_TYPES", "not valid JSON", '["click"']),
    ("event types empty", {"FRESHREC_EVENT_TYPES": "[]"}, ["FRESHREC_EVENT_TYPES", "at least 1"]),
    ("blank event type", {"FRESHREC_EVENT_TYPES": '["click", " "]'}, ["FRESHREC_EVENT_TYPES", "blank"]),
    # a check of its own group's name: combined into Settings, same-named validators replaced each other once
    ("blank monitored column", {"FRESHREC_DRIFT_MONITOR_ONLY": '["hour", " "]'},
     ["FRESHREC_DRIFT_MONITOR_ONLY", "blank"]),
    ("numeric drift method for categories", {"FRESHREC_DRIFT_CAT_METHOD": "ks"},
     ["FRESHREC_DRIFT_CAT_METHOD", "no categorical drift method 'ks'", "chisquare"]),
    ("unknown drift method", {"FRESHREC_DRIFT_NUM_METHOD": "kolmogorov"},
     ["FRESHREC_DRIFT_NUM_METHOD", "'kolmogorov'", "wasserstein"]),
]


@pytest.mark.unit
@pytest.mark.parametrize("case, env, fragments", BAD_SETTINGS, ids=[c[0] for c in BAD_SETTINGS])
def test_bad_setting_is_one_sentence_naming_the_variable(monkeypatch, case, env, fragments):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (case, message)


@pytest.mark.unit
def test_good_settings_still_load(monkeypatch):
    monkeypatch.setenv("FRESHREC_PUBLISH_THRESHOLDS", '[{"metric": "ndcg_at_10", "value": 0.1, "change": -0.02}, '
                       '{"metric": "logloss", "higher_is_better": false, "change": 0}]')
    monkeypatch.setenv("FRESHREC_DRIFT_NUM_METHOD", "psi")
    monkeypatch.setenv("FRESHREC_DRIFT_CAT_METHOD", "jensenshannon")
    s = load_settings()
    assert s.publish_thresholds[0]["metric"] == "ndcg_at_10" and s.drift_num_method == "psi"


@pytest.mark.unit
def test_model_folder_needs_config_and_tokenizer(monkeypatch, tmp_path):
    from freshrec.model import minilm_path

    folder = tmp_path / "model"
    folder.mkdir()
    monkeypatch.setenv("FRESHREC_MODEL", str(folder))
    with pytest.raises(ConfigError, match="has no config.json"):
        load_settings()
    (folder / "config.json").write_text((minilm_path() / "config.json").read_text())
    with pytest.raises(ConfigError, match="has no tokenizer"):
        load_settings()
    monkeypatch.setenv("FRESHREC_MODEL", str(minilm_path()))  # a complete folder loads, tokenizer included
    assert load_settings().model == str(minilm_path())
    from freshrec.model import load_tokenizer

    assert load_tokenizer(str(minilm_path()))("hello").input_ids


@pytest.mark.unit
def test_folders_must_be_writable(monkeypatch, tmp_path):
    monkeypatch.setenv("FRESHREC_REPORTS_DIR", str(a_file(tmp_path) / "reports"))
    with pytest.raises(ConfigError, match="FRESHREC_REPORTS_DIR.*is a file, not a folder|is a file, not a folder"
                                          ".*FRESHREC_REPORTS_DIR"):
        load_settings()
    monkeypatch.delenv("FRESHREC_REPORTS_DIR")
    monkeypatch.setenv("FRESHREC_DATA_DIR", str(a_file(tmp_path) / "data"))
    with pytest.raises(ConfigError, match="data_dir"):  # the embedded database would live there
        load_settings()
    monkeypatch.setenv("FRESHREC_DATA_DIR", str(tmp_path / "not" / "yet" / "made"))
    assert load_settings()  # a folder freshrec can create is fine, and nothing is created by loading
    assert not (tmp_path / "not").exists()


@pytest.mark.unit
def test_rules_are_an_immutable_cache_key():
    # The GX contexts are cached per rule set: equal settings must give equal, hashable, unchangeable rules.
    a = QualityRules(event_types=("click", "skip"), max_dwell_ms=60_000, bot_events_per_minute=30)
    b = QualityRules(event_types=("click", "skip"), max_dwell_ms=60_000, bot_events_per_minute=30)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != a.model_copy(update={"batch_reject_share": 0.4})
    with pytest.raises(ValidationError):  # frozen
        a.max_dwell_ms = 1


@pytest.mark.unit
def test_default_limits_match_the_pull():
    rules = QualityRules(event_types=("click",), max_dwell_ms=60_000, bot_events_per_minute=30)
    # The pull cuts text to max_field_chars + 1 characters: the default rule sees a cut value as too long.
    assert rules.max_field_chars == DEFAULT_MAX_FIELD_CHARS
    assert rules.min_occurred_at == datetime(1990, 1, 1, tzinfo=timezone.utc)
