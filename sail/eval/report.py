"""Evaluate checkpoints on a benchmark suite and lay the scores out as SAIL-VL's Table 1.

    benchmarks = load_benchmarks("", n=32, seed=0)          # world suite (or a TSV folder)
    results = evaluate_checkpoints({"captioner": path}, benchmarks, backend="hf")
    table = table1(results)                                  # rows: groups/benchmarks; cols: models
    chance = chance_column(table, chance_scores(benchmarks)) # blind answering, where defined
    plot_table1(table, chance)

Table 1 of the paper reports four group averages and an overall average; here every benchmark
gets a row under its group, then one "average" row per group, then "Overall" = the mean over
all benchmarks (the paper's Avg is over benchmarks, not over groups: its 2B row averages to
69.1 while its four group means average to 70.4).

What a reader sees is built here too: gold answers as text (`gold_text`), the chance level of
the benchmarks that have one (`chance_scores`), the per-split breakdown, example answers, and
the sentences that state this run's results (`findings`).
"""

from __future__ import annotations

import ast
import random
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from sail.eval.benchmarks import (
    GROUPS,
    WORLD_BENCHMARKS,
    benchmark_spec,
    build_benchmark,
    build_prompt,
    score_benchmark,
)
from sail.eval.generation import Generator, image_messages
from sail.eval.metrics import extract_choice, gold_list, yes_no
from sail.eval.tsv import read_tsv
from sail.eval.uncertainty import score_interval
from sail.prose import listing, number, relation, versus

__all__ = [
    "breakdown",
    "chance_column",
    "chance_scores",
    "checkpoint_labels",
    "evaluate",
    "evaluate_checkpoints",
    "examples",
    "findings",
    "for_display",
    "gold_text",
    "headline",
    "load_benchmarks",
    "plot_examples",
    "plot_table1",
    "table1",
]

CHANCE = "chance (a guess or one answer)"
YES_NO = ("pope", "hallusion")


def load_benchmarks(
    benchmark_dir: str | Path = "", n: int = 32, seed: int = 0, names: Sequence[str] | None = None
) -> dict[str, list[dict]]:
    """{name: rows}: the world suite (`benchmark_dir` empty; `n` questions each), or every
    `*.tsv` of a folder of VLMEvalKit benchmark files (named by file stem; the first `n` rows
    of each, all rows when `n` is 0)."""
    if not benchmark_dir:
        return {name: build_benchmark(name, n, seed) for name in (names or WORLD_BENCHMARKS)}
    folder = Path(benchmark_dir)
    files = sorted(folder.glob("*.tsv"))
    if not files:
        raise FileNotFoundError(f"no *.tsv benchmark files in {folder}")
    out = {}
    for path in files:
        if names and path.stem not in names:
            continue
        rows = read_tsv(path)
        out[path.stem] = rows[:n] if n else rows
    return out


def evaluate(generator: Generator, benchmarks: Mapping[str, Sequence[Mapping]]) -> dict[str, dict]:
    """Generate and score every benchmark; each result also keeps the predictions."""
    results = {}
    for name, rows in benchmarks.items():
        spec = benchmark_spec(name, rows)
        messages = []
        for row in rows:
            prompt = build_prompt(row, spec)
            images = row["image"] if isinstance(row["image"], list) else [row["image"]]
            conversation = image_messages(images[0], prompt)
            for extra in images[1:]:  # several images: all go before the text
                conversation[0]["content"].insert(-1, {"type": "image", "image": extra})
            messages.append(conversation)
        predictions = generator.generate(messages, max_tiles=spec.max_tiles)
        result = score_benchmark(name, rows, predictions)
        result["max_tiles"] = spec.max_tiles
        result["predictions"] = predictions
        results[name] = result
    return results


