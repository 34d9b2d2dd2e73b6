"""Compression of store arrays: lossless blosc by default (lz4 for images, zstd for numbers), JPEG / JPEG XL for
images on request.

The lossy codecs are imagecodecs' numcodecs codecs wrapped for zarr v3 under their numcodecs
names (`numcodecs.imagecodecs_jpeg`, `numcodecs.imagecodecs_jpegxl`). Importing this module
registers them with zarr, so a plain zarr script reads a lossy store after `import tether.datasets`.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import imagecodecs.numcodecs
import numcodecs
import zarr
from zarr.codecs import BloscCodec
from zarr.codecs.numcodecs._codecs import _NumcodecsArrayBytesCodec  # zarr 3.1's numcodecs bridge (pinned)
from zarr.errors import ZarrUserWarning

ImageCodec = Literal["lossless", "jpeg", "jpegxl"]
IMAGE_CODECS: tuple[str, ...] = ("lossless", "jpeg", "jpegxl")


class _ImageCodec(_NumcodecsArrayBytesCodec):
    """zarr's bridge, minus its per-instance "not in the zarr v3 spec" warning (the attrs state it)."""

    def __init__(self, **codec_config: Any) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ZarrUserWarning)
            super().__init__(**codec_config)


class ImagecodecsJpeg(_ImageCodec, codec_name="imagecodecs_jpeg"):
    """One (1, H, W, 3) uint8 chunk as a baseline JPEG."""


class ImagecodecsJpegXl(_ImageCodec, codec_name="imagecodecs_jpegxl"):
    """One (1, H, W, 3) uint8 chunk as a JPEG XL image."""


for _codec in (imagecodecs.numcodecs.Jpeg, imagecodecs.numcodecs.Jpegxl):
    numcodecs.register_codec(_codec)
for _wrapper in (ImagecodecsJpeg, ImagecodecsJpegXl):
    zarr.registry.register_codec(_wrapper.codec_name, _wrapper)


def number_compressors() -> list[BloscCodec]:
    """Lossless compression for state, actions and flags: small rows, so bit-shuffled zstd."""
    return [BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")]


def image_encoding(codec: ImageCodec, quality: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(keyword arguments for `create_array`, description for the store attrs) of an image codec."""
    if codec == "lossless":
        # Bit-shuffled lz4: on camera frames it encodes ~2.5x faster than bit-shuffled zstd-1 (the recording's
        # largest CPU cost) and decodes ~2x faster, for ~8% more bytes (benchmarks/README.md, dataset_io).
        return (
            {"compressors": [BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")]},
            {"name": "blosc-lz4", "lossless": True},
        )
    if not 1 <= quality <= 100:
        raise ValueError(f"image quality: must be in [1, 100], got {quality}")
    if codec == "jpeg":
        serializer: _ImageCodec = ImagecodecsJpeg(level=quality)
    elif codec == "jpegxl":
        serializer = ImagecodecsJpegXl(level=quality, lossless=False)
    else:
        raise ValueError(f"image codec: '{codec}' is not one of {', '.join(IMAGE_CODECS)}")
    return (
        {"serializer": serializer, "compressors": None},
        {"name": codec, "quality": quality, "lossless": False, "zarr_codec": serializer.codec_name},
    )
