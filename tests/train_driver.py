"""A tiny training run used by test_train.py: single process, under torchrun, or killed mid-checkpoint.

usage: python train_driver.py OUT [--kill-on-save N]
"""
import os
import signal
import sys

import torch

import chimle.train as train_mod
from chimle.core import SearchConfig, TrainConfig, seed_everything
from chimle.search import SquaredError
from chimle.tim import build_tim
from chimle.train import PairDataset, Trainer, init_distributed, save_atomic

TINY = dict(levels=2, residual_channels=[8, 8], growth_channels=[4, 4], rrdbs_per_level=[1, 1],
            global_code_dim=4, mapping_width=8, mapping_depth=1)


def main(out, kill_on_save=0):
    torch.set_num_threads(1)
    rank, world = init_distributed(torch.device("cpu"))
    g = seed_everything(0)
    tgt = torch.rand(12, 3, 1, 1, generator=g).expand(12, 3, 16, 16).clone() * torch.linspace(0.5, 1, 16)
    half = torch.nn.functional.avg_pool2d(tgt, 2)
    data = PairDataset([half, tgt], [half, tgt])
    cfg = TrainConfig(passes=2, images_per_round=6, steps_per_round=6, batch_size=2, lr=2e-3, search_images=4,
                      checkpoint_every=2, log_every=2)
    if kill_on_save:
        calls, real_save = [0], torch.save
        def dying_save(obj, f, *a, **kw):
            calls[0] += 1
            if calls[0] == kill_on_save:
                f.write(b"PK\x03\x04 half a checkpoint"); f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return real_save(obj, f, *a, **kw)
        train_mod.torch.save = dying_save
    seed_everything(0)
    tr = Trainer(build_tim("dc", "embedded", **TINY), data, SquaredError(), cfg, SearchConfig(samples_per_level=[4, 3]),
                 out, seed=0, progress=False, log=rank == 0)
    if os.environ.get("CHIMLE_DRIVER_SGD"):  # plain SGD: no per-parameter normalisation of float noise
        tr.opt = torch.optim.SGD([{"params": g["params"], "lr": g["lr"] * 50} for g in tr.opt.param_groups])
    tr.fit()
    if rank == 0: save_atomic(tr.model.state_dict(), os.path.join(out, "final.pt"))
    if world > 1: torch.distributed.destroy_process_group()


if __name__ == "__main__":
    kill = int(sys.argv[sys.argv.index("--kill-on-save") + 1]) if "--kill-on-save" in sys.argv else 0
    main(sys.argv[1], kill)
