"""Image preprocessing shared by every camera source (twin and hardware): crop, then resize."""

from __future__ import annotations

import cv2
import numpy as np


def crop_resize(
    image: np.ndarray, crop: tuple[int, int, int, int] | None, output_size: tuple[int, int]
) -> np.ndarray:
    """Crop (x0, y0, x1, y1) then resize to (width, height); returns uint8 HxWx3, contiguous."""
    if crop is not None:
        x0, y0, x1, y1 = crop
        image = image[y0:y1, x0:x1]
    width, height = output_size
    if image.shape[1] != width or image.shape[0] != height:
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image, dtype=np.uint8)
