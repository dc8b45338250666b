"""Project rules that code review would otherwise have to catch."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports_of(package: str) -> dict[str, set[str]]:
    found = {}
    for path in (ROOT / package).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_imports_go_one_way():
    for path, names in imports_of("freshrec").items():
        assert not names & {"prefect", "flows", "tasks", "freshrec_cli"}, path
    for path, names in imports_of("tasks").items():
        assert not names & {"flows", "freshrec_cli"}, path
    for path, names in imports_of("flows").items():
        assert "freshrec_cli" not in names, path


def test_no_sql_built_with_f_strings():
    # An f-string that starts a SQL statement, or one handed straight to text()/execute().
    starts_sql = re.compile(r"""\bf["']{1,3}\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|WITH|COPY)\b""")  # SQL is upper case here
    executed = re.compile(r"""\b(text|execute|exec_driver_sql|copy_expert)\(\s*f["']""")
    for package in ("freshrec", "tasks", "flows", "freshrec_cli", "bench"):
        for path in (ROOT / package).rglob("*.py"):
            source = path.read_text()
            assert not starts_sql.search(source) and not executed.search(source), path


def test_every_named_query_exists():
    used, named = set(), set()
    for package in ("freshrec", "tasks", "flows", "freshrec_cli"):
        for path in (ROOT / package).rglob("*.py"):
            source = path.read_text()
            used |= set(re.findall(r"""query\(["']([a-z0-9_]+)["']\)""", source))
            named |= set(re.findall(r"""["']([a-z0-9_]+)["']""", source))  # names handed to query() indirectly
    files = {p.stem for p in (ROOT / "sql" / "queries").glob("*.sql")}
    assert used - files == set()
    assert files - named == set(), "unused query files"


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = 'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]" && .venv/bin/python -m pytest'
    assert command in readme and command in ci
    assert "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/freshrec demo" in readme