def checkpoint_labels(checkpoints: Sequence[str | Path]) -> dict[str, Path]:
    """{column label: directory}: the directory's name, with parents added until unique."""
    paths = [Path(c) for c in checkpoints]
    depth = 1
    while True:
        labels = ["/".join(p.resolve().parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels) or depth > 8:
            break
        depth += 1
    if len(set(labels)) != len(labels):
        raise ValueError(f"checkpoints repeat: {[str(p) for p in paths]}")
    return dict(zip(labels, paths))


# The checkpoints the pipeline saves under artifacts/, in the order it makes them.
PIPELINE_CHECKPOINTS = (
    "pretrain-alignment",
    "pretrain-advance",
    "sft-knowledge",
    "sft-instruction",
    "sft-preference",
    "sft-mixed",
)


def pipeline_checkpoints(artifacts: str | Path) -> list[Path]:
    """The checkpoints this pipeline made (each with its config.json), in the order it made them;
    before any, the captioners that exist (the tour's, notebook 02's distilled one), else the
    tour's, whose absence the caller then reports."""
    made = [Path(artifacts) / name for name in PIPELINE_CHECKPOINTS]
    captioners = [Path(artifacts) / name for name in ("captioner", "sail-captioner")]
    return (
        [folder for folder in made if (folder / "config.json").is_file()]
        or [folder for folder in captioners if (folder / "config.json").is_file()]
        or captioners[:1]
    )


def question_scores(results: Mapping[str, Mapping], benchmarks: Mapping[str, Sequence[Mapping]]) -> np.ndarray:
    """Every question's own score in [0, 1], benchmark after benchmark: the item score (VQA accuracy,
    ANLS, relaxed accuracy, the option letter) or, on the yes/no sets, whether the parsed yes/no is
    right. POPE's F1 and HallusionBench's aAcc/fAcc/qAcc are not means over questions; this is, so
    it has a bootstrap interval (`sail.eval.uncertainty`)."""
    values = []
    for name, result in results.items():
        if "items" in result["details"]:
            values += list(result["details"]["items"])
        else:
            values += [
                float(yes_no(p) == str(row["answer"]).strip().lower())
                for p, row in zip(result["predictions"], benchmarks[name])
            ]
    return np.asarray(values, dtype=float)


def question_intervals(
    results: Mapping[str, Mapping[str, Mapping]], benchmarks: Mapping[str, Sequence[Mapping]]
) -> pd.DataFrame:
    """Per checkpoint: the question score (x100) and its 95 % bootstrap interval."""
    rows = {}
    for label, per_benchmark in results.items():
        interval = score_interval(100 * question_scores(per_benchmark, benchmarks))
        rows[label] = {"question score": interval.mean, "low": interval.low, "high": interval.high, "n": interval.n}
    return pd.DataFrame(rows).T


def above_chance(table: pd.DataFrame, chance: pd.Series, column: str) -> pd.DataFrame:
    """Each benchmark's score in `column` against its chance level (0 where it has none)."""
    benchmarks = [key for key in table.index if key[1] != "average"]
    levels = chance.reindex(benchmarks).fillna(0.0)
    scores = table.loc[benchmarks, column]
    return pd.DataFrame({column: scores, CHANCE: levels, "above chance": scores > levels})


def evaluate_checkpoints(
    checkpoints: Mapping[str, str | Path],
    benchmarks: Mapping[str, Sequence],
    *,
    backend: str = "hf",
    max_new_tokens: int = 32,
    batch_size: int = 16,
) -> dict[str, dict[str, dict]]:
    """{label: {benchmark: result}} for each checkpoint directory (one model in memory at a time)."""
    results = {}
    for label, directory in checkpoints.items():
        generator = Generator(backend, directory, max_new_tokens=max_new_tokens, batch_size=batch_size)
        results[label] = evaluate(generator, benchmarks)
        del generator
    return results


def table1(results: Mapping[str, Mapping[str, Mapping]]) -> pd.DataFrame:
    """Scores (x100) in Table 1's layout: a (group, benchmark) row per benchmark, grouped in
    the paper's order, then (group, "average") rows and ("Overall", "average"); one column per
    checkpoint."""
    columns = list(results)
    names = list(next(iter(results.values()))) if results else []
    groups = {name: next(iter(results.values()))[name]["group"] for name in names}
    order = [g for g in GROUPS if g in groups.values()]
    order += sorted({g for g in groups.values() if g not in GROUPS})
    rows, index = [], []
    for group in order:
        for name in (n for n in names if groups[n] == group):
            index.append((group, name))
            rows.append([results[c][name]["score"] for c in columns])
    frame = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["group", "benchmark"]), columns=columns)
    averages = [frame.xs(group, level="group").mean() for group in order]
    summary = pd.DataFrame(
        averages + [frame.mean()],
        columns=columns,
        index=pd.MultiIndex.from_tuples(
            [(g, "average") for g in order] + [("Overall", "average")], names=["group", "benchmark"]
        ),
    )
    return pd.concat([frame, summary])


# ---------------------------------------------------------------------------------------------
# What a reader sees: answers as text, chance levels, tables, figures, sentences
# ---------------------------------------------------------------------------------------------


