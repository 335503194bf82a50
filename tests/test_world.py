"""Tests of the SAIL world: records, rendering, splits, caption sources and scoring."""

import itertools
import json
import random
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

import sail.world as world
from sail.world import (
    CELLS,
    COLOURS,
    SHAPES,
    SIZES,
    alt_text,
    attribute_targets,
    content_signature,
    make_record,
    parse_caption,
    render,
    sample_records,
    score_caption,
    score_captions,
    split_of,
    teacher_caption,
    weak_caption,
    world_dataset,
)
from sail.world.geometry import shape_outline

PERFECT_TYPES = ("pair", "object", "position", "text", "shape", "count")


@pytest.fixture(scope="module")
def mixed_records() -> list[dict]:
    return sample_records("validation", 400, seed=3, card_fraction=0.2)


@pytest.fixture(scope="module")
def scenes() -> list[dict]:
    return sample_records("train", 600, seed=1)


def captions_of(source, records: list[dict], seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [source(record, rng) for record in records]


def test_public_names_are_exported():
    for name in (
        "SHAPES",
        "COLOURS",
        "SIZES",
        "CELLS",
        "make_record",
        "render",
        "sample_records",
        "world_dataset",
        "alt_text",
        "weak_caption",
        "teacher_caption",
        "CAPTION_SOURCES",
        "parse_caption",
        "score_caption",
        "score_captions",
        "attribute_targets",
    ):
        assert hasattr(world, name), name
    assert world.CAPTION_SOURCES == {"alt_text": alt_text, "weak": weak_caption, "teacher": teacher_caption}
    assert (len(SHAPES), len(COLOURS), len(SIZES), len(CELLS)) == (6, 8, 2, 4)


def test_scene_records_follow_the_schema(scenes):
    for record in scenes:
        assert json.loads(json.dumps(record)) == record
        assert record["kind"] == "scene" and record["card"] is None
        assert (record["width"], record["height"]) == (96, 96)
        items = record["objects"] + record["texts"]
        cells = [item["cell"] for item in items]
        assert 1 <= len(items) <= 4 and len(set(cells)) == len(cells) and record["objects"]
        for group in (record["objects"], record["texts"]):
            order = [CELLS.index(item["cell"]) for item in group]
            assert order == sorted(order), "items are listed in reading order"
        for item in items:
            x0, y0, x1, y1 = item["bbox"]
            assert 0 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 96
            row, col = divmod(CELLS.index(item["cell"]), 2)
            assert col * 48 <= x0 and x1 <= (col + 1) * 48 and row * 48 <= y0 and y1 <= (row + 1) * 48
        shapes = {s: sum(o["shape"] == s for o in record["objects"]) for s in SHAPES}
        assert record["counts"]["shapes"] == {s: n for s, n in shapes.items() if n}
        assert sum(record["counts"]["colours"].values()) == len(record["objects"])


def test_relations_are_canonical_and_complete(scenes):
    for record in scenes:
        objects = record["objects"]
        expected = 0
        for i, j in itertools.combinations(range(len(objects)), 2):
            row_i, col_i = divmod(CELLS.index(objects[i]["cell"]), 2)
            row_j, col_j = divmod(CELLS.index(objects[j]["cell"]), 2)
            expected += row_i == row_j or col_i == col_j
        assert len(record["relations"]) == expected
        for relation in record["relations"]:
            subject = divmod(CELLS.index(objects[relation["subject"]]["cell"]), 2)
            other = divmod(CELLS.index(objects[relation["object"]]["cell"]), 2)
            if relation["relation"] == "left of":
                assert subject[0] == other[0] and subject[1] < other[1]
            else:
                assert relation["relation"] == "above"
                assert subject[1] == other[1] and subject[0] < other[0]


def test_item_mix_is_mostly_objects(scenes):
    kinds = [len(r["objects"]) for r in scenes], [len(r["texts"]) for r in scenes]
    object_share = sum(kinds[0]) / (sum(kinds[0]) + sum(kinds[1]))
    assert 0.75 < object_share < 0.92
    numbers = [t["text"] for r in scenes for t in r["texts"] if t["text"].isdigit()]
    assert numbers and len(numbers) < sum(kinds[1])


def test_cards_hold_a_table_or_a_chart():
    cards = [make_record(random.Random(i), card_fraction=1.0) for i in range(60)]
    kinds = {"table" in card["card"] for card in cards}
    assert kinds == {True, False}
    for card in cards:
        assert (card["width"], card["height"]) == (192, 96) and not card["objects"] and not card["texts"]
        assert render(card).size == (192, 96)
        if "table" in card["card"]:
            assert 2 <= len(card["card"]["table"]) <= 3
        else:
            chart = card["card"]["chart"]
            assert 3 <= len(chart["labels"]) == len(chart["values"]) <= 4
            assert all(isinstance(v, int) and v > 0 for v in chart["values"])


def test_render_is_pure_and_draws_what_the_record_says(scenes):
    for record in scenes[:100]:
        image = render(record)
        assert image.mode == "RGB" and image.size == (96, 96)
        assert image.tobytes() == render(json.loads(json.dumps(record))).tobytes()
        pixels = np.asarray(image)
        for obj in record["objects"]:
            x, y = (round(v) for v in obj["center"])
            assert tuple(pixels[y, x]) == tuple(obj["rgb"])
        for text in record["texts"]:
            x0, y0, x1, y1 = text["bbox"]
            assert (pixels[y0:y1, x0:x1].max(axis=2) < 60).any(), "text ink is black"


@pytest.mark.parametrize("image_size", [64, 128])
def test_other_image_sizes(image_size):
    records = sample_records("train", 50, image_size=image_size, card_fraction=0.2)
    for record in records:
        assert render(record).size == (record["width"], record["height"])
        for item in record["objects"] + record["texts"]:
            assert 0 <= min(item["bbox"]) and max(item["bbox"]) <= image_size
    assert score_captions(captions_of(teacher_caption, records), records)["position_f1"] == 1.0


def test_small_shapes_stay_distinct():
    def mask(shape: str) -> np.ndarray:
        canvas = Image.new("L", (48, 48), 0)
        draw = ImageDraw.Draw(canvas)
        if shape == "circle":
            draw.ellipse([12, 12, 36, 36], fill=1)
        else:
            draw.polygon(shape_outline(shape, [24, 24], 12), fill=1)
        return np.asarray(canvas, bool)

    for first, second in itertools.combinations(SHAPES, 2):
        a, b = mask(first), mask(second)
        assert (a ^ b).sum() / (a | b).sum() > 0.2, (first, second)


def test_splits_never_share_content():
    signatures = {}
    for split in ("train", "validation", "test"):
        records = sample_records(split, 2000, seed=7, card_fraction=0.1)
        assert all(split_of(r) == split == r["split"] for r in records)
        assert [r["id"] for r in records[:2]] == [f"{split}-000000", f"{split}-000001"]
        signatures[split] = {content_signature(r) for r in records}
    for first, second in itertools.combinations(signatures, 2):
        assert not signatures[first] & signatures[second], (first, second)


def test_signature_ignores_jitter_and_background():
    record = make_record(random.Random(5))
    moved = json.loads(json.dumps(record))
    moved["background"] = [255, 255, 255]
    moved["objects"][0]["center"][0] += 1
    assert content_signature(moved) == content_signature(record)
    moved["objects"][0]["colour"] = next(c for c in COLOURS if c != record["objects"][0]["colour"])
    assert content_signature(moved) != content_signature(record)


def test_sampling_is_deterministic():
    first = sample_records("test", 40, seed=11, card_fraction=0.3)
    second = sample_records("test", 40, seed=11, card_fraction=0.3)
    assert first == second
    assert [render(r).tobytes() for r in first] == [render(r).tobytes() for r in second]
    assert sample_records("test", 10, seed=11, card_fraction=0.3) == first[:10]
    assert sample_records("test", 40, seed=12, card_fraction=0.3) != first
    with pytest.raises(ValueError):
        sample_records("dev", 1)


def test_teacher_captions_score_perfectly(mixed_records, scenes):
    records = mixed_records + scenes
    captions = captions_of(teacher_caption, records)
    corpus = score_captions(captions, records)
    for kind in PERFECT_TYPES:
        assert corpus[f"{kind}_f1"] == 1.0, kind
    assert corpus["relation_precision"] == 1.0 and corpus["relation_recall"] > 0.7
    assert corpus["hallucination_rate"] == 0.0 and corpus["n"] == len(records)
    for caption, record in zip(captions, records):
        scores = score_caption(caption, record)
        assert all(scores[f"{kind}_f1"] == 1.0 for kind in PERFECT_TYPES), caption


def test_teacher_captions_are_ordered_and_varied(scenes):
    record = max(scenes, key=lambda r: len(r["objects"]))
    variants = {teacher_caption(record, random.Random(seed)) for seed in range(30)}
    assert len(variants) > 20
    for caption in variants:
        cells = [cell for _, _, cell in parse_caption(caption)["position"]]
        assert cells == sorted(cells, key=CELLS.index)
    words = " ".join(captions_of(teacher_caption, scenes)).lower()
    for synonym in ("big", "large", "little", "small", "upper", "lower", "corner", "right of", "below"):
        assert synonym in words, synonym


def test_teacher_describes_cards(mixed_records):
    cards = [r for r in mixed_records if r["kind"] == "card"]
    assert cards
    for card in cards:
        caption = teacher_caption(card, random.Random(0))
        assert f'"{card["card"]["title"]}"' in caption
        texts = parse_caption(caption)["text"]
        assert len(texts) == 1 + len(card["card"].get("table") or card["card"]["chart"]["labels"])


def test_alt_text_is_short_and_noisy(scenes):
    captions = captions_of(alt_text, scenes)
    corpus = score_captions(captions, scenes)
    assert 0.3 < corpus["pair_f1"] < 0.8 and corpus["pair_recall"] < 0.75
    assert corpus["hallucination_rate"] > 0.1
    assert corpus["object_precision"] == 0.0 and corpus["position_precision"] == 0.0
    assert corpus["relation_precision"] == 0.0
    assert max(len(c.split()) for c in captions) < 20


def test_weak_captions_name_shapes_only(scenes):
    captions = captions_of(weak_caption, scenes)
    corpus = score_captions(captions, scenes)
    assert corpus["pair_f1"] == 0.0 and corpus["pair_recall"] == 0.0
    assert corpus["shape_f1"] == 1.0 and corpus["count_f1"] == 1.0
    assert corpus["text_recall"] == 0.0
    assert any(c.startswith(("two", "a picture of two")) for c in captions)


def test_caption_of_another_record_scores_low(scenes):
    captions = captions_of(teacher_caption, scenes)
    shifted = score_captions(captions[1:] + captions[:1], scenes)
    assert shifted["pair_f1"] < 0.2 and shifted["position_f1"] < 0.1
    assert shifted["hallucination_rate"] > 0.7


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        " ",
        "asdf qwer",
        "red red red",
        "circle circle",
        '"""',
        '"unclosed',
        ":::: 12",
        "the the the the",
        "a big red circle " * 300,
        "<|im_end|>\x00\ufffd",
        "ÿ" * 50,
    ],
)
def test_garbage_captions_score_without_errors(garbage, scenes):
    record = next(r for r in scenes if not any(o["colour"] == "red" for o in r["objects"]))
    scores = score_caption(garbage, record)
    assert all(0.0 <= value <= 1.0 for value in scores.values())
    assert scores["pair_f1"] == scores["position_f1"] == 0.0


