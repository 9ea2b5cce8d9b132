"""The lint gate: pyflakes' checks through ruff (ruff.toml) over chimle/ and tests/ find nothing."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    r = subprocess.run([str(Path(sys.executable).with_name("ruff")), "check", "--no-cache", "chimle", "tests"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-2000:]


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
