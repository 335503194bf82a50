"""Held-out scores of a pretrained checkpoint, in the paper's Table-2 columns.

Caption: colour–shape pair F1 of greedy captions against the records of world *test* images.
OCR: ANLS of what the answers read, on test images that show text: each scene text read by its
cell (the quoted text against the word), each card transcribed (its title and each "label value"
fact against the prediction's, place by place, missing places scoring 0). The answers' fixed
wording (`the text "…"`, `title`, `;`) is left out, or a model reading nothing would earn credit.
Overall: the mean of the two, as the paper averages its columns. Test images come from the
world's test split, which no pool image belongs to.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
from transformers import ProcessorMixin

from sail.caption import CAPTION_PROMPT
from sail.eval.metrics import anls, vqa_accuracy
from sail.model import conversation, generate_answers
from sail.pretrain.data import open_questions
from sail.world import render, sample_records, score_captions
from sail.world.ocr import ocr_pairs


def test_records(n_caption: int, n_ocr: int, seed: int, card_fraction: float = 0.2) -> tuple[list[dict], list[dict]]:
    """`n_caption` test records to caption and `n_ocr` test records that show text, disjoint."""
    drawn = sample_records("test", 4 * (n_caption + n_ocr), seed, card_fraction=card_fraction)
    with_text = [r for r in drawn if ocr_pairs(r)]
    if len(with_text) < n_ocr:
        raise ValueError(f"only {len(with_text)} of {len(drawn)} test records show text; ask for fewer OCR images")
    ocr = with_text[:n_ocr]
    chosen = {r["id"] for r in ocr}
    return [r for r in drawn if r["id"] not in chosen][:n_caption], ocr


def evaluate(
    model, processor: ProcessorMixin, caption_records: Sequence[dict], ocr_records: Sequence[dict], batch_size: int = 64
) -> dict[str, float]:
    """Caption (pair F1), OCR (mean ANLS over every OCR question) and Overall, all in [0, 100]."""
    captions = generate_answers(
        model,
        processor,
        [conversation(CAPTION_PROMPT)] * len(caption_records),
        [[render(r)] for r in caption_records],
        max_new_tokens=96,
        batch_size=batch_size,
    )
    questions = [(r, prompt, answer) for r in ocr_records for prompt, answer in ocr_pairs(r)]
    answers = generate_answers(
        model,
        processor,
        [conversation(prompt) for _, prompt, _ in questions],
        [[render(r)] for r, _, _ in questions],
        max_new_tokens=48,
        batch_size=batch_size,
    )
    caption = 100 * score_captions(captions, list(caption_records))["pair_f1"]
    ocr = 100 * float(np.mean([ocr_score(a, gold) for a, (_, _, gold) in zip(answers, questions)]))
    return {"Overall": (caption + ocr) / 2, "Caption": caption, "OCR": ocr}


def qa_accuracy(model, processor: ProcessorMixin, records: Sequence[dict], seed: int, batch_size: int = 64) -> float:
    """VQA accuracy (0–100) on the open-ended general questions of held-out records."""
    questions = [(r, q) for r in records for q in open_questions(r, seed)]
    answers = generate_answers(
        model,
        processor,
        [conversation(q["question"]) for _, q in questions],
        [[render(r)] for r, _ in questions],
        max_new_tokens=8,
        batch_size=batch_size,
    )
    return 100 * float(np.mean([vqa_accuracy(a, q["answer"]) for a, (_, q) in zip(answers, questions)]))


def _read_elements(answer: str) -> list[str]:
    """What an OCR answer reads: the quoted text of a lookup, else a transcription's elements."""
    if quoted := re.fullmatch(r'\s*the text "(.*)"\s*', answer):
        return [quoted[1]]
    elements = [part.strip() for part in answer.split(";")]
    if elements and elements[0].startswith("title "):
        elements[0] = elements[0].removeprefix("title ")
    return elements


def ocr_score(prediction: str, gold: str) -> float:
    """Mean ANLS over the gold answer's elements, each against the prediction's element in its place."""
    wanted, read = _read_elements(gold), _read_elements(prediction)
    places = max(len(wanted), len(read))
    return sum(anls(read[i], [wanted[i]]) for i in range(min(len(wanted), len(read)))) / places


def fit_log_linear(sizes: Sequence[float], scores: Sequence[float]) -> dict[str, float]:
    """Least-squares score = a + b·ln(D), with R² (1 - residual / total sum of squares)."""
    return _fit_line(sizes, scores, np.log)


def fit_linear(sizes: Sequence[float], scores: Sequence[float]) -> dict[str, float]:
    """Least-squares score = a + b·D, with R²: what a near-linear scaling curve follows."""
    return _fit_line(sizes, scores, lambda x: x)


def _fit_line(sizes: Sequence[float], scores: Sequence[float], axis) -> dict[str, float]:
    if len(sizes) < 3 or len(sizes) != len(scores):
        raise ValueError(f"a fit needs at least 3 (size, score) pairs, got {len(sizes)} sizes, {len(scores)} scores")
    x, y = axis(np.asarray(sizes, dtype=float)), np.asarray(scores, dtype=float)
    b, a = np.polyfit(x, y, 1)
    total = float(((y - y.mean()) ** 2).sum())
    residual = float(((y - (a + b * x)) ** 2).sum())
    return {"a": float(a), "b": float(b), "r2": 1 - residual / total if total else math.nan}
