"""What the full SAIL-VL recipe costs on a GPU cluster: each stage's tokens, FLOPs and H100 GPU-hours.

Every number comes from the compute planner (`sail.train.compute.stage_compute`, shown with
`plan_table`) fed with the `full` profile: the SAIL-VL-2B geometry (`GEOMETRIES["full"]`) and the
stage recipes (`RECIPES["full"]`: the paper's budgets, what each stage trains, the global batch).
The paper budgets pretraining in tokens and SFT in samples, but publishes the size of neither kind
of sample; the planner needs one, so this takes the one notebook 04's compute plan (section 7)
assumes: a pretraining sample is one tile and 100 text tokens, an SFT sample three tiles and 300
text tokens (a test keeps the two in step). The MFU is the planner's default unless `--mfu` is
given. The markdown table, with every assumption in its caption, is printed and written to `--out`.

    .venv/bin/python bench/cluster_plan.py [--mfu 0.4] [--out bench/results/cluster_plan.md]
"""

from __future__ import annotations

import argparse
import inspect
import math
from collections.abc import Sequence
from pathlib import Path

from sail.model import GEOMETRIES
from sail.model.build import MODULES
from sail.train import recipe as recipes
from sail.train.compute import (
    FLOP_UNITS,
    PARTS,
    StageCompute,
    plan_table,
    samples_for_tokens,
    stage_compute,
)

PROFILE = "full"
FLOP_UNIT = "EFLOP"
COMMAND = ".venv/bin/python bench/cluster_plan.py"
# (image tiles, text tokens) of an average sample: notebook 04's compute plan, section 7.
PRETRAIN_SAMPLE = (1, 100)
SFT_SAMPLE = (3, 300)
SAMPLE_SHAPES = {
    "alignment": PRETRAIN_SAMPLE,
    "advance": PRETRAIN_SAMPLE,
    "sft-knowledge": SFT_SAMPLE,
    "sft-instruction": SFT_SAMPLE,
    "sft-preference": SFT_SAMPLE,
}
STAGES = tuple(SAMPLE_SHAPES)  # the captioner step is left out: it fine-tunes another model (InternVL2-8B)
PLANNER_MFU = inspect.signature(stage_compute).parameters["mfu"].default


def trained_parts(recipe: recipes.StageRecipe) -> set[str]:
    """The planner's part names ("vision", "projector", "language") for the modules a recipe trains."""
    if recipe.trainable == recipes.EVERYTHING:
        return set(PARTS)
    part_of = {path: part for part, path in MODULES.items()}
    return {part_of[module] for module in recipe.trainable}


def plan(mfu: float = PLANNER_MFU, stages: Sequence[str] = STAGES) -> list[StageCompute]:
    """The planner's rows for the `full` stages: pretraining samples are as many as the token budget buys."""
    geometry = GEOMETRIES[PROFILE]
    rows = []
    for step in stages:
        recipe = recipes.recipe(step, PROFILE)
        tiles, text = SAMPLE_SHAPES[step]
        samples = recipe.samples or samples_for_tokens(recipe.token_budget, text, tiles, geometry.image_seq_length)
        rows.append(
            stage_compute(
                step,
                geometry,
                samples=samples,
                text_tokens_per_sample=text,
                tiles_per_sample=tiles,
                global_batch=recipe.global_batch,
                trainable=trained_parts(recipe),
                mfu=mfu,
            )
        )
    return rows


def budget(step: str) -> str:
    """The recipe's budget as the paper states it: tokens for pretraining, samples for SFT."""
    recipe = recipes.recipe(step, PROFILE)
    if recipe.token_budget:
        return f"{recipe.token_budget / 1e9:g}B tokens"
    return f"{recipe.samples / 1e6:g}M samples"


