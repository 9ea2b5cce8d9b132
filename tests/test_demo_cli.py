"""`chimle-demo`'s options: a bad one stops it before any model loads, naming itself (no browser needed)."""
import subprocess
import sys
from pathlib import Path

import pytest

EXE = Path(sys.executable).with_name("chimle-demo")


@pytest.mark.parametrize("args, expected", [
    (["--workers", "-1"], "--workers must be 0 (one per CPU thread) or more, got -1"),
    (["--device", "bogus"], "--device 'bogus'"),
])
def test_bad_options_name_themselves(args, expected):
    r = subprocess.run([str(EXE), "--port", "0", *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and expected in r.stderr and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    assert "models on http" not in r.stdout  # it never served
