"""SFT runs as values in, evaluation-suite scores out: what notebooks 06 and 07 compare.

Every run starts from the same pretrained checkpoint on disk (notebook 05's), trains one or more
SAIL SFT stages from the recipe in sequence (one epoch over each stage's samples), and is scored
on the world suite through `sail.eval` (the generation adapter and VLMEvalKit's rules: the one
scoring path of the project).

Rankings rest on two aggregates, each with a bootstrap interval over the questions: the
**question score** (`sail.eval.report.question_scores`), the mean over every question of the suite
of its own score, and **Overall**, the paper's Table 3 aggregate (the mean of the benchmarks'
headlines: POPE's F1, HallusionBench's aAcc/fAcc/qAcc are not means over questions, so its
interval re-scores resampled questions, `overall_interval`). Beside them every run keeps what a
model that never looks at the image scores on the same questions (`sail.eval.blind`, with the
run's own answers as candidates) and the profile of its answers (`answer_profile`): a tiny model
can score by giving one answer everywhere, and a comparison of two such runs tests nothing.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import stats
from transformers import AutoModelForImageTextToText

from sail.data.mixture import IMAGE_PLACEHOLDER, Sample, read_mixture, write_meta
from sail.eval.benchmarks import benchmark_spec, build_prompt, score_benchmark
from sail.eval.blind import blind_levels, blind_overall, blind_question_score
from sail.eval.generation import Generator
from sail.eval.report import evaluate, gold_text, question_scores, table1
from sail.eval.uncertainty import Interval, difference_interval, score_interval
from sail.model import ImageOnlyInternVLProcessor
from sail.pretrain.data import sample_collate
from sail.sft.data import STEPWISE
from sail.train import recipe as recipes
from sail.train import train, validation_loss


def fine_tune(
    start_dir: str | Path,
    stages: Sequence[tuple[str, Sequence[Sample]]],
    *,
    profile: str,
    seed: int,
    runs_dir: str | Path,
    name: str,
    pack_length: int | None = 256,
    save_to: str | Path | None = None,
    save_stages_to: str | Path | None = None,
    mixed_precision: str = "no",
    **overrides,
):
    """Train `stages` ((SAIL step, samples), ...) in order from `start_dir`, one epoch each.

    Returns the model, its processor, and the steps, tokens and seconds spent; `save_to` keeps
    the final model in Hugging Face format, `save_stages_to` the model after each stage (as
    `<save_stages_to>/<step>`). The runs' checkpoints are removed (comparisons keep rows).
    """
    model = AutoModelForImageTextToText.from_pretrained(start_dir)
    processor = ImageOnlyInternVLProcessor.from_pretrained(start_dir)
    collate = sample_collate(processor, pack_length)
    steps = tokens = seconds = 0
    for index, (step, samples) in enumerate(stages):
        if not samples:
            raise ValueError(f"run {name!r}: stage {index} ({step}) has no samples")
        batch = overrides.get("global_batch", recipes.recipe(step, profile).global_batch)
        epoch = -(-len(samples) // batch)
        stage = recipes.stage(
            step, profile, data=list(samples), collate=collate, seed=seed, max_steps=epoch, **overrides
        )
        out = Path(runs_dir) / name / f"{index}-{step}"
        shutil.rmtree(out, ignore_errors=True)
        result = train(model, stage, out, mixed_precision=mixed_precision, progress=False)
        shutil.rmtree(out / "checkpoints")
        steps, tokens, seconds = steps + result.steps, tokens + result.tokens, seconds + result.seconds
        if save_stages_to is not None:
            model.save_pretrained(Path(save_stages_to) / step)
            processor.save_pretrained(Path(save_stages_to) / step)
    if save_to is not None:
        model.save_pretrained(save_to)
        processor.save_pretrained(save_to)
    return model, processor, {"steps": steps, "tokens": tokens, "train seconds": round(seconds, 1)}


def suite_samples(benchmarks: Mapping[str, Sequence[Mapping]], out_dir: str | Path) -> list[Sample]:
    """The suite's questions, prompted as the suite prompts them, with their gold answers, as
    samples (images written to `out_dir`): the mean cross-entropy of the gold answers moves long
    before a short SFT run's greedy answers score, as notebook 05's OCR answer loss did."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = []
    for name, rows in benchmarks.items():
        spec = benchmark_spec(name, rows)
        for index, row in enumerate(rows):
            path = out_dir / f"{name}-{index}.png"
            row["image"].save(path)
            turns = (
                ("user", f"{IMAGE_PLACEHOLDER}\n{build_prompt(row, spec)}"),
                ("assistant", gold_text(row["answer"])),
            )
            samples.append(Sample(f"{name}-{index}", name, (str(path),), turns))
    return samples


