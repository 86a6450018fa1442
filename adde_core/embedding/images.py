"""Safe image loading shared by the embedders and ingest: every failure names the file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

from PIL import Image, ImageOps, UnidentifiedImageError

from adde_core.errors import AddeError

ImageInput = Union[str, "os.PathLike[str]", Image.Image]
"""What embedders accept as one image: a file path or an opened PIL image."""

# 16-bit grayscale PNGs (scientific and medical data) would saturate to white
# under a plain convert("RGB"), so they are rescaled to 8 bits first.
_HIGH_BIT_DEPTH_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}


def load_rgb(source: ImageInput) -> Image.Image:
    """Load an image file (or take a PIL image) and return it as an 8-bit RGB image.

    The file is fully decoded here, so a truncated file fails now rather than
    later inside a model. EXIF orientation is applied so photos are upright.
    PIL's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) stays in force.

    Parameters
    ----------
    source : str, os.PathLike or PIL.Image.Image
        Path to an image file, or an already opened image.

    Returns
    -------
    PIL.Image.Image
        A decoded image in mode ``"RGB"``.

    Raises
    ------
    AddeError
        If the file is missing, empty, not an image, truncated or corrupt, or
        larger than the decompression-bomb limit. The message names the file.
    """
    if isinstance(source, Image.Image):
        return to_rgb(source)
    path = Path(os.fspath(source))
    try:
        if path.stat().st_size == 0:
            raise AddeError(f"Cannot read image {path}: the file is empty (0 bytes).")
        with Image.open(path) as image:
            image.load()
            # exif_transpose always returns a new image, so the result stays
            # valid after the file handle closes.
            return to_rgb(ImageOps.exif_transpose(image))
    except AddeError:
        raise
    except FileNotFoundError as exc:
        raise AddeError(f"Cannot read image {path}: the file does not exist.") from exc
    except IsADirectoryError as exc:
        raise AddeError(f"Cannot read image {path}: it is a directory, not a file.") from exc
    except Image.DecompressionBombError as exc:
        raise AddeError(
            f"Refusing to decode image {path}: it has more pixels than the safety limit "
            f"({Image.MAX_IMAGE_PIXELS:,}) and could be a decompression bomb. {exc}"
        ) from exc
    except UnidentifiedImageError as exc:
        raise AddeError(f"Cannot read image {path}: it is not an image file in a format Pillow can decode.") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        # PIL reports truncated or corrupt data as OSError (and, for some
        # formats, SyntaxError or ValueError) during load().
        raise AddeError(f"Cannot read image {path}: the file is truncated or corrupt ({exc}).") from exc


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB without saturating 16-bit grayscale.

    Parameters
    ----------
    image : PIL.Image.Image
        A decoded image in any mode.

    Returns
    -------
    PIL.Image.Image
        ``image`` itself when it is RGB already, else an RGB copy; 16-bit grayscale is
        rescaled (value / 256) rather than clipped.
    """
    if image.mode == "RGB":
        return image
    if image.mode in _HIGH_BIT_DEPTH_MODES:
        image = image.convert("I").point(lambda value: value / 256).convert("L")
    return image.convert("RGB")
