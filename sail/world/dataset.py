"""The world as a Hugging Face `datasets.Dataset`: images, records and all three caption sources."""

import json
import random

import datasets

from sail.world.captions import alt_text, teacher_caption, weak_caption
from sail.world.render import render
from sail.world.splits import sample_records

FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "kind": datasets.Value("string"),
        "image": datasets.Image(),
        "record": datasets.Value("string"),
        "alt_text": datasets.Value("string"),
        "weak_caption": datasets.Value("string"),
        "teacher_caption": datasets.Value("string"),
    }
)


def caption_rng(seed: int, record_id: str, source: str) -> random.Random:
    """Generator for one caption, fixed by (seed, record id, source) alone."""
    return random.Random(f"{seed}/{record_id}/{source}")


def world_dataset(split: str, n: int, seed: int = 0, **kwargs) -> datasets.Dataset:
    """`n` rendered records of `split` with their alt-text, weak and teacher captions.

    `kwargs` go to `make_record` (image_size, card_fraction).  The "record" column is the
    record as a JSON string (decode with `json.loads`).
    """
    records = sample_records(split, n, seed, **kwargs)
    columns: dict[str, list] = {name: [] for name in FEATURES}
    for record in records:
        columns["id"].append(record["id"])
        columns["kind"].append(record["kind"])
        columns["image"].append(render(record))
        columns["record"].append(json.dumps(record))
        for name, source in (
            ("alt_text", alt_text),
            ("weak_caption", weak_caption),
            ("teacher_caption", teacher_caption),
        ):
            columns[name].append(source(record, caption_rng(seed, record["id"], name)))
    return datasets.Dataset.from_dict(columns, features=FEATURES)
