"""Evaluate checkpoints on a benchmark suite and lay the scores out as SAIL-VL's Table 1.

    benchmarks = load_benchmarks("", n=32, seed=0)          # world suite (or a TSV folder)
    results = evaluate_checkpoints({"captioner": path}, benchmarks, backend="hf")
    table = table1(results)                                  # rows: groups/benchmarks; cols: models
    plot_table1(table)

Table 1 of the paper reports four group averages and an overall average; here every benchmark
gets a row under its group, then one "average" row per group, then "Overall" = the mean over
all benchmarks (the paper's Avg is over benchmarks, not over groups: its 2B row averages to
69.1 while its four group means average to 70.4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from sail.eval.benchmarks import (GROUPS, WORLD_BENCHMARKS, benchmark_spec, build_benchmark,
                                  build_prompt, score_benchmark)
from sail.eval.generation import Generator, image_messages
from sail.eval.tsv import read_tsv

__all__ = ["checkpoint_labels", "evaluate", "evaluate_checkpoints", "load_benchmarks",
           "plot_table1", "table1"]


def load_benchmarks(benchmark_dir: str | Path = "", n: int = 32, seed: int = 0,
                    names: Sequence[str] | None = None) -> dict[str, list[dict]]:
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


def evaluate_checkpoints(checkpoints: Mapping[str, str | Path], benchmarks: Mapping[str, Sequence],
                         *, backend: str = "hf", max_new_tokens: int = 32,
                         batch_size: int = 16) -> dict[str, dict[str, dict]]:
    """{label: {benchmark: result}} for each checkpoint directory (one model in memory at a time)."""
    results = {}
    for label, directory in checkpoints.items():
        generator = Generator(backend, directory, max_new_tokens=max_new_tokens,
                              batch_size=batch_size)
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
    frame = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["group", "benchmark"]),
                         columns=columns)
    averages = [frame.xs(group, level="group").mean() for group in order]
    summary = pd.DataFrame(averages + [frame.mean()], columns=columns,
                           index=pd.MultiIndex.from_tuples(
                               [(g, "average") for g in order] + [("Overall", "average")],
                               names=["group", "benchmark"]))
    return pd.concat([frame, summary])


def plot_table1(table: pd.DataFrame):
    """Two panels: every benchmark's score, and the group and overall averages, per checkpoint."""
    long = table.reset_index().melt(id_vars=["group", "benchmark"], var_name="checkpoint",
                                    value_name="score")
    per_benchmark = long[long["benchmark"] != "average"]
    averages = long[long["benchmark"] == "average"]
    figure, axes = plt.subplots(1, 2, figsize=(13, 3.8), gridspec_kw={"width_ratios": [2.2, 1]})
    sns.barplot(per_benchmark, x="benchmark", y="score", hue="checkpoint", ax=axes[0])
    axes[0].tick_params(axis="x", rotation=35)
    for label in axes[0].get_xticklabels():
        label.set_horizontalalignment("right")
    sns.barplot(averages, x="group", y="score", hue="checkpoint", ax=axes[1], legend=False)
    axes[1].tick_params(axis="x", rotation=35)
    for label in axes[1].get_xticklabels():
        label.set_horizontalalignment("right")
    for ax, title in zip(axes, ("per benchmark", "group averages (Table 1 layout)")):
        ax.set_ylim(0, 100)
        ax.set_title(title)
        ax.set_xlabel("")
    figure.tight_layout()
    return figure
