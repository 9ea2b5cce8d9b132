"""read_image keeps its promise on unusual files: 32-bit integer and float TIFFs, NaN, EXIF orientation."""
import numpy as np
import pytest
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
