"""Deterministic, leak-free splits of the world.

Each candidate record is assigned to a split by a stable hash of its *content* (what it
shows: items and cells, or card content; not background, jitter or ids), so two splits can
never hold the same scene, whatever seeds or sizes are asked for.  Buckets 0-7 of 10 are
train, 8 validation, 9 test.
"""

import hashlib
import json
import random

from sail.world.scene import make_record

SPLIT_BUCKETS: dict[str, tuple[int, ...]] = {
    "train": (0, 1, 2, 3, 4, 5, 6, 7),
    "validation": (8,),
    "test": (9,),
}


def content_signature(record: dict) -> str:
    """Canonical text of what the record shows, independent of pixels-level randomness."""
    if record["kind"] == "card":
        content: list = ["card", record["card"]]
    else:
        items = [[o["cell"], "object", o["shape"], o["colour"], o["size"]] for o in record["objects"]]
        items += [[t["cell"], "text", t["text"]] for t in record["texts"]]
        content = ["scene", sorted(items)]
    return json.dumps(content, sort_keys=True)


def split_of(record: dict) -> str:
    """The only split this record's content may appear in."""
    digest = hashlib.blake2b(content_signature(record).encode(), digest_size=8).digest()
    bucket = int.from_bytes(digest, "big") % 10
    return next(name for name, buckets in SPLIT_BUCKETS.items() if bucket in buckets)


def sample_records(split: str, n: int, seed: int = 0, **kwargs) -> list[dict]:
    """The first `n` records of `split` from the candidate stream of `seed`.

    `kwargs` go to `make_record` (image_size, card_fraction).  The result for (split, n, seed,
    kwargs) is always the same, and a smaller `n` gives a prefix of a larger one.
    """
    if split not in SPLIT_BUCKETS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_BUCKETS)}")
    rng = random.Random(seed)
    records: list[dict] = []
    while len(records) < n:
        record = make_record(rng, **kwargs)
        if split_of(record) == split:
            record["id"], record["split"] = f"{split}-{len(records):06d}", split
            records.append(record)
    return records
