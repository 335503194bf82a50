"""Reliability of the LM foundation's slot reading: designs x seeds x CPU kernels.

Reading the image slot forms in a sudden transition whose timing varies from run to run, and the
trained bits differ from one CPU's kernels to another's (`ATEN_CPU_CAPABILITY`: `default` is the
plain kernels an older CPU gets; `native` leaves this machine's own). A tutorial must reach every
target on any CPU, so each design (a set of `FoundationBudget` overrides, `DESIGNS`) is run for each
seed under each kernel setting, exactly as `sail.foundations.build_foundations` pretrains the LM,
and every check is recorded: when it first reached the reading target, in steps and seconds, and
at what share of its cap. With `--captioner` each run also trains notebook 00's first captioner on
that LM (and a ViT foundation pretrained for the same seed) and scores it on held-out test images.
Each result file in `results/` records the budgets and the git commit it measured. Runs take one
thread each and run side by side, one per core.

    .venv/bin/python bench/foundations.py [--designs default] [--seeds 5] [--kernels default native]
                                          [--captioner] [--device cpu] [--out bench/results/foundations.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, replace
from itertools import product
from multiprocessing import get_context
from pathlib import Path

# LM foundation designs, as overrides of the default FoundationBudget.
DESIGNS: dict[str, dict] = {
    "default": {},
    "no-drill": {"language_drill_steps": 0},
    "by-benchmark": {"language_questions_by_benchmark": True},
}
KERNELS = ("default", "native")  # ATEN_CPU_CAPABILITY; native: this CPU's own kernels
READ_MARGIN = 0.05  # own slot over another image's: the margin sail.foundations.reading_by_kind reads by
CAPTIONER = {"steps": 250, "lr": 1e-3, "eval_images": 128}  # notebook 00's defaults


def first_captioner(language, probe, tokenizer, geometry, budget, seed: int, device: str) -> dict:
    """Notebook 00's first captioner on these foundations: trained on teacher captions, scored on test images."""
    from sail.caption import caption_collate, caption_examples, captioner_trainable, evaluate_captioner
    from sail.model import compose_vlm, make_processor
    from sail.train import Stage, train
    from sail.world import sample_records

    with tempfile.TemporaryDirectory() as folder:
        language.save_pretrained(Path(folder) / "language")
        probe.encoder.save_pretrained(Path(folder) / "vision")
        model = compose_vlm(Path(folder) / "vision", Path(folder) / "language", tokenizer)
        processor = make_processor(tokenizer, geometry.tile_size, geometry.image_seq_length)
        stage = Stage(
            name="first-captioner",
            lr=CAPTIONER["lr"],
            batch_size=budget.batch_size,
            data=caption_examples(
                sample_records("train", CAPTIONER["steps"] * budget.batch_size, seed=seed), "teacher", seed=seed
            ),
            collate=caption_collate(processor),
            trainable=captioner_trainable(train_vision=False),
            max_steps=CAPTIONER["steps"],
            seed=seed,
        )
        result = train(model, stage, Path(folder) / "run", progress=False)
    _, scores = evaluate_captioner(
        model.to(device), processor, sample_records("test", CAPTIONER["eval_images"], seed=seed)
    )
    return {
        "captioner_seconds": round(result.seconds, 1),
        "captioner_pair_f1": scores["pair_f1"],
        "captioner_object_f1": scores["object_f1"],
        "captioner_position_f1": scores["position_f1"],
    }


def use_kernels(kernels: str) -> None:
    """Pick ATen's CPU kernels for this worker process, before it imports torch."""
    if kernels != "native":
        os.environ["ATEN_CPU_CAPABILITY"] = kernels


