"""`dvc exp run -S key=value` rewrites params.yaml as YAML 1.2 (quotes dropped where YAML 1.2 does not need them);
the pipeline must still read it. Each case runs the real `configure` stage in a git copy of the repository."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chimle.files import read_yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _copy(tmp: Path) -> Path:
    files = ["params.yaml", "dvc.yaml", "settings.ini", ".dvc/config", ".dvcignore",
             *(str(p.relative_to(ROOT)) for p in (ROOT / "nbs" / "exp").glob("*.ipynb")),
             *(str(p.relative_to(ROOT)) for p in (ROOT / "chimle").glob("*.py"))]
    for f in files:
        (tmp / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, tmp / f)
    git = lambda *a: subprocess.run(["git", *a], cwd=tmp, check=True, capture_output=True)
    git("init", "-q"); git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy")
    return tmp


@pytest.mark.parametrize("setting, profile, key, value", [("seed=1", "embedded", "seed", 1),
                                                          ("profile=paper", "paper", "profile", "paper")])
def test_dvc_exp_run_gets_past_configure(tmp_path, setting, profile, key, value):
    repo = _copy(tmp_path)
    env = {**os.environ, "CHIMLE_ROOT": str(repo), "PYTHONPATH": str(repo),
           "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    r = subprocess.run([str(BIN / "dvc"), "exp", "run", "-S", setting, "configure"], cwd=repo, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "4:2:0" in (repo / "params.yaml").read_text() and "'4:2:0'" not in (repo / "params.yaml").read_text(), \
        "dvc no longer rewrites the quoted subsampling: this test lost its point"
    cfg = read_yaml(repo / "runs" / profile / "config.yaml")
    assert cfg[key] == value
    assert cfg["data"]["dc"]["jpeg_subsampling"] == "4:2:0"


def test_params_yaml_is_written_as_dvc_writes_it():
    "`dvc exp run -S key=value` rewrites params.yaml in DVC's YAML style; written in it, only the set line changes."
    from dvc.utils.serialize._yaml import dumps_yaml, parse_yaml_for_update
    text = (ROOT / "params.yaml").read_text()
    data = parse_yaml_for_update(text, "params.yaml")
    assert dumps_yaml(data) == text, "params.yaml differs from DVC's rewrite of it: write it as DVC does"
    data["seed"] = data["seed"] + 1
    changed = [(a, b) for a, b in zip(text.splitlines(), dumps_yaml(data).splitlines()) if a != b]
    assert len(changed) == 1 and changed[0][1].startswith("seed: "), changed
