"""A tiny training run used by test_train.py: single process, under torchrun, or killed mid-checkpoint.

usage: python train_driver.py OUT [--kill-on-save N]
"""
import os
import signal
import sys

import torch

import chimle.train as train_mod
from chimle.runs import save_atomic
from chimle.search import SquaredError
from chimle.testing import ramp_pairs, tiny_search_config, tiny_tim, tiny_train_config
from chimle.train import Trainer, init_distributed


def main(out, kill_on_save=0):
    torch.set_num_threads(1)
    rank, world = init_distributed(torch.device("cpu"))
    data = ramp_pairs(12, 16)
    cfg = tiny_train_config(passes=2.0, steps_per_round=6)
    if kill_on_save:
        calls, real_save = [0], torch.save
        def dying_save(obj, f, *a, **kw):
            calls[0] += 1
            if calls[0] == kill_on_save:
                f.write(b"PK\x03\x04 half a checkpoint"); f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return real_save(obj, f, *a, **kw)
        train_mod.torch.save = dying_save
    tr = Trainer(tiny_tim("dc", levels=2), data, SquaredError(), cfg, tiny_search_config([4, 3]),
                 out, seed=0, progress=False, log=rank == 0)
    if os.environ.get("CHIMLE_DRIVER_SGD"):  # plain SGD: no per-parameter normalisation of float noise
        tr.opt = torch.optim.SGD([{"params": g["params"], "lr": g["lr"] * 50} for g in tr.opt.param_groups])
    tr.fit()
    if rank == 0: save_atomic(tr.model.state_dict(), os.path.join(out, "final.pt"))
    if world > 1: torch.distributed.destroy_process_group()


if __name__ == "__main__":
    kill = int(sys.argv[sys.argv.index("--kill-on-save") + 1]) if "--kill-on-save" in sys.argv else 0
    main(sys.argv[1], kill)
