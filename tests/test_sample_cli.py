"""`chimle-sample` in a subprocess: real photos, folders, every option, and bad inputs reported by name; README's first
sample as pasted; --example and --degrade with the released models; progress reports."""
import io
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from chimle.config import load_config
from chimle.core import read_image, seed_everything, to_pil
from chimle.sample import (
    CAPTION,
    TASK_INPUTS,
    UsageError,
    closest_sample,
    examples,
    grey_photo,
    load_sampler,
    prepare_input,
    sample,
    sample_files,
    save_model,
)
from chimle.tasks import col_degrade, dc_degrade, n2d_degrade, sr_degrade
from chimle.testing import tiny_tim

EXE = Path(sys.executable).with_name("chimle-sample")


def _cli(*args):
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    seed_everything(0)
    return {t: save_model(tiny_tim(t, levels=3, seed=None).eval(), d / f"{t}.pt") for t in ("sr", "col", "dc")}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    Image.fromarray(skdata.astronaut()).save(d / "astronaut.png")
    Image.fromarray(skdata.coffee()).save(d / "coffee.jpg", quality=90)
    buf = io.BytesIO(); Image.fromarray(skdata.chelsea()).save(buf, "JPEG")
    (d / "truncated.jpg").write_bytes(buf.getvalue()[:3000])
    (d / "notes.txt").write_text("this is not an image")
    (d / "empty.png").write_bytes(b"")
    rgba = np.dstack([skdata.rocket()[:64, :64], np.full((64, 64), 128, np.uint8)])
    Image.fromarray(rgba).save(d / "rgba.png")
    Image.fromarray((np.linspace(0, 65535, 48 * 48).reshape(48, 48)).astype(np.uint16)).save(d / "deep16.png")
    Image.fromarray(skdata.camera()[::4, ::4]).save(d / "gray.jpg")
    return d


def test_help_documents_every_option():
    r = _cli("--help")
    assert r.returncode == 0
    for opt in ("--checkpoint", "--input", "--n", "--out", "--grid", "--gif", "--seed", "--device", "--max_side",
                "--reference", "--ivo_steps"):
        assert opt in r.stdout, opt


def test_real_photo_with_grid_and_gif(models, inputs, tmp_path):
    r = _cli("--checkpoint", models["sr"], "--input", inputs / "astronaut.png", "--n", 4, "--out", tmp_path,
             "--grid", "--gif", "--seed", 1)
    assert r.returncode == 0, r.stderr
    assert "resized to the model's 8 px" in r.stderr  # a 512 px photo given to an 8 px super-resolution model
    pngs = sorted(p.name for p in tmp_path.glob("astronaut_0*.png"))
    assert pngs == [f"astronaut_{k:03d}.png" for k in range(4)]
    with Image.open(tmp_path / "astronaut_000.png") as im: assert im.size == (64, 64)
    with Image.open(tmp_path / "astronaut.gif") as im: assert im.n_frames == 4
    assert (tmp_path / "astronaut_grid.png").is_file()
    again = tmp_path / "again"
    assert _cli("--checkpoint", models["sr"], "--input", inputs / "astronaut.png", "--n", 4, "--out", again,
                "--seed", 1).returncode == 0
    # same seed, same samples
    assert (again / "astronaut_002.png").read_bytes() == (tmp_path / "astronaut_002.png").read_bytes()


def test_folder_with_bad_files_reports_them_and_fails(models, inputs, tmp_path):
    r = _cli("--checkpoint", models["dc"], "--input", inputs, "--n", 2, "--out", tmp_path)
    assert r.returncode == 1
    for bad in ("truncated.jpg", "notes.txt", "empty.png"):
        assert bad in r.stderr, bad
    for good in ("astronaut", "coffee", "rgba", "deep16", "gray"):
        assert (tmp_path / f"{good}_001.png").is_file(), good
    assert "wrote 10 samples for 5 of 8 inputs" in r.stdout


def test_grayscale_jpeg_for_colourization(models, inputs, tmp_path):
    r = _cli("--checkpoint", models["col"], "--input", inputs / "gray.jpg", "--n", 3, "--out", tmp_path, "--grid")
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "gray_000.png") as im:
        assert im.mode == "RGB" and im.size == (128, 128)  # 128 px: the largest multiple of 4 that fits


