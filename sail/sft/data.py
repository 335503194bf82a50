"""SFT data from the world: three tiers of conversations, each source one format group.

SAIL-VL's SFT runs in three stages whose data grow harder, longer and more tied to the image:
SFT-Knowledge (short answers, single hop, basic facts), SFT-Instruction (visual instructions,
multi-hop questions, varied formats, several turns) and SFT-Preference (long, reasoned answers in
several steps). Here each tier is written from its own third of the curated pool's images with
the world's question generators (`sail.world.questions`), never from the evaluation suite: pool
images belong to the train split, the suite to the test split.

Every (tier, format group) pair is one source in InternVL's conversation jsonl, so a meta file
mixes them and `repeat_time: 0.5` halves one group, as the composition evaluation needs. Rows
carry what the rules judge reads besides the text (`sail.sft.judge`): each turn's generator
difficulty (1-3) and the facts the image shows.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from pathlib import Path

from sail.data.mixture import conversation_row, write_meta, write_source
from sail.data.pipeline import read_curated
from sail.eval.benchmarks import VQA_SUFFIX, BenchmarkSpec, build_prompt
from sail.world.captions import card_facts, teacher_caption, weak_caption
from sail.world.dataset import caption_rng
from sail.world.ocr import card_transcription
from sail.world.questions import (
    SIDES,
    general_questions,
    math_questions,
    ocr_questions,
    pope_questions,
    pope_statistics,
)
from sail.world.vocab import COLOURS

TIERS = ("knowledge", "instruction", "preference")
FORMAT_GROUPS = ("closed-form VQA", "open VQA", "document/chart VQA", "counting/maths", "captioning", "yes/no")
BRIEF_PROMPT = "Describe the image briefly."
DETAILED_PROMPT = "Describe the image in detail."
REASON_PROMPT = "Think it through step by step, then give the answer."
STEPWISE = "Step 1:"  # how a reasoned answer starts


def format_group(question: dict) -> str:
    """The format group of a world question, from its benchmark and metric."""
    if question["benchmark"] in ("WorldDocVQA", "WorldChartQA"):
        return "document/chart VQA"
    if question["benchmark"] in ("WorldCountVQA", "WorldMathMCQ"):
        return "counting/maths"
    if question["metric"] == "choice":
        return "closed-form VQA"
    if question["metric"] in ("pope", "hallusion") or question["category"] == "existence":
        return "yes/no"
    return "open VQA"


def short_answer(question: dict) -> str:
    answer = question["answer"]
    return str(answer[0] if isinstance(answer, list) else answer)


def eval_prompt(question: dict) -> str:
    """The question in the prompt style its benchmark asks it in (`build_prompt` with the question's
    own metric): options and a letter, yes or no, or a word or phrase. Keyed on the metric, not on
    the answer, so a WorldVQA existence question ("Is there a star?" → "No") is trained with the
    word-or-phrase suffix it is evaluated with, not POPE's yes/no one."""
    return build_prompt(question, BenchmarkSpec("SFT", "", question["metric"], max_tiles=1))


def facts(record: dict) -> list[str]:
    """The words an answer can take from the image: colours, shapes, texts, card labels and values."""
    if record["kind"] == "card":
        return [record["card"]["title"]] + [str(part) for fact in card_facts(record["card"]) for part in fact]
    return [part for o in record["objects"] for part in (o["colour"], o["shape"])] + [
        t["text"] for t in record["texts"]
    ]


def evidence(record: dict, rng: random.Random) -> str:
    """What a reasoned answer first says it sees: the teacher's detailed caption, or a card's text."""
    if record["kind"] == "card":
        return f"The card reads: {card_transcription(record['card'])}."
    return teacher_caption(record, rng)


def reasoned_answer(question: dict, rng: random.Random) -> str:
    """A long answer in steps: what the image shows, what the question needs, then the answer."""
    answer = short_answer(question)
    if question["choices"]:
        final = f"{question['choices'][answer]}, which is option {answer}. Answer: {answer}"
    else:
        final = f"Answer: {answer}"
    need = f"The question asks: {question['question']}"
    return f"{STEPWISE} {evidence(question['record'], rng)} Step 2: {need} Step 3: {final}"


def check_question(record: dict, rng: random.Random) -> dict | None:
    """A yes/no check of one shown fact, true or false with equal odds (HallusionBench's kinds of
    question, asked of the pool's own images: a cell's colour, or which of two card values is larger)."""
    if record["kind"] == "card":
        (a, va), (b, vb) = rng.sample(card_facts(record["card"]), 2)
        what = "chart" if "chart" in record["card"] else "table"
        question, truth = f"According to the {what}, is the value of {a} greater than the value of {b}?", va > vb
    elif record["objects"]:
        obj = rng.choice(record["objects"])
        colour = obj["colour"] if rng.random() < 0.5 else rng.choice([c for c in COLOURS if c != obj["colour"]])
        question, truth = f"Is the object in the {obj['cell']} of the image {colour}?", colour == obj["colour"]
    else:
        return None
    return {
        "question": question,
        "answer": "Yes" if truth else "No",
        "choices": None,
        "metric": "hallusion",
        "benchmark": "check",
        "category": "check",
        "difficulty": 3,
        "record": record,
    }


