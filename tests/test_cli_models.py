"""`freshrec models ...` and `freshrec score`: list, show, rollback, promote and score through the command, and a
promote of altered bytes is one sentence."""

import sqlalchemy as sa

from helpers import champion, publish, tamper


def test_cli_models_and_score(engine, database_url, artifact):
    import json
    import os
    import subprocess
    import sys

    from freshrec.artifacts import save_artifact
    from freshrec.model import build_model
    from helpers import config

    v1 = publish(engine, artifact, None).version
    head_update = config("full")
    head_update.extra = {"lineage": {"kind": "warm_start", "scope": "head", "parent": v1,
                                     "wide_fit": {"rows": 300, "weights": [1.2, 0.9, 0.01, -0.02], "bias": -0.4,
                                                                  "prior": "running", "rows_total": 1300}},
                         "last_train": {"steps": 12, "examples": 384, "loss": 0.61, "examples_per_s": 41.25,
                                        "learning_rate": 0.001}}
    v2 = publish(engine, save_artifact(build_model(head_update), head_update), v1).version
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO items (id, title, category) VALUES (1, 'football guide', 'sports'), "
                             "(2, 'guitar review', 'music'), (3, 'pasta recipe', 'cooking')"))
    env = {**os.environ, "FRESHREC_DATABASE_URL": database_url}

    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", "freshrec_cli.main", *args, "--json"], capture_output=True,
                              text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    assert [m["version"] for m in cli("models", "list")["models"]] == [v2, v1]
    assert cli("models", "show", str(v2))["parent_version"] == v1
    shown = subprocess.run([sys.executable, "-m", "freshrec_cli.main", "models", "show", str(v2)],
                           capture_output=True, text=True, env=env, timeout=120).stdout
    assert f"parent {v1}, base tiny (full, warm start, head only)" in shown  # how the version was made
    assert ("wide part fitted to 300 rows continuing the newest attempt's posterior, 1300 in all: user_rate +1.200, item_rate +0.900, user_log_n +0.010, "
            "item_log_n -0.020, bias -0.400") in shown
    assert "trained 12 steps, 384 examples at 41.2 examples/s, learning rate 1.00e-03" in shown
    assert cli("models", "rollback") == {"champion": v1, "previous": v2}
    ranked = cli("score", "--user", "7", "--items", "1", "--items", "3", "--top", "5")
    assert ranked["version"] == v1 and {r["item_id"] for r in ranked["items"]} == {1, 3}
    assert cli("models", "promote", str(v2))["champion"] == v2


def test_cli_promote_of_altered_bytes_is_one_sentence(engine, database_url, artifact, tmp_path):
    import os
    import subprocess
    import sys

    v1 = publish(engine, artifact, None).version
    v2 = publish(engine, artifact, v1).version
    tamper(engine, v1)
    proc = subprocess.run([sys.executable, "-m", "freshrec_cli.main", "models", "promote", str(v1)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "FRESHREC_DATABASE_URL": database_url,
                               "FRESHREC_DATA_DIR": str(tmp_path)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [ln for ln in proc.stderr.splitlines() if ln.strip()] == [
        ln for ln in proc.stderr.splitlines() if ln.startswith("error: Model version")]
    assert champion(engine) == v2