def test_parser_accepts_synonyms_and_relations():
    parsed = parse_caption(
        "A big red circle sits in the upper-left corner and a little blue star is at the lower right. "
        "The blue star is beneath the red circle; the word \u201cCat\u201d appears. The chart gives egg: 07."
    )
    assert parsed["object"] == [("large", "red", "circle"), ("small", "blue", "star")]
    assert parsed["position"] == [("red", "circle", "top left"), ("blue", "star", "bottom right")]
    assert parsed["pair"] == [("red", "circle"), ("blue", "star")], "relation phrases are not pairs"
    assert parsed["relation"] == [("red", "circle", "above", "blue", "star")]
    assert parsed["text"] == ["cat", "egg: 7"]
    assert parse_caption("two circles and three stars")["count"] == [("circle", 2), ("star", 3)]
    assert parse_caption("The green square is to the right of the pink hexagon.")["relation"] == [
        ("pink", "hexagon", "left of", "green", "square")
    ]


def test_empty_versus_empty_conventions():
    record = {
        "kind": "scene",
        "objects": [],
        "texts": [],
        "relations": [],
        "card": None,
        "counts": {"shapes": {}, "colours": {}},
    }
    record["objects"] = [{"shape": "star", "colour": "red", "size": "small", "cell": "top left"}]
    record["counts"]["shapes"] = {"star": 1}
    silent = score_caption("a red star", record)
    assert silent["text_f1"] == silent["relation_f1"] == silent["count_f1"] == 1.0
    assert silent["position_precision"] == silent["position_recall"] == silent["position_f1"] == 0.0
    invented = score_caption('a red star and the word "cat"', record)
    assert invented["text_precision"] == invented["text_recall"] == invented["text_f1"] == 0.0
    nothing = score_caption("", record)
    assert nothing["pair_precision"] == nothing["pair_f1"] == 0.0 and nothing["hallucination_rate"] == 0.0
    half = score_caption("a red star and a blue star", record)
    assert half["hallucination_rate"] == 0.5 and half["pair_precision"] == 0.5 and half["pair_recall"] == 1.0