def test_missing_checkpoint_is_an_error(inputs, tmp_path):
    r = _cli("--checkpoint", tmp_path / "nope.pt", "--input", inputs / "astronaut.png", "--out", tmp_path)
    assert r.returncode != 0 and "nope.pt" in r.stderr


def test_closest_output_to_a_reference(models, inputs, tmp_path):
    first = tmp_path / "first"
    assert _cli("--checkpoint", models["sr"], "--input", inputs / "coffee.jpg", "--n", 2, "--out", first,
                "--seed", 3).returncode == 0
    ref = first / "coffee_000.png"  # an output of the model itself: a code exists that reproduces it
    r = _cli("--checkpoint", models["sr"], "--input", inputs / "coffee.jpg", "--n", 2, "--out", tmp_path, "--seed", 4,
             "--reference", ref, "--ivo_steps", 150)
    assert r.returncode == 0, r.stderr
    line = next(l for l in r.stdout.splitlines() if "closest output to coffee_000.png" in l)
    mse = float(line.rsplit(" ", 1)[1])
    load = lambda p: np.asarray(Image.open(p).convert("RGB"), dtype=np.float64) / 255
    random_mse = min(1e3 * ((load(tmp_path / f"coffee_{k:03d}.png") - load(ref)) ** 2).mean() for k in range(2))
    closest = 1e3 * ((load(tmp_path / "coffee_closest.png") - load(ref)) ** 2).mean()
    assert mse < 0.25 * random_mse and closest < 0.25 * random_mse, (mse, closest, random_mse)
    bad = _cli("--checkpoint", models["sr"], "--input", inputs / "coffee.jpg", "--out", tmp_path,
               "--reference", inputs / "notes.txt")
    assert bad.returncode == 2 and "notes.txt" in bad.stderr


ROOT = Path(__file__).resolve().parents[1]
RELEASED = ROOT / "models" / "embedded"


def readme_section(title: str) -> str:
    "The text of README.md's section `## title`, up to the next `## `."
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_readme_first_sample_runs_as_pasted(tmp_path):
    "Every command of README's 'A first sample', run as pasted from a folder laid out like a fresh clone, writes the "
    "files the command and the prose promise."
    section = readme_section("A first sample")
    commands = [line for block in re.findall(r"```bash\n(.*?)```", section, re.S) for line in block.splitlines()
                if line.strip() and not line.startswith("#")]
    assert len(commands) >= 2 and commands[0].startswith(".venv/bin/chimle-sample ")
    for name, target in ((".venv", Path(sys.prefix)), ("models", ROOT / "models"), ("chimle", ROOT / "chimle")):
        (tmp_path / name).symlink_to(target)
    promised = []
    for cmd in commands:
        t0 = time.perf_counter()
        r = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, capture_output=True, text=True, timeout=600)
        print(f"{time.perf_counter() - t0:.1f} s: {cmd}")
        assert r.returncode == 0, (cmd, r.stderr[-2000:])
        args = shlex.split(cmd)[1:]
        opt = lambda k, default=None: args[args.index(k) + 1] if k in args else default
        out, n = tmp_path / opt("--out", "samples"), int(opt("--n", 16))
        stem = opt("--example") or Path(opt("--input")).stem
        promised += [out / f"{stem}_{k:03d}.png" for k in range(n)]
        promised += [out / f"{stem}_grid.png"] * ("--grid" in args)
        promised += [out / f"{stem}_{w}.png" for w in ("input", "truth")] * ("--degrade" in args)
    named = re.findall(r"`(samples/[^`]+\.png)`", section)  # the files the prose names
    assert len(named) >= 4, named
    missing = [str(p.relative_to(tmp_path)) for p in promised + [tmp_path / p for p in named] if not p.is_file()]
    assert not missing, missing


