"""The final model's card in Hugging Face's format: YAML metadata with `model-index` results, then
prose and tables, every number taken from the run's results (notebooks 04-08).

Each benchmark score stands beside what a degenerate model gets: the blind level (the best one
answer given to every question, padded and empty strings included, or guessing), the number of
distinct answers the model gave, and the bootstrap interval of (score − blind level). "Above
chance" is notebook 08's verdict: that interval above 0 and the score lower, beyond its interval,
when each question gets another question's image. The image gain (how much the gold answers'
loss rises when another image is shown, notebook 08) says the same without greedy answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

OVERALL = "Overall / average"
MINIATURE = """This is a miniature: a few million parameters trained for minutes on synthetic images, for
teaching and for testing the pipeline, not for use.
"""
FINAL_COLUMNS = (
    "benchmark",
    "group",
    "questions",
    "score",
    "blind level",
    "per-question score − blind constant [95 %]",
    "distinct answers",
    "with swapped images",
    "image gain, nats [95 %]",
    "above chance",
)


def final_rows(evaluation: Mapping) -> list[dict]:
    """The final model's Table 1 row from notebook 08's results, one dict per benchmark with
    `FINAL_COLUMNS`, numbers rounded as shown (scores to 0.1)."""
    rows = []
    final = evaluation["final"]["checkpoint"]
    gains = evaluation.get("image_reliance", {}).get(final, {}).get("by benchmark", {})
    for benchmark, row in evaluation["final"]["rows"].items():
        gain = gains.get(benchmark)
        spec = evaluation["benchmarks"][benchmark]
        rows.append(
            {
                "benchmark": benchmark,
                "group": spec["group"],
                "questions": spec["n"],
                "score": round(row["score"], 1),
                "blind level": round(row["blind"], 1),
                "per-question score − blind constant [95 %]": (
                    f"{row['difference']:+.1f} [{row['low']:+.1f}, {row['high']:+.1f}]"
                ),
                "distinct answers": row["distinct answers"],
                "with swapped images": f"{row['swapped score']:.1f}",
                "image gain, nats [95 %]": (
                    f"{gain['image gain']:+.2f} [{gain['low']:+.2f}, {gain['high']:+.2f}]" if gain else "not measured"
                ),
                "above chance": "yes" if row["above chance"] else "no",
            }
        )
    return rows


def averages(evaluation: Mapping) -> dict[str, float]:
    """The final model's and the blind level's mean over benchmarks (Table 1's Overall) and mean of
    the group averages (the four-group average), rounded to 0.1: two different numbers, two labels."""
    final = evaluation["final"]["checkpoint"]
    ours, blind = evaluation["table1"][final], evaluation["blind"]
    groups = [key for key in ours if key.endswith("/ average") and key != OVERALL]
    return {
        "overall": round(ours[OVERALL], 1),
        "blind overall": round(blind[OVERALL], 1),
        "group mean": round(sum(ours[g] for g in groups) / len(groups), 1),
        "blind group mean": round(sum(blind[g] for g in groups) / len(groups), 1),
        "benchmarks": sum(1 for key in ours if not key.endswith("/ average")),
        "groups": len(groups),
    }


def markdown_table(rows: Sequence[Mapping], columns: Sequence[str]) -> str:
    """`rows` as a markdown table: numbers as they are, a column right-aligned when it holds numbers only."""
    numeric = [all(isinstance(row[c], int | float) and not isinstance(row[c], bool) for row in rows) for c in columns]
    head = "| " + " | ".join(columns) + " |\n|" + "|".join("---:" if right else "---" for right in numeric)
    return head + "|\n" + "\n".join("| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows)


def final_model_card(
    *, name: str, profile: str, stages: Sequence[Mapping[str, object]], evaluation: Mapping
) -> ModelCard:
    """The card of the pipeline's final model (`evaluation["final"]["checkpoint"]` of notebook 08).

    `stages`: one mapping per training stage (stage, trains, samples, steps); `evaluation`:
    notebook 08's results JSON (scores, blind levels, the final model's verdicts, image reliance).
    """
    final = evaluation["final"]["checkpoint"]
    rows = final_rows(evaluation)
    results = [
        EvalResult(
            task_type="visual-question-answering",
            dataset_type=f"sail-world/{row['benchmark']}",
            dataset_name=f"{row['benchmark']} (SAIL world, stands for "
            f"{evaluation['benchmarks'][row['benchmark']]['stands_for']})",
            metric_type=str(evaluation["benchmarks"][row["benchmark"]]["metric"]),
            metric_value=round(evaluation["final"]["rows"][row["benchmark"]]["score"], 2),
        )
        for row in rows
    ]
    data = ModelCardData(
        model_name=name,
        library_name="transformers",
        pipeline_tag="image-text-to-text",
        license="other",
        tags=["sail", "internvl", profile],
        eval_results=results,
    )
    above = [row["benchmark"] for row in rows if row["above chance"] == "yes"]
    means = averages(evaluation)
    training = "\n".join(f"| {s['stage']} | {s['trains']} | {s['samples']:,} | {s['steps']:,} |" for s in stages)
    reliance = evaluation.get("image_reliance", {}).get(final)
    looks = (
        f"The gold answers' loss changes by {reliance['image gain']:.3f} nats per token "
        f"(95 % interval [{reliance['low']:.3f}, {reliance['high']:.3f}]) when another image of the same benchmark "
        "replaces the question's own"
        if reliance
        else "Image reliance was not measured"
    )
    exploits = {
        benchmark: row["exploiting answers"]
        for benchmark, row in evaluation["final"]["rows"].items()
        if row["exploiting answers"]
    }
    flagged = (
        " Answers that earn credit only through the metric's handling of padding: "
        + ", ".join(f"{benchmark} {count}" for benchmark, count in exploits.items())
        + "."
        if exploits
        else ""
    )
    body = f"""
# {name}

The final checkpoint of the `{profile}` run of the SAIL-VL recipe: Pretrain-Alignment, then
Pretrain-Advance, then the three-stage SFT curriculum (Knowledge, Instruction, Preference).
An InternVL in transformers' own layout (`InternVLForConditionalGeneration`): load it with
`AutoModelForImageTextToText.from_pretrained` and `sail.model.ImageOnlyInternVLProcessor`.

## Training

| stage | trains | samples | optimiser steps |
|---|---|---:|---:|
{training}

## Evaluation: the world benchmarks (Table 1's layout)

Scores in percent, VLMEvalKit's rules. The blind level is what a model that never looks at the
image can score: the best one answer given to every question (gold answers, this model's own
answers, empty and padded strings) or random guessing. The next column compares question by
question: this model's per-question score minus the best constant answer's, with its paired
bootstrap interval (on POPE and HallusionBench, whose headlines are not means over questions, it
is yes/no accuracy). "Above chance" needs that interval above 0 and a lower score, beyond its
interval, when every question is shown another question's image.

{markdown_table(rows, FINAL_COLUMNS)}

Overall (mean over the {means["benchmarks"]} benchmarks, Table 1's Avg): {means["overall"]:.1f}, blind level
{means["blind overall"]:.1f}. Mean of the {means["groups"]} group averages: {means["group mean"]:.1f}, blind level
{means["blind group mean"]:.1f}.

## Limitations

Above chance on {len(above)} of {len(rows)} benchmarks{": " + ", ".join(above) if above else ""}. {looks}.{flagged}
{MINIATURE if profile == "tiny" else ""}"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def write_final_model_card(directory: str | Path, card: ModelCard) -> Path:
    """Save the card as the model folder's README.md, as the Hub shows it."""
    path = Path(directory) / "README.md"
    card.save(path)
    return path