def _number(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


def markdown_table(rows: Sequence[StageCompute]) -> str:
    """The planner's table (its columns, less steps and the assumption text), plus the paper budget and a total."""
    table = plan_table(rows, flops_unit=FLOP_UNIT)
    flops = [f"{part} ({FLOP_UNIT})" for part in (*PARTS, "total")]
    header = ["stage", "paper budget", "trains", "samples (M)", "tokens (B)", *flops, "H100 GPU-hours"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|"]
    for _, row in table.iterrows():
        cells = [f"`{row['stage']}`", budget(row["stage"]), row["trains"]]
        cells += [_number(row["samples (M)"], 1), _number(row["tokens (B)"], 1)]
        cells += [_number(row[column], 1) for column in flops]
        cells.append(_number(row["GPU-hours"], 0))
        lines.append("| " + " | ".join(cells) + " |")
    totals = table[["samples (M)", "tokens (B)", *flops, "GPU-hours"]].sum()
    cells = ["**total**", "", "", _number(totals["samples (M)"], 1), _number(totals["tokens (B)"], 1)]
    cells += [_number(totals[column], 1) for column in flops]
    cells.append(f"**{_number(totals['GPU-hours'], 0)}**")
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def caption(rows: Sequence[StageCompute], mfu: float) -> str:
    """Every assumption the table rests on, each number read from the planner, the geometry or the recipe."""
    geometry = GEOMETRIES[PROFILE]
    first = rows[0]
    per_tile = geometry.image_seq_length

    def shape(step: str) -> str:
        tiles, text = SAMPLE_SHAPES[step]
        return f"{tiles} tile{'s' * (tiles > 1)} and {text} text tokens ({tiles * per_tile + text:,} LLM tokens)"

    pretrain = [row.stage for row in rows if recipes.recipe(row.stage, PROFILE).token_budget]
    sft = [row.stage for row in rows if not recipes.recipe(row.stage, PROFILE).token_budget]
    mfu_source = "the planner's default" if mfu == PLANNER_MFU else "given with --mfu"
    global_batches = sorted({recipes.recipe(row.stage, PROFILE).global_batch for row in rows})
    items = [
        f"GPU: {first.gpu}, {first.peak_flops / 1e12:.0f} TFLOP/s peak (`H100_BF16_DENSE`), at MFU "
        f"{mfu:.0%} ({mfu_source}; an assumption, not a measurement of this code). GPU-hours = training "
        f"FLOPs / (peak x MFU) / 3600; on N GPUs at the same MFU the wall-clock hours are GPU-hours / N.",
        f"Model: the `{PROFILE}` geometry (InternViT-300M-448px + Qwen2.5-1.5B, `sail.model.build`), "
        f"{geometry.tile_size}-px tiles of {per_tile} image tokens each after the pixel shuffle; "
        f"{geometry.vision_layers}-layer vision tower of width {geometry.vision_hidden}, "
        f"{geometry.text_layers}-layer LLM of width {geometry.text_hidden}.",
        "Budgets and what trains: `RECIPES['full']` (the SAIL-VL paper's budgets). Pretraining samples are as "
        "many as the token budget buys (`samples_for_tokens`, rounded up); tokens are what the LLM sees, text "
        "plus image tokens.",
        f"Average sample (the paper publishes none; notebook 04's assumption): {', '.join(pretrain)}: "
        f"{shape(pretrain[0])}; {', '.join(sft)}: {shape(sft[0])}.",
        "FLOPs: 2 per weight per token in matrix multiplies plus attention's two products, each sample its own "
        "attention sequence at the average length; a trained part costs 3 forward passes, a frozen part the "
        "gradient crosses 2, a frozen part upstream of everything trained 1. Norms, activations and "
        "recomputation under gradient checkpointing are not counted.",
        f"Not shown: optimiser steps. The planner counts ceil(samples / {'/'.join(map(str, global_batches))}) "
        "with one sample per sequence, while the recipe's global batch comes from InternVL2.5's packed sequences; "
        "GPU-hours do not depend on it. The captioner step (`RECIPES['full']['captioner']`, InternVL2-8B) is not "
        "included.",
    ]
    return "\n".join(f"- {item}" for item in items)


def report(mfu: float = PLANNER_MFU) -> str:
    rows = plan(mfu)
    command = COMMAND + ("" if mfu == PLANNER_MFU else f" --mfu {mfu:g}")
    return (
        f"Compute of the `{PROFILE}` SAIL-VL stages on H100s at MFU {mfu:.0%} "
        f"(1 {FLOP_UNIT} = 10^{round(math.log10(FLOP_UNITS[FLOP_UNIT]))} FLOPs):\n\n"
        f"{markdown_table(rows)}\n\n{caption(rows, mfu)}\n\nRegenerate with `{command}`.\n"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mfu", type=float, default=PLANNER_MFU, help=f"model FLOPs utilisation ({PLANNER_MFU})")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cluster_plan.md")
    args = parser.parse_args(argv)
    text = report(args.mfu)
    print(text, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