@pytest.mark.parametrize("task", ["sr", "col", "dc", "n2d"])
def test_degrade_makes_the_tasks_own_input(task, tmp_path):
    "--degrade on a photo of the output's size writes exactly the input the task's data stage makes from it."
    photo = tmp_path / "photo.png"
    shutil.copy(examples(task)["chelsea"][1], photo)  # the crop the bundled example was made from, as a photo
    assert sample_files(str(RELEASED / f"{task}-chimle.pt"), str(photo), n=1, out=str(tmp_path / "o"), seed=2,
                        degrade=True) == 0
    y, data = read_image(photo), load_config("embedded").data  # the released models: the embedded profile
    own = {"sr": lambda: sr_degrade(y, 8), "col": lambda: grey_photo(y),  # col: the lightness, as a grey photo
           "dc": lambda: dc_degrade(y, data.dc.jpeg_quality, data.dc.jpeg_subsampling, data.dc.jpeg_optimize,
                                    data.dc.jpeg_progressive),
           "n2d": lambda: n2d_degrade(y, data.n2d, torch.Generator().manual_seed(2))}[task]()
    made = np.asarray(Image.open(tmp_path / "o" / "photo_input.png"))
    assert np.array_equal(made, np.asarray(to_pil(own))), np.abs(made.astype(int) - np.asarray(to_pil(own))).max()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o" / "photo_truth.png")), np.asarray(to_pil(y)))
    if task == "col":  # what the model reads of it: the photo's lightness
        assert (col_degrade(read_image(tmp_path / "o" / "photo_input.png")) - col_degrade(y)).abs().max() < 0.01


def test_degrade_of_a_larger_photo_and_bad_combinations(tmp_path, capsys):
    photo = examples("dc")["flower"][0].parents[1] / "photos" / "flower.jpg"  # 320x214
    assert sample_files(str(RELEASED / "sr-chimle.pt"), str(photo), n=1, out=str(tmp_path / "sr"), degrade=True) == 0
    out, err = capsys.readouterr()
    # the released file records the settings it was trained with (release_models); older files fall back to params.yaml
    said = "--degrade: each photo reduced to the model's 8 px input (sr, as "
    assert said + "sr-chimle.pt (profile embedded))" in out or said + "params.yaml, profile embedded)" in out, out
    assert "flower.jpg: 320x214 -> 128x128 (the centre square at the output's size)" in err
    with Image.open(tmp_path / "sr" / "flower_input.png") as im: assert im.size == (8, 8)
    assert sample_files(str(RELEASED / "dc-chimle.pt"), str(photo), n=1, out=str(tmp_path / "dc"), degrade=True) == 0
    truth = read_image(tmp_path / "dc" / "flower_truth.png")
    assert truth.shape == (3, 168, 256)  # reduced to max_side 256, cropped to multiples of 8
    made = np.asarray(Image.open(tmp_path / "dc" / "flower_input.png"))
    assert np.array_equal(made, np.asarray(to_pil(dc_degrade(truth))))  # quality 1, as the data stage encodes
    for kw, says in [({"example": "flower", "degrade": True}, "--degrade makes inputs from ordinary photos"),
                     ({"example": "nope"}, "--example nope: no such example of task dc (the examples: chelsea, "
                                           "flower)"),
                     ({"input": "flower"}, "for the bundled example, use --example flower"),
                     ({"input": str(photo), "example": "flower"}, "one of --input")]:
        with pytest.raises(UsageError, match=re.escape(says)):
            sample_files(str(RELEASED / "dc-chimle.pt"), out=str(tmp_path / "x"), **{"input": None} | kw)


def test_example_puts_its_truth_in_a_captioned_grid(tmp_path):
    assert sample_files(str(RELEASED / "col-chimle.pt"), example="chelsea", n=5, out=str(tmp_path), grid=True) == 0
    with Image.open(tmp_path / "chelsea_grid.png") as im:  # input | 4 samples, then truth | 1 sample: two rows of 5
        w, h = im.size
    assert (w, h) == (4 + 5 * (64 + 4), 4 + 2 * (64 + CAPTION + 4)), (w, h)


def test_help_says_what_each_task_takes():
    r = _cli("--help")
    flat = " ".join(r.stdout.split())
    for opt in ("--example", "--degrade"): assert opt in flat, opt
    for task, what in TASK_INPUTS.items(): assert f"{task}: {what}" in flat, task


def test_progress_reports_rise_to_the_total():
    "sample and closest_sample call progress(done, total) after each batch / Adam step, rising to the total."
    model = load_sampler(RELEASED / "dc-chimle.pt")
    inp, truth = examples("dc")["flower"]
    xs = prepare_input(model, read_image(inp))
    seen = []
    out = sample(model, xs, n=20, progress=lambda done, total: seen.append((done, total)))
    assert out.shape[0] == 20 and seen == [(8, 20), (16, 20), (20, 20)], seen
    seen.clear()
    closest_sample(model, xs, read_image(truth), restarts=2, steps=3, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(k, 6) for k in range(1, 7)], seen
