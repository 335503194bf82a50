"""World benchmarks in SAIL-VL's four groups, in VLMEvalKit's row form, scored by its rules.

`WORLD_BENCHMARKS` lists the miniature suite: each benchmark draws records from the world's
*test* split only (`check_no_train_overlap` proves it against a train sample), asks the
questions of `sail.world.questions`, and is scored with the VLMEvalKit metric of the real
benchmark it stands in for.  `build_benchmark` gives rows that `write_tsv`/`read_tsv`
round-trip; `score_benchmark` turns raw model outputs into a headline score (x100) and details.

Real VLMEvalKit TSVs (read with `read_tsv`) are scored the same way: `benchmark_spec` maps the
usual VLMEvalKit dataset names (MMBench..., TextVQA..., ChartQA..., POPE, HallusionBench, ...)
to their metric, group and tile limit.  The group map for real benchmarks is *assumed* (the
paper does not list its 18 benchmarks by group).

Prompts follow VLMEvalKit's SAIL-VL / InternVL prompt builders: multiple choice gets the
question, "A. ..." lines and "Answer with the option's letter from the given choices
directly."; short-answer VQA gets "Answer the question using a single word or phrase."; yes/no
sets get "Please answer yes or no. Answer the question using a single word or phrase."
"""

from __future__ import annotations

import ast
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sail.eval.metrics import (
    anls,
    extract_choice,
    hallusionbench_metrics,
    ocrbench_score,
    pope_metrics,
    relaxed_accuracy,
    vqa_accuracy,
    yes_no,
)
from sail.world.questions import (
    GROUPS,
    general_questions,
    hallusion_set,
    math_questions,
    ocr_questions,
    pope_questions,
    pope_statistics,
)
from sail.world.render import render
from sail.world.splits import content_signature, sample_records

__all__ = [
    "GROUPS",
    "WORLD_BENCHMARKS",
    "BenchmarkSpec",
    "benchmark_spec",
    "build_benchmark",
    "build_prompt",
    "check_no_train_overlap",
    "gold_text",
    "question_items",
    "score_benchmark",
]

MCQ_SUFFIX = "Answer with the option's letter from the given choices directly."
VQA_SUFFIX = "Answer the question using a single word or phrase."
YES_NO_SUFFIX = "Please answer yes or no. Answer the question using a single word or phrase."


@dataclass(frozen=True)
class BenchmarkSpec:
    """What a benchmark is scored with and how it is prompted.

    metric: "vqa_accuracy" | "anls" | "relaxed_accuracy" | "ocrbench" | "choice" | "pope" |
    "hallusion"; max_tiles: the dynamic-tiling limit used when generating for it; stands_for:
    the real benchmark it imitates; card_fraction: the world records it draws (0 scenes, 1
    cards); questions: the generator used (world benchmarks only).
    """

    name: str
    group: str
    metric: str
    max_tiles: int
    stands_for: str = ""
    card_fraction: float = 0.0
    questions: str = ""


WORLD_BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        BenchmarkSpec("WorldVQA", "General VQA", "vqa_accuracy", 6, "VQAv2 / GQA", 0.0, "general"),
        BenchmarkSpec("WorldRelationMCQ", "General VQA", "choice", 6, "MMBench / MMStar", 0.0, "general"),
        BenchmarkSpec("WorldTextVQA", "OCR VQA", "vqa_accuracy", 6, "TextVQA", 0.0, "ocr"),
        BenchmarkSpec("WorldDocVQA", "OCR VQA", "anls", 18, "DocVQA", 1.0, "ocr"),
        BenchmarkSpec("WorldChartQA", "OCR VQA", "relaxed_accuracy", 12, "ChartQA", 1.0, "ocr"),
        BenchmarkSpec("WorldCountVQA", "Math & Knowledge", "vqa_accuracy", 6, "counting VQA", 0.0, "math"),
        BenchmarkSpec("WorldMathMCQ", "Math & Knowledge", "choice", 12, "MathVista (multi-choice)", 0.5, "math"),
        BenchmarkSpec("WorldPOPE", "Hallucination", "pope", 6, "POPE", 0.0, "pope"),
        BenchmarkSpec("WorldHallusion", "Hallucination", "hallusion", 6, "HallusionBench", 0.5, "hallusion"),
    )
}

# Real VLMEvalKit dataset names (prefix match, case-insensitive) -> (group, metric, max_tiles).
# Tile limits follow VLMEvalKit's sail_vl.py; the group map is assumed.
_REAL = (
    ("MMBench", "General VQA", "choice", 6),
    ("MMStar", "General VQA", "choice", 6),
    ("SEEDBench", "General VQA", "choice", 6),
    ("RealWorldQA", "General VQA", "choice", 6),
    ("VQAv2", "General VQA", "vqa_accuracy", 6),
    ("GQA", "General VQA", "vqa_accuracy", 6),
    ("TextVQA", "OCR VQA", "vqa_accuracy", 6),
    ("DocVQA", "OCR VQA", "anls", 18),
    ("InfoVQA", "OCR VQA", "anls", 24),
    ("ChartQA", "OCR VQA", "relaxed_accuracy", 12),
    ("OCRBench", "OCR VQA", "ocrbench", 24),
    ("AI2D", "Math & Knowledge", "choice", 6),
    ("ScienceQA", "Math & Knowledge", "choice", 6),
    ("MMMU", "Math & Knowledge", "choice", 12),
    ("POPE", "Hallucination", "pope", 6),
    ("HallusionBench", "Hallucination", "hallusion", 6),
)


