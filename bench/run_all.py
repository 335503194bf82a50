"""Every benchmark in `bench/`, each at a quick size, into one `outputs/<profile>/bench.json`.

Each script runs in its own process, as its docstring shows, with fewer images, steps, seeds or
repeats than its defaults (`SUITE` says which), and writes its full result file to a scratch
folder. `bench.json` keeps, per script, the command, the seconds it took, its exit code, its
ratios (what carries over to another machine: speed-ups, shares, spreads) and its whole result.
The per-script files in `bench/results/` are the fuller runs the READMEs and docstrings cite.
Notebook 00-03's outputs must exist first (`make pipeline`): the caption benches read the pool,
the captioner and the foundations they made.

    .venv/bin/python bench/run_all.py [--profile tiny] [--only packing train_step ...]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def _caption_throughput(result: dict) -> dict:
    return {row["way"]: row["ratio_to_one_at_a_time"] for row in result["rows"]}


def _packing(result: dict) -> dict:
    return {
        f"{row['way']} (batch {row['batch_size']})": {
            "real_fraction": row["real_fraction"],
            "tokens_per_second_ratio_to_padded": row["tokens_per_second_ratio_to_padded"],
        }
        for row in result["rows"]
    }


def _trainer_overhead(result: dict) -> dict:
    return {row["way"]: row["wall_ratio_to_bare"] for row in result["rows"]}


def _train_step(result: dict) -> dict:
    return {row["stage"]: row["ratio_to_sft"] for row in result["rows"]}


def _answer_logits(result: dict) -> dict:
    return {row["way"]: row["speed_up"] for row in result["rows"]}


def _captioner_budget(result: dict) -> dict:
    return {f"{row['annotations']} annotations": row["pair_f1"] for row in result["rows"]}


def _captioner_seeds(result: dict) -> dict:
    scores = [row["pair_f1"] for row in result["rows"]]
    return {"pair_f1_min": min(scores), "pair_f1_max": max(scores)}


def _foundations(result: dict) -> dict:
    return {
        f"{row['design']}, {row['kernels']} kernels": {
            "reached": f"{row['reached']} of {row['runs']}",
            "reads POPE": f"{row['runs_reading_kind']['WorldPOPE/pope']} of {row['runs']}",
        }
        for row in result["summary"]
    }


def _parallel_runs(result: dict) -> dict:
    return {row["way"]: row["speed_up"] for row in result["rows"]}


def _sft_recipe(result: dict) -> dict:
    return {
        row["candidate"]: {"above chance": row["above chance"], "mean image gain": row["mean image gain"]}
        for row in result["summary"]
    }


def _slot_skills(result: dict) -> dict:
    return {
        f"{run['task']}, {run['geometry']}": {"accuracy": run["final"]["accuracy"], "blind": run["final"]["blind"]}
        for run in result["runs"]
    }


def _cluster_plan(text: str) -> dict:
    total = re.search(r"\*\*total\*\*.*\*\*([\d,]+)\*\*", text)
    return {"full H100 GPU-hours": int(total.group(1).replace(",", "")) if total else None}


# script -> (quick arguments, summary of its result, result file suffix)
SUITE: dict[str, tuple[list[str], Callable, str]] = {
    "cluster_plan": ([], _cluster_plan, ".md"),
    "train_step": (["--steps", "6"], _train_step, ".json"),
    "packing": (["--repeats", "2", "--batch-sizes", "16", "--pack-lengths", "256"], _packing, ".json"),
    "trainer_overhead": (["--steps", "12", "--repeats", "2"], _trainer_overhead, ".json"),
    "answer_logits": (["--steps", "6"], _answer_logits, ".json"),
    "caption_throughput": (
        ["--images", "256", "--one-at-a-time-images", "16", "--batch-sizes", "32"],
        _caption_throughput,
        ".json",
    ),
    "captioner_seeds": (["--seeds", "0", "1", "--steps", "60"], _captioner_seeds, ".json"),
    "captioner_budget": (
        ["--annotations", "375", "1500", "--steps", "60", "--eval-images", "64"],
        _captioner_budget,
        ".json",
    ),
    "foundations": (["--seeds", "1", "--kernels", "native"], _foundations, ".json"),
    "slot_skills": (["--tasks", "copy", "equality", "--steps", "50"], _slot_skills, ".json"),
    "parallel_runs": (["--runs", "2", "--steps", "8", "--eval-images", "16"], _parallel_runs, ".json"),
    "sft_recipe": (
        ["--only", "no SFT", "projector + LM, 1e-4", "--samples", "192", "--per-benchmark", "8", "--seeds", "0"],
        _sft_recipe,
        ".json",
    ),
}


def run_one(script: str, scratch: Path) -> dict:
    """Run one bench at its quick size; its ratios, or its error's tail when it fails."""
    arguments, summarise, suffix = SUITE[script]
    out = scratch / f"{script}{suffix}"
    command = [sys.executable, str(BENCH / f"{script}.py"), *arguments, "--out", str(out)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    entry = {
        "command": ["python", f"bench/{script}.py", *arguments],
        "seconds": round(time.perf_counter() - started, 1),
        "exit_code": done.returncode,
    }
    if done.returncode:
        return {**entry, "error": done.stderr[-2000:]}
    result = out.read_text() if suffix == ".md" else json.loads(out.read_text())
    return {**entry, "ratios": summarise(result), "result": result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny", help="the run whose outputs the benches read and write")
    parser.add_argument("--only", nargs="+", choices=sorted(SUITE), default=sorted(SUITE), help="these benches")
    args = parser.parse_args(argv)
    report = {}
    with tempfile.TemporaryDirectory() as scratch:
        for script in sorted(args.only, key=list(SUITE).index):
            print(f"bench: {script} ...", flush=True)
            report[script] = run_one(script, Path(scratch))
            print(f"bench: {script} exit {report[script]['exit_code']} in {report[script]['seconds']} s", flush=True)
    target = ROOT / "outputs" / args.profile / "bench.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {target}")
    return 1 if any(entry["exit_code"] for entry in report.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
