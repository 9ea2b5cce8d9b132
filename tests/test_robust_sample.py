"""`chimle-sample` on awkward batches: small images, colliding names, bad options; in process, through its parser."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fastcore.script import anno_parser
from PIL import Image
from skimage import data as skdata

from chimle.core import seed_everything
from chimle.runs import save_atomic
from chimle.sample import chimle_sample, save_model
from chimle.testing import tiny_tim


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    seed_everything(0)
    return {t: save_model(tiny_tim(t, levels=4, seed=None).eval(), d / f"{t}.pt") for t in ("sr", "col", "dc", "n2d")}


def cli(monkeypatch, capsys, *args):
    "Run chimle-sample in this process; returns (exit status, stdout, stderr)."
    kw = vars(anno_parser(chimle_sample.__wrapped__).parse_args(list(map(str, args))))
    kw.pop("pdb", None); kw.pop("xtra", None)
    try: chimle_sample(**kw); code = 0
    except SystemExit as e: code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def _photo(path, h, w, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("task", ["col", "dc", "n2d"])
def test_a_small_image_does_not_stop_the_batch(models, tmp_path, monkeypatch, capsys, task):
    d = tmp_path / "in"; d.mkdir()
    _photo(d / "a.png", 48, 64); _photo(d / "b_small.png", 12, 9); _photo(d / "c.png", 40, 40)
    code, out, err = cli(monkeypatch, capsys, "--checkpoint", models[task], "--input", d, "--n", 2,
                         "--out", tmp_path / "o")
    assert code == 0, err
    assert "b_small.png" in err and "enlarged" in err
    for stem in ("a", "b_small", "c"): assert (tmp_path / "o" / f"{stem}_001.png").is_file(), stem
    assert "wrote 6 samples for 3 of 3 inputs" in out
    # 2^levels: the smallest level is 2 px
    with Image.open(tmp_path / "o" / "b_small_000.png") as im: assert min(im.size) == 16


def test_colliding_names_get_distinct_outputs(models, tmp_path, monkeypatch, capsys):
    d = tmp_path / "in"; d.mkdir()
    _photo(d / "x.png", 32, 32, seed=1); Image.fromarray(skdata.astronaut()[::16, ::16]).save(d / "x.jpg")
    code, out, err = cli(monkeypatch, capsys, "--checkpoint", models["dc"], "--input", d, "--n", 2,
                         "--out", tmp_path / "o", "--grid")
    assert code == 0, err
    written = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert written == ["x_jpg_000.png", "x_jpg_001.png", "x_jpg_grid.png",
                       "x_png_000.png", "x_png_001.png", "x_png_grid.png"], written
    assert (tmp_path / "o" / "x_jpg_000.png").read_bytes() != (tmp_path / "o" / "x_png_000.png").read_bytes()
    assert "wrote 4 samples for 2 of 2 inputs" in out and "x.jpg -> x_jpg_*" in out


@pytest.mark.parametrize("args, expected", [
    (["--n", 0], "--n must be at least 1, got 0"),
    (["--max_side", 0], "--max_side must be at least 1, got 0"),
    (["--max_side", 8], "--max_side 8 is below this model's minimum of 16 px per side"),
    (["--device", "bogus"], "--device 'bogus'"),
    (["--ivo_steps", -1], "--ivo_steps must be at least 1"),
    (["--workers", -1], "--workers must be 0 (one per CPU thread) or more, got -1"),
])
def test_bad_options_name_themselves(models, tmp_path, monkeypatch, capsys, args, expected):
    _photo(tmp_path / "a.png", 32, 32)
    code, out, err = cli(monkeypatch, capsys, "--checkpoint", models["dc"], "--input", tmp_path / "a.png",
                         "--out", tmp_path / "o", *args)
    assert code == 2 and expected in err and "Traceback" not in err, err
    assert not (tmp_path / "o" / "a_000.png").exists()


@pytest.mark.parametrize("task", ["sr", "col"])
def test_workers_draw_the_same_samples(models, tmp_path, monkeypatch, capsys, task):
    "Two CPU workers split each batch of samples; the files are byte for byte those of one worker."
    _photo(tmp_path / "a.png", 32, 48)
    for w in (1, 2):
        code, out, err = cli(monkeypatch, capsys, "--checkpoint", models[task], "--input", tmp_path / "a.png", "--n", 6,
                             "--workers", w, "--out", tmp_path / f"w{w}")
        assert code == 0, err
    one, two = (sorted((tmp_path / f"w{w}").iterdir()) for w in (1, 2))
    assert [p.name for p in one] == [p.name for p in two] and len(one) == 6
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, two))


def test_bad_out_and_mismatched_model(models, tmp_path, monkeypatch, capsys):
    img = _photo(tmp_path / "a.png", 32, 32)
    (tmp_path / "afile").write_text("x")
    code, _, err = cli(monkeypatch, capsys, "--checkpoint", models["dc"], "--input", img, "--out", tmp_path / "afile")
    assert code == 2 and "afile: exists and is not a folder" in err
    if os.geteuid() != 0:  # root writes into read-only folders
        ro = tmp_path / "ro"; ro.mkdir(); ro.chmod(0o555)
        code, _, err = cli(monkeypatch, capsys, "--checkpoint", models["dc"], "--input", img, "--out", ro)
        assert code == 2 and "cannot write there" in err
    ck = torch.load(models["dc"], weights_only=True); ck["tim"]["mapping_width"] = 16; ck.pop("sha256", None)
    save_atomic(ck, tmp_path / "edited.pt")  # checksummed anew: settings that no longer describe the weights
    code, _, err = cli(monkeypatch, capsys, "--checkpoint", tmp_path / "edited.pt", "--input", img,
                       "--out", tmp_path / "o")
    assert code == 2 and "edited.pt: its weights do not match its settings" in err, err


def test_errors_print_one_line_and_debug_keeps_the_traceback(models, tmp_path):
    exe = Path(sys.executable).with_name("chimle-sample")
    args = [str(exe), "--checkpoint", str(models["dc"]), "--input", str(tmp_path), "--n", "0"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.strip() == "chimle-sample: --n must be at least 1, got 0", r.stderr
    r = subprocess.run(args + ["--debug"], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "Traceback" in r.stderr and "UsageError: --n must be at least 1" in r.stderr


def test_unreadable_folder_entries_are_named(models, tmp_path, monkeypatch, capsys):
    d = tmp_path / "in"; d.mkdir()
    _photo(d / "a.png", 32, 32); (d / "sub").mkdir(); (d / "gone.png").symlink_to(d / "missing.png")
    code, out, err = cli(monkeypatch, capsys, "--checkpoint", models["dc"], "--input", d, "--n", 1,
                         "--out", tmp_path / "o")
    assert code == 0 and "skipped" in err and "gone.png" in err and "sub" in err, err
    assert "wrote 1 samples for 1 of 1 inputs" in out


def test_samples_say_how_the_input_was_resized(models, tmp_path, monkeypatch, capsys):
    _photo(tmp_path / "wide.png", 300, 400)
    code, out, err = cli(monkeypatch, capsys, "--checkpoint", models["n2d"], "--input", tmp_path / "wide.png", "--n", 1,
                         "--out", tmp_path / "o", "--max_side", 64)
    assert code == 0 and "wide.png: 400x300 -> 64x48 (longer side limited to max_side 64)" in err, err
    with Image.open(tmp_path / "o" / "wide_000.png") as im: assert im.size == (64, 48)


def test_out_equal_to_input_is_refused_before_anything_is_written(models, tmp_path, monkeypatch, capsys):
    d = tmp_path / "photos"; d.mkdir()
    _photo(d / "a.png", 32, 32, seed=1); user = _photo(d / "a_000.png", 32, 32, seed=2)
    before = user.read_bytes()
    for inp in (d, d / "a.png"):  # a folder, or one file whose folder would receive the samples
        code, _, err = cli(monkeypatch, capsys, "--checkpoint", models["dc"], "--input", inp, "--out", d, "--n", 2)
        assert code == 2 and "would overwrite" in err, err
    assert user.read_bytes() == before and sorted(p.name for p in d.iterdir()) == ["a.png", "a_000.png"]


def test_empty_and_pickled_model_files_are_named_without_advice_to_load_unsafely(tmp_path, monkeypatch, capsys):
    img = _photo(tmp_path / "a.png", 32, 32)
    (tmp_path / "empty.pt").write_bytes(b"")
    code, _, err = cli(monkeypatch, capsys, "--checkpoint", tmp_path / "empty.pt", "--input", img,
                       "--out", tmp_path / "o")
    assert code == 2 and "empty.pt: an empty file (0 bytes)" in err, err
    torch.save({"payload": os.system}, tmp_path / "pickled.pt")  # a reference to a callable: code, not weights
    code, _, err = cli(monkeypatch, capsys, "--checkpoint", tmp_path / "pickled.pt", "--input", img,
                       "--out", tmp_path / "o")
    assert code == 2 and "pickled.pt" in err and "refused" in err, err
    assert "weights_only" not in err and "arbitrary code" not in err, err
