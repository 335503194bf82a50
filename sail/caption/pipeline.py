"""Glue for notebook 02: the reference subset from disk, teacher items and annotations, a
train/validation split, validation loss, and the teacher-vs-captioner cost arithmetic."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
from PIL import Image

from sail.caption.distill import Annotation
from sail.caption.teachers import CaptionItem, cost_at_scale
from sail.data.pipeline import read_curated
from sail.data.readers import Item


def load_reference(curation_dir: str | os.PathLike, name: str = "reference") -> list[Item]:
    """The items notebook 01 exported to `<curation_dir>/<name>/` (image folder + annotations.jsonl)."""
    directory = Path(curation_dir) / name
    if not (directory / "annotations.jsonl").is_file():
        raise FileNotFoundError(f"{directory} has no annotations.jsonl: run notebook 01 (curation) first")
    return read_curated(directory)


def _opener(path: str) -> Callable[[], Image.Image]:
    def open_rgb() -> Image.Image:
        with Image.open(path) as image:
            return image.convert("RGB")

    return open_rgb


def teacher_items(items: Sequence[Item]) -> list[CaptionItem]:
    """Caption items for a teacher: the image file, the alt-text and (world data) the record."""
    return [
        CaptionItem(
            id=item.id,
            image=item.path,
            alt_text=item.text,
            record=item.extra.get("record") if isinstance(item.extra.get("record"), dict) else None,
        )
        for item in items
    ]


def to_annotations(items: Sequence[Item], captions: Sequence[str]) -> list[Annotation]:
    """Teacher-annotated images (images opened lazily from their files)."""
    if len(items) != len(captions):
        raise ValueError(f"{len(captions)} captions for {len(items)} items")
    return [
        Annotation(id=item.id, image=_opener(item.path), alt_text=item.text, caption=caption)
        for item, caption in zip(items, captions)
    ]


def split_annotations(
    annotations: Sequence[Annotation], validation_fraction: float, seed: int = 0
) -> tuple[list[Annotation], list[Annotation]]:
    """(train, validation): a seeded shuffle, at least one validation item when the fraction is > 0."""
    order = list(annotations)
    random.Random(seed).shuffle(order)
    n_val = min(len(order) - 1, max(1, round(len(order) * validation_fraction))) if validation_fraction > 0 else 0
    return order[n_val:], order[:n_val]


def cost_table(
    *,
    pool_images: float,
    reference_images: float,
    teacher_usd_per_caption: float,
    captioner_usd_per_caption: float,
    captioner_training_usd: float = 0.0,
) -> pd.DataFrame:
    """What captioning a pool costs with the teacher alone vs the paper's route (teacher on the reference
    subset, then a distilled captioner on the pool)."""
    teacher_reference = cost_at_scale(reference_images, teacher_usd_per_caption)
    rows = [
        {
            "route": "teacher captions the whole pool",
            "teacher captions": pool_images,
            "captioner captions": 0,
            "usd": cost_at_scale(pool_images, teacher_usd_per_caption),
        },
        {
            "route": "teacher on the reference subset + distilled captioner on the pool",
            "teacher captions": reference_images,
            "captioner captions": pool_images,
            "usd": teacher_reference + captioner_training_usd + cost_at_scale(pool_images, captioner_usd_per_caption),
        },
    ]
    frame = pd.DataFrame(rows).set_index("route")
    frame["share of teacher-only"] = frame["usd"] / frame["usd"].iloc[0]
    return frame


__all__ = ["cost_table", "load_reference", "split_annotations", "teacher_items", "to_annotations"]