def one_run(design: str, seed: int, kernels: str, captioner: bool, device: str) -> dict:
    """Pretrain one LM foundation; its checks, when it first reached the target, its final figure,
    and with `captioner` the first captioner's scores on it."""
    import torch

    from sail.foundations import FoundationBudget, pretrain_language, pretrain_vision
    from sail.foundations.language import world_text
    from sail.model import GEOMETRIES, train_world_tokenizer
    from sail.world import sample_records

    torch.set_num_threads(1)
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the trainer takes a GPU whenever it sees one
    budget, geometry = replace(FoundationBudget(), **DESIGNS[design]), GEOMETRIES["tiny"]
    started = time.perf_counter()
    cards = budget.language_card_fraction
    records = sample_records("train", budget.language_records, seed=seed, card_fraction=cards)
    heldout = sample_records("validation", budget.heldout_records, seed=seed, card_fraction=cards)
    tokenizer = train_world_tokenizer(world_text(records[:4000], seed), vocab_size=geometry.vocab_size)
    with tempfile.TemporaryDirectory() as runs:
        language, report = pretrain_language(
            Path(runs), geometry, tokenizer, budget, records, heldout, seed=seed, progress=False
        )
        scores = {}
        if captioner:
            vision_budget = FoundationBudget()  # the ViT is not what is compared: notebook 00's own
            scenes = sample_records("train", vision_budget.vision_records, seed=seed)
            probe, _ = pretrain_vision(
                Path(runs),
                geometry,
                vision_budget,
                scenes,
                [r for r in heldout if r["kind"] == "scene"],
                seed=seed,
                progress=False,
            )
            scores = first_captioner(language, probe, tokenizer, geometry, vision_budget, seed, device)
    reached = next(
        (c for c in report["reading_checks"] if c["context_caption_pair_f1"] >= budget.language_reading_target), None
    )
    return {
        "design": design,
        "seed": seed,
        "kernels": kernels,
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "drill_steps": report["drill_steps"],
        "copies": report["copies"],
        "checks": report["reading_checks"],
        "reached": report["reached_reading_target"],
        "reached_step": reached and reached["step"],
        "reached_seconds": reached and reached["seconds"],
        "steps": report["steps"],
        "seconds": report["seconds"],
        "final_pair_f1": report["context_caption_pair_f1"],
        "question_accuracy": report["question_accuracy"],
        **scores,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def summary(runs: list[dict]) -> list[dict]:
    """Per design and kernel setting: how many runs reached the target, and how many by 60 % of
    the cap (the margin a tutorial needs on any CPU), the median and worst step and seconds, and
    the median final reading F1 (and first captioner F1, when measured)."""
    from sail.foundations import FoundationBudget

    rows = []
    for design, kernels in sorted({(run["design"], run["kernels"]) for run in runs}):
        group = [run for run in runs if run["design"] == design and run["kernels"] == kernels]
        cap = replace(FoundationBudget(), **DESIGNS[design]).language_steps
        reached = [run for run in group if run["reached"]]
        steps = [run["reached_step"] for run in reached]
        seconds = [run["reached_seconds"] for run in reached]
        captioners = [run["captioner_pair_f1"] for run in group if "captioner_pair_f1" in run]
        rows.append(
            {
                "design": design,
                "kernels": kernels,
                "runs": len(group),
                "reached": len(reached),
                "reached_by_60%_of_cap": sum(step <= 0.6 * cap for step in steps),
                "cap_steps": cap,
                "median_step": statistics.median(steps) if steps else None,
                "worst_step": max(steps, default=None),
                "median_seconds": round(statistics.median(seconds), 1) if seconds else None,
                "worst_seconds": max(seconds, default=None),
                "median_final_pair_f1": round(statistics.median(run["final_pair_f1"] for run in group), 3),
                "median_captioner_pair_f1": round(statistics.median(captioners), 3) if captioners else None,
                "worst_captioner_pair_f1": round(min(captioners), 3) if captioners else None,
                "runs_reading_kind": runs_reading_kind(group),
            }
        )
    return rows


def runs_reading_kind(runs: list[dict], margin: float = READ_MARGIN) -> dict[str, int]:
    """Per question kind, in how many runs the LM answers it better from its own slot than from
    another image's by more than `margin` (`sail.foundations.reading_by_kind`'s rule): reading
    captions is one skill, comparing a question's words with the slot (POPE) another, and a design
    must give every run both."""
    kinds = runs[0]["question_accuracy"]["own image"]
    return {
        kind: sum(
            run["question_accuracy"]["own image"][kind] - run["question_accuracy"]["another image"][kind] > margin
            for run in runs
        )
        for kind in kinds
    }


def print_table(rows: list[dict]) -> None:
    columns = [
        "design",
        "kernels",
        "reached",
        "reached_by_60%_of_cap",
        "cap_steps",
        "median_step",
        "worst_step",
        "median_seconds",
        "worst_seconds",
        "median_final_pair_f1",
        "median_captioner_pair_f1",
        "worst_captioner_pair_f1",
    ]
    cells = [
        [f"{row['reached']}/{row['runs']}" if name == "reached" else str(row[name]) for name in columns] for row in rows
    ]
    widths = [max(len(name), *(len(line[i]) for line in cells)) for i, name in enumerate(columns)]
    print("  ".join(name.rjust(width) for name, width in zip(columns, widths)))
    for line in cells:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", nargs="+", default=["default"], choices=sorted(DESIGNS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds run from here: first-seed .. first-seed+seeds-1"
    )
    parser.add_argument("--kernels", nargs="+", default=list(KERNELS), choices=KERNELS)
    parser.add_argument("--captioner", action="store_true", help="also train and score the first captioner")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--workers", type=int, default=0, help="runs side by side (default: one per core)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "foundations.json")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the runs already in --out that this call does not repeat (measure parts apart)",
    )
    args = parser.parse_args()

    from sail.foundations import FoundationBudget
    from sail.manifest import atomic_write_json, environment

    budgets = {design: asdict(replace(FoundationBudget(), **DESIGNS[design])) for design in args.designs}
    measured_on = {"cpu_count": os.cpu_count(), **environment(Path(__file__).resolve().parents[1])}

    def save(runs: list[dict]) -> list[dict]:
        """Written after every run, so an interrupted study keeps what it measured."""
        rows = summary(runs)
        atomic_write_json(
            args.out,
            {
                "budgets": budgets,
                "device": args.device,
                "captioner": CAPTIONER if args.captioner else None,
                "summary": rows,
                "runs": runs,
                **measured_on,
            },
        )
        return rows

    runs: list[dict] = []
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    if args.merge and args.out.is_file():
        earlier = json.loads(args.out.read_text())
        budgets = {**earlier["budgets"], **budgets}
        measured_on["kept_runs_measured_at"] = earlier["git"]
        repeated = set(product(args.designs, seeds, args.kernels))
        runs = [run for run in earlier["runs"] if (run["design"], run["seed"], run["kernels"]) not in repeated]
    for kernels in args.kernels:  # one pool per setting: a worker picks its kernels before importing torch
        jobs = [(design, seed) for design in args.designs for seed in seeds]
        workers = args.workers or os.cpu_count() or 1
        with ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=use_kernels, initargs=(kernels,)
        ) as pool:
            futures = [
                pool.submit(one_run, design, seed, kernels, args.captioner, args.device) for design, seed in jobs
            ]
            for future in as_completed(futures):
                run = future.result()
                runs.append(run)
                checks = " ".join(f"{c['step']}:{c['context_caption_pair_f1']:.2f}" for c in run["checks"])
                captioner = f" captioner {run['captioner_pair_f1']:.3f}" if "captioner_pair_f1" in run else ""
                print(
                    f"{run['design']} kernels {kernels} seed {run['seed']}: drill {run['drill_steps']} steps, "
                    f"reading at step {run['reached_step']} ({run['reached_seconds']} s){captioner} | {checks}",
                    flush=True,
                )
                rows = save(runs)
    print()
    print_table(rows)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
