"""The one TTF font of the world (DejaVuSans, shipped with matplotlib), cached by size.

Fonts are loaded once per size and text extents are memoised, because sampling thousands of
records must measure text without becoming the bottleneck.
"""

import os
from functools import cache, lru_cache

import matplotlib
from PIL import ImageFont

FONT_PATH = os.path.join(matplotlib.get_data_path(), "fonts/ttf/DejaVuSans.ttf")


@cache
def font(size: int) -> ImageFont.FreeTypeFont:
    """The world font at `size` pixels."""
    return ImageFont.truetype(FONT_PATH, size)


@lru_cache(maxsize=4096)
def ink_box(text: str, size: int) -> tuple[int, int, int, int]:
    """Ink extent of `text` drawn centred (anchor "mm") on the origin."""
    return font(size).getbbox(text, anchor="mm")


@lru_cache(maxsize=4096)
def fitting_size(text: str, max_width: float, max_size: int) -> int:
    """Largest font size, up to `max_size`, at which `text` is at most `max_width` wide."""
    reference = 100
    left, _, right, _ = ink_box(text, reference)
    by_width = int(reference * max_width / max(1, right - left))
    return max(6, min(max_size, by_width))
