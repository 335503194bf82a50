"""Tables and figures of notebooks 04 and 05: sweeps with their log-linear fits, Table 2 beside the paper's."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from sail.pretrain.scores import fit_log_linear

SCORES = ("Overall", "Caption", "OCR")
BLIND = tuple(f"{score} blind" for score in SCORES)  # each score's level without looking (sail.pretrain.scores)

# SAIL-VL's Table 2 (pretraining-stage evaluation), as the paper reports it.
PAPER_TABLE2 = pd.DataFrame(
    [
        ("SAIL-Caption", "high quality", 54.36, 51.80, 55.38),
        ("SA1B-QwenVL-Caption", "high quality", 48.43, 39.57, 51.97),
        ("DataComp-LLaVA-Caption", "high quality", 49.08, 42.70, 51.63),
        ("BLIP3-KALE", "high quality", 53.06, 46.00, 55.89),
        ("SAIL-Caption", "high + low quality", 52.13, 51.22, 52.50),
        ("SAIL-Caption", "high quality (repeated)", 54.05, 52.63, 54.62),
    ],
    columns=["caption data", "OCR data", *SCORES],
)


def fits(rows: pd.DataFrame, x: str = "size") -> pd.DataFrame:
    """score = a + b·ln(x) per score column, with R², over the rows given (one per size)."""
    return pd.DataFrame({score: fit_log_linear(rows[x].tolist(), rows[score].tolist()) for score in SCORES}).T


def sweep_plot(sweep: pd.DataFrame, controls: pd.DataFrame, fitted: pd.DataFrame, title: str):
    """Each score against unique samples (log axis): the sweep's points, its fit, the equal-step
    controls, and the Overall a model blind to the images reaches with the same answers ("Overall
    blind", dashed): a point on or under that line is no evidence of having looked. The y axis is
    zoomed to the data, which rarely spans the whole 0–100 scale, and says so."""
    long = sweep.melt(id_vars=["size"], value_vars=list(SCORES), var_name="score", value_name="value")
    figure, ax = plt.subplots(figsize=(7.5, 3.6))
    sns.scatterplot(long, x="size", y="value", hue="score", hue_order=SCORES, ax=ax, s=40)
    grid = np.geomspace(sweep["size"].min(), sweep["size"].max(), 50)
    colours = sns.color_palette(n_colors=len(SCORES))
    for colour, score in zip(colours, SCORES):
        a, b, r2 = fitted.loc[score, ["a", "b", "r2"]]
        ax.plot(
            grid, a + b * np.log(grid), color=colour, lw=1, label=f"{score} fit: {a:.1f} + {b:.2f}·ln D (R² {r2:.2f})"
        )
        if len(controls):
            ax.scatter(controls["size"], controls[score], marker="x", color=colour, s=50, zorder=3)
    blind = sweep.sort_values("size")
    ax.plot(
        blind["size"],
        blind["Overall blind"],
        color=colours[0],
        ls="--",
        lw=1,
        marker="_",
        markersize=10,
        label="Overall blind: the same answers scored against other images",
    )
    if len(controls):
        ax.scatter([], [], marker="x", color="grey", label="equal-step control (fewer samples, repeated)")
    ax.set(
        xscale="log",
        title=title,
        xlabel="unique pretraining samples D (log scale)",
        ylabel="held-out score\n(scale 0–100, axis zoomed)",
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    figure.tight_layout()
    return figure


def spread(rows: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean, min and max of each score over seeds, per group."""
    return rows.groupby(list(by))[list(SCORES)].agg(["mean", "min", "max"]).round(1)
