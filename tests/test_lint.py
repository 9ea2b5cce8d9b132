"""The lint gate: ruff (ruff.toml: pyflakes' checks, import order, lines of at most 120 characters) over chimle/ and
tests/ finds nothing; nbdev's generated `__all__` list, which wraps at its own width, is the one exception."""
import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _all_lines(path: Path) -> set[int]:
    "Line numbers of the `__all__ = [...]` statement nbdev writes at the top of a module."
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return set(range(node.lineno, node.end_lineno + 1))
    return set()


def lint_findings(paths=("chimle", "tests")) -> list[str]:
    "What ruff reports, less E501 on the lines of nbdev's `__all__`."
    r = subprocess.run([str(Path(sys.executable).with_name("ruff")), "check", "--no-cache", "--output-format", "json",
                        *paths], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode in (0, 1), r.stderr[-2000:]
    found = []
    for f in json.loads(r.stdout or "[]"):
        path, line = Path(f["filename"]), f["location"]["row"]
        if f["code"] == "E501" and path.parent.name == "chimle" and line in _all_lines(path): continue
        found.append(f"{path.relative_to(ROOT)}:{line}: {f['code']} {f['message']}")
    return found


def test_ruff_finds_nothing():
    found = lint_findings()
    assert not found, f"{len(found)} findings:\n" + "\n".join(found[:60])


def test_the_gate_can_fail(tmp_path):
    "The gate sees a long line, an unsorted import block and an unused import in a file of the tests folder."
    bad = ROOT / "tests" / f"_lint_probe_{tmp_path.name}.py"
    bad.write_text("import sys\nimport os\n\nx = '" + "a" * 130 + "'\n")
    try: codes = {f.split(": ")[1].split()[0] for f in lint_findings([str(bad.relative_to(ROOT))])}
    finally: bad.unlink()
    assert codes == {"E501", "I001", "F401"}, codes


def _imports_inside_functions(path: Path) -> list[str]:
    import ast
    found = []
    for fn in ast.walk(ast.parse(path.read_text())):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)): continue
        for node in ast.walk(fn):
            mods = ([node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else
                    ["chimle." + (node.module or "")] if isinstance(node, ast.ImportFrom) else
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            found += [f"{path.name}:{node.lineno} {fn.name} imports {m}" for m in mods if m.split(".")[0] == "chimle"]
    return found


def test_no_chimle_import_inside_a_function():
    "Module dependencies are visible at the top of each module (and in tests/test_stages.py's import graph)."
    found = [f for p in sorted((ROOT / "chimle").glob("*.py")) for f in _imports_inside_functions(p)]
    assert not found, "\n".join(found)
