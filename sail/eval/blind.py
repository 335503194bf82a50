"""What a model that never looks at the image scores, and whether a model's answers beat it.

A score means something only against what the same metric gives a model that ignores the image.
That level is not "a random letter": VLMEvalKit's metrics reward constants, and some reward
degenerate strings. ANLS divides the edit distance by the *raw* lengths, so an answer padded with
spaces ("N" and fourteen spaces and an "a") scores about 0.8 against a gold of "80"; POPE's F1
gives always "Yes" 66.7 on a balanced set; a counting set rewards its commonest count. So the
blind level of a benchmark is the best of

- one answer given to every question, tried over every distinct gold answer, the option letters,
  "Yes" and "No", the empty string, a string of spaces as long as the longest answer in play, and
  the answers the models under test actually gave (a model's favourite string is a blind
  strategy: it earns the same whatever the image);
- guessing: a uniformly drawn option letter, a fair coin per yes/no question.

A model is above chance on a benchmark only when two paired intervals exclude 0: its per-question
score minus the best constant's (`versus_blind`), and its score with each question's own image
minus its score with another question's image (`swapped_images`). The first rules out a metric
that rewards a favourite answer; the second rules out answers that come from the question alone.
`image_reliance` asks the second question of the gold answers' loss, which moves long before
greedy answers score.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sail.data.mixture import next_different
from sail.eval.benchmarks import benchmark_spec, build_prompt, gold_text, question_items, score_benchmark
from sail.eval.metrics import gold_list
from sail.eval.uncertainty import Interval, difference_interval
from sail.model.chat import IGNORE_INDEX, conversation, encode_conversations

__all__ = [
    "GUESSING",
    "BlindLevel",
    "above_chance",
    "answer_losses",
    "blind_levels",
    "blind_overall",
    "blind_question_score",
    "exploiting_answers",
    "image_reliance",
    "swapped_images",
    "versus_blind",
]

GUESSING = "guessing"
MODEL_ANSWERS_TRIED = 64  # most frequent first: enough for any favourite, cheap to score
YES_NO_METRICS = ("pope", "hallusion")


@dataclass(frozen=True)
class BlindLevel:
    """What a model that never looks at the image scores on one benchmark.

    score: the headline score (x100, by the benchmark's own metric) of the best blind strategy;
    answer: the constant answer that earns it, or "guessing" (random letter, fair coin).
    question_score: x100, the best constant answer's mean per-question score (the units of
    `sail.eval.report.question_scores`); question_answer: that constant; question_items: its
    per-question scores in [0, 1], in row order, to pair with a model's question by question.
    The two may differ: POPE's F1 prefers always "Yes", its per-question accuracy the majority.
    """

    score: float
    answer: str
    question_score: float
    question_answer: str
    question_items: tuple[float, ...]


def _constants(rows: Sequence[Mapping], model_answers: Iterable[str]) -> list[str]:
    """The answers worth giving to every question, distinct, the plain ones first (so a tie goes
    to a gold answer or a letter rather than to a model's odd string)."""
    golds = [gold for row in rows for gold in gold_list(row["answer"])]
    letters = sorted({letter for row in rows for letter in (row.get("choices") or {})})
    favourites = [answer for answer, _ in Counter(map(str, model_answers)).most_common(MODEL_ANSWERS_TRIED)]
    longest = max(len(text) for text in golds + favourites)
    degenerate = ["", " " * longest]
    return list(dict.fromkeys([*golds, *letters, "Yes", "No", *degenerate, *favourites]))


def _guessing_score(name: str, rows: Sequence[Mapping], metric: str, rng: random.Random, draws: int) -> float | None:
    """The expected headline of guessing, where answers are closed: a uniform letter scores the
    mean of 1/options; a fair coin is scored by the benchmark's own metric over `draws` draws."""
    if metric == "choice" and all(row.get("choices") for row in rows):
        return 100 * sum(1 / len(row["choices"]) for row in rows) / len(rows)
    if metric in YES_NO_METRICS:
        scores = [score_benchmark(name, rows, [rng.choice(("Yes", "No")) for _ in rows])["score"] for _ in range(draws)]
        return sum(scores) / len(scores)
    return None


def blind_levels(
    benchmarks: Mapping[str, Sequence[Mapping]],
    answers: Mapping[str, Iterable[str]] | None = None,
    *,
    seed: int = 0,
    draws: int = 200,
) -> dict[str, BlindLevel]:
    """Per benchmark: what a model that never looks at the image can score. Candidates for the
    one answer given to every question: each distinct gold answer, option letters, Yes and No,
    degenerate strings the metric may reward ("" and spaces as long as the longest answer in
    play), and the `MODEL_ANSWERS_TRIED` commonest of `answers[name]` (the models' own answers);
    beside them, guessing (a uniform letter; a fair coin for yes/no, `draws` seeded draws)."""
    rng = random.Random(seed)
    answers = answers or {}
    levels = {}
    for name, rows in benchmarks.items():
        metric = benchmark_spec(name, rows).metric
        best_score = best_items = None
        for constant in _constants(rows, answers.get(name, ())):
            predictions = [constant] * len(rows)
            result = score_benchmark(name, rows, predictions)
            items = tuple(question_items(result, rows, predictions))
            if best_score is None or result["score"] > best_score[0]:
                best_score = (result["score"], constant)
            if best_items is None or sum(items) > sum(best_items[1]):
                best_items = (constant, items)
        guess = _guessing_score(name, rows, metric, rng, draws)
        score, answer = (guess, GUESSING) if guess is not None and guess > best_score[0] else best_score
        levels[name] = BlindLevel(
            score=score,
            answer=answer,
            question_score=100 * sum(best_items[1]) / len(best_items[1]),
            question_answer=best_items[0],
            question_items=best_items[1],
        )
    return levels


def blind_question_score(levels: Mapping[str, BlindLevel]) -> float:
    """x100: the best constants' per-question scores pooled over every question of the suite
    (as `sail.eval.report.question_scores` pools a model's), so larger benchmarks weigh more."""
    pooled = [value for level in levels.values() for value in level.question_items]
    return 100 * sum(pooled) / len(pooled)


def blind_overall(levels: Mapping[str, BlindLevel]) -> float:
    """x100: the mean of the benchmarks' blind headline levels, as Table 1's Overall is the mean
    over benchmarks."""
    return sum(level.score for level in levels.values()) / len(levels)


def versus_blind(
    results: Mapping[str, Mapping[str, Mapping]],
    benchmarks: Mapping[str, Sequence[Mapping]],
    levels: Mapping[str, BlindLevel],
) -> dict[str, dict[str, Interval]]:
    """{checkpoint: {benchmark: paired bootstrap interval of (per-question score − the blind
    constant's per-question score), x100}}: above 0 beyond noise only when `low` > 0."""
    out = {}
    for label, per_benchmark in results.items():
        out[label] = {}
        for name, result in per_benchmark.items():
            ours = question_items(result, benchmarks[name], result["predictions"])
            blind = levels[name].question_items
            out[label][name] = difference_interval(100 * np.asarray(ours), 100 * np.asarray(blind))
    return out


def above_chance(score_minus_blind: Interval, own_minus_swapped: Interval) -> bool:
    """Above chance beyond noise: the score beats the blind constant *and* the answers need the
    question's own image (both paired intervals above 0)."""
    return score_minus_blind.low > 0 and own_minus_swapped.low > 0


def exploiting_answers(name: str, rows: Sequence[Mapping], predictions: Sequence[str]) -> int:
    """How many answers earn credit only through whitespace: they score above 0 as given and 0
    with runs of whitespace collapsed to one space. ANLS divides by the raw lengths, so a
    space-padded non-answer can pass its 0.5 threshold; the metric is VLMEvalKit's and stays, the
    answers are counted. Multiple-choice and yes/no parsing split on whitespace: never counted."""
    if benchmark_spec(name, rows).metric in ("choice", *YES_NO_METRICS):
        return 0
    given = score_benchmark(name, rows, list(predictions))["details"]["items"]
    collapsed = [" ".join(str(p).split()) for p in predictions]
    tidy = score_benchmark(name, rows, collapsed)["details"]["items"]
    return sum(1 for ours, plain in zip(given, tidy) if ours > 0 and plain == 0)


def _image_key(image) -> str:
    images = image if isinstance(image, list) else [image]
    digest = hashlib.blake2b(digest_size=8)
    for one in images:
        digest.update(one.tobytes())
    return digest.hexdigest()


def swapped_images(benchmarks: Mapping[str, Sequence[Mapping]]) -> dict[str, list[dict]]:
    """Every row with the image (or the whole image list) of the next row of its benchmark that
    shows a different image, wrapping around: a question keeps its kind of image (a card, a scene)
    but not its own. Consecutive questions often ask about one image, so the plain next row would
    often hand a question its own image back; a benchmark with a single image keeps it."""
    out = {}
    for name, rows in benchmarks.items():
        others = next_different([_image_key(row["image"]) for row in rows])
        out[name] = [{**row, "image": rows[there]["image"]} for row, there in zip(rows, others)]
    return out


def _conversation(row: Mapping, prompt: str) -> tuple[list, list[dict]]:
    """The row's images and its prompt answered by its gold text, images before the text."""
    images = row["image"] if isinstance(row["image"], list) else [row["image"]]
    messages = conversation(prompt, gold_text(row["answer"]))
    messages[0]["content"][:0] = [{"type": "image"}] * (len(images) - 1)
    return [image.convert("RGB") for image in images], messages


@torch.no_grad()
def answer_losses(model, processor, benchmarks: Mapping[str, Sequence[Mapping]], *, batch_size: int = 16) -> np.ndarray:
    """Each question's gold-answer loss (mean cross-entropy per answer token, `<|im_end|>`
    included, as training counts it), benchmark after benchmark in row order: one number per
    question, so that two conditions can be compared question by question with an interval."""
    pairs = [
        _conversation(row, build_prompt(row, benchmark_spec(name, rows)))
        for name, rows in benchmarks.items()
        for row in rows
    ]
    was_training = model.training
    model.eval()
    losses = []
    try:
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            batch = encode_conversations(processor, [im for images, _ in chunk for im in images], [m for _, m in chunk])
            labels = batch.pop("labels")[:, 1:].to(model.device)
            batch.pop("num_tokens")
            inputs = {k: v.to(model.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            logits = model(**inputs).logits[:, :-1].float()
            per_token = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none")
            counted = (labels != IGNORE_INDEX).sum(dim=1)
            losses += (per_token.sum(dim=1) / counted).tolist()
    finally:
        model.train(was_training)
    return np.asarray(losses, dtype=float)


def image_reliance(model, processor, benchmarks: Mapping[str, Sequence[Mapping]], *, batch_size: int = 16) -> dict:
    """The gold answers' loss with each question's own image and with another's (`swapped_images`),
    means over questions, and the "image gain" (swapped − own) with its paired bootstrap interval
    ("low", "high"): a model that answers from the image loses more when the images are swapped;
    one that answers from the question alone has a gain whose interval holds 0. Pooled over every
    question, and the same for each benchmark under "by benchmark": a pooled gain can come from
    one benchmark alone."""
    own = answer_losses(model, processor, benchmarks, batch_size=batch_size)
    swapped = answer_losses(model, processor, swapped_images(benchmarks), batch_size=batch_size)
    ends = np.cumsum([len(rows) for rows in benchmarks.values()]).tolist()
    return {
        **_gain(own, swapped),
        "by benchmark": {
            name: _gain(own[start:end], swapped[start:end])
            for name, start, end in zip(benchmarks, [0, *ends[:-1]], ends)
        },
    }


def _gain(own: np.ndarray, swapped: np.ndarray) -> dict[str, float]:
    gain = difference_interval(swapped, own)
    return {
        "own images": float(own.mean()),
        "swapped images": float(swapped.mean()),
        "image gain": gain.mean,
        "low": gain.low,
        "high": gain.high,
    }
