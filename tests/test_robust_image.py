"""read_image keeps its promise on unusual files: 32-bit integer and float TIFFs (also those Pillow cannot identify),
NaN, EXIF orientation, and huge images read at a caller's maximum side without their full size in floats."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from chimle.core import ImageError, read_image


def test_32bit_integer_tiff_is_scaled_into_0_1(tmp_path):
    a = np.linspace(-2**31, 2**31 - 1, 64).astype(np.int64).clip(-2**31, 2**31 - 1).astype(np.int32).reshape(8, 8)
    Image.fromarray(a).save(tmp_path / "i32.tif")
    x = read_image(tmp_path / "i32.tif")
    assert x.shape == (3, 8, 8) and float(x.min()) == 0.0 and abs(float(x.max()) - 1.0) < 1e-6
    assert (x[0].flatten().diff() >= 0).all()  # the order of the values is kept


def test_float_tiff_with_nan_is_rejected_by_name(tmp_path):
    f = np.full((8, 8), 0.5, np.float32); f[2, 3] = np.nan
    Image.fromarray(f).save(tmp_path / "nan.tif")
    with pytest.raises(ImageError, match=r"nan\.tif: .*not finite"):
        read_image(tmp_path / "nan.tif")
    f[2, 3] = np.inf; Image.fromarray(f).save(tmp_path / "inf.tif")
    with pytest.raises(ImageError, match=r"inf\.tif"):
        read_image(tmp_path / "inf.tif")


def test_exif_orientation_is_applied(tmp_path):
    rgb = np.zeros((10, 20, 3), np.uint8); rgb[:, :5] = 255  # 20 wide, 10 high, white on the left
    exif = Image.Exif(); exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(rgb).save(tmp_path / "phone.jpg", exif=exif, quality=100)
    x = read_image(tmp_path / "phone.jpg")
    assert x.shape == (3, 20, 10)  # shown upright: 10 wide, 20 high
    assert float(x[:, :5].mean()) > 0.9 and float(x[:, -5:].mean()) < 0.1  # the white band is now on top


def test_max_pixels_can_raise_pillows_own_limit(tmp_path, monkeypatch):
    "Pillow refuses images above its MAX_IMAGE_PIXELS; read_image's max_pixels is the limit that counts."
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)     # stands in for Pillow's 89 M pixels
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "big.png")  # 2,000 pixels: 2x Pillow's
    assert read_image(tmp_path / "big.png", max_pixels=10_000).shape == (3, 40, 50)
    with pytest.raises(ImageError, match=r"big\.png: .*2,000 pixels exceeds the limit of 1,500"):
        read_image(tmp_path / "big.png", max_pixels=1_500)
    assert Image.MAX_IMAGE_PIXELS == 1000                     # Pillow's own setting is handed back


# ---- issue "Robust, round three", item 13: TIFFs Pillow cannot identify -------------------------------------------
tifffile = pytest.importorskip("tifffile")


def _ramp(h=6, w=8, c=3):
    return np.linspace(0, 1, h * w * c, dtype=np.float64).reshape(h, w, c)


@pytest.mark.parametrize("name,array,kw,want", [
    ("rgb32.tif", _ramp().astype(np.float32), dict(photometric="rgb"), _ramp()),
    ("planar.tif", _ramp().astype(np.float32).transpose(2, 0, 1), dict(photometric="rgb", planarconfig="separate"),
     _ramp()),
    ("grey16.tif", _ramp(c=1)[..., 0].astype(np.float16), {}, _ramp(c=1).repeat(3, -1)),
    ("grey64.tif", _ramp(c=1)[..., 0], {}, _ramp(c=1).repeat(3, -1)),
    ("over.tif", (_ramp() * 3 - 1).astype(np.float32), dict(photometric="rgb"), np.clip(_ramp() * 3 - 1, 0, 1)),
    ("u32rgb.tif", np.round(_ramp() * (2**32 - 1)).astype(np.uint32), dict(photometric="rgb"), _ramp()),
    ("rgba32.tif", np.dstack([_ramp(), np.zeros((6, 8, 1))]).astype(np.float32),
     dict(photometric="rgb", extrasamples=["unassalpha"]), np.ones((6, 8, 3)))])  # transparent: the white background
def test_tiffs_pillow_cannot_identify_are_read_and_scaled(tmp_path, name, array, kw, want):
    tifffile.imwrite(tmp_path / name, array, **kw)
    x = read_image(tmp_path / name)
    assert x.dtype == torch.float32 and x.shape == (3, 6, 8)
    assert np.abs(x.permute(1, 2, 0).numpy() - want).max() < 1e-3


def test_unreadable_tiffs_name_the_format(tmp_path, monkeypatch):
    tifffile.imwrite(tmp_path / "five.tif", np.zeros((4, 4, 5), np.float32), photometric="minisblack",
                     planarconfig="contig")
    with pytest.raises(ImageError, match=r"five\.tif: TIFF of float32 samples .*5 samples per pixel"):
        read_image(tmp_path / "five.tif")
    nan = _ramp().astype(np.float32); nan[1, 2, 0] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", nan, photometric="rgb")
    with pytest.raises(ImageError, match=r"nan\.tif: float image with 1 values that are not finite"):
        read_image(tmp_path / "nan.tif")
    tifffile.imwrite(tmp_path / "rgb32.tif", _ramp().astype(np.float32), photometric="rgb")
    with pytest.raises(ImageError, match=r"not finite|pixels exceeds"):
        read_image(tmp_path / "rgb32.tif", max_pixels=10)  # the cap is checked from the header here too
    monkeypatch.setitem(sys.modules, "tifffile", None)  # without tifffile: a clear error, naming the format
    with pytest.raises(ImageError, match=r"rgb32\.tif: a TIFF Pillow cannot read .*install tifffile"):
        read_image(tmp_path / "rgb32.tif")


def test_signed_16bit_tiff_is_shifted_by_its_own_depth(tmp_path):
    tifffile.imwrite(tmp_path / "i16.tif", np.array([[-2**15, 0, 2**15 - 1]], np.int16))
    x = read_image(tmp_path / "i16.tif")[0, 0]
    assert torch.allclose(x, torch.tensor([0.0, 2**15 / 65535, 1.0]), atol=1e-6), x


# ---- item 2: a caller's maximum side is reached before anything is converted to floats ----------------------------
def _peak(code: str, timeout=120) -> tuple[str, float]:
    "(what `code` prints, the rise in peak resident memory in MB) in a fresh interpreter that has imported chimle.core."
    prog = ("import resource, torch\nfrom chimle.core import read_image\n"
            "r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n" + code +
            "\nprint((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - r0) / 1024)")
    r = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-2000:]
    *out, mb = r.stdout.strip().splitlines()
    return "\n".join(out), float(mb)


def test_max_side_keeps_memory_near_the_output(tmp_path):
    p = tmp_path / "huge.png"
    Image.new("1", (12000, 12000)).save(p)  # 144 MP, a few KB: about 4 GB as whole float32 (the old path)
    assert p.stat().st_size < 100_000
    out, mb = _peak(f"x = read_image({str(p)!r}, max_side=512); print(tuple(x.shape), float(x.mean()))")
    assert out == "(3, 512, 512) 0.0" and mb < 600, (out, mb)  # the decoded 1-bit image and one 8-bit copy
    out, mb = _peak(f"""
