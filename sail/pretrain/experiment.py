"""One pretraining run as a value in, scores out: what notebooks 04 and 05 sweep.

Every run starts from a checkpoint on disk (notebook 04: the foundations composed with a fresh
projector, seeded; notebook 05: notebook 04's aligned model), trains one SAIL step from the
recipe on the first `size` samples of a mixture (cycling through them when `steps` asks for more
than one epoch), and scores the result on held-out world images.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, PreTrainedModel, ProcessorMixin

from sail.data.mixture import Sample, rotate_images, write_samples
from sail.model import ImageOnlyInternVLProcessor
from sail.pretrain.data import sample_collate
from sail.pretrain.scores import evaluate, qa_accuracy
from sail.train import recipe as recipes
from sail.train import train, validation_loss
from sail.train.launch import Launch, launch_stage


@dataclass(frozen=True)
class Run:
    """What one point of a sweep trains: a SAIL step, on how much of which mixture, for how long."""

    name: str
    step: str  # "alignment" | "advance" (sail.train.recipe)
    mixture: str  # which mixture (a key of the notebook's mixtures)
    size: int  # unique samples: the first `size` of the mixture
    steps: int  # optimiser steps; size / batch is one epoch
    seed: int = 0


@dataclass(frozen=True)
class Evaluation:
    """Held-out images and samples every run of a notebook is scored on."""

    caption_records: Sequence[dict]
    ocr_records: Sequence[dict]
    ocr_samples: Sequence[Sample]  # teacher-forced OCR answers: a reading signal below generation's floor

    def swapped_ocr_samples(self) -> list[Sample]:
        """The OCR answers with each image taken from the next OCR record of its kind: the answer
        loss a model earns without reading, against which its own answer loss means something."""
        return rotate_images(self.ocr_samples)


def run_point(
    run: Run,
    start: Callable[[int], PreTrainedModel],
    samples: Sequence[Sample],
    processor: ProcessorMixin,
    evaluation: Evaluation,
    *,
    profile: str,
    pack_length: int | None,
    runs_dir: str | Path,
    save_to: str | Path | None = None,
    launch: Launch | None = None,
    mixed_precision: str = "no",
    **overrides,
) -> dict:
    """Train `run` from `start(seed)` and return its scores, budget and time (one flat row).

    The scores are `evaluate`'s (each with its blind level), the teacher-forced OCR answer loss
    and the same loss with swapped images ("OCR answer loss swapped"): a model that reads loses
    more when the image does not hold the answer.

    The run's checkpoints are removed afterwards (a sweep keeps rows, not dozens of models);
    `save_to` keeps this run's model in Hugging Face format for the next notebook. With `launch`,
    the run trains in processes of its own (`launch_stage`) on exactly these samples, and its
    model is read back; `overrides` (global_batch, micro_batch) reach the recipe either way, and
    `mixed_precision` the run in this process (a launched run takes the launch's).
    """
    if run.size > len(samples):
        raise ValueError(f"run {run.name!r} asks for {run.size} samples; the mixture has {len(samples)}")
    model = start(run.seed)
    data = list(samples[: run.size])
    out = Path(runs_dir) / run.name
    shutil.rmtree(out, ignore_errors=True)
    if launch is None:
        stage = recipes.stage(
            run.step,
            profile,
            data=data,
            collate=sample_collate(processor, pack_length),
            seed=run.seed,
            max_steps=run.steps,
            **overrides,
        )
        result = train(model, stage, out, mixed_precision=mixed_precision, progress=False)
        spent = {"steps": result.steps, "tokens": result.tokens, "seconds": result.seconds}
        spent |= {"final_loss": result.history[-1]["loss"], "processes": 1}
    else:
        model.save_pretrained(out / "start")
        processor.save_pretrained(out / "start")
        meta = write_samples(data, out / "data")
        spent = launch_stage(
            launch,
            run.step,
            profile=profile,
            checkpoint=out / "start",
            meta=meta,
            out=out,
            seed=run.seed,
            max_steps=run.steps,
            pack_length=pack_length or 0,
            **overrides,
        )
        model = AutoModelForImageTextToText.from_pretrained(out / "model")
        shutil.rmtree(out / "start")
    shutil.rmtree(out / "checkpoints")
    scores = evaluate(model, processor, evaluation.caption_records, evaluation.ocr_records)
    collate = sample_collate(processor)
    ocr_loss = validation_loss(model, collate, evaluation.ocr_samples, batch_size=64)
    swapped_loss = validation_loss(model, collate, evaluation.swapped_ocr_samples(), batch_size=64)
    if save_to is not None:
        model.save_pretrained(save_to)
        processor.save_pretrained(save_to)
    global_batch = overrides.get("global_batch") or recipes.recipe(run.step, profile).global_batch
    return {
        "run": run.name,
        "step": run.step,
        "mixture": run.mixture,
        "size": run.size,
        "steps": spent["steps"],
        "epochs": round(spent["steps"] * global_batch / run.size, 2),
        "seed": run.seed,
        "tokens": spent["tokens"],
        **scores,
        "OCR answer loss": ocr_loss,
        "OCR answer loss swapped": swapped_loss,
        "train seconds": round(spent["seconds"], 1),
        "final loss": spent["final_loss"],
        "processes": spent["processes"],
    }


@dataclass(frozen=True)
class Seeded:
    """A run's starting model: `build()` with the global seed set first, so a fresh projector's
    weights depend on the run's seed only. A value rather than a closure: with a picklable `build`
    (a module-level function, or a `functools.partial` of one) runs can train in other processes."""

    build: Callable[[], PreTrainedModel]

    def __call__(self, seed: int) -> PreTrainedModel:
        torch.manual_seed(seed)
        return self.build()


def _use_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def _run_job(job: tuple) -> dict:
    run, start, samples, processor, evaluation, options = job
    return run_point(run, start, samples, processor, evaluation, **options)


def run_points(
    jobs: Sequence[tuple[Run, dict]],
    start: Seeded,
    mixtures: Mapping[str, Sequence[Sample]],
    processor: ProcessorMixin,
    evaluation: Evaluation,
    *,
    workers: int = 0,
    **common,
) -> list[dict]:
    """`run_point` for every (run, its own options: `save_to`, `launch`) of `jobs`; rows in `jobs` order.

    The runs of a sweep are independent, so with `workers` > 1 they train at once in processes of
    their own, each with an equal share of this process's threads, longest first so the last to
    finish is a short one; 0 takes one worker per two CPU cores. Two threads already keep a tiny
    run busy, so more cores go further as more runs than as more threads per run; on two cores
    side by side gained nothing (`bench/parallel_runs.py`: 1.05x), so there they run one after
    another here. A run with a `launch` trains here, after the others: it starts its own processes.
    """
    workers = workers or max(1, (os.cpu_count() or 2) // 2)
    rows: dict[int, dict] = {}
    pooled = [i for i, (_, options) in enumerate(jobs) if workers > 1 and options.get("launch") is None]
    here = [i for i in range(len(jobs)) if i not in pooled]
    if pooled:
        threads = max(1, torch.get_num_threads() // workers)
        with ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=_use_threads, initargs=(threads,)
        ) as pool:
            futures = {
                pool.submit(
                    _run_job,
                    (run, start, mixtures[run.mixture][: run.size], processor, evaluation, {**common, **options}),
                ): i
                for i, (run, options) in sorted(((i, jobs[i]) for i in pooled), key=lambda item: -item[1][0].steps)
            }
            for future in as_completed(futures):
                rows[futures[future]] = future.result()
    for i in here:
        run, options = jobs[i]
        rows[i] = run_point(run, start, mixtures[run.mixture], processor, evaluation, **common, **options)
    return [rows[i] for i in range(len(jobs))]


def sft_probe(
    checkpoints: dict[str, str | Path],
    samples: Sequence[Sample],
    qa_records: Sequence[dict],
    *,
    profile: str,
    steps: int,
    pack_length: int | None,
    runs_dir: str | Path,
    seed: int,
    mixed_precision: str = "no",
    **overrides,
) -> list[dict]:
    """The same short SFT (every module trains) from each pretrained checkpoint: does the order
    pretraining gave them survive? One row per checkpoint, with VQA accuracy before and after,
    and after SFT its blind level ("VQA blind"), the interval of the gap to it ("VQA low",
    "VQA high") and how many different answers the model gave ("VQA distinct answers"): an order
    between two checkpoints both at their blind level is an order between two guessers.
    `overrides` (global_batch, micro_batch) replace the SFT recipe's batch."""
    rows = []
    for label, path in checkpoints.items():
        model = AutoModelForImageTextToText.from_pretrained(path)
        processor = ImageOnlyInternVLProcessor.from_pretrained(path)
        before = qa_accuracy(model, processor, qa_records, seed)["VQA"]
        stage = recipes.stage(
            "sft-knowledge",
            profile,
            data=list(samples),
            collate=sample_collate(processor, pack_length),
            seed=seed,
            max_steps=steps,
            **overrides,
        )
        out = Path(runs_dir) / f"sft {label}"
        shutil.rmtree(out, ignore_errors=True)
        result = train(model, stage, out, mixed_precision=mixed_precision, progress=False)
        shutil.rmtree(out / "checkpoints")
        after = qa_accuracy(model, processor, qa_records, seed)
        rows.append(
            {
                "checkpoint": label,
                "VQA before SFT": before,
                "VQA after SFT": after.pop("VQA"),
                **after,
                "sft steps": result.steps,
                "sft seconds": round(result.seconds, 1),
            }
        )
    return rows
