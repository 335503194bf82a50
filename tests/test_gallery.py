"""Notebook 00's world gallery: its captions must be legible where a reader sees them."""

from __future__ import annotations

import io
import itertools
import random

import matplotlib
import pytest
from PIL import Image

from sail import plots
from sail.world import CAPTION_SOURCES, sample_records

matplotlib.use("Agg")

INLINE_DPI = 100  # what the notebook's inline backend renders figures at
OUTPUT_COLUMN_PX = 900  # a notebook's output column: a wider figure is scaled down to fit it
CSS_PX_PER_INCH = 96  # how a browser converts points to pixels


@pytest.fixture(scope="module")
def figure():
    records = sample_records("test", 8, seed=0, card_fraction=0.25)  # as notebook 00 draws it
    rng = random.Random(0)
    captions = {name: [write(r, rng) for r in records] for name, write in CAPTION_SOURCES.items()}
    figure = plots.gallery(records, captions)
    yield figure
    matplotlib.pyplot.close(figure)


def test_captions_are_at_least_8_points_where_the_notebook_shows_them(figure):
    png = io.BytesIO()
    figure.savefig(png, dpi=INLINE_DPI, bbox_inches="tight")  # as the inline backend saves it
    shown = min(1.0, OUTPUT_COLUMN_PX / Image.open(png).width)
    sizes = [text.get_fontsize() for ax in figure.axes for text in ax.texts]
    assert len(sizes) == 8
    assert min(sizes) * shown * INLINE_DPI / CSS_PX_PER_INCH >= 8


def test_no_caption_runs_into_an_image_another_caption_or_off_the_figure(figure):
    figure.canvas.draw()  # places every image where its aspect puts it
    renderer = figure.canvas.get_renderer()
    boxes = [
        box
        for ax in figure.axes
        for box in (
            [text.get_window_extent(renderer) for text in (*ax.texts, ax.title) if text.get_text()]
            + ([ax.get_window_extent(renderer)] if ax.images else [])
        )
    ]
    assert len(boxes) == 8 * 3  # a title, an image and captions per record
    assert all(figure.bbox.contains(box.x0, box.y0) and figure.bbox.contains(box.x1, box.y1) for box in boxes)
    assert not [(a, b) for a, b in itertools.combinations(boxes, 2) if a.overlaps(b)]