try: read_image({str(p)!r}, max_pixels=10**8)
except ValueError as e: print(e)""")
    # refused from the header
    assert "144,000,000 pixels exceeds the limit of 100,000,000" in out and mb < 50, (out, mb)


def test_max_side_decodes_a_jpeg_at_a_reduced_scale(tmp_path):
    p = tmp_path / "big.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (750, 1000, 3), np.uint8)).resize((8000, 6000)).save(p, quality=80)
    out, mb = _peak(f"x = read_image({str(p)!r}, max_side=500); print(tuple(x.shape))")
    assert out == "(3, 375, 500)" and mb < 150, (out, mb)  # 48 MP decoded at 1/8: 0.75 MP


def test_max_side_matches_a_resize_of_the_whole_image(tmp_path):
    from skimage import data as skdata

    from chimle.core import resize
    rgb = skdata.astronaut()[:, :400]  # 512 high, 400 wide
    for name, save in [("a.png", {}), ("a.jpg", {"quality": 95}), ("a16.png", None)]:
        f = tmp_path / name
        if save is None: Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(f)
        else: Image.fromarray(rgb).save(f, **save)
        whole = read_image(f)
        small = read_image(f, max_side=50)  # reduced by 3 (down to 3 x 50 px at least), then resized
        assert small.shape == (3, 50, 39), (name, small.shape)  # 400 * 50 / 512 = 39.1
        assert (small - resize(whole, (50, 39))).abs().mean() < 0.02, name  # box-averaged first: 0.012 on a.png
        assert read_image(f, max_side=1000).equal(whole)  # already small enough: unchanged
    exif = Image.Exif(); exif[0x0112] = 6  # shown turned: the EXIF orientation survives the reduction
    Image.fromarray(rgb).save(tmp_path / "turned.jpg", exif=exif)
    assert read_image(tmp_path / "turned.jpg", max_side=50).shape == (3, 39, 50)
