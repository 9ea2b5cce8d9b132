"""The lint gate: pyflakes' checks through ruff (ruff.toml) over chimle/ and tests/ find nothing."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    r = subprocess.run([str(Path(sys.executable).with_name("ruff")), "check", "--no-cache", "chimle", "tests"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-2000:]
