"""Notebooks are committed clean and the library is in sync with them: CI fails, naming files, otherwise."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tracked(paths):
    out = subprocess.run(["git", "ls-files", *paths], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [Path(p) for p in out.split()]


def _changed_by(tool, tmp_path):
    """Files under nbs/ and chimle/ that `tool` would change, found by running it on a copy of the repository."""
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("settings.ini", "setup.py", "params.yaml"):
        shutil.copy(ROOT / name, copy / name)
    for d in ("nbs", "chimle"):
        shutil.copytree(ROOT / d, copy / d, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    before = {p: p.read_bytes() for d in ("nbs", "chimle") for p in (copy / d).rglob("*") if p.is_file()}
    subprocess.run([str(BIN / tool)], cwd=copy, check=True, capture_output=True)
    after = {p: p.read_bytes() for d in ("nbs", "chimle") for p in (copy / d).rglob("*") if p.is_file()}
    return sorted(str(p.relative_to(copy)) for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def test_notebooks_are_clean(tmp_path):
    changed = _changed_by("nbdev_clean", tmp_path)
    assert not changed, "nbdev_clean would change these files (run `make export` and commit): " + ", ".join(changed)


def test_library_matches_notebooks(tmp_path):
    changed = _changed_by("nbdev_export", tmp_path)
    assert not changed, "nbdev_export would change these files (run `make export` and commit): " + ", ".join(changed)


def test_library_files_are_tracked():
    tracked = {str(p) for p in _tracked(["chimle"])}
    if not tracked: return  # outside a git checkout (e.g. an sdist): nothing to compare
    untracked = [str(p.relative_to(ROOT)) for p in (ROOT / "chimle").glob("*.py")
                 if str(p.relative_to(ROOT)) not in tracked]
    assert not untracked, "exported modules not committed: " + ", ".join(untracked)


def test_notebooks_name_the_installed_kernel():
    """JupyterLab rewrites a notebook's kernelspec to the installed kernel's on opening; equal, it opens unmodified."""
    spec = json.loads((Path(sys.prefix) / "share" / "jupyter" / "kernels" / "python3" / "kernel.json").read_text())
    odd = [str(p.relative_to(ROOT)) for p in _tracked(["nbs/*.ipynb", "nbs/exp/*.ipynb"])
           if json.loads((ROOT / p).read_text())["metadata"].get("kernelspec", {}).get("display_name")
           != spec["display_name"]]
    assert not odd, f"kernelspec display_name differs from the installed kernel's {spec['display_name']!r}: {odd}"