def test_corpus_scores_are_micro_averaged(scenes):
    one = next(r for r in scenes if len(r["objects"]) == 1)
    three = next(r for r in scenes if len(r["objects"]) == 3)
    perfect = teacher_caption(one, random.Random(0))
    corpus = score_captions([perfect, ""], [one, three])
    assert corpus["pair_recall"] == pytest.approx(1 / 4)
    assert corpus["pair_precision"] == 1.0 and corpus["n"] == 2.0
    with pytest.raises(ValueError):
        score_captions([perfect], [one, three])


def test_attribute_targets_follow_the_record(scenes):
    for record in scenes[:50]:
        targets = attribute_targets(record)
        assert set(targets) == {"shape", "colour", "size", "is_text"}
        for index, cell in enumerate(CELLS):
            obj = next((o for o in record["objects"] if o["cell"] == cell), None)
            text = any(t["cell"] == cell for t in record["texts"])
            assert targets["is_text"][index] == int(text)
            if obj:
                assert SHAPES[targets["shape"][index]] == obj["shape"]
                assert COLOURS[targets["colour"][index]] == obj["colour"]
                assert SIZES[targets["size"][index]] == obj["size"]
            else:
                assert (targets["shape"][index], targets["colour"][index], targets["size"][index]) == (6, 8, 2)


def test_world_dataset_columns_and_determinism():
    start = time.perf_counter()
    dataset = world_dataset("train", 200, seed=2)
    assert time.perf_counter() - start < 5.0
    assert dataset.column_names == ["id", "kind", "image", "record", "alt_text", "weak_caption", "teacher_caption"]
    records = sample_records("train", 200, seed=2)
    assert [json.loads(r) for r in dataset["record"]] == records
    row = dataset[5]
    assert row["image"].size == (96, 96)
    assert row["image"].convert("RGB").tobytes() == render(records[5]).tobytes()
    again = world_dataset("train", 3, seed=2, card_fraction=0.0)
    assert again["teacher_caption"] == dataset["teacher_caption"][:3]
    assert again["alt_text"] == dataset["alt_text"][:3]
    assert score_captions(dataset["teacher_caption"], records)["pair_f1"] == 1.0


def test_rendering_is_fast():
    records = sample_records("train", 1000, seed=4)
    start = time.perf_counter()
    for record in records:
        render(record)
    assert time.perf_counter() - start < 2.0