def benchmark_spec(name: str, rows: Sequence[Mapping] | None = None) -> BenchmarkSpec:
    """The spec of a world benchmark, of a known VLMEvalKit dataset name, or (with `rows`)
    a guess for an unknown TSV: multiple choice when its rows carry options, else VQA."""
    if name in WORLD_BENCHMARKS:
        return WORLD_BENCHMARKS[name]
    for prefix, group, metric, tiles in _REAL:
        if name.lower().startswith(prefix.lower()):
            return BenchmarkSpec(name, group, metric, tiles, prefix)
    if rows is not None:
        mcq = any(row.get("choices") for row in rows)
        return BenchmarkSpec(
            name, "General VQA", "choice" if mcq else "vqa_accuracy", 6, "unknown (guessed from its columns)"
        )
    raise KeyError(
        f"unknown benchmark {name!r}: not a world benchmark ({sorted(WORLD_BENCHMARKS)})"
        " nor a known VLMEvalKit dataset name; pass its rows to guess a metric"
    )


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------


def _questions(spec: BenchmarkSpec, records: list[dict], seed: int) -> Iterable[dict]:
    if spec.questions == "pope":
        statistics = pope_statistics(records)
        for record in records:
            yield from pope_questions(record, statistics, seed)
    elif spec.questions == "hallusion":
        for set_id, record in enumerate(records):
            yield from hallusion_set(record, set_id, seed)
    else:
        write = {"general": general_questions, "ocr": ocr_questions, "math": math_questions}
        for record in records:
            yield from write[spec.questions](record, seed)


def _signature_hash(record: dict) -> str:
    return hashlib.blake2b(content_signature(record).encode(), digest_size=8).hexdigest()


def build_benchmark(name: str, n: int, seed: int = 0, split: str = "test") -> list[dict]:
    """The first `n` questions of world benchmark `name` (records from `split` drawn with `seed`:
    "validation" is the dev split a recipe is chosen on, "test" what is reported), as VLMEvalKit
    rows: index, image (PIL), question, choices, answer, category, plus l2-category
    (HallusionBench style), difficulty, record_id and signature (a hash of the record's content
    signature).  Multi-gold answers are stored as Python list literals, the way VLMEvalKit's TSVs
    store them.  POPE and HallusionBench-style benchmarks end on a whole image / set, so they may
    hold slightly fewer than `n` rows."""
    spec = WORLD_BENCHMARKS[name]
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    pool = max(8, n)  # records drawn; more are drawn if they do not give n questions
    while True:
        records = sample_records(split, pool, seed=seed, card_fraction=spec.card_fraction)
        questions = [q for q in _questions(spec, records, seed) if q["benchmark"] == name]
        if len(questions) >= n or pool > 50 * n:
            break
        pool *= 2
    if spec.metric in ("pope", "hallusion"):
        # whole units: POPE keeps every question of an image, HallusionBench every set
        def key(question: dict) -> str:
            return question["record"]["id"].removesuffix("-edit")

        kept, units = [], []
        for q in questions:
            if key(q) not in units:
                if len(kept) >= n:
                    break
                units.append(key(q))
            kept.append(q)
        questions = kept
    else:
        questions = questions[:n]
    rows = []
    for i, q in enumerate(questions):
        answer = q["answer"]
        row = {
            "index": q.get("index", i),
            "image": render(q["record"]),
            "question": q["question"],
            "choices": q["choices"] or {},
            "answer": str(answer) if isinstance(answer, list) else answer,
            "category": q["category"],
        }
        if "l2-category" in q:
            row["l2-category"] = q["l2-category"]
        row.update(difficulty=q["difficulty"], record_id=q["record"]["id"], signature=_signature_hash(q["record"]))
        rows.append(row)
    return rows


def check_no_train_overlap(
    rows_by_benchmark: Mapping[str, Sequence[Mapping]], train_records: Sequence[dict]
) -> dict[str, int]:
    """Raise ValueError if any benchmark row's record shares an id or a content signature
    with `train_records`; return the number of distinct records checked per benchmark."""
    train_ids = {r["id"] for r in train_records}
    train_signatures = {_signature_hash(r) for r in train_records}
    checked = {}
    for name, rows in rows_by_benchmark.items():
        clashes = [
            row["index"]
            for row in rows
            if row.get("record_id") in train_ids or row.get("signature") in train_signatures
        ]
        if clashes:
            raise ValueError(f"{name}: rows {clashes[:5]} show records of the train sample")
        checked[name] = len({row.get("signature") for row in rows})
    return checked


