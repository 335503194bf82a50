"""The final model's card in Hugging Face's format: YAML metadata with `model-index` results, then
prose and tables, every number taken from the run's results (notebooks 04-08)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

OVERALL = "Overall / average"


def benchmark_scores(table1_row: Mapping[str, float]) -> dict[str, float]:
    """{benchmark: score} from a Table 1 row ("<group> / <benchmark>" columns, averages left out)."""
    return {column.split(" / ")[1]: score for column, score in table1_row.items() if not column.endswith("/ average")}


def final_model_card(
    *,
    name: str,
    profile: str,
    stages: Sequence[Mapping[str, object]],
    table1_row: Mapping[str, float],
    chance_row: Mapping[str, float],
    benchmarks: Mapping[str, Mapping[str, object]],
    image_gain: float | None,
) -> ModelCard:
    """The card of the pipeline's final model.

    `stages`: one mapping per training stage (stage, trains, samples, steps); `table1_row` and
    `chance_row`: notebook 08's Table 1 row of this model and of a blind model; `benchmarks`: 08's
    benchmark descriptions (group, metric, stands_for, n); `image_gain`: 08's answer-loss gain from
    the question's own image over another (nats per answer token).
    """
    ours, chance = benchmark_scores(table1_row), benchmark_scores(chance_row)
    results = [
        EvalResult(
            task_type="visual-question-answering",
            dataset_type=f"sail-world/{benchmark}",
            dataset_name=f"{benchmark} (SAIL world, stands for {benchmarks[benchmark]['stands_for']})",
            metric_type=str(benchmarks[benchmark]["metric"]),
            metric_value=round(score, 2),
        )
        for benchmark, score in ours.items()
    ]
    data = ModelCardData(
        model_name=name,
        library_name="transformers",
        pipeline_tag="image-text-to-text",
        license="other",
        tags=["sail", "internvl", profile],
        eval_results=results,
    )
    above = [b for b in ours if ours[b] > chance[b]]
    rows = "\n".join(
        f"| {b} | {benchmarks[b]['group']} | {benchmarks[b]['n']} | {ours[b]:.1f} | {chance[b]:.1f} |" for b in ours
    )
    training = "\n".join(f"| {s['stage']} | {s['trains']} | {s['samples']:,} | {s['steps']:,} |" for s in stages)
    looks = (
        f"The gold answers' loss falls by {image_gain:.3f} nats per token when the question's own image "
        "replaces another image of the same benchmark"
        if image_gain is not None
        else "Image reliance was not measured"
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

Scores in percent, VLMEvalKit's rules; chance is what a model that never looks at the image can
count on (one answer to every question, or random guessing, whichever scores more).

| benchmark | group | questions | this model | chance |
|---|---|---:|---:|---:|
{rows}

Overall (average of the four groups): {table1_row[OVERALL]:.1f}, chance {chance_row[OVERALL]:.1f}.

## Limitations

Above chance on {len(above)} of {len(ours)} benchmarks{": " + ", ".join(above) if above else ""}. {looks}.
This is a miniature: a few million parameters trained for minutes on synthetic images, for
teaching and for testing the pipeline, not for use.
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def write_final_model_card(directory: str | Path, card: ModelCard) -> Path:
    """Save the card as the model folder's README.md, as the Hub shows it."""
    path = Path(directory) / "README.md"
    card.save(path)
    return path
