"""Every notebook in nbs/ is a test case: executed with nbdev's runner, honouring settings.ini's tst_flags.

Each notebook runs in a fresh Python process, as `nbdev_test --path` runs it: a thread count, a seed or any other
process-wide setting left by an earlier test (or an earlier notebook) cannot reach it, so the notebooks are
checked at torch's default thread count for this machine.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "nbs").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
FORCE = os.environ.get("CHIMLE_TEST_FLAGS", "").split()  # e.g. "slow" or "slow cuda" to run flagged cells

# argv: notebook, then the flags to force; skipped flags come from settings.ini (as nbdev_test does)
RUNNER = """
import sys
from pathlib import Path
from nbdev.config import get_config
from nbdev.test import test_nb
nb, force, cfg = Path(sys.argv[1]), sys.argv[2:], get_config()
ok, seconds = test_nb(nb, skip_flags=cfg.tst_flags.split(), force_flags=force, basepath=cfg.config_path, showerr=True)
print(f"{nb}: {'passed' if ok else 'FAILED'} in {seconds:.1f} s", flush=True)
sys.exit(0 if ok else 1)
"""


def run_notebook(nb: Path, force=(), **kw) -> subprocess.CompletedProcess:
    "Run `nb` with nbdev's `test_nb` in a fresh Python process started in the repository root."
    return subprocess.run([sys.executable, "-c", RUNNER, str(nb), *force], cwd=ROOT, **kw)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[str(p.relative_to(ROOT / "nbs")) for p in NOTEBOOKS])
def test_notebook(nb):
    r = run_notebook(nb, FORCE)  # its output goes to this test's captured output
    assert r.returncode == 0, f"{nb.name} failed (see the traceback in the captured output above)"


def test_notebooks_see_torchs_default_thread_count(tmp_path):
    "A notebook sees the thread count of a fresh process, whatever this pytest process has set."
    fresh = int(subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                               capture_output=True, text=True, check=True).stdout)
    seen = tmp_path / "threads.txt"
    probe = {"cells": [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                        "source": f"import torch\nopen({str(seen)!r}, 'w').write(str(torch.get_num_threads()))"}],
             "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "probe.ipynb").write_text(json.dumps(probe))
    before = torch.get_num_threads()
    torch.set_num_threads(fresh + 1)  # what a test that set threads and did not restore them would leave behind
    try: r = run_notebook(tmp_path / "probe.ipynb", capture_output=True, text=True)
    finally: torch.set_num_threads(before)
    assert r.returncode == 0, r.stdout + r.stderr
    assert int(seen.read_text()) == fresh, f"the notebook saw {seen.read_text()} threads, a fresh process {fresh}"