def _questions(record: dict, statistics: dict, seed: int, rng: random.Random) -> list[dict]:
    asked = general_questions(record, seed) + ocr_questions(record, seed) + math_questions(record, seed)
    asked += pope_questions(record, statistics, seed, per_side=1)
    return asked + [q for q in (check_question(record, rng),) if q is not None]


def _row(sample_id: str, image, turns, questions: list[dict], record: dict | None, group: str) -> dict:
    row = conversation_row(sample_id, image, turns)
    row["format_group"] = group
    row["difficulty"] = [q["difficulty"] for q in questions] or [1]
    row["facts"] = facts(record) if record is not None else []
    return row


def knowledge_rows(record: dict, image: str, questions: list[dict], rng: random.Random) -> list[dict]:
    """Single turns with short answers to single-hop questions (difficulty 1), a brief caption,
    and text-only facts about shapes."""
    rows = []
    for n, q in enumerate(q for q in questions if q["difficulty"] == 1 and not q["choices"]):
        rows.append(
            _row(f"{record['id']}-k{n}", image, [(eval_prompt(q), short_answer(q))], [q], record, format_group(q))
        )
    caption = weak_caption(record, rng) if record["kind"] == "scene" else f"a card titled {record['card']['title']}"
    rows.append(_row(f"{record['id']}-kc", image, [(BRIEF_PROMPT, caption)], [], record, "captioning"))
    polygons = [o["shape"] for o in record["objects"] if o["shape"] in SIDES]
    if polygons and rng.random() < 0.3:
        shape = rng.choice(polygons)
        question = {"difficulty": 1}
        turn = (f"How many sides does a {shape} have?\n{VQA_SUFFIX}", str(SIDES[shape]))
        rows.append(_row(f"{record['id']}-kt", [], [turn], [question], None, "counting/maths"))
    return rows


def instruction_rows(record: dict, image: str, questions: list[dict], rng: random.Random) -> list[dict]:
    """Multi-turn conversations over the harder questions of each format group, in varied prompt
    forms, and a detailed caption."""
    by_group = defaultdict(list)
    for q in questions:
        if q["difficulty"] >= 2 or q["choices"]:
            by_group[format_group(q)].append(q)
    rows = []
    for group, asked in sorted(by_group.items()):
        asked = asked[:3]
        turns = [(eval_prompt(q) if rng.random() < 0.7 else q["question"], short_answer(q)) for q in asked]
        slug = group.split()[0].replace("/", "-")
        rows.append(_row(f"{record['id']}-i-{slug}", image, turns, asked, record, group))
    detailed = teacher_caption(record, rng) if record["kind"] == "scene" else evidence(record, rng)
    rows.append(_row(f"{record['id']}-ic", image, [(DETAILED_PROMPT, detailed)], [], record, "captioning"))
    return rows


def preference_rows(record: dict, image: str, questions: list[dict], rng: random.Random) -> list[dict]:
    """The hardest questions answered in steps (what is seen, what is asked, the answer) when the
    prompt asks for steps; half of them are asked in the evaluation's short form instead and keep
    a short answer, so the answer's form follows the prompt's."""
    rows = []
    for n, q in enumerate(q for q in questions if q["difficulty"] >= 2):
        if rng.random() < 1 / 2:
            turn = (eval_prompt(q), short_answer(q))
        else:
            turn = (f"{q['question']}{_options(q)}\n{REASON_PROMPT}", reasoned_answer(q, rng))
        rows.append(_row(f"{record['id']}-p{n}", image, [turn], [q], record, format_group(q)))
    return rows


def _options(question: dict) -> str:
    return "".join(f"\n{letter}. {option}" for letter, option in (question["choices"] or {}).items())


WRITERS = {"knowledge": knowledge_rows, "instruction": instruction_rows, "preference": preference_rows}


def write_world_sft(pool_dir: str | os.PathLike, out_dir: str | os.PathLike, *, seed: int) -> dict[str, Path]:
    """Write the three tiers over disjoint thirds of the pool's images; returns {tier: meta file}.

    Each tier's meta file names one source per format group it holds (`<tier>-<group>.jsonl`).
    """
    pool_dir, out_dir = Path(pool_dir), Path(out_dir)
    items = [item for item in read_curated(pool_dir) if isinstance(item.extra.get("record"), dict)]
    if not items:
        raise ValueError(f"{pool_dir} holds no world records to write SFT data from")
    random.Random(f"{seed}/sft-tiers").shuffle(items)
    statistics = pope_statistics([item.extra["record"] for item in items])
    metas = {}
    for index, tier in enumerate(TIERS):
        rows = defaultdict(list)
        for item in items[index :: len(TIERS)]:
            record = item.extra["record"]
            image = os.path.relpath(item.path, pool_dir)
            rng = caption_rng(seed, item.id, f"sft-{tier}")
            for row in WRITERS[tier](record, image, _questions(record, statistics, seed, rng), rng):
                rows[row["format_group"]].append(row)
        entries = {}
        for group in FORMAT_GROUPS:
            if rows[group]:
                path = out_dir / tier / f"{group.replace('/', '-').replace(' ', '-')}.jsonl"
                entries[f"{tier}/{group}"] = {
                    "root": pool_dir,
                    "annotation": path,
                    "length": write_source(rows[group], path),
                }
        metas[tier] = write_meta(out_dir / f"{tier}.meta.json", entries)
    return metas
