"""Sweep runs one after another with every thread, against side by side with a thread each.

Notebooks 04 and 05 train many independent runs (sweep points, controls, seeds, Table 2 rows).
On a few CPU cores a tiny model's small matrices keep two threads only partly busy, and greedy
generation in each run's evaluation hardly at all, so runs in processes of their own, one thread
each, should finish a sweep sooner than the same runs in turn with all threads. This measures it
on notebook 04's main mixture and the tiny foundations (see `pretrain_setup.py` for fallbacks):
the same `--runs` alignment runs, each `--steps` steps and the notebook's evaluation, timed both
ways in one process tree. Nothing else should run on the machine meanwhile.

    .venv/bin/python bench/parallel_runs.py [--runs 4] [--steps 64] [--workers 2] [--out F]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from pretrain_setup import MIXTURE, ROOT, pretrain_samples, tiny_vlm
from transformers import AutoModelForImageTextToText

from sail.pretrain.data import held_out_samples
from sail.pretrain.experiment import Evaluation, Run, Seeded, run_points
from sail.pretrain.scores import test_records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4, help="alignment runs, each from a fresh projector")
    parser.add_argument("--steps", type=int, default=64, help="optimiser steps of 16 samples per run")
    parser.add_argument("--workers", type=int, default=2, help="runs side by side, one thread each")
    parser.add_argument("--eval-images", type=int, default=96, help="held-out images captioned per run (04: 96)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/parallel_runs.json")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        samples, source = pretrain_samples(MIXTURE, work, 16 * args.steps)
        model, processor, what = tiny_vlm()
        model.save_pretrained(work / "start")
        start = Seeded(partial(AutoModelForImageTextToText.from_pretrained, work / "start"))
        captions, ocr = test_records(args.eval_images, args.eval_images // 2, seed=1)
        evaluation = Evaluation(captions, ocr, held_out_samples(ocr, work / "test", "ocr-test"))
        jobs = [(Run(f"run {i}", "alignment", "main", len(samples), args.steps, seed=i), {}) for i in range(args.runs)]
        rows = []
        for way, workers in (("one after another", 1), ("side by side", args.workers)):
            began = time.perf_counter()
            done = run_points(
                jobs,
                start,
                {"main": samples},
                processor,
                evaluation,
                workers=workers,
                profile="tiny",
                pack_length=256,
                runs_dir=work / way,
            )
            rows.append(
                {
                    "way": way,
                    "processes": workers,
                    "threads per run": threads if workers == 1 else max(1, threads // workers),
                    "seconds": round(time.perf_counter() - began, 1),
                    "Caption": [round(row["Caption"], 1) for row in done],
                }
            )
    for row in rows:
        row["speed_up"] = round(rows[0]["seconds"] / row["seconds"], 2)
    result = {
        "runs": args.runs,
        "steps": args.steps,
        "eval_images": args.eval_images,
        "data": source,
        "model": what,
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
