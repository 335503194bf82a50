"""Ground-truth records: what one world image shows, down to the pixel geometry.

A record is a JSON-serialisable dict.  Rendering reads only the record, so the same record
always gives the same pixels, and every caption can be scored against it exactly.

Schema (all keys are always present)::

    {"id": "train-000042" | None,        # set by sample_records
     "split": "train" | ... | None,
     "kind": "scene" | "card",
     "width": 96, "height": 96,          # cards are 2*image_size wide
     "background": [r, g, b],
     "objects": [{"shape", "colour", "size", "cell",
                  "bbox": [x0, y0, x1, y1],   # ints, inclusive ink extent
                  "center": [x, y], "radius": r,  # geometry incl. jitter
                  "rgb": [r, g, b]}],
     "texts": [{"text", "cell", "bbox", "center", "font_size"}],
     "relations": [{"subject": i, "relation": "left of" | "above", "object": j}],
     "counts": {"shapes": {shape: n}, "colours": {colour: n}},   # objects only, n >= 1
     "card": None | {"title": str, "table": [[label, value], ...]}
                  | {"title": str, "chart": {"labels": [...], "values": [...]}}}

Objects and texts are listed in reading order of their cells.  Relations use one canonical
direction only: for two objects in the same row the left one is the subject of "left of"; for
two in the same column the upper one is the subject of "above" (indices into "objects").
Diagonal pairs have no relation.  Scenes have "card": None; cards have no objects or texts.
"""

import random
from collections import Counter

from sail.world.fonts import fitting_size, ink_box
from sail.world.geometry import outline_bbox, shape_outline
from sail.world.vocab import (
    CARD_TITLES,
    CELLS,
    COLOUR_RGB,
    COLOURS,
    SHAPES,
    SIZE_RADIUS,
    SIZES,
    WORDS,
)

OBJECT_PROBABILITY = 0.8
WORD_PROBABILITY = 0.6  # a text item is a word, otherwise a number 0-99


def cell_center(cell: str, image_size: int) -> tuple[float, float]:
    """Centre of a grid cell in pixels."""
    row, col = divmod(CELLS.index(cell), 2)
    half = image_size / 2
    return (col + 0.5) * half, (row + 0.5) * half


def make_record(rng: random.Random, *, image_size: int = 96, card_fraction: float = 0.0) -> dict:
    """Draw one scene (or, with probability `card_fraction`, one card) record."""
    if rng.random() < card_fraction:
        return _card_record(rng, image_size)
    return _scene_record(rng, image_size)


def _base(kind: str, width: int, height: int, background: list[int]) -> dict:
    return {
        "id": None,
        "split": None,
        "kind": kind,
        "width": width,
        "height": height,
        "background": background,
        "objects": [],
        "texts": [],
        "relations": [],
        "counts": {"shapes": {}, "colours": {}},
        "card": None,
    }


def _scene_record(rng: random.Random, image_size: int) -> dict:
    background = [rng.randint(215, 250) for _ in range(3)]
    record = _base("scene", image_size, image_size, background)
    n_items = rng.randint(1, 4)
    cells = sorted(rng.sample(range(len(CELLS)), n_items))
    is_object = [rng.random() < OBJECT_PROBABILITY for _ in cells]
    if not any(is_object):
        is_object[rng.randrange(n_items)] = True
    jitter = max(1, round(2 * image_size / 96))
    for cell_index, object_here in zip(cells, is_object):
        cx, cy = cell_center(CELLS[cell_index], image_size)
        center = [cx + rng.randint(-jitter, jitter), cy + rng.randint(-jitter, jitter)]
        if object_here:
            record["objects"].append(_object(rng, CELLS[cell_index], center, image_size))
        else:
            record["texts"].append(_text(rng, CELLS[cell_index], center, image_size))
    record["relations"] = _relations(record["objects"])
    record["counts"] = {
        "shapes": dict(Counter(o["shape"] for o in record["objects"])),
        "colours": dict(Counter(o["colour"] for o in record["objects"])),
    }
    return record


def _object(rng: random.Random, cell: str, center: list[float], image_size: int) -> dict:
    shape, colour, size = rng.choice(SHAPES), rng.choice(COLOURS), rng.choice(SIZES)
    radius = round(SIZE_RADIUS[size] * image_size / 2, 2)
    bbox = outline_bbox(shape_outline(shape, center, radius))
    return {
        "shape": shape,
        "colour": colour,
        "size": size,
        "cell": cell,
        "bbox": bbox,
        "center": center,
        "radius": radius,
        "rgb": list(COLOUR_RGB[colour]),
    }


def _text(rng: random.Random, cell: str, center: list[float], image_size: int) -> dict:
    text = rng.choice(WORDS) if rng.random() < WORD_PROBABILITY else str(rng.randint(0, 99))
    cell_side = image_size / 2
    font_size = fitting_size(text, 0.8 * cell_side, int(0.5 * cell_side))
    left, top, right, bottom = ink_box(text, font_size)
    x, y = round(center[0]), round(center[1])
    return {
        "text": text,
        "cell": cell,
        "bbox": [x + left, y + top, x + right, y + bottom],
        "center": [x, y],
        "font_size": font_size,
    }


def _relations(objects: list[dict]) -> list[dict]:
    relations = []
    for i, first in enumerate(objects):
        for j in range(i + 1, len(objects)):
            row_i, col_i = divmod(CELLS.index(first["cell"]), 2)
            row_j, col_j = divmod(CELLS.index(objects[j]["cell"]), 2)
            if row_i == row_j:  # reading order puts i left of j
                relations.append({"subject": i, "relation": "left of", "object": j})
            elif col_i == col_j:  # reading order puts i above j
                relations.append({"subject": i, "relation": "above", "object": j})
    return relations


def _card_record(rng: random.Random, image_size: int) -> dict:
    record = _base("card", 2 * image_size, image_size, [255, 255, 255])
    title = rng.choice(CARD_TITLES)
    if rng.random() < 0.5:
        labels = rng.sample(WORDS, rng.randint(2, 3))
        record["card"] = {"title": title, "table": [[label, rng.randint(0, 99)] for label in labels]}
    else:
        labels = rng.sample(WORDS, rng.randint(3, 4))
        values = [rng.randint(1, 20) for _ in labels]
        record["card"] = {"title": title, "chart": {"labels": labels, "values": values}}
    return record


def attribute_targets(record: dict) -> dict[str, list[int]]:
    """Per-cell class targets (CELLS order) for pretraining a vision encoder on the world.

    Classes index SHAPES / COLOURS / SIZES; the extra last class (index len(...)) means "none"
    (an empty cell, a text cell, or any cell of a card).  `is_text` is 1 where a cell holds text.
    """
    targets = {
        "shape": [len(SHAPES)] * len(CELLS),
        "colour": [len(COLOURS)] * len(CELLS),
        "size": [len(SIZES)] * len(CELLS),
        "is_text": [0] * len(CELLS),
    }
    for obj in record["objects"]:
        cell = CELLS.index(obj["cell"])
        targets["shape"][cell] = SHAPES.index(obj["shape"])
        targets["colour"][cell] = COLOURS.index(obj["colour"])
        targets["size"][cell] = SIZES.index(obj["size"])
    for text in record["texts"]:
        targets["is_text"][CELLS.index(text["cell"])] = 1
    return targets
