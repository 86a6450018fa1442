"""load_rgb: every unreadable file fails with an AddeError that names it; readable ones come back as RGB."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from adde_core.embedding.images import load_rgb
from adde_core.errors import AddeError


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(AddeError, match=r"empty\.png.*empty \(0 bytes\)"):
        load_rgb(path)


def test_text_file_renamed_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("these are notes, not pixels\n" * 20)
    with pytest.raises(AddeError, match=r"notes\.png.*not an image"):
        load_rgb(path)


def test_truncated_png(tmp_path, animal_mnist):
    data = _png_bytes(animal_mnist[0][0])
    path = tmp_path / "truncated.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AddeError, match=r"truncated\.png.*truncated or corrupt"):
        load_rgb(str(path))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(AddeError, match=r"missing\.png.*does not exist"):
        load_rgb(tmp_path / "missing.png")
    with pytest.raises(AddeError, match=r"directory"):
        load_rgb(tmp_path)


def test_decompression_bomb_protection_stays_on(tmp_path, monkeypatch):
    path = tmp_path / "large.png"
    Image.new("L", (200, 200)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 40,000 pixels is over twice this limit
    with pytest.raises(AddeError, match=r"large\.png.*decompression bomb"):
        load_rgb(path)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "1"])
def test_modes_become_rgb(tmp_path, mode, cat_photo):
    path = tmp_path / f"photo_{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
    Image.open(cat_photo).convert(mode).save(path)
    image = load_rgb(path)
    assert image.mode == "RGB" and image.size == Image.open(cat_photo).size


def test_sixteen_bit_grayscale_keeps_its_contrast(tmp_path):
    ramp = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 257).astype(np.uint16)  # 0 .. 65535
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    pixels = np.asarray(load_rgb(path))
    assert pixels.shape == (16, 16, 3)
    np.testing.assert_array_equal(pixels[..., 0], np.arange(256).reshape(16, 16))


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.new("RGB", (40, 20), "white").save(path, exif=exif)
    assert load_rgb(path).size == (20, 40)


def test_pil_input_and_file_handle_release(tmp_path, cat_photo):
    image = load_rgb(cat_photo)
    assert image.mode == "RGB"
    np.asarray(image)  # still usable after the file was closed
    assert load_rgb(Image.open(cat_photo).convert("L")).mode == "RGB"