def gold_text(answer) -> str:
    """A gold answer as a reader reads it: a list (or a string holding a Python list literal,
    as VLMEvalKit's TSVs store several answers) becomes its distinct answers joined by " / "."""
    items = answer
    if isinstance(answer, str):
        try:
            items = ast.literal_eval(answer)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            items = answer
    if not isinstance(items, (list, tuple)):
        return str(answer).strip()
    return " / ".join(dict.fromkeys(str(item).strip() for item in items))


def chance_scores(benchmarks: Mapping[str, Sequence[Mapping]], draws: int = 200, seed: int = 0) -> dict[str, float]:
    """{benchmark: the headline score (x100) a model that never looks at the image can count on}:
    the best of one answer given to every question (always "A", always "Yes", always the most
    rewarding of the gold answers) and, where answers are closed, random guessing (a uniformly
    drawn option letter: the mean of 1/options; a fair coin per yes/no question, scored by the
    benchmark's own metric, averaged over `draws` seeded draws). One answer matters: POPE's F1
    gives always "Yes" 66.7 on a balanced set, above the coin's 50, and an open-ended set whose
    answers repeat rewards its commonest one."""
    rng = random.Random(seed)
    out = {}
    for name, rows in benchmarks.items():
        metric = benchmark_spec(name, rows).metric
        guess = 0.0
        if metric == "choice" and all(row.get("choices") for row in rows):
            guess = 100 * sum(1 / len(row["choices"]) for row in rows) / len(rows)
            constants = sorted({letter for row in rows for letter in row["choices"]})
        elif metric in YES_NO:
            draws_scored = [
                score_benchmark(name, rows, [rng.choice(("Yes", "No")) for _ in rows])["score"] for _ in range(draws)
            ]
            guess, constants = sum(draws_scored) / len(draws_scored), ["Yes", "No"]
        else:
            constants = sorted({gold_list(row["answer"])[0] for row in rows})
        blind = max(score_benchmark(name, rows, [answer] * len(rows))["score"] for answer in constants)
        out[name] = max(guess, blind)
    return out


def chance_column(table: pd.DataFrame, chance: Mapping[str, float]) -> pd.Series:
    """`chance` laid along `table`'s rows: each benchmark's chance level, and a group's average
    (and "Overall", over every benchmark) where each benchmark in it has one (NaN elsewhere)."""
    values = {}
    for group, name in table.index:
        if name != "average":
            values[(group, name)] = chance.get(name, float("nan"))
    members = pd.Series(values, dtype=float)
    for group, name in table.index:
        if name == "average":
            inside = members[[key for key in members.index if group == "Overall" or key[0] == group]]
            values[(group, name)] = inside.mean() if len(inside) and inside.notna().all() else float("nan")
    return pd.Series([values[key] for key in table.index], index=table.index, name=CHANCE)


def for_display(frame: pd.DataFrame | pd.Series, digits: int = 1) -> pd.DataFrame:
    """Rounded, with "–" where a value does not exist (a chance level a benchmark lacks)."""
    frame = frame.to_frame() if isinstance(frame, pd.Series) else frame
    return frame.round(digits).astype(object).where(frame.notna(), "–")


def _bar_positions(ax) -> dict[str, float]:
    return {label.get_text(): tick for tick, label in zip(ax.get_xticks(), ax.get_xticklabels())}