def overall_interval(
    results: Mapping[str, Mapping],
    benchmarks: Mapping[str, Sequence[Mapping]],
    *,
    confidence: float = 0.95,
    resamples: int = 200,
    seed: int = 0,
) -> Interval:
    """Overall (x100, the mean of the benchmarks' headlines) with a percentile bootstrap interval.

    Each resample draws every benchmark's questions with replacement and recomputes its headline
    with `score_benchmark`, so POPE's F1 and HallusionBench's aAcc/fAcc/qAcc carry their own
    noise into Overall. A headline that is the mean of its items is recomputed from the resampled
    items, which is the number `score_benchmark` gives without scoring the texts again: it keeps
    the interval cheap enough for every run of a sweep.
    """
    rng = np.random.default_rng(seed)
    headlines = []
    for name, result in results.items():
        rows, predictions = benchmarks[name], result["predictions"]
        draws = rng.integers(0, len(rows), size=(resamples, len(rows)))
        if "items" in result["details"]:
            headlines.append(100 * np.asarray(result["details"]["items"], dtype=float)[draws].mean(axis=1))
        else:
            headlines.append(
                [score_benchmark(name, [rows[i] for i in d], [predictions[i] for i in d])["score"] for d in draws]
            )
    overall = np.mean(headlines, axis=0)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(overall, [tail, 100 - tail])
    mean = float(np.mean([result["score"] for result in results.values()]))
    return Interval(mean, float(low), float(high), confidence, sum(len(benchmarks[name]) for name in results))


def answer_profile(results: Mapping[str, Mapping]) -> dict[str, dict]:
    """Per benchmark: how many distinct answers the run gave, its commonest answer (stripped, as
    a reader quotes it: "'Yes' ×79 of 96") and how often: a run that answers by prior gives
    one answer to most questions whatever the image shows."""
    profile = {}
    for name, result in results.items():
        counts = Counter(str(prediction).strip() for prediction in result["predictions"])
        commonest, count = counts.most_common(1)[0]
        profile[name] = {"distinct": len(counts), "commonest": commonest, "count": count, "n": counts.total()}
    return profile


def quoted_answer(entry: Mapping) -> str:
    """One benchmark's entry of an `answer_profile` as a reader quotes it: "'Yes' ×79 of 96"."""
    return f"'{entry['commonest']}' ×{entry['count']} of {entry['n']}"


def answer_quotes(profile: Mapping[str, Mapping], share: float = 0.5) -> list[str]:
    """ "<benchmark> '<answer>' ×<count> of <n>" for every benchmark of an `answer_profile` where one
    answer covers at least `share` of the questions, the most covered first: the evidence a
    reader quotes that a run answers by prior rather than by the image."""
    covered = [name for name, entry in profile.items() if entry["count"] >= share * entry["n"]]
    covered.sort(key=lambda name: -profile[name]["count"] / profile[name]["n"])
    return [f"{name} {quoted_answer(profile[name])}" for name in covered]


def answer_table(rows: Sequence[Mapping]) -> dict[str, dict[str, str]]:
    """{run: {benchmark: its commonest answer quoted}} of comparison rows (`run_row`), a table's columns."""
    return {row["run"]: {name: quoted_answer(entry) for name, entry in row["answers"].items()} for row in rows}


def against_blind(row: Mapping, label: str | None = None) -> str:
    """A comparison row (`run_row`) as a reader judges it: both aggregates with their intervals, each
    beside its blind level, and on how many benchmarks one answer covers at least half the questions
    (the three most covered quoted), under `label` (default: the run's name)."""
    quotes = answer_quotes(row["answers"])
    return (
        f"{label or row['run']} Overall {row['Overall']:.1f} [{row['Overall low']:.1f}, {row['Overall high']:.1f}] "
        f"(blind {row['blind Overall']:.1f}), question score {row['question score']:.1f} [{row['low']:.1f}, "
        f"{row['high']:.1f}] (blind {row['blind question score']:.1f}); one answer to at least half the questions "
        f"of {len(quotes)} of {len(row['answers'])} benchmarks" + (f" ({', '.join(quotes[:3])})" if quotes else "")
    )


def score(
    model, processor, benchmarks: Mapping[str, Sequence[Mapping]], answers: Sequence[Sample], *, batch_size: int = 64
) -> dict:
    """The suite's results, Table 1's column (benchmarks, groups, Overall), the question scores,
    Overall's interval, the answer profile, the blind levels of the same questions with the run's
    own answers as candidates, and the answer loss on `answers` (`suite_samples` of the same
    benchmarks)."""
    start = time.time()
    generator = Generator("hf", model=model, processor=processor, max_new_tokens=16, batch_size=batch_size)
    results = evaluate(generator, benchmarks)
    column = table1({"run": results})["run"]
    return {
        "results": results,
        "table": {f"{group} / {bench}": float(value) for (group, bench), value in column.items()},
        "questions": question_scores(results, benchmarks),
        "overall": overall_interval(results, benchmarks),
        "answers": answer_profile(results),
        "blind": blind_levels(benchmarks, {name: result["predictions"] for name, result in results.items()}),
        "answer loss": validation_loss(model, sample_collate(processor), answers, batch_size=batch_size),
        "eval seconds": round(time.time() - start, 1),
    }


