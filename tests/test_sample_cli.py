"""`chimle-sample` in a subprocess: real photos, folders, every option, and bad inputs reported by name."""
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from chimle.core import seed_everything
from chimle.sample import save_model
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
