"""Training under faults: a truncated dvclive summary, non-finite gradients, two writers, leftovers, corrupt files."""
import json
import subprocess
import sys

import pytest
import torch

from chimle.runs import CheckpointError, NonFiniteLossError, RunLockedError, load_checkpoint
from chimle.search import SquaredError
from chimle.testing import ramp_pairs, tiny_search_config, tiny_tim, tiny_train_config
from chimle.train import Trainer

CFG = tiny_train_config(passes=1.0, steps_per_round=6, search_images=6, log_every=1)


def _trainer(out, distance=None, **kw):
    return Trainer(tiny_tim("dc", levels=2), ramp_pairs(6, 8), distance or SquaredError(), CFG,
                   tiny_search_config([2, 2]), out, seed=0, progress=False, **kw)


def test_resume_after_an_emptied_dvclive_summary(tmp_path):
    _trainer(tmp_path).fit(max_steps=3)
    summary = tmp_path / "dvclive" / "metrics.json"
    assert json.loads(summary.read_text())["step"] == 3
    summary.write_text("")  # a kill during dvclive's in-place rewrite leaves the file empty
    with pytest.warns(UserWarning, match="metrics.json"):
        tr = _trainer(tmp_path).fit()
    assert tr.global_step == 6
    assert json.loads(summary.read_text())["step"] == 6  # rewritten whole by the resumed run
    summary.write_text('{"train": {"loss": 0.1')  # a half-written file likewise
    with pytest.warns(UserWarning, match="metrics.json"):
        _trainer(tmp_path).fit(rounds=2)
    assert json.loads(summary.read_text())["step"] == 12


class FiniteLossNaNGradient(SquaredError):
    "Squared error plus 0 * sqrt(0): the value stays finite, the gradient is 0 * inf = NaN."
    def __call__(self, x, y):
        return super().__call__(x, y) + 0 * torch.sqrt((x - x.detach()).abs()).flatten(1).sum(1)


def test_non_finite_gradient_keeps_the_last_good_checkpoint(tmp_path):
    tr = _trainer(tmp_path)
    tr.fit(max_steps=4)
    good = load_checkpoint(tr.ckpt_path)
    tr = _trainer(tmp_path, distance=FiniteLossNaNGradient())
    with pytest.raises(NonFiniteLossError, match="non-finite gradient at round 0, step 4") as e:
        tr.fit()
    assert str(tr.ckpt_path) in str(e.value)
    ck = load_checkpoint(tr.ckpt_path)
    assert ck["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in ck["model"].values())
    assert all(torch.equal(ck["model"][k], good["model"][k]) for k in good["model"])


def test_two_trainings_in_one_folder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from chimle.runs import lock_run_dir\n"
                               "f = lock_run_dir(sys.argv[1]); print('held', flush=True); "
                               "time.sleep(120)", str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError) as e:
            _trainer(tmp_path).fit()
        assert str(tmp_path) in str(e.value) and f"pid {holder.pid}" in str(e.value)
        assert not (tmp_path / "checkpoint.pt").exists()
    finally:
        holder.kill(); holder.wait()
    assert _trainer(tmp_path).fit(max_steps=2).global_step == 2  # a killed holder leaves no stale lock


def test_leftover_temporary_files_are_removed_on_the_next_start(tmp_path):
    _trainer(tmp_path).fit(max_steps=2)
    left = tmp_path / ".checkpoint.pt.tmp4242"  # what a kill during a checkpoint write leaves behind
    left.write_bytes(b"PK\x03\x04 half a checkpoint")
    with pytest.warns(UserWarning, match=r"\.checkpoint\.pt\.tmp4242"):
        _trainer(tmp_path).fit(max_steps=4)
    assert not left.exists() and (tmp_path / "checkpoint.pt").is_file()


def test_a_corrupt_checkpoint_is_named(tmp_path):
    _trainer(tmp_path).fit(max_steps=2)
    ck = tmp_path / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="checkpoint.pt"):
        _trainer(tmp_path).fit()
    with pytest.raises(CheckpointError, match="checkpoint.pt"):
        load_checkpoint(ck)


def test_a_flipped_bit_is_detected(tmp_path):
    _trainer(tmp_path).fit(max_steps=2)
    ck = tmp_path / "checkpoint.pt"
    raw = bytearray(ck.read_bytes())
    w = max(load_checkpoint(ck)["model"].values(), key=lambda t: t.numel())
    at = raw.find(w.numpy().tobytes())
    assert at > 0
    raw[at + 5] ^= 0x10  # one bit of one weight
    ck.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(ck)
    with pytest.raises(CheckpointError, match="checkpoint.pt"):
        _trainer(tmp_path).fit()


def test_training_command_errors_are_one_line(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "chimle.train", *map(str, a)],
                                    capture_output=True, text=True, timeout=300)
    r = run("--task", "dc", "--profile", "nope", "--out", tmp_path)
    assert r.returncode == 2 and "nope" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = run("--task", "dc", "--data_root", tmp_path / "none", "--out", tmp_path, "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr and "FileNotFoundError" in r.stderr