def run_row(name: str, scored: dict, spent: Mapping, **fields) -> dict:
    """One flat row of a comparison: the run, its Table-1 group averages, Overall's interval, its
    question score with interval, the blind levels of both aggregates and its answer profile."""
    interval = score_interval(100 * scored["questions"])
    groups = {key.split(" / ")[0]: value for key, value in scored["table"].items() if key.endswith("/ average")}
    answers = [answer for result in scored["results"].values() for answer in result["predictions"]]
    return {
        "run": name,
        **fields,
        **groups,
        "Overall low": scored["overall"].low,
        "Overall high": scored["overall"].high,
        "blind Overall": blind_overall(scored["blind"]),
        "question score": interval.mean,
        "low": interval.low,
        "high": interval.high,
        "blind question score": blind_question_score(scored["blind"]),
        "answer loss": scored["answer loss"],
        # answers in Preference's reasoned form, where the suite asks for a word or a letter
        "stepwise answers %": 100 * sum(a.startswith(STEPWISE) for a in answers) / len(answers),
        "answers": scored["answers"],
        **spent,
        "eval seconds": scored["eval seconds"],
    }


def ranking(rows: Sequence[Mapping], key: str, label: str = "tier") -> list[str]:
    """The rows' `label`s from the highest `key` down (ties keep the rows' order)."""
    return [row[label] for row in sorted(rows, key=lambda row: -row[key])]


def rank_correlation(ours: Sequence[Mapping], other: Sequence[Mapping], key: str) -> float:
    """Spearman's rho between two rankings of the same candidates (in the same order) by `key`;
    NaN, as scipy gives it, where either set of scores is all ties (no ranking to compare)."""
    a, b = [row[key] for row in ours], [row[key] for row in other]
    if len(set(a)) < 2 or len(set(b)) < 2:
        return math.nan
    return float(stats.spearmanr(a, b).statistic)


def versus(ours: dict, other: dict) -> dict:
    """The paired difference of two runs' question scores (same questions), and whether it is noise."""
    interval = difference_interval(100 * ours["questions"], 100 * other["questions"])
    return {
        "difference": interval.mean,
        "low": interval.low,
        "high": interval.high,
        "within noise": interval.holds(0.0),
    }


def read_tiers(metas: Mapping[str, str | Path], seed: int) -> dict[str, list[Sample]]:
    """Each tier's samples, shuffled (seeded), from its meta file."""
    return {tier: read_mixture(path, seed) for tier, path in metas.items()}


def halved_mixture(metas: Mapping[str, str | Path], group: str | None, out_path: str | Path, seed: int) -> list[Sample]:
    """Every tier's sources in one meta file, `group`'s sources at `repeat_time` 0.5 (None: all whole)."""
    entries = {}
    for path in metas.values():
        base = Path(path).parent
        for name, entry in json.loads(Path(path).read_text()).items():
            entries[name] = {
                **entry,
                "root": base / entry["root"],
                "annotation": base / entry["annotation"],
                "repeat_time": 0.5 if name.split("/", 1)[1] == group else 1,
            }
    return read_mixture(write_meta(out_path, entries), seed)


def incremental(
    candidates: Sequence[str], scored: Callable[[Sequence[str]], dict], tolerance: float
) -> tuple[list[str], list[dict]]:
    """Add candidates one at a time to what is kept; keep one when the question score rises or
    falls by at most `tolerance` points. `scored(names)` trains on those candidates and returns
    its row (with "question score"). Returns the kept names and one row per step."""
    kept, rows = [candidates[0]], []
    best = scored(kept)
    rows.append({**best, "added": candidates[0], "kept": True})
    for candidate in candidates[1:]:
        row = scored([*kept, candidate])
        keep = row["question score"] >= best["question score"] - tolerance
        rows.append({**row, "added": candidate, "kept": keep})
        if keep:
            kept.append(candidate)
            best = row
    return kept, rows


def stage_shares(size: int, shares: Mapping[str, float], unit: int = 1) -> dict[str, int]:
    """`size` samples split over the stages in proportion to `shares`, in whole `unit`s (a batch:
    then every stage is a whole number of steps, and the stages together take exactly as many
    steps as one stage over all of them), by largest remainders; no stage may be empty."""
    if size % unit:
        raise ValueError(f"{size} samples are not a whole number of units of {unit}")
    units, total = size // unit, sum(shares.values())
    exact = {name: units * share / total for name, share in shares.items()}
    counts = {name: int(value) for name, value in exact.items()}
    for name in sorted(exact, key=lambda n: exact[n] - counts[n], reverse=True)[: units - sum(counts.values())]:
        counts[name] += 1
    if min(counts.values()) < 1:
        raise ValueError(f"{size} samples leave a stage empty at shares {dict(shares)}")
    return {name: count * unit for name, count in counts.items()}
