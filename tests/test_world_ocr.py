"""World OCR pairs (sail.world.ocr) and the wrong-facts caption control (sail.world.captions)."""

from __future__ import annotations

import copy
import random
import re

import pytest

from sail.foundations.slots import slot_words
from sail.world import CELLS, parse_caption, sample_records, score_captions
from sail.world.captions import teacher_caption, wrong_caption
from sail.world.ocr import card_transcription, low_quality, ocr_pairs
from sail.world.vocab import WORDS

SCENE = {
    "kind": "scene",
    "objects": [{"shape": "circle", "colour": "red", "size": "small", "cell": "bottom left"}],
    "texts": [{"text": "cat", "cell": "top left"}, {"text": "42", "cell": "bottom right"}],
    "card": None,
}
TABLE = {
    "kind": "card",
    "objects": [],
    "texts": [],
    "card": {"title": "Farm log", "table": [["moon", 4], ["cake", 11]]},
}
CHART = {
    "kind": "card",
    "objects": [],
    "texts": [],
    "card": {"title": "Garden plan", "chart": {"labels": ["dog", "bird", "door"], "values": [20, 19, 4]}},
}


@pytest.fixture(scope="module")
def world():
    return sample_records("train", 50, seed=0, card_fraction=0.2)


def test_ocr_pairs_read_each_scene_text_by_its_cell():
    assert ocr_pairs(SCENE) == [
        ("What is at the top left?", 'the text "cat"'),
        ("What is at the bottom right?", 'the text "42"'),
    ]
    assert ocr_pairs({**SCENE, "texts": []}) == []  # a scene without text has nothing to read


def test_ocr_pairs_transcribe_a_table_card_and_a_chart_card():
    assert ocr_pairs(TABLE) == [("List what you see.", "title Farm log ; moon 4 ; cake 11")]
    assert ocr_pairs(CHART) == [("List what you see.", "title Garden plan ; dog 20 ; bird 19 ; door 4")]


def test_low_quality_at_rate_zero_is_the_exact_pairs(world):
    rng = random.Random(0)
    for record in [SCENE, TABLE, CHART, *world]:
        assert low_quality(record, rng, 0.0) == ocr_pairs(record)


def _elements(answer: str) -> list[str]:
    if quoted := re.fullmatch(r'the text "(.*)"', answer):
        return [quoted[1]]
    return answer.split(" ; ")


def test_low_quality_at_rate_one_misreads_every_answer_in_exactly_one_place(world):
    records = [SCENE, TABLE, CHART, *world]
    assert sum(r["kind"] == "card" for r in records) >= 5 and sum(len(r["texts"]) for r in records) >= 10
    for seed in range(3):
        rng = random.Random(seed)
        for record in records:
            exact, misread = ocr_pairs(record), low_quality(record, rng, 1.0)
            assert [p for p, _ in misread] == [p for p, _ in exact]  # prompts untouched
            for (_, good), (_, bad) in zip(exact, misread):
                good_parts, bad_parts = _elements(good), _elements(bad)
                assert len(good_parts) == len(bad_parts)
                changed = [(g, b) for g, b in zip(good_parts, bad_parts) if g != b]
                assert len(changed) == 1, (good, bad)
                (g, b), *_ = changed
                if g.startswith("title "):
                    assert b.startswith("title ")
                elif " " in g:  # a card fact: same label, another value
                    assert g.split()[0] == b.split()[0] and g.split()[1] != b.split()[1]
                else:  # a scene text: a number stays a number, a word becomes another world word
                    assert b.isdigit() == g.isdigit() and (b.isdigit() or b in WORDS)


def test_low_quality_card_misreads_reach_both_the_title_and_the_facts():
    rng = random.Random(0)
    places = set()
    for _ in range(40):
        (_, bad), *_ = low_quality(TABLE, rng, 1.0)
        good = _elements("title Farm log ; moon 4 ; cake 11")
        places |= {i for i, (g, b) in enumerate(zip(good, _elements(bad))) if g != b}
    assert places == {0, 1, 2}


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_low_quality_refuses_a_rate_outside_zero_one(rate):
    with pytest.raises(ValueError, match=re.escape(f"error_rate must be in [0, 1], got {rate}")):
        low_quality(SCENE, random.Random(0), rate)


def test_the_foundations_read_a_card_as_its_transcription_word_by_word(world):
    cards = [TABLE, CHART, *[r for r in world if r["kind"] == "card"]]
    assert len(cards) > 2
    for record in cards:
        tile = slot_words(record, 16)[:16]
        assert " ".join(word for word in tile if word != "empty") == card_transcription(record["card"])
    assert slot_words(TABLE, 16) == ["title", "Farm", "log", ";", "moon", "4", ";", "cake", "11", *["empty"] * 7] * 3


def test_wrong_caption_changes_every_fact_and_leaves_the_record_alone(world):
    scenes = cards = 0
    for index, record in enumerate(world):
        before = copy.deepcopy(record)
        parsed = parse_caption(wrong_caption(record, random.Random(index)))
        assert record == before  # not mutated
        if record["kind"] == "card":
            cards += 1
            card = record["card"]
            facts = card["table"] if "table" in card else list(zip(card["chart"]["labels"], card["chart"]["values"]))
            read = parsed["text"]
            assert card["title"].lower() not in read and len(read) == 1 + len(facts)
            assert all(f"{label}: {value}" not in read for label, value in facts)
            assert [r.split(":")[0] for r in read[1:]] == [label for label, _ in facts]  # labels kept
            continue
        scenes += 1
        placed = {cell: (colour, shape) for colour, shape, cell in parsed["position"]}
        assert set(placed) == {o["cell"] for o in record["objects"]}
        for obj in record["objects"]:
            assert placed[obj["cell"]] != (obj["colour"], obj["shape"]), (obj, placed)
        texts = [t["text"].lower() for t in sorted(record["texts"], key=lambda t: CELLS.index(t["cell"]))]
        assert len(parsed["text"]) == len(texts)  # in reading order, as the teacher writes them
        assert all(read != text for read, text in zip(parsed["text"], texts)), (parsed["text"], texts)
    assert scenes > 10 and cards > 3


def test_wrong_caption_pair_f1_is_far_below_the_teacher_s(world):
    teacher = [teacher_caption(r, random.Random(i)) for i, r in enumerate(world)]
    wrong = [wrong_caption(r, random.Random(i)) for i, r in enumerate(world)]
    teacher_f1 = score_captions(teacher, world)["pair_f1"]
    wrong_f1 = score_captions(wrong, world)["pair_f1"]
    assert teacher_f1 > 0.9 and wrong_f1 < 0.2, (teacher_f1, wrong_f1)
