"""Figures the notebooks share: a world gallery, loss curves, score bars.

Every figure names what it plots: titles are wrapped rather than cut, axes carry words rather
than bare metric keys, and legends sit beside the data, never on it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from sail.world import render

# How a metric key reads on an axis; keys not listed are spelled out by `metric_label`.
METRIC_LABELS = {
    "pair_f1": "colour–shape pair F1",
    "object_f1": "object F1",
    "position_f1": "placed object F1",
    "text_f1": "rendered text F1",
    "relation_f1": "relation F1",
    "shape_f1": "shape F1",
    "count_f1": "count F1",
    "hallucination_rate": "hallucination rate",
}


def metric_label(key: str) -> str:
    """A metric key as words: `pair_f1` → "colour–shape pair F1", `relation_recall` → "relation recall"."""
    if key in METRIC_LABELS:
        return METRIC_LABELS[key]
    words = key.replace("_", " ")
    return words[:-3] + " F1" if words.endswith(" f1") else words


def _title(text: str, width: int) -> str:
    """A title wrapped onto lines of at most `width` characters, so it is never cut."""
    return "\n".join(textwrap.wrap(str(text), width)) or str(text)


def gallery(records: Sequence[dict], captions: Mapping[str, Sequence[str]], *, columns: int = 4, wrap: int = 44):
    """World images with one caption per source underneath each, every caption whole: each row of
    images gets a row of text below it, as tall as its longest captions."""
    rows = -(-len(records) // columns)
    texts = [
        "\n".join(
            textwrap.fill(f"[{name}] {sources[i]}", wrap, subsequent_indent="  ") for name, sources in captions.items()
        )
        for i in range(len(records))
    ]
    line_height = 7 * 1.35 / 72  # inches per line of 7-point text
    text_heights = [
        0.15 + line_height * max(t.count("\n") + 1 for t in texts[r * columns : (r + 1) * columns]) for r in range(rows)
    ]
    figure = plt.figure(figsize=(4.2 * columns, sum(3.8 + h for h in text_heights)))
    grid = figure.add_gridspec(2 * rows, columns, height_ratios=[h for t in text_heights for h in (3.5, t)])
    for i, (record, text) in enumerate(zip(records, texts)):
        row, column = divmod(i, columns)
        image, words = figure.add_subplot(grid[2 * row, column]), figure.add_subplot(grid[2 * row + 1, column])
        image.imshow(render(record))
        image.set_title(_title(record["id"], wrap), fontsize=9)
        image.axis("off")
        words.axis("off")
        words.text(
            0.5,
            1,
            text,
            transform=words.transAxes,
            ha="center",
            va="top",
            multialignment="left",
            fontsize=7,
            family="monospace",
        )
    figure.tight_layout()
    return figure


def loss_curves(
    curves: Mapping[str, Sequence[float]], *, smooth: int = 10, ylabel: str = "training loss", title: str | None = None
):
    """Training loss per step (rolling mean over `smooth` steps), one panel per run, each panel
    with its own labelled y axis (the runs' losses are on different scales)."""
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "run": name,
                    "step": range(1, len(losses) + 1),
                    "loss": pd.Series(losses).rolling(smooth, min_periods=1).mean(),
                }
            )
            for name, losses in curves.items()
            if len(losses)
        ]
    )
    grid = sns.relplot(
        frame,
        x="step",
        y="loss",
        col="run",
        kind="line",
        height=2.8,
        aspect=1.3,
        facet_kws={"sharey": False, "sharex": False},
    )
    shown = f"{ylabel}\n(mean of the last {smooth} steps)" if smooth > 1 else ylabel
    for name, ax in grid.axes_dict.items():
        ax.set_title(_title(name, 32), fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylabel(shown)
    if title:
        grid.figure.suptitle(_title(title, 30 * len(grid.axes_dict)), fontsize=11)
    grid.figure.tight_layout()
    return grid.figure


def score_bars(
    scores: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str],
    *,
    ylabel: str = "score (0 to 1)",
    title: str | None = None,
):
    """Grouped bars: one group per metric, one bar per model, each bar labelled with its value,
    the legend to the right of the axes."""
    frame = pd.DataFrame(
        [
            {"model": model, "metric": metric_label(m), "score": values[m]}
            for model, values in scores.items()
            for m in metrics
        ]
    )
    figure, ax = plt.subplots(figsize=(1.5 * len(metrics) + 3, 3.4))
    sns.barplot(frame, x="metric", y="score", hue="model", ax=ax)
    for bars in ax.containers:
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_ylim(0, 1.1)  # room for the value labels above a bar at 1
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_xlabel("")
    ax.set_ylabel(ylabel)
    ax.set_xticks(ax.get_xticks(), [_title(label.get_text(), 14) for label in ax.get_xticklabels()])
    if title:
        ax.set_title(_title(title, 12 * len(metrics) + 20), fontsize=11)
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    figure.tight_layout()
    return figure
