"""Figures the notebooks share: a world gallery, loss curves, score bars."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from sail.world import render


def gallery(records: Sequence[dict], captions: Mapping[str, Sequence[str]], *, columns: int = 4, wrap: int = 44):
    """World images with one caption per source underneath each."""
    rows = -(-len(records) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 6.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, record) in enumerate(zip(axes.flat, records)):
        ax.imshow(render(record))
        lines = [f"[{name}] " + textwrap.fill(texts[i], wrap) for name, texts in captions.items()]
        ax.set_title(record["id"], fontsize=9)
        ax.text(0, -0.04, "\n".join(lines), transform=ax.transAxes, va="top", fontsize=7, family="monospace")
    figure.tight_layout()
    return figure


def loss_curves(curves: Mapping[str, Sequence[float]], *, smooth: int = 10):
    """Training loss per step (rolling mean over `smooth` steps), one panel per run."""
    frame = pd.concat([pd.DataFrame({"run": name, "step": range(1, len(losses) + 1),
                                     "loss": pd.Series(losses).rolling(smooth, min_periods=1).mean()})
                       for name, losses in curves.items() if len(losses)])
    grid = sns.relplot(frame, x="step", y="loss", col="run", kind="line", height=2.8, aspect=1.3,
                       facet_kws={"sharey": False, "sharex": False})
    grid.set_titles("{col_name}")
    return grid.figure


def score_bars(scores: Mapping[str, Mapping[str, float]], metrics: Sequence[str]):
    """Grouped bars: one group per metric, one bar per model."""
    frame = pd.DataFrame([{"model": model, "metric": m, "score": values[m]} for model, values in scores.items() for m in metrics])
    figure, ax = plt.subplots(figsize=(1.4 * len(metrics) + 2, 3))
    sns.barplot(frame, x="metric", y="score", hue="model", ax=ax)
    ax.set_ylim(0, 1)
    figure.tight_layout()
    return figure