def plot_table1(table: pd.DataFrame, chance: pd.Series | None = None):
    """Two panels: every benchmark's score, and the group and overall averages, per checkpoint;
    each bar carries its value, and a dashed black mark shows chance (`chance_scores`) where it exists."""
    long = table.reset_index().melt(id_vars=["group", "benchmark"], var_name="checkpoint", value_name="score")
    per_benchmark = long[long["benchmark"] != "average"]
    averages = long[long["benchmark"] == "average"]
    width = min(20.0, 13.0 + 1.5 * (len(table.columns) - 1))
    figure, axes = plt.subplots(1, 2, figsize=(width, 4.4), gridspec_kw={"width_ratios": [2.2, 1]})
    sns.barplot(per_benchmark, x="benchmark", y="score", hue="checkpoint", ax=axes[0], legend=False)
    sns.barplot(averages, x="group", y="score", hue="checkpoint", ax=axes[1], legend=False)
    for ax, key, title, xlabel in (
        (axes[0], "benchmark", "Score per benchmark", "benchmark"),
        (axes[1], "group", "Group averages and overall (Table 1 layout)", "group (Overall: mean over benchmarks)"),
    ):
        for container in ax.containers:
            ax.bar_label(container, fmt="%.1f", fontsize=7, padding=2)
        if chance is not None:
            level = {
                (n if key == "benchmark" else g): v
                for (g, n), v in chance.items()
                if (n != "average") == (key == "benchmark") and pd.notna(v)
            }
            for label, x in _bar_positions(ax).items():
                if label in level:
                    ax.hlines(level[label], x - 0.42, x + 0.42, colors="black", linestyles="--", linewidth=1.2)
        ax.tick_params(axis="x", rotation=35)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
        ax.set_ylim(0, 105)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("score (×100)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=bars.patches[0].get_facecolor()) for bars in axes[0].containers]
    labels = list(map(str, table.columns))
    if chance is not None and chance.notna().any():
        handles.append(Line2D([], [], color="black", linestyle="--"))
        labels.append("chance")
    axes[1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    figure.tight_layout()
    return figure


def plot_examples(benchmarks: Mapping[str, Sequence[Mapping]], count: int = 10, wrap: int = 34):
    """The first question of each benchmark (at most `count`): its image, question, options
    and gold answer."""
    shown = list(benchmarks.items())[:count]
    columns = min(5, len(shown))
    grid_rows = -(-len(shown) // columns)
    figure, axes = plt.subplots(grid_rows, columns, figsize=(2.9 * columns, 3.9 * grid_rows), squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.axis("off")
    for ax, (name, rows) in zip(axes.flat, shown):
        row = rows[0]
        ax.imshow(row["image"][0] if isinstance(row["image"], list) else row["image"])
        ax.axis("off")
        lines = [name, *textwrap.wrap(str(row["question"]), wrap)]
        options = "  ".join(f"{k}. {v}" for k, v in (row.get("choices") or {}).items())
        lines += textwrap.wrap(options, wrap)
        lines += textwrap.wrap(f"answer: {gold_text(row['answer'])}", wrap)
        ax.set_title("\n".join(lines), fontsize=8)
    figure.suptitle("One question per benchmark, with its gold answer")
    figure.tight_layout()
    return figure


def breakdown(results: Mapping[str, Mapping[str, Mapping]]) -> pd.DataFrame:
    """Scores (x100) per benchmark split: per question category, or the metric's own splits
    (POPE: F1 per negative sampling; HallusionBench: aAcc per category)."""
    rows = []
    for model, per_benchmark in results.items():
        for name, result in per_benchmark.items():
            details = result["details"]
            if "per_category" in details:
                splits = details["per_category"].items()
            else:
                splits = [
                    (f"{split} ({key})", values[key])
                    for split, values in details.items()
                    for key in ["f1" if "f1" in values else "aAcc"]
                ]
            rows += [
                {"checkpoint": model, "benchmark": name, "split": split, "score": score} for split, score in splits
            ]
    return pd.DataFrame(rows).pivot_table(
        index=["benchmark", "split"], columns="checkpoint", values="score", sort=False
    )


def examples(
    benchmarks: Mapping[str, Sequence[Mapping]],
    results: Mapping[str, Mapping[str, Mapping]],
    per_benchmark: int = 2,
    width: int = 70,
) -> pd.DataFrame:
    """The first questions of each benchmark: question, gold answer as text, and each
    checkpoint's raw answer (shortened to `width` characters, marked with "…")."""
    rows = []
    for name, items in benchmarks.items():
        for i, row in enumerate(items[:per_benchmark]):
            entry = {"benchmark": name, "question": row["question"], "gold": gold_text(row["answer"])}
            for model, per_benchmark_results in results.items():
                answer = str(per_benchmark_results[name]["predictions"][i])
                entry[f"{model} answer"] = answer if len(answer) <= width else answer[: width - 1] + "…"
            rows.append(entry)
    return pd.DataFrame(rows)


def _answer_formats(results, benchmarks) -> dict[str, dict[str, tuple[int, int]]]:
    """{checkpoint: {"yes/no" | "choice": (answers the scorer could read, answers)}}."""
    out = {}
    for model, per_benchmark in results.items():
        counts: dict[str, list[int]] = {}
        for name, result in per_benchmark.items():
            rows, metric = benchmarks[name], result["metric"]
            if metric in YES_NO:
                read = [yes_no(p) is not None for p in result["predictions"]]
                kind = "yes/no"
            elif metric == "choice":
                read = [
                    extract_choice(p, row.get("choices") or {}) is not None
                    for p, row in zip(result["predictions"], rows)
                ]
                kind = "choice"
            else:
                continue
            total = counts.setdefault(kind, [0, 0])
            total[0] += sum(read)
            total[1] += len(read)
        out[model] = {kind: (r, n) for kind, (r, n) in counts.items()}
    return out


def _score(value: float) -> str:
    return f"{value:.1f}"


def findings(
    results: Mapping[str, Mapping[str, Mapping]],
    benchmarks: Mapping[str, Sequence[Mapping]],
    table: pd.DataFrame,
    chance: Mapping[str, float],
    seconds: float,
) -> dict[str, str]:
    """Sentences stating this run's results, from the results: "overall", "groups", "chance"
    (where a benchmark has a chance level), "formats" (how many yes/no and multiple-choice
    answers the scorer could read) and "time".  Scores are x100, shown to one decimal."""
    models = list(table.columns)
    overall = table.loc[("Overall", "average")]
    groups = table.xs("average", level="benchmark").drop("Overall")
    what = f"overall average (×100, the mean over {len(table) - len(groups) - 1} benchmarks)"
    if len(models) == 1:
        out = {"overall": f"`{models[0]}`'s {what} is {_score(overall[models[0]])}."}
    elif len(models) == 2:
        out = {
            "overall": versus(f"`{models[1]}`'s {what}", overall[models[1]], overall[models[0]], f"`{models[0]}`", 1)
            + "."
        }
    else:
        out = {
            "overall": f"The {what}: "
            + ", ".join(f"`{m}` {_score(overall[m])}" for m in models)
            + "; "
            + f"`{models[-1]}` is {relation(overall[models[-1]], overall[models[0]], 1)} `{models[0]}`."
        }
    spreads = []
    for m in models:
        high, low = _score(groups[m].max()), _score(groups[m].min())
        if high == low:
            spreads.append(f"every group of `{m}` averages {high}")
        else:
            best = listing([g for g, v in groups[m].items() if _score(v) == high])
            worst = listing([g for g, v in groups[m].items() if _score(v) == low])
            spreads.append(f"`{m}`'s best group is {best} ({high}), its worst {worst} ({low})")
    sentence = "; ".join(spreads)
    out["groups"] = sentence[0].upper() + sentence[1:] + "."
    if chance:
        levels = listing([f"{name} {_score(level)}" for name, level in chance.items()])
        parts = []
        for m in models:
            by_relation: dict[str, list[str]] = {}
            for name, level in chance.items():
                ours = results[m][name]["score"]
                by_relation.setdefault(relation(ours, level, 1), []).append(f"{name} {_score(ours)}")
            if len(by_relation) == 1:
                only = next(iter(by_relation))
                parts.append(f"`{m}` is {only} chance on all {len(chance)}")
            else:
                parts.append(
                    f"`{m}` is "
                    + ", ".join(
                        f"{side} chance on {len(names)} ({', '.join(names)})" for side, names in by_relation.items()
                    )
                )
        out["chance"] = (
            "A model that never looks at the image (one answer to every question, or a coin for yes/no "
            f"and a random letter for multiple choice) can count on {levels}; " + "; ".join(parts) + "."
        )
    said = {
        "yes/no": "answers to yes/no questions read as a yes or a no",
        "choice": "multiple-choice answers name one option",
    }
    parts = [
        f"`{m}`: " + ", ".join(f"{number(r)} of {number(n)} {said[kind]}" for kind, (r, n) in kinds.items())
        for m, kinds in _answer_formats(results, benchmarks).items()
        if kinds
    ]
    if parts:
        out["formats"] = "What the scorer could read: " + "; ".join(parts) + "."
    answers = sum(len(rows) for rows in benchmarks.values()) * len(models)
    out["time"] = (
        f"Generating {number(answers)} answers ({len(models)} checkpoint{'s' if len(models) > 1 else ''}"
        f" × {len(benchmarks)} benchmarks) took {seconds:.1f} s."
    )
    return out


def headline(table: pd.DataFrame, seconds: float, most: int = 3) -> dict[str, float]:
    """Short labels -> numbers for the run's index: the overall average of the first `most`
    checkpoints, and the generation time."""
    overall = table.loc[("Overall", "average")]
    numbers = {f"{m} overall average": round(float(overall[m]), 1) for m in list(table.columns)[:most]}
    return {**numbers, "generation seconds": round(seconds, 1)}
