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


def query_uses(packages=("freshrec", "tasks", "flows", "freshrec_cli", "bench")) -> tuple[set[str], list[str]]:
    """Names passed to freshrec.sqlfiles.query(): literal query("name") calls, plus the literal arguments of the
    calls to a function that hands its own parameter to query() (features.relative_activity). Returns the names
    and the query() calls whose name could not be resolved to literals."""
    trees = {path: ast.parse(path.read_text()) for package in packages for path in (ROOT / package).rglob("*.py")}
    used, unresolved, forwarded = set(), [], {}  # forwarded: function name -> (parameter index, parameter name)

    def is_query_call(node, module_imports_query):
        if not isinstance(node, ast.Call) or len(node.args) != 1:
            return False
        f = node.func
        return ((isinstance(f, ast.Name) and f.id == "query" and module_imports_query)
                or (isinstance(f, ast.Attribute) and f.attr == "query" and isinstance(f.value, ast.Name)
                    and f.value.id == "sqlfiles"))

    for path, tree in trees.items():
        imports_query = any(isinstance(n, ast.ImportFrom) and n.module == "freshrec.sqlfiles"
                            and any(a.name == "query" for a in n.names) for n in ast.walk(tree))
        for func in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            params = [a.arg for a in func.args.args]
            for node in ast.walk(func):
                if not is_query_call(node, imports_query):
                    continue
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    used.add(arg.value)
                elif isinstance(arg, ast.Name) and arg.id in params:
                    forwarded[func.name] = (params.index(arg.id), arg.id)
                else:
                    unresolved.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    for name, (index, param) in forwarded.items():
        calls = [n for tree in trees.values() for n in ast.walk(tree) if isinstance(n, ast.Call)
                 and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]
        if not calls:
            unresolved.append(f"{name}() is never called")
        for call in calls:
            arg = next((k.value for k in call.keywords if k.arg == param),
                       call.args[index] if index < len(call.args) else None)
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                used.add(arg.value)
            else:
                unresolved.append(f"{name}() called without a literal query name")
    return used, unresolved


def test_every_named_query_exists_and_every_query_file_is_used():
    used, unresolved = query_uses()
    assert unresolved == [], "query() must get a literal name (or a parameter that callers fill with literals)"
    files = {p.stem for p in (ROOT / "sql" / "queries").glob("*.sql")}
    assert used - files == set(), "query() names without a file in sql/queries"
    assert files - used == set(), "unused query files"


def test_every_core_module_has_a_test_module():
    """tests/ mirrors freshrec/: freshrec/x.py is tested in tests/test_x.py (docs/testing.md)."""
    modules = {p.stem for p in (ROOT / "freshrec").glob("*.py")} - {"__init__", "errors"}
    missing = sorted(m for m in modules if not (ROOT / "tests" / f"test_{m}.py").is_file())
    assert missing == [], f"core modules without tests/test_<module>.py: {missing}"
