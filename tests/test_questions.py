"""Question generators: deterministic, answers true to the record, the four groups' rules."""

from __future__ import annotations

from collections import Counter

import pytest

from sail.eval.metrics import hallusionbench_metrics
from sail.world import COLOURS, SHAPES, sample_records, split_of
from sail.world.questions import (
    GROUPS,
    SIDES,
    general_questions,
    hallusion_set,
    math_questions,
    ocr_questions,
    pope_questions,
    pope_statistics,
)

KEYS = {"question", "answer", "choices", "metric", "group", "benchmark", "category", "difficulty", "record"}


@pytest.fixture(scope="module")
def scenes():
    return sample_records("test", 60, seed=3)


@pytest.fixture(scope="module")
def cards():
    return sample_records("test", 30, seed=3, card_fraction=1.0)


def _all(scenes, cards, seed=0):
    out = []
    for record in scenes + cards:
        for write in (general_questions, ocr_questions, math_questions):
            out += write(record, seed)
    return out


def test_every_question_has_the_contract_fields_and_is_deterministic(scenes, cards):
    questions = _all(scenes, cards)
    assert questions == _all(scenes, cards)
    assert {q["benchmark"] for q in questions} >= {
        "WorldVQA",
        "WorldRelationMCQ",
        "WorldTextVQA",
        "WorldDocVQA",
        "WorldChartQA",
        "WorldCountVQA",
        "WorldMathMCQ",
    }
    for q in questions:
        assert KEYS <= set(q) and q["group"] in GROUPS and q["difficulty"] in (1, 2, 3)
        if q["choices"] is not None:
            assert list(q["choices"]) == list("ABCD") and len(set(q["choices"].values())) == 4
            assert q["answer"] in q["choices"]
        else:
            assert isinstance(q["answer"], list) and q["answer"]
    assert [q["question"] for q in _all(scenes, cards, seed=1)] != [q["question"] for q in questions]


def test_answers_are_true_to_the_record(scenes, cards):
    for record in scenes:
        by_cell = {o["cell"]: o for o in record["objects"]}
        texts = {t["cell"]: t["text"] for t in record["texts"]}
        for q in general_questions(record) + ocr_questions(record) + math_questions(record):
            cell = next(
                (c for c in ("top left", "top right", "bottom left", "bottom right") if f"the {c} of" in q["question"]),
                None,
            )
            if q["category"] == "colour":
                assert q["answer"][0] == by_cell[cell]["colour"]
            elif q["category"] == "text reading":
                assert q["answer"][0] == texts[cell]
            elif q["category"] == "count all":
                assert q["answer"][0] == str(len(record["objects"]))
            elif q["category"] == "shape fact":
                assert q["choices"][q["answer"]] == str(SIDES[by_cell[cell]["shape"]])
            elif q["category"] == "relation":
                relation = q["choices"][q["answer"]]
                words = q["question"].removeprefix("Where is the ").rstrip("?").split(" relative to the ")
                a, b = ([o for o in record["objects"] if f"{o['colour']} {o['shape']}" == w][0] for w in words)
                (ra, ca), (rb, cb) = (
                    divmod(("top left", "top right", "bottom left", "bottom right").index(o["cell"]), 2) for o in (a, b)
                )
                expected = {(0, -1): "left of", (0, 1): "right of", (-1, 0): "above", (1, 0): "below"}[
                    (ra - rb, ca - cb)
                ]
                assert relation == expected
    for record in cards:
        values = (
            dict(record["card"]["table"])
            if "table" in record["card"]
            else dict(zip(record["card"]["chart"]["labels"], record["card"]["chart"]["values"]))
        )
        for q in math_questions(record):
            words = q["question"].split()
            named = [w.strip("?,") for w in words if w.strip("?,") in values]
            answer = int(q["choices"][q["answer"]])
            if q["category"] == "sum":
                assert answer == values[named[0]] + values[named[1]]
            else:
                assert answer == values[named[0]] - values[named[1]] >= 0


def test_pope_is_balanced_and_samples_negatives_as_pope_does(scenes):
    statistics = pope_statistics(scenes)
    for record in scenes[:20]:
        present = {f"{o['colour']} {o['shape']}" for o in record["objects"]}
        questions = pope_questions(record, statistics, seed=0)
        by_category = {c: [q for q in questions if q["category"] == c] for c in ("random", "popular", "adversarial")}
        positives = None
        for category, items in by_category.items():
            answers = Counter(q["answer"] for q in items)
            assert answers["Yes"] == answers["No"] == min(3, len(present))
            objects = {q["question"].split(" ", 3)[3].removesuffix(" in the image?"): q["answer"] for q in items}
            assert all((obj in present) == (answer == "Yes") for obj, answer in objects.items())
            yes = {o for o, a in objects.items() if a == "Yes"}
            assert positives is None or yes == positives  # the same positives in each setting
            positives = yes
            if category == "popular":
                negatives = [o for o, a in objects.items() if a == "No"]
                absent_counts = sorted(
                    (statistics["frequency"][o] for o in {f"{c} {s}" for c in COLOURS for s in SHAPES} - present),
                    reverse=True,
                )
                assert (
                    sorted((statistics["frequency"][o] for o in negatives), reverse=True)
                    == absent_counts[: len(negatives)]
                )


def test_hallusion_sets_flip_between_figures_and_stay_out_of_train(scenes, cards):
    items = []
    for set_id, record in enumerate(scenes[:15] + cards[:15]):
        for q in hallusion_set(record, set_id, seed=0):
            parts = q["index"].split("_")
            assert len(parts) == 6 and parts[3:] == [str(q["set_id"]), str(q["figure_id"]), str(q["question_id"])]
            assert q["l2-category"] == f"{q['category']}_{parts[1]}"
            assert split_of(q["record"]) != "train"
            items.append({**q, "prediction": q["answer"]})
    assert {q["category"] for q in items} == {"VD", "VS"}
    by_question = {}
    for q in items:
        by_question.setdefault((q["set_id"], q["question_id"]), []).append(q["answer"])
    flips = [len(set(a)) == 2 for (_, question_id), a in by_question.items() if question_id == 0]
    assert flips and all(flips)  # the edit flips the first question of every set
    assert hallusionbench_metrics(items)["Overall"] == {"aAcc": 100.0, "fAcc": 100.0, "qAcc": 100.0}
