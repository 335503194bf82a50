"""Held-out scores of a pretrained checkpoint, in the paper's Table-2 columns, each beside the
level a model that ignores its images reaches with the same answers.

Caption: colour–shape pair F1 of greedy captions against the records of world *test* images.
OCR: ANLS of what the answers read, on test images that show text: each scene text read by its
cell (the quoted text against the word), each card transcribed (its title and each "label value"
fact against the prediction's, place by place, missing places scoring 0). The answers' fixed
wording (`the text "…"`, `title`, `;`) is left out, or a model reading nothing would earn credit.
Overall: the mean of the two, as the paper averages its columns. Test images come from the
world's test split, which no pool image belongs to.

Blind levels ("Caption blind", "OCR blind", "Overall blind"; "VQA blind" for the SFT probe): the
same generated answers scored against another image's gold (the next record's, for a question of
the same kind), or the best single one of them given to every question of its kind, whichever is
higher. A model that answers without looking scores its own score at this level in expectation,
so a comparison of two runs both at or below it says nothing about what they saw. No extra
generation is needed.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TypeVar

import numpy as np
from transformers import ProcessorMixin

from sail.caption import CAPTION_PROMPT
from sail.caption.quality import BLIND_CANDIDATES, blind_pair_f1
from sail.eval.metrics import anls, gold_list, normalize_answer, vqa_accuracy
from sail.eval.uncertainty import difference_interval
from sail.model import conversation, generate_answers
from sail.pretrain.data import open_questions
from sail.world import render, sample_records
from sail.world.ocr import ocr_pairs

Gold = TypeVar("Gold")


def test_records(n_caption: int, n_ocr: int, seed: int, card_fraction: float = 0.2) -> tuple[list[dict], list[dict]]:
    """`n_caption` test records to caption and `n_ocr` test records that show text, disjoint."""
    drawn = sample_records("test", 4 * (n_caption + n_ocr), seed, card_fraction=card_fraction)
    with_text = [r for r in drawn if ocr_pairs(r)]
    if len(with_text) < n_ocr:
        raise ValueError(f"only {len(with_text)} of {len(drawn)} test records show text; ask for fewer OCR images")
    ocr = with_text[:n_ocr]
    chosen = {r["id"] for r in ocr}
    return [r for r in drawn if r["id"] not in chosen][:n_caption], ocr


def ocr_questions(records: Sequence[dict]) -> list[tuple[dict, str, str]]:
    """(record, prompt, gold) for every text the records show, record by record."""
    return [(r, prompt, answer) for r in records for prompt, answer in ocr_pairs(r)]


def evaluate(
    model, processor: ProcessorMixin, caption_records: Sequence[dict], ocr_records: Sequence[dict], batch_size: int = 64
) -> dict[str, float]:
    """Caption, OCR and Overall (`table2_scores`) of greedy answers on held-out images, with their blind levels."""
    captions = generate_answers(
        model,
        processor,
        [conversation(CAPTION_PROMPT)] * len(caption_records),
        [[render(r)] for r in caption_records],
        max_new_tokens=96,
        batch_size=batch_size,
    )
    questions = ocr_questions(ocr_records)
    answers = generate_answers(
        model,
        processor,
        [conversation(prompt) for _, prompt, _ in questions],
        [[render(r)] for r, _, _ in questions],
        max_new_tokens=48,
        batch_size=batch_size,
    )
    return table2_scores(captions, caption_records, answers, ocr_records)


def table2_scores(
    captions: Sequence[str], caption_records: Sequence[dict], ocr_answers: Sequence[str], ocr_records: Sequence[dict]
) -> dict[str, float]:
    """Caption (pair F1), OCR (mean ANLS over every OCR question) and Overall, all in [0, 100], and
    the blind level of each: "Caption blind" from `blind_pair_f1`, "OCR blind" from `blind_scores`
    (an OCR question's kind is its record's: a card is transcribed, a scene's text looked up),
    "Overall blind" their mean. `ocr_answers` follow `ocr_questions(ocr_records)`."""
    questions = ocr_questions(ocr_records)
    if len(ocr_answers) != len(questions):
        raise ValueError(f"{len(ocr_answers)} OCR answers for {len(questions)} OCR questions")
    golds = [gold for _, _, gold in questions]
    keys = [(r["id"], r["kind"]) for r, _, _ in questions]
    caption = blind_pair_f1(captions, caption_records)
    ocr = 100 * float(np.mean([ocr_score(a, gold) for a, gold in zip(ocr_answers, golds)]))
    ocr_blind = 100 * float(
        np.mean(blind_scores(ocr_answers, golds, keys, ocr_score, commonest_by_kind(ocr_answers, keys)))
    )
    own, blind = 100 * caption["own"], 100 * caption["blind"]
    return {
        "Overall": (own + ocr) / 2,
        "Caption": own,
        "OCR": ocr,
        "Overall blind": (blind + ocr_blind) / 2,
        "Caption blind": blind,
        "OCR blind": ocr_blind,
    }


def next_record_golds(keys: Sequence[tuple[Hashable, Hashable]], golds: Sequence[Gold]) -> list[Gold]:
    """Each question's gold swapped for another image's: `keys` are (record, kind) per question;
    question i, the p-th of its kind on its record, gets the gold of the p-th (cycling) question
    of that kind on the next record that has one (records in order, the last followed by the
    first). A kind asked of one record only keeps that record's golds."""
    by_kind: dict[Hashable, dict[Hashable, list[int]]] = {}
    for index, (record, kind) in enumerate(keys):
        by_kind.setdefault(kind, {}).setdefault(record, []).append(index)
    swapped = list(golds)
    for records in by_kind.values():
        groups = list(records.values())
        for here, there in zip(groups, groups[1:] + groups[:1]):
            for place, index in enumerate(here):
                swapped[index] = golds[there[place % len(there)]]
    return swapped


def commonest_by_kind(
    answers: Sequence[str], keys: Sequence[tuple[Hashable, Hashable]], most: int = BLIND_CANDIDATES
) -> dict[Hashable, list[str]]:
    """The `most` commonest distinct answers given to each kind of question: the constant answers
    a blind model might have settled on."""
    by_kind: dict[Hashable, Counter] = {}
    for answer, (_, kind) in zip(answers, keys):
        by_kind.setdefault(kind, Counter())[answer] += 1
    return {kind: [answer for answer, _ in counts.most_common(most)] for kind, counts in by_kind.items()}


def blind_scores(
    answers: Sequence[str],
    golds: Sequence[Gold],
    keys: Sequence[tuple[Hashable, Hashable]],
    score: Callable[[str, Gold], float],
    candidates: Mapping[Hashable, Sequence[str]],
) -> list[float]:
    """Per question, what a model blind to the image earns: either each answer against another
    image's gold (`next_record_golds`), or per kind the one candidate answer whose total over that
    kind's questions is highest, given to all of them — whichever has the higher mean."""
    rotated = [score(a, gold) for a, gold in zip(answers, next_record_golds(keys, golds))]
    kinds = [kind for _, kind in keys]
    constant = [0.0] * len(answers)
    for kind, tried in candidates.items():
        asked = [i for i, k in enumerate(kinds) if k == kind]
        best = max(([score(answer, golds[i]) for i in asked] for answer in tried), key=sum)
        for i, value in zip(asked, best):
            constant[i] = value
    return max(rotated, constant, key=lambda values: float(np.mean(values)))


def qa_accuracy(
    model, processor: ProcessorMixin, records: Sequence[dict], seed: int, batch_size: int = 64
) -> dict[str, float]:
    """`qa_scores` of greedy answers to the open-ended general questions of held-out records."""
    questions = [(r, q) for r in records for q in open_questions(r, seed)]
    answers = generate_answers(
        model,
        processor,
        [conversation(q["question"]) for _, q in questions],
        [[render(r)] for r, _ in questions],
        max_new_tokens=8,
        batch_size=batch_size,
    )
    return qa_scores(answers, questions)


def qa_scores(answers: Sequence[str], questions: Sequence[tuple[dict, dict]]) -> dict[str, float]:
    """VQA accuracy (0–100) of `answers` to (record, question) pairs, and whether it beats blindness.

    "VQA blind" is `blind_scores` with the question's category as its kind and, as constant
    answers, the model's own commonest answers and every gold answer of the category (a model
    that says "yes" to every existence question is credited with that); "VQA low" / "VQA high"
    are a paired bootstrap interval of the per-question score minus the blind level's;
    "VQA distinct answers" counts the different answers (normalised) the model gave."""
    if len(answers) != len(questions):
        raise ValueError(f"{len(answers)} answers for {len(questions)} questions")
    golds = [q["answer"] for _, q in questions]
    keys = [(r["id"], q["category"]) for r, q in questions]
    candidates = commonest_by_kind(answers, keys)
    for gold, (_, kind) in zip(golds, keys):
        candidates[kind] += [answer for answer in dict.fromkeys(gold_list(gold)) if answer not in candidates[kind]]
    own = [100 * vqa_accuracy(a, gold) for a, gold in zip(answers, golds)]
    blind = [100 * value for value in blind_scores(answers, golds, keys, vqa_accuracy, candidates)]
    gap = difference_interval(own, blind)
    return {
        "VQA": float(np.mean(own)),
        "VQA blind": float(np.mean(blind)),
        "VQA low": gap.low,
        "VQA high": gap.high,
        "VQA distinct answers": len({normalize_answer(a) for a in answers}),
    }


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
