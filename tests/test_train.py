"""Training in subprocesses: a kill during a checkpoint write, exact resume after it, and 2-process DDP (gloo)."""
import os
import subprocess
import sys
from pathlib import Path

import torch

from chimle.runs import load_checkpoint

DRIVER = Path(__file__).with_name("train_driver.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _run(*args, launcher=None, env=None):
    cmd = (launcher or [sys.executable]) + [str(DRIVER), *map(str, args)]
    return subprocess.run(cmd, env={**ENV, **(env or {})}, capture_output=True, text=True, timeout=600)


def _final(out):
    return load_checkpoint(Path(out) / "final.pt")


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_kill_during_checkpoint_write_then_exact_resume(tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    r = _run(ref)
    assert r.returncode == 0, r.stderr
    # saves: round codes (1), checkpoints at steps 2 (2), 4 (3): die while writing the step-4 checkpoint
    r = _run(run, "--kill-on-save", 3)
    assert r.returncode == -9, (r.returncode, r.stderr[-2000:])
    ck = load_checkpoint(run / "checkpoint.pt")  # the previous checkpoint is intact and loadable
    assert ck["global_step"] == 2 and ck["round"] == 0
    assert len(list(run.glob(".checkpoint.pt.tmp*"))) == 1  # the write the kill interrupted
    r = _run(run)  # resume and finish
    assert r.returncode == 0, r.stderr
    assert not list(run.glob(".*.tmp*")) and "removed a temporary file" in r.stderr
    assert _max_diff(_final(ref), _final(run)) < 1e-6


def test_two_process_ddp_matches_one_process(tmp_path):
    """Two gloo processes, each with half the global batch and half of each round's search, against one process.

    With SGD the final weights agree to float rounding, and the searches select identical codes. (With Adam
    they agree only to about lr: Adam divides each gradient by its running RMS, so a parameter whose gradient
    is float noise, about 1e-9, moves by +-lr whichever way the rounding went; the driver uses SGD here.)
    """
    one, two = tmp_path / "one", tmp_path / "two"
    sgd = {"CHIMLE_DRIVER_SGD": "1"}
    r = _run(one, env=sgd)
    assert r.returncode == 0, r.stderr
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    r = _run(two, launcher=launcher, env=sgd)
    assert r.returncode == 0, r.stderr[-3000:]
    diff = _max_diff(_final(one), _final(two))
    assert diff < 1e-6, diff
    c1, c2 = load_checkpoint(one / "round_codes.pt"), load_checkpoint(two / "round_codes.pt")
    assert c1["round"] == c2["round"] == 3 and c1["indices"] == c2["indices"]
    assert torch.equal(c1["codes"], c2["codes"])
    assert load_checkpoint(two / "checkpoint.pt")["global_step"] == 24
    init = torch.load(one / "checkpoint.pt", weights_only=True)["model"]
    assert _max_diff(init, _final(one)) == 0  # the last checkpoint holds the final weights
