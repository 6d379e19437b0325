"""Images for an image classifier: PNG/JPEG bytes decoded by Pillow, with a size limit, and
prepared as the directory's image processor config says (resize, rescale, normalise).

The size is read from the header before any pixel is decoded: an image larger
than :data:`MAX_IMAGE_PIXELS` (a decompression bomb: a small file declaring a
huge canvas) is refused with a 400 and never expanded. No torch here.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import TYPE_CHECKING, Any

import numpy as np

from aimass.errors import InvalidInput

if TYPE_CHECKING:
    from aimass.flavors.base import Array

#: The largest image decoded, in pixels (width x height): 16.8 million (4096 x 4096).
MAX_IMAGE_PIXELS = 4096 * 4096
#: The formats accepted.
FORMATS = ("PNG", "JPEG")
_IMAGENET_MEAN = [0.5, 0.5, 0.5]
_IMAGENET_STD = [0.5, 0.5, 0.5]


def image_bytes(item: object) -> bytes:
    """An image element: raw bytes (binary tensors), or base64 text (JSON requests)."""
    if isinstance(item, bytes | bytearray):
        return bytes(item)
    if isinstance(item, str):
        try:
            return base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(
                "an image in a JSON request must be base64 text (or send binary tensors)"
            ) from None
    raise InvalidInput("the image input must hold PNG or JPEG bytes (BYTES)")


def decode_image(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> Any:
    """A Pillow RGB image from PNG or JPEG bytes; a 400 for anything else or anything larger."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
        pixels = image.size[0] * image.size[1]
    except Image.DecompressionBombError:  # Pillow's own limit, far above ours
        pixels = max_pixels + 1
    except (UnidentifiedImageError, OSError, ValueError):
        raise InvalidInput("the image input must be PNG or JPEG bytes") from None
    if pixels > max_pixels:
        raise InvalidInput(
            f"the image declares more than {max_pixels} pixels; a larger canvas is refused "
            "before decoding (it may be a decompression bomb)"
        )
    try:
        image.load()
        return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
        raise InvalidInput(f"the image could not be decoded: {exc}") from None


class ImagePreparer:
    """``preprocessor_config.json`` applied with Pillow and numpy (ViT-style processors)."""

    def __init__(self, config: dict[str, Any]) -> None:
        size = config.get("size") or {}
        if isinstance(size, int):
            size = {"height": size, "width": size}
        if not isinstance(size, dict):
            size = {}
        side = int(size.get("shortest_edge") or 224)
        self.size = (int(size.get("width") or side), int(size.get("height") or side))
        self.resize = bool(config.get("do_resize", True))
        self.resample = int(config.get("resample", 2))  # bilinear
        self.rescale = bool(config.get("do_rescale", True))
        self.factor = float(config.get("rescale_factor", 1 / 255))
        self.normalize = bool(config.get("do_normalize", True))
        self.mean = np.array(config.get("image_mean", _IMAGENET_MEAN), dtype=np.float32)
        self.std = np.array(config.get("image_std", _IMAGENET_STD), dtype=np.float32)

    def __call__(self, images: list[Any]) -> Array:
        """``pixel_values``: float32 ``[N, 3, height, width]``."""
        rows = []
        for image in images:
            if self.resize:
                image = image.resize(self.size, resample=self.resample)
            pixels = np.asarray(image, dtype=np.float32)
            if self.rescale:
                pixels = pixels * self.factor
            if self.normalize:
                pixels = (pixels - self.mean) / self.std
            rows.append(pixels.transpose(2, 0, 1))
        return np.stack(rows).astype(np.float32, copy=False)
