"""Every notebook in nbs/ is a test case: executed with nbdev's runner, honouring settings.ini's tst_flags."""
import os
from pathlib import Path

import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "nbs").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
FORCE = os.environ.get("CHIMLE_TEST_FLAGS", "").split()  # e.g. "slow" or "slow cuda" to run flagged cells


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[str(p.relative_to(ROOT / "nbs")) for p in NOTEBOOKS])
def test_notebook(nb, monkeypatch):
    monkeypatch.chdir(ROOT)
    skip = get_config(path=ROOT).tst_flags.split()
    ok, seconds = run_notebook(nb, skip_flags=skip, force_flags=FORCE, basepath=ROOT, showerr=True)
    assert ok, f"{nb.name} failed (see the traceback above)"
