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


def gallery(
    records: Sequence[dict],
    captions: Mapping[str, Sequence[str]],
    *,
    columns: int = 3,
    column_width: float = 2.9,
    fontsize: float = 9,
):
    """World images with one caption per source underneath each, every caption whole and legible.

    A notebook shows a figure at its own size only while it fits the output column (about 900 px,
    9 inches at the inline 100 dpi); a wider figure is scaled down, and its text with it. So the
    figure is `columns` × `column_width` inches wide, no wider, and its captions are `fontsize`
    points at that size. Everything is placed in inches rather than left to a layout engine, so a
    row of images gets exactly the room its longest captions need: captions wrap at a width that
    fits even wide characters, and no caption runs into its neighbour or the row below.
    """
    inch = 1 / 72  # of a point
    wrap = int((column_width - 0.2) / (0.6 * fontsize * inch))  # characters per line: 0.6 em is a wide average
    texts = [
        "\n".join(
            textwrap.fill(f"[{name}] {sources[i]}", wrap, subsequent_indent="  ") for name, sources in captions.items()
        )
        for i in range(len(records))
    ]
    line = 1.35 * fontsize * inch  # matplotlib's line pitch (DejaVu Sans at its default spacing), with a margin
    title, image_size, gap, row_gap = 1.8 * fontsize * inch, 0.8 * column_width, 0.1, 0.3
    rows = [texts[start : start + columns] for start in range(0, len(texts), columns)]
    text_heights = [line * max(t.count("\n") + 1 for t in row) for row in rows]
    height = sum(title + image_size + gap + h + row_gap for h in text_heights)
    width = columns * column_width
    figure = plt.figure(figsize=(width, height))

    def axes(left: float, top: float, w: float, h: float):
        """Axes at a position given in inches from the figure's top left corner."""
        return figure.add_axes((left / width, 1 - (top + h) / height, w / width, h / height))

    top = 0.0
    for r, row_texts in enumerate(rows):
        for c, text in enumerate(row_texts):
            record, left = records[r * columns + c], c * column_width + 0.1
            image = axes(left, top + title, image_size, image_size)
            image.imshow(render(record))
            image.set_anchor("NW")  # a card, wider than tall, sits under its title, not lower
            image.set_title(_title(record["id"], wrap), fontsize=fontsize)
            image.axis("off")
            words = axes(left, top + title + image_size + gap, column_width - 0.2, text_heights[r])
            words.axis("off")
            words.text(0, 1, text, transform=words.transAxes, ha="left", va="top", fontsize=fontsize)
        top += title + image_size + gap + text_heights[r] + row_gap
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
