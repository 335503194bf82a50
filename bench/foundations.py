"""Reliability of the LM foundation's context reading: seeds x torch threads, on this machine.

Reading a context forms in a sudden transition whose timing varies from run to run (and with the
number of CPU threads, which changes the order of float sums). For each seed and thread count
this pretrains the tiny LM foundation exactly as `sail.foundations.build_foundations` does with
the default `FoundationBudget` (copy drill, then world text until held-out captions written from
the context reach the reading target, or the step cap) and records every check. Each result file
in `results/` records the budget and the git commit it measured. Runs with fewer threads than cores
run side by side, one per free core group, so every run has its threads to itself.

    .venv/bin/python bench/foundations.py [--seeds 10] [--threads 1 2] [--out bench/results/foundations.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path


def one_run(seed: int, threads: int) -> dict:
    """Pretrain one LM foundation; its checks, when it first reached the target, and its final figure."""
    import torch

    from sail.foundations import FoundationBudget, pretrain_language
    from sail.foundations.language import world_text
    from sail.model import GEOMETRIES, train_world_tokenizer
    from sail.world import sample_records

    torch.set_num_threads(threads)
    budget, geometry = FoundationBudget(), GEOMETRIES["tiny"]
    started = time.perf_counter()
    records = sample_records("train", budget.language_records, seed=seed)
    heldout = sample_records("validation", budget.heldout_records, seed=seed)
    tokenizer = train_world_tokenizer(world_text(records[:4000], seed), vocab_size=geometry.vocab_size)
    with tempfile.TemporaryDirectory() as runs:
        _, report = pretrain_language(Path(runs), geometry, tokenizer, budget, records, heldout, seed=seed, progress=False)
    reached = next((c for c in report["reading_checks"]
                    if c["context_caption_pair_f1"] >= budget.language_reading_target), None)
    return {"seed": seed, "threads": threads, "drill_steps": report["drill_steps"], "copies": report["copies"],
            "checks": report["reading_checks"], "reached": report["reached_reading_target"],
            "reached_step": reached and reached["step"], "reached_seconds": reached and reached["seconds"],
            "steps": report["steps"], "seconds": report["seconds"],
            "final_pair_f1": report["context_caption_pair_f1"], "wall_seconds": round(time.perf_counter() - started, 1)}


def summary(runs: list[dict], cap: int) -> list[dict]:
    """Per thread count: how many runs reached the target, and the median and worst step and seconds."""
    rows = []
    for threads in sorted({run["threads"] for run in runs}):
        group = [run for run in runs if run["threads"] == threads]
        reached = [run for run in group if run["reached"]]
        steps = [run["reached_step"] for run in reached]
        seconds = [run["reached_seconds"] for run in reached]
        rows.append({"threads": threads, "runs": len(group), "reached": len(reached), "cap_steps": cap,
                     "median_step": statistics.median(steps) if steps else None, "worst_step": max(steps, default=None),
                     "median_seconds": round(statistics.median(seconds), 1) if seconds else None,
                     "worst_seconds": max(seconds, default=None),
                     "median_final_pair_f1": round(statistics.median(run["final_pair_f1"] for run in group), 3)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "foundations.json")
    args = parser.parse_args()

    from sail.foundations import FoundationBudget
    from sail.manifest import atomic_write_json, environment

    budget = FoundationBudget()
    runs: list[dict] = []
    for threads in args.threads:
        workers = max(1, (os.cpu_count() or 1) // threads)
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            for run in pool.map(one_run, range(args.seeds), [threads] * args.seeds):
                runs.append(run)
                checks = " ".join(f"{c['step']}:{c['context_caption_pair_f1']:.2f}" for c in run["checks"])
                print(f"threads {threads} seed {run['seed']}: drill {run['drill_steps']} steps, "
                      f"reading at step {run['reached_step']} ({run['reached_seconds']} s) | {checks}", flush=True)
    rows = summary(runs, budget.language_steps)
    print(f"\n{'threads':>7} {'reached':>8} {'cap':>5} {'median step':>12} {'worst step':>11} {'median s':>9} {'worst s':>8}"
          f" {'median final F1':>16}")
    for row in rows:
        print(f"{row['threads']:>7} {row['reached']:>5}/{row['runs']:<2} {row['cap_steps']:>5} {row['median_step']!s:>12}"
              f" {row['worst_step']!s:>11} {row['median_seconds']!s:>9} {row['worst_seconds']!s:>8}"
              f" {row['median_final_pair_f1']:>16}")
    atomic_write_json(args.out, {"budget": asdict(budget), "summary": rows, "runs": runs,
                                 "cpu_count": os.cpu_count(), **environment(Path(__file__).resolve().parents[1])})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
