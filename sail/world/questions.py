"""Questions with exact answers, written from a world record, in SAIL-VL's four benchmark groups.

Every generator reads only the record (and a seed), so its questions are deterministic and their
answers are true by construction.  A question is a dict::

    {"question": str,                 # the bare question; prompts are built by sail.eval
     "answer": str | list[str],       # one gold, or the list of golds (VQA-style "human answers")
     "choices": {"A": str, ...} | None,
     "metric": "vqa_accuracy" | "anls" | "relaxed_accuracy" | "choice" | "pope" | "hallusion",
     "group": "General VQA" | "OCR VQA" | "Math & Knowledge" | "Hallucination",
     "benchmark": str,                # the world benchmark it belongs to (sail.eval.benchmarks)
     "category": str,                 # the kind of question (a benchmark's category column)
     "difficulty": 1 | 2 | 3,
     "record": dict}                  # the record whose rendering is the question's image

Hallucination questions carry more fields: POPE-style ones have their negative-sampling
category ("random" / "popular" / "adversarial") as `category`; HallusionBench-style ones carry
`index` ("{category}_{subcategory}_0_{set}_{figure}_{question}"), `category` ("VD" / "VS") and
`l2-category` ("VD_colour", "VS_chart", ...), and their `record` may be an *edited* copy of the
source record (figure 1 of a set), see `hallusion_set`.

Open-ended VQA answers come as ten identical golds, the way VQAv2/TextVQA store ten human
answers: VLMEvalKit's leave-one-out VQA accuracy scores a single gold as 0 whatever the answer.
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from itertools import combinations

from sail.world.splits import split_of
from sail.world.vocab import COLOUR_RGB, COLOURS, SHAPES

__all__ = [
    "GROUPS",
    "SIDES",
    "general_questions",
    "hallusion_set",
    "math_questions",
    "ocr_questions",
    "pope_questions",
    "pope_statistics",
]

GROUPS = ("General VQA", "OCR VQA", "Math & Knowledge", "Hallucination")
HUMAN_ANSWERS = 10
LETTERS = "ABCD"
# Knowledge tied to the objects: how many straight sides each polygon has (circle and star are
# left out: "sides" of a star is not a question with one answer).
SIDES = {"triangle": 3, "square": 4, "diamond": 4, "hexagon": 6}
RELATION_OPTIONS = ("left of", "right of", "above", "below")
_INVERSE = {"left of": "right of", "above": "below"}


def _q(record, question, answer, *, metric, group, benchmark, category, difficulty, choices=None, **extra) -> dict:
    return {
        "question": question,
        "answer": answer,
        "choices": choices,
        "metric": metric,
        "group": group,
        "benchmark": benchmark,
        "category": category,
        "difficulty": difficulty,
        "record": record,
        **extra,
    }


def _golds(answer) -> list[str]:
    return [str(answer)] * HUMAN_ANSWERS


def _rng(record: dict, seed: int, salt: str) -> random.Random:
    return random.Random(f"{seed}:{salt}:{record.get('id')}:{record['kind']}")


def _name(obj: dict) -> str:
    return f"{obj['colour']} {obj['shape']}"


def _a(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _mcq(rng: random.Random, correct: str, distractors: list[str]) -> tuple[dict, str]:
    """Four options in a seeded order, and the letter of the correct one."""
    options = [correct] + list(distractors)[:3]
    rng.shuffle(options)
    choices = dict(zip(LETTERS, options))
    return choices, LETTERS[options.index(correct)]


def _number_distractors(rng: random.Random, value: int) -> list[str]:
    pool = [v for v in range(max(0, value - 6), value + 7) if v != value]
    return [str(v) for v in rng.sample(pool, 3)]


# ---------------------------------------------------------------------------------------------
# General VQA: colour of the object in a cell, existence, spatial relation (4-option MCQ)
# ---------------------------------------------------------------------------------------------


def general_questions(record: dict, seed: int = 0) -> list[dict]:
    """Colour (open, VQA accuracy), existence (yes/no, VQA accuracy) and relation (MCQ)."""
    if record["kind"] != "scene" or not record["objects"]:
        return []
    rng = _rng(record, seed, "general")
    out = []
    obj = rng.choice(record["objects"])
    out.append(
        _q(
            record,
            f"What colour is the object in the {obj['cell']} of the image?",
            _golds(obj["colour"]),
            metric="vqa_accuracy",
            group="General VQA",
            benchmark="WorldVQA",
            category="colour",
            difficulty=1,
        )
    )
    present = {o["shape"] for o in record["objects"]}
    if rng.random() < 0.5 or present == set(SHAPES):
        shape, answer = rng.choice(sorted(present)), "yes"
    else:
        shape, answer = rng.choice([s for s in SHAPES if s not in present]), "no"
    out.append(
        _q(
            record,
            f"Is there {_a(shape)} in the image?",
            _golds(answer),
            metric="vqa_accuracy",
            group="General VQA",
            benchmark="WorldVQA",
            category="existence",
            difficulty=1,
        )
    )
    names = Counter(_name(o) for o in record["objects"])
    usable = [
        r
        for r in record["relations"]
        if names[_name(record["objects"][r["subject"]])] == 1 and names[_name(record["objects"][r["object"]])] == 1
    ]
    if usable:
        rel = rng.choice(usable)
        subject, other = record["objects"][rel["subject"]], record["objects"][rel["object"]]
        relation = rel["relation"]
        if rng.random() < 0.5:  # ask it the other way round
            subject, other, relation = other, subject, _INVERSE[relation]
        choices, letter = _mcq(rng, relation, [o for o in RELATION_OPTIONS if o != relation])
        out.append(
            _q(
                record,
                f"Where is the {_name(subject)} relative to the {_name(other)}?",
                letter,
                choices=choices,
                metric="choice",
                group="General VQA",
                benchmark="WorldRelationMCQ",
                category="relation",
                difficulty=2,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# OCR VQA: read the text in a cell (scenes); table and chart values (cards)
# ---------------------------------------------------------------------------------------------


def _card_rows(card: dict) -> list[tuple[str, int]]:
    if "table" in card:
        return [(label, int(value)) for label, value in card["table"]]
    return list(zip(card["chart"]["labels"], map(int, card["chart"]["values"])))


def ocr_questions(record: dict, seed: int = 0) -> list[dict]:
    """Scene text reading (TextVQA-style, VQA accuracy); table lookups and the card title
    (DocVQA-style, ANLS); chart bar values (ChartQA-style, relaxed accuracy)."""
    rng = _rng(record, seed, "ocr")
    if record["kind"] == "scene":
        if not record["texts"]:
            return []
        text = rng.choice(record["texts"])
        return [
            _q(
                record,
                f"What is written in the {text['cell']} of the image?",
                _golds(text["text"]),
                metric="vqa_accuracy",
                group="OCR VQA",
                benchmark="WorldTextVQA",
                category="text reading",
                difficulty=1 if len(record["texts"]) == 1 else 2,
            )
        ]
    card, out = record["card"], []
    label, value = rng.choice(_card_rows(card))
    if "table" in card:
        out.append(
            _q(
                record,
                f"What is the value of {label} in the table?",
                [str(value)],
                metric="anls",
                group="OCR VQA",
                benchmark="WorldDocVQA",
                category="table value",
                difficulty=2,
            )
        )
        out.append(
            _q(
                record,
                "What is the title of this card?",
                [card["title"]],
                metric="anls",
                group="OCR VQA",
                benchmark="WorldDocVQA",
                category="title",
                difficulty=1,
            )
        )
    else:
        out.append(
            _q(
                record,
                f"What is the value of the {label} bar?",
                [str(value)],
                metric="relaxed_accuracy",
                group="OCR VQA",
                benchmark="WorldChartQA",
                category="bar value",
                difficulty=2,
            )
        )
        top = max(_card_rows(card), key=lambda row: row[1])
        if sum(v == top[1] for _, v in _card_rows(card)) == 1:
            out.append(
                _q(
                    record,
                    "Which label has the tallest bar?",
                    [top[0]],
                    metric="relaxed_accuracy",
                    group="OCR VQA",
                    benchmark="WorldChartQA",
                    category="tallest bar",
                    difficulty=2,
                )
            )
    return out


# ---------------------------------------------------------------------------------------------
# Math & Knowledge: counting; arithmetic on card numbers; facts tied to the objects
# ---------------------------------------------------------------------------------------------


def math_questions(record: dict, seed: int = 0) -> list[dict]:
    """Counting (open, VQA accuracy) on scenes; arithmetic on two card rows and the number of
    sides of a shown polygon (4-option MCQ, as MathVista's multiple-choice items)."""
    rng = _rng(record, seed, "math")
    out = []
    if record["kind"] == "scene":
        if record["objects"]:
            shape = rng.choice(SHAPES)
            n = record["counts"]["shapes"].get(shape, 0)
            plural = shape + ("es" if shape.endswith("x") else "s")
            out.append(
                _q(
                    record,
                    f"How many {plural} are there in the image?",
                    _golds(n),
                    metric="vqa_accuracy",
                    group="Math & Knowledge",
                    benchmark="WorldCountVQA",
                    category="count shape",
                    difficulty=1 if n <= 1 else 2,
                )
            )
            total = len(record["objects"])
            out.append(
                _q(
                    record,
                    "How many shapes are there in the image?",
                    _golds(total),
                    metric="vqa_accuracy",
                    group="Math & Knowledge",
                    benchmark="WorldCountVQA",
                    category="count all",
                    difficulty=2 if total <= 2 else 3,
                )
            )
            polygons = [o for o in record["objects"] if o["shape"] in SIDES]
            if polygons:
                obj = rng.choice(polygons)
                sides = SIDES[obj["shape"]]
                choices, letter = _mcq(rng, str(sides), _number_distractors(rng, sides))
                out.append(
                    _q(
                        record,
                        f"How many sides does the shape in the {obj['cell']} of the image have?",
                        letter,
                        choices=choices,
                        metric="choice",
                        group="Math & Knowledge",
                        benchmark="WorldMathMCQ",
                        category="shape fact",
                        difficulty=2,
                    )
                )
        return out
    rows = _card_rows(record["card"])
    (a, va), (b, vb) = rng.sample(rows, 2)
    what = "table" if "table" in record["card"] else "chart"
    if rng.random() < 0.5:
        question, value, category = (f"In the {what}, what is the sum of the values of {a} and {b}?", va + vb, "sum")
    else:
        if va < vb:
            (a, va), (b, vb) = (b, vb), (a, va)
        question, value, category = (
            f"In the {what}, how much larger is the value of {a} than the value of {b}?",
            va - vb,
            "difference",
        )
    choices, letter = _mcq(rng, str(value), _number_distractors(rng, value))
    out.append(
        _q(
            record,
            question,
            letter,
            choices=choices,
            metric="choice",
            group="Math & Knowledge",
            benchmark="WorldMathMCQ",
            category=category,
            difficulty=3,
        )
    )
    return out


# ---------------------------------------------------------------------------------------------
# Hallucination (1): POPE-style yes/no about present and absent objects
# ---------------------------------------------------------------------------------------------

ALL_OBJECTS = tuple(f"{c} {s}" for c in COLOURS for s in SHAPES)
POPE_CATEGORIES = ("random", "popular", "adversarial")


def pope_statistics(records: list[dict]) -> dict:
    """The dataset statistics POPE samples negatives from: how often each object ("colour
    shape") appears in the pool, and how often each pair of objects appears together."""
    frequency: Counter = Counter()
    together: Counter = Counter()
    for record in records:
        names = sorted({_name(o) for o in record["objects"]})
        frequency.update(names)
        together.update(combinations(names, 2))
    return {"frequency": frequency, "together": together}


def _shares_attribute(a: str, b: str) -> bool:
    return a.split()[0] == b.split()[0] or a.split()[1] == b.split()[1]


def pope_questions(record: dict, statistics: dict, seed: int = 0, per_side: int = 3) -> list[dict]:
    """POPE's three settings for one image: the same positives ("Is there a <present object>
    in the image?", answer yes) in each, plus as many negatives (absent objects, answer no)
    sampled as POPE does (Li et al., 2023):

    - random: absent objects drawn uniformly;
    - popular: the absent objects that are most frequent in the pool (`pope_statistics`);
    - adversarial: the absent objects that co-occur most often with the image's objects in the
      pool (ties broken towards objects sharing a colour or a shape with a present one, the
      world's closest stand-in for "semantically related").
    """
    if record["kind"] != "scene" or not record["objects"]:
        return []
    rng = _rng(record, seed, "pope")
    present = sorted({_name(o) for o in record["objects"]})
    absent = [o for o in ALL_OBJECTS if o not in present]
    k = min(per_side, len(present))
    positives = rng.sample(present, k)
    frequency, together = statistics["frequency"], statistics["together"]

    def ranked(score) -> list[str]:
        order = sorted(absent, key=lambda o: (*(-x for x in score(o)), ALL_OBJECTS.index(o)))
        return order[:k]

    negatives = {
        "random": rng.sample(absent, k),
        "popular": ranked(lambda o: (frequency[o],)),
        "adversarial": ranked(
            lambda o: (
                sum(together[tuple(sorted((o, p)))] for p in present),
                sum(_shares_attribute(o, p) for p in present),
            )
        ),
    }
    difficulty = {"random": 1, "popular": 2, "adversarial": 3}
    out = []
    for category in POPE_CATEGORIES:
        items = [(o, "yes") for o in positives] + [(o, "no") for o in negatives[category]]
        rng.shuffle(items)
        for obj, answer in items:
            out.append(
                _q(
                    record,
                    f"Is there {_a(obj)} in the image?",
                    answer.capitalize(),
                    metric="pope",
                    group="Hallucination",
                    benchmark="WorldPOPE",
                    category=category,
                    difficulty=difficulty[category],
                )
            )
    return out


# ---------------------------------------------------------------------------------------------
# Hallucination (2): HallusionBench-style paired sets (original figure and an edited one)
# ---------------------------------------------------------------------------------------------


def _recount(record: dict) -> None:
    record["counts"] = {
        "shapes": dict(Counter(o["shape"] for o in record["objects"])),
        "colours": dict(Counter(o["colour"] for o in record["objects"])),
    }


def _edited_scene(record: dict, rng: random.Random):
    """A copy with one object's colour changed, outside the train split; None if none is."""
    options = [(i, c) for i, o in enumerate(record["objects"]) for c in COLOURS if c != o["colour"]]
    rng.shuffle(options)
    for i, colour in options:
        edited = copy.deepcopy(record)
        edited["objects"][i]["colour"] = colour
        edited["objects"][i]["rgb"] = list(COLOUR_RGB[colour])
        _recount(edited)
        if split_of(edited) != "train":
            return i, edited
    return None


def _edited_card(record: dict, rng: random.Random):
    """A copy with the values of two rows/bars swapped, outside the train split; or None."""
    rows = _card_rows(record["card"])
    pairs = [(i, j) for i, j in combinations(range(len(rows)), 2) if rows[i][1] != rows[j][1]]
    rng.shuffle(pairs)
    for i, j in pairs:
        edited = copy.deepcopy(record)
        card = edited["card"]
        values = card["chart"]["values"] if "chart" in card else None
        if values is not None:
            values[i], values[j] = values[j], values[i]
        else:
            card["table"][i][1], card["table"][j][1] = card["table"][j][1], card["table"][i][1]
        if split_of(edited) != "train":
            return (i, j), edited
    return None


def hallusion_set(record: dict, set_id: int, seed: int = 0) -> list[dict]:
    """One HallusionBench-style set: two questions asked of two figures (the original record,
    figure 0, and an edited copy, figure 1, on which the answers flip), so that fAcc (every
    question of a figure right) and qAcc (a question right on every figure) can be scored.

    Scenes give "VD" (visual dependent) sets: one object's colour is changed.  Cards give "VS"
    (visual supplement) sets: two values are swapped, and the questions compare them.  The
    edited copy gets id "<id>-edit" and is kept only if its content falls outside the train
    split.  `index` follows VLMEvalKit's layout: fields 3, 4 and 5 (split on "_") are the set,
    figure and question ids.
    """
    rng = _rng(record, seed, "hallusion")
    if record["kind"] == "scene":
        if not record["objects"]:
            return []
        found = _edited_scene(record, rng)
        if found is None:
            return []
        i, edited = found
        obj = record["objects"][i]
        category, subcategory = "VD", "colour"

        def answers(fig: dict) -> list[tuple[str, bool]]:
            shown = fig["objects"][i]
            return [
                (f"Is the object in the {obj['cell']} of the image {obj['colour']}?", shown["colour"] == obj["colour"]),
                (f"Is there {_a(_name(obj))} in the image?", any(_name(o) == _name(obj) for o in fig["objects"])),
            ]
    else:
        found = _edited_card(record, rng)
        if found is None:
            return []
        (i, j), edited = found
        (a, _), (b, _) = _card_rows(record["card"])[i], _card_rows(record["card"])[j]
        category, subcategory = "VS", "chart" if "chart" in record["card"] else "table"
        what = subcategory

        def answers(fig: dict) -> list[tuple[str, bool]]:
            values = dict(_card_rows(fig["card"]))
            original = dict(_card_rows(record["card"]))
            return [
                (f"According to the {what}, is the value of {a} greater than the value of {b}?", values[a] > values[b]),
                (f"According to the {what}, is the value of {a} equal to {original[a]}?", values[a] == original[a]),
            ]

    edited["id"] = f"{record.get('id')}-edit"
    out = []
    for figure, fig in enumerate((record, edited)):
        for question_id, (question, truth) in enumerate(answers(fig)):
            out.append(
                _q(
                    fig,
                    question,
                    "Yes" if truth else "No",
                    metric="hallusion",
                    group="Hallucination",
                    benchmark="WorldHallusion",
                    category=category,
                    difficulty=3,
                    index=f"{category}_{subcategory}_0_{set_id}_{figure}_{question_id}",
                    **{"l2-category": f"{category}_{subcategory}"},
                    set_id=set_id,
                    figure_id=figure,
                    question_id=question_id,
                )
            )
    return out
