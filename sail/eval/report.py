"""Evaluate checkpoints on a benchmark suite and lay the scores out as SAIL-VL's Table 1.

    benchmarks = load_benchmarks("", n=32, seed=0)          # world suite (or a TSV folder)
    results = evaluate_checkpoints({"captioner": path}, benchmarks, backend="hf")
    table = table1(results)                                  # rows: groups/benchmarks; cols: models
    levels = blind_levels(benchmarks, answers_given(results))  # what a model that never looks scores
    plot_table1(table, blind_column(table, levels))

Table 1 of the paper reports four group averages and an overall average; here every benchmark
gets a row under its group, then one "average" row per group, then "Overall" = the mean over
all benchmarks (the paper's Avg is over benchmarks, not over groups: its 2B row averages to
69.1 while its four group means average to 70.4).

What a reader sees is built here too: gold answers as text (`gold_text`), each benchmark's blind
level (`sail.eval.blind`) laid along Table 1 (`blind_column`), the final model's verdict against
it (`verdict`), the per-split breakdown, example answers, and the sentences that state this
run's results (`findings`).
"""

from __future__ import annotations

import re
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
    gold_text,
    question_items,
    score_benchmark,
)
from sail.eval.blind import (
    GUESSING,
    YES_NO_METRICS,
    BlindLevel,
    above_chance,
    blind_overall,
    exploiting_answers,
)
from sail.eval.generation import Generator, image_messages
from sail.eval.metrics import extract_choice, yes_no
from sail.eval.tsv import read_tsv
from sail.eval.uncertainty import Interval, difference_interval, score_interval
from sail.prose import listing, number, relation, versus

__all__ = [
    "BLIND",
    "answers_given",
    "blind_column",
    "breakdown",
    "checkpoint_labels",
    "distinct_answers",
    "evaluate",
    "evaluate_checkpoints",
    "examples",
    "exploiting",
    "findings",
    "for_display",
    "gold_text",
    "headline",
    "load_benchmarks",
    "plot_examples",
    "plot_table1",
    "shown_answer",
    "table1",
    "verdict",
]

BLIND = "blind level"


def load_benchmarks(
    benchmark_dir: str | Path = "",
    n: int = 32,
    seed: int = 0,
    names: Sequence[str] | None = None,
    split: str = "test",
) -> dict[str, list[dict]]:
    """{name: rows}: the world suite (`benchmark_dir` empty; `n` questions each from `split`), or every
    `*.tsv` of a folder of VLMEvalKit benchmark files (named by file stem; the first `n` rows
    of each, all rows when `n` is 0)."""
    if not benchmark_dir:
        return {name: build_benchmark(name, n, seed, split) for name in (names or WORLD_BENCHMARKS)}
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
        values += question_items(result, benchmarks[name], result["predictions"])
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


def answers_given(results: Mapping[str, Mapping[str, Mapping]]) -> dict[str, list[str]]:
    """{benchmark: every answer any checkpoint gave}, the models' own strings that
    `sail.eval.blind.blind_levels` tries as constants."""
    out: dict[str, list[str]] = {}
    for per_benchmark in results.values():
        for name, result in per_benchmark.items():
            out.setdefault(name, []).extend(map(str, result["predictions"]))
    return out


def shown_answer(answer: str) -> str:
    """A constant answer as a reader can see it: quoted, runs of three or more spaces written as
    "␣×n" (a padded string is otherwise blank on the page); "guessing" as it is."""
    if answer == GUESSING:
        return answer
    return repr(re.sub(r" {3,}", lambda run: f"␣×{len(run.group())}", answer))


def blind_column(table: pd.DataFrame, levels: Mapping[str, BlindLevel]) -> pd.Series:
    """The blind levels laid along `table`'s rows: each benchmark's, each group's average over its
    benchmarks and "Overall" over every benchmark, as Table 1 averages the scores (NaN for a
    benchmark without a level, and for an average over one)."""
    members = pd.Series(
        {
            (group, name): levels[name].score if name in levels else np.nan
            for group, name in table.index
            if name != "average"
        },
        dtype=float,
    )
    values = {}
    for group, name in table.index:
        if name != "average":
            values[(group, name)] = members[(group, name)]
            continue
        inside = members[[key for key in members.index if group == "Overall" or key[0] == group]]
        values[(group, name)] = inside.mean() if len(inside) and inside.notna().all() else np.nan
    return pd.Series([values[key] for key in table.index], index=table.index, name=BLIND)