def benchmark_records(name: str, rows: Sequence[Mapping], seed: int = 0) -> list[dict]:
    """The (source) records behind a world benchmark's rows, to check their splits."""
    spec = WORLD_BENCHMARKS[name]
    ids = {str(row["record_id"]).removesuffix("-edit") for row in rows}
    count = 1 + max(int(i.split("-")[-1]) for i in ids)
    records = sample_records("test", count, seed=seed, card_fraction=spec.card_fraction)
    return [r for r in records if r["id"] in ids]


# ---------------------------------------------------------------------------------------------
# Prompting and scoring
# ---------------------------------------------------------------------------------------------


def build_prompt(row: Mapping, spec: BenchmarkSpec) -> str:
    """The text prompt for one row, in VLMEvalKit's SAIL-VL / InternVL style."""
    question = str(row["question"])
    hint = row.get("hint")
    if spec.metric == "choice":
        if hint:
            question = f"{hint}\n{question}"
        for letter, text in (row.get("choices") or {}).items():
            question += f"\n{letter}. {text}"
        return f"{question}\n{MCQ_SUFFIX}"
    if spec.metric in ("pope", "hallusion"):
        return f"{question} {YES_NO_SUFFIX}"
    return f"{question}\n{VQA_SUFFIX}"


_OPEN = {"vqa_accuracy": vqa_accuracy, "anls": anls, "relaxed_accuracy": relaxed_accuracy}


def score_benchmark(name: str, rows: Sequence[Mapping], predictions: Sequence[str]) -> dict:
    """Score raw model outputs against rows.  Returns {"benchmark", "group", "metric", "n",
    "score" (the headline, x100), "details"}.

    Headlines: the mean item score for VQA accuracy / ANLS / relaxed accuracy / OCRBench and
    multiple choice (an answer whose letter cannot be extracted is wrong); POPE: the F1 of
    "Overall"; HallusionBench: the mean of Overall aAcc, fAcc and qAcc (as OpenCompass reports
    it).  Details hold per-category means (or the metric's own splits)."""
    if len(rows) != len(predictions):
        raise ValueError(f"{name}: {len(rows)} rows but {len(predictions)} predictions")
    if not rows:
        raise ValueError(f"{name}: nothing to score")
    spec = benchmark_spec(name, rows)
    out = {"benchmark": name, "group": spec.group, "metric": spec.metric, "n": len(rows)}
    if spec.metric == "pope":
        details = pope_metrics([r["answer"] for r in rows], list(predictions), [r.get("category") for r in rows])
        return {**out, "score": details["Overall"]["f1"], "details": details}
    if spec.metric == "hallusion":
        details = hallusionbench_metrics([{**row, "prediction": p} for row, p in zip(rows, predictions)])
        overall = details["Overall"]
        return {**out, "score": (overall["aAcc"] + overall["fAcc"] + overall["qAcc"]) / 3, "details": details}
    items = []
    for row, prediction in zip(rows, predictions):
        if spec.metric == "choice":
            choices = row.get("choices") or {}
            items.append(float(extract_choice(prediction, choices) == str(row["answer"]).strip()))
        elif spec.metric == "ocrbench":
            items.append(ocrbench_score(prediction, row["answer"], row.get("category")))
        else:
            pred = str(prediction)
            if spec.stands_for in ("ChartQA",) or name.lower().startswith("chartqa"):
                pred = pred.rstrip(".")  # VLMEvalKit's sail_vl strips a trailing period here
            items.append(_OPEN[spec.metric](pred, row["answer"]))
    by_category: dict[str, list[float]] = defaultdict(list)
    for row, value in zip(rows, items):
        by_category[str(row.get("category"))].append(value)
    details = {"per_category": {c: 100 * sum(v) / len(v) for c, v in sorted(by_category.items())}, "items": items}
    return {**out, "score": 100 * sum(items) / len(items), "details": details}


def question_items(result: Mapping, rows: Sequence[Mapping], predictions: Sequence[str]) -> list[float]:
    """Every question's own score in [0, 1], in row order, from `score_benchmark`'s `result` for
    `predictions`: the item score (VQA accuracy, ANLS, relaxed accuracy, OCRBench, the option
    letter) or, on the yes/no sets, whether the parsed yes/no is right. POPE's F1 and
    HallusionBench's aAcc/fAcc/qAcc are not means over questions; these are, so they can be
    bootstrapped and paired question by question."""
    if "items" in result["details"]:
        return list(result["details"]["items"])
    return [float(yes_no(p) == str(row["answer"]).strip().lower()) for p, row in zip(predictions, rows)]


def gold_text(answer) -> str:
    """A gold answer as a reader reads it (and as a model is taught to say it): a list (or a
    string holding a Python list literal, as VLMEvalKit's TSVs store several answers) becomes its
    distinct answers joined by " / "."""
    items = answer
    if isinstance(answer, str):
        try:
            items = ast.literal_eval(answer)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            items = answer
    if not isinstance(items, (list, tuple)):
        return str(answer).strip()
    return " / ".join(dict.fromkeys(str(item).strip() for item in items))