def distinct_answers(results: Mapping[str, Mapping[str, Mapping]]) -> pd.DataFrame:
    """How many different raw answers each checkpoint gave on each benchmark (rows: benchmarks):
    a handful over a whole benchmark means the answers cannot depend on the questions' images."""
    return pd.DataFrame(
        {
            label: {name: len(set(map(str, r["predictions"]))) for name, r in per.items()}
            for label, per in results.items()
        }
    )


def exploiting(
    results: Mapping[str, Mapping[str, Mapping]], benchmarks: Mapping[str, Sequence[Mapping]]
) -> pd.DataFrame:
    """Per benchmark (rows) and checkpoint: the answers that earn credit only through whitespace
    (`sail.eval.blind.exploiting_answers`)."""
    return pd.DataFrame(
        {
            label: {name: exploiting_answers(name, benchmarks[name], r["predictions"]) for name, r in per.items()}
            for label, per in results.items()
        }
    )


def verdict(
    results: Mapping[str, Mapping],
    swapped: Mapping[str, Mapping],
    benchmarks: Mapping[str, Sequence[Mapping]],
    levels: Mapping[str, BlindLevel],
    versus_blind: Mapping[str, Interval],
) -> pd.DataFrame:
    """One checkpoint's results against its blind levels, one row per benchmark: the headline
    "score" and "blind" level; the paired per-question "difference" (x100) from the blind constant
    with its interval ("low", "high", from `versus_blind`); the "distinct answers" and "exploiting
    answers"; the "swapped score" with each question's image swapped for another's (`swapped`:
    the same checkpoint's results on `sail.eval.blind.swapped_images`) and the paired per-question
    "swapped difference" (own − swapped, x100) with its interval; and "above chance", true only
    when both intervals lie above 0 (`sail.eval.blind.above_chance`)."""
    rows = {}
    for name, result in results.items():
        own = 100 * np.asarray(question_items(result, benchmarks[name], result["predictions"]))
        other = swapped[name]
        off = 100 * np.asarray(question_items(other, benchmarks[name], other["predictions"]))
        image = difference_interval(own, off)
        blind = versus_blind[name]
        rows[name] = {
            "score": result["score"],
            "blind": levels[name].score,
            "difference": blind.mean,
            "low": blind.low,
            "high": blind.high,
            "distinct answers": len(set(map(str, result["predictions"]))),
            "exploiting answers": exploiting_answers(name, benchmarks[name], result["predictions"]),
            "swapped score": other["score"],
            "swapped difference": image.mean,
            "swapped low": image.low,
            "swapped high": image.high,
            "above chance": above_chance(blind, image),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def for_display(frame: pd.DataFrame | pd.Series, digits: int = 1) -> pd.DataFrame:
    """Rounded, with "–" where a value does not exist (a blind level a benchmark lacks)."""
    frame = frame.to_frame() if isinstance(frame, pd.Series) else frame
    return frame.round(digits).astype(object).where(frame.notna(), "–")


def _bar_positions(ax) -> dict[str, float]:
    return {label.get_text(): tick for tick, label in zip(ax.get_xticks(), ax.get_xticklabels())}


def plot_table1(table: pd.DataFrame, blind: pd.Series | None = None):
    """Two panels: every benchmark's score, and the group and overall averages, per checkpoint; a
    dashed black mark shows the blind level (`blind_column`) where it exists. Only the averages
    carry their values (upright, small): on a benchmark's many narrow bars labels would overlap,
    and the table above gives every number."""
    long = table.reset_index().melt(id_vars=["group", "benchmark"], var_name="checkpoint", value_name="score")
    per_benchmark = long[long["benchmark"] != "average"]
    averages = long[long["benchmark"] == "average"]
    width = min(20.0, 13.0 + 1.5 * (len(table.columns) - 1))
    figure, axes = plt.subplots(1, 2, figsize=(width, 4.4), gridspec_kw={"width_ratios": [2.2, 1]})
    sns.barplot(per_benchmark, x="benchmark", y="score", hue="checkpoint", ax=axes[0], legend=False)
    sns.barplot(averages, x="group", y="score", hue="checkpoint", ax=axes[1], legend=False)
    for container in axes[1].containers:
        axes[1].bar_label(container, fmt="%.1f", fontsize=6, padding=2, rotation=90)
    for ax, key, title, xlabel in (
        (axes[0], "benchmark", "Score per benchmark", "benchmark"),
        (axes[1], "group", "Group averages and overall (Table 1 layout)", "group (Overall: mean over benchmarks)"),
    ):
        if blind is not None:
            level = {
                (n if key == "benchmark" else g): v
                for (g, n), v in blind.items()
                if (n != "average") == (key == "benchmark") and pd.notna(v)
            }
            for label, x in _bar_positions(ax).items():
                if label in level:
                    ax.hlines(level[label], x - 0.42, x + 0.42, colors="black", linestyles="--", linewidth=1.2)
        ax.tick_params(axis="x", rotation=35)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
        ax.set_ylim(0, 115)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("score (×100)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=bars.patches[0].get_facecolor()) for bars in axes[0].containers]
    labels = list(map(str, table.columns))
    if blind is not None and blind.notna().any():
        handles.append(Line2D([], [], color="black", linestyle="--"))
        labels.append(BLIND)
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
            if metric in YES_NO_METRICS:
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
    levels: Mapping[str, BlindLevel],
    seconds: float,
    versus_blind: Mapping[str, Mapping[str, Interval]] | None = None,
    final_verdict: pd.DataFrame | None = None,
    final: str | None = None,
) -> dict[str, str]:
    """Sentences stating this run's results, from the results: "overall" (the mean over the
    benchmarks), "groups", "blind" (each benchmark's blind level, `sail.eval.blind`), "versus
    blind" (per checkpoint, the benchmarks whose paired interval against the blind constant lies
    above 0, given `versus_blind`), "exploits" (answers that score only through whitespace, where
    there are any), "final" (given `final_verdict`, `verdict`'s frame for checkpoint `final`: the
    benchmarks it is above chance on under both intervals), "formats" (how many yes/no and
    multiple-choice answers the scorer could read) and "time". Scores are x100, to one decimal."""
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
    if levels:
        constants = listing(
            [f"{name} {_score(level.score)} ({shown_answer(level.answer)})" for name, level in levels.items()]
        )
        out["blind"] = (
            "A model that never looks at the image (one answer to every question, its own favourite "
            f"strings and degenerate ones included, or guessing) can score {constants}; the mean over "
            f"these {len(levels)} benchmarks, the blind Overall, is {_score(blind_overall(levels))}."
        )
    if versus_blind:
        parts = []
        for m, intervals in versus_blind.items():
            beaten = [name for name, interval in intervals.items() if interval.low > 0]
            parts.append(f"`{m}` on {len(beaten)} of {len(intervals)}" + (f" ({', '.join(beaten)})" if beaten else ""))
        out["versus blind"] = (
            "Question by question, a checkpoint beats the best blind constant beyond noise (the paired "
            "95 % interval of the difference above 0): " + "; ".join(parts) + "."
        )
    exploits = [
        f"`{m}` {number(int(column.sum()))} ("
        + ", ".join(f"{name} {number(int(count))}" for name, count in column.items() if count)
        + ")"
        for m, column in exploiting(results, benchmarks).items()
        if column.sum()
    ]
    if exploits:
        out["exploits"] = (
            "Answers that earn credit only through whitespace (ANLS divides by the raw lengths, so a "
            "space-padded non-answer passes its threshold; they score 0 with the spaces collapsed): "
            + "; ".join(exploits)
            + "."
        )
    if final_verdict is not None and final is not None:
        above = [name for name, row in final_verdict.iterrows() if row["above chance"]]
        rest = [name for name in final_verdict.index if name not in above]
        rule = (
            "its per-question score beats the blind constant's and falls when each image is swapped for "
            "another question's, both paired 95 % intervals above 0"
        )
        if above:
            out["final"] = (
                f"`{final}` is above its blind level beyond noise on {len(above)} of {len(final_verdict)} "
                f"benchmarks ({', '.join(above)}): there {rule}" + (f"; not on {', '.join(rest)}." if rest else ".")
            )
        else:
            out["final"] = (
                f"`{final}` is above its blind level beyond noise on none of the {len(final_verdict)} benchmarks "
                f"(that takes both: {rule})."
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


def headline(
    table: pd.DataFrame, seconds: float, final_verdict: pd.DataFrame | None = None, final: str = "", most: int = 3
) -> dict[str, float]:
    """Short labels -> numbers for the run's index: the overall average of the first `most`
    checkpoints, the generation time and, given `final_verdict` (`verdict`'s frame for `final`),
    how many benchmarks `final` is above chance on."""
    overall = table.loc[("Overall", "average")]
    numbers = {f"{m} overall average": round(float(overall[m]), 1) for m in list(table.columns)[:most]}
    if final_verdict is not None:
        numbers[f"{final} benchmarks above chance"] = int(final_verdict["above chance"].sum())
    return {**numbers, "generation seconds": round(seconds, 1)}
