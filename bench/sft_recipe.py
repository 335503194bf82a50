"""The tiny SFT recipe, chosen on the dev split: what trains and how fast, by what the model keeps seeing.

Each candidate (what trains, learning rate) fine-tunes the same start checkpoint (notebook 05's
model) through notebook 07's curriculum at its largest size (the three tiers in the paper's
shares, one epoch each), then is scored on the world suite drawn from the *validation* split, the
dev split no reported number comes from: each benchmark's score against its blind level, the
answers with every image swapped for another record's, the benchmarks above chance by both
intervals (as notebook 08 counts them), and the image gain (gold-answer loss with another image
minus with its own, nats per answer token) per benchmark. The start checkpoint itself is scored
beside them ("no SFT"): what fine-tuning adds or takes away. Each seed draws other validation
questions and another data order; the summary gives every candidate's mean over the seeds.
`sail.train.recipe` states the choice and these numbers; the test split is never looked at here.

    .venv/bin/python bench/sft_recipe.py [--samples 768] [--per-benchmark 96] [--seeds 0 1] [--out F]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from transformers import AutoModelForImageTextToText

from sail.caption import captioner_trainable
from sail.eval import blind, report
from sail.eval.generation import Generator
from sail.manifest import environment
from sail.model import ImageOnlyInternVLProcessor
from sail.sft import experiment as sft
from sail.sft.data import TIERS
from sail.train import recipe as recipes
from sail.train.recipe import EVERYTHING, PROJECTOR

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "outputs/tiny/artifacts"
LANGUAGE = captioner_trainable(False)  # projector, LM and its head: the tiny SFT recipe's today
NO_SFT = "no SFT"  # the start checkpoint as it is
CANDIDATES: dict[str, tuple[tuple[str, ...], float] | None] = {  # name: (what trains, learning rate)
    NO_SFT: None,
    "projector + LM, 3e-3": (LANGUAGE, 3e-3),
    "projector + LM, 1e-3": (LANGUAGE, 1e-3),
    "projector + LM, 3e-4": (LANGUAGE, 3e-4),
    "projector + LM, 1e-4": (LANGUAGE, 1e-4),
    "projector + LM, 3e-5": (LANGUAGE, 3e-5),
    "projector, 1e-3": ((PROJECTOR,), 1e-3),
    "projector, 3e-4": ((PROJECTOR,), 3e-4),
    "everything, 3e-4": (EVERYTHING, 3e-4),
}


def score_candidate(name: str, start: Path, stages: list, benchmarks: dict, seed: int, scratch: str) -> dict:
    """Fine-tune one candidate (or take the start checkpoint, for "no SFT") and score it on `benchmarks`."""
    began = time.perf_counter()
    if CANDIDATES[name] is None:
        model = AutoModelForImageTextToText.from_pretrained(start)
        processor = ImageOnlyInternVLProcessor.from_pretrained(start)
        trainable, lr, steps = [], 0.0, 0
    else:
        trainable, lr = CANDIDATES[name]
        model, processor, spent = sft.fine_tune(
            start, stages, profile="tiny", seed=seed, runs_dir=scratch, name="run", trainable=trainable, lr=lr
        )
        steps = spent["steps"]
    generator = Generator("hf", model=model, processor=processor, max_new_tokens=16, batch_size=64)
    results = report.evaluate(generator, benchmarks)
    swapped = report.evaluate(generator, blind.swapped_images(benchmarks))
    levels = blind.blind_levels(benchmarks, {n: r["predictions"] for n, r in results.items()})
    versus = blind.versus_blind({"run": results}, benchmarks, levels)["run"]
    verdict = report.verdict(results, swapped, benchmarks, levels, versus)
    gains = {
        bench: round(blind.image_reliance(model, processor, {bench: benchmarks[bench]})["image gain"], 3)
        for bench in benchmarks
    }
    return {
        "candidate": name,
        "seed": seed,
        "lr": lr,
        "trains": list(trainable),
        "above chance": int(verdict["above chance"].sum()),
        "benchmarks above chance": [b for b, row in verdict.iterrows() if row["above chance"]],
        "score": verdict["score"].round(1).to_dict(),
        "blind": verdict["blind"].round(1).to_dict(),
        "swapped score": verdict["swapped score"].round(1).to_dict(),
        "image gain": gains,
        "mean image gain": round(statistics.mean(gains.values()), 3),
        "steps": steps,
        "seconds": round(time.perf_counter() - began, 1),
    }


def summary(rows: list[dict]) -> list[dict]:
    """Per candidate, over its seeds: benchmarks above chance (mean and fewest), mean image gain,
    and each benchmark's mean score and image gain."""
    out = []
    for name in dict.fromkeys(row["candidate"] for row in rows):
        mine = [row for row in rows if row["candidate"] == name]
        benchmarks = mine[0]["score"]
        out.append(
            {
                "candidate": name,
                "seeds": [row["seed"] for row in mine],
                "above chance": round(statistics.mean(row["above chance"] for row in mine), 2),
                "fewest above chance": min(row["above chance"] for row in mine),
                "mean image gain": round(statistics.mean(row["mean image gain"] for row in mine), 3),
                "score": {b: round(statistics.mean(row["score"][b] for row in mine), 1) for b in benchmarks},
                "image gain": {b: round(statistics.mean(row["image gain"][b] for row in mine), 3) for b in benchmarks},
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=Path, default=ARTIFACTS / "pretrain-advance")
    parser.add_argument("--tiers", type=Path, default=ARTIFACTS / "sft", help="notebook 06's <tier>.meta.json")
    parser.add_argument("--samples", type=int, default=768, help="SFT samples over the three tiers (07's largest)")
    parser.add_argument("--per-benchmark", type=int, default=96, help="validation questions per world benchmark")
    parser.add_argument("--only", nargs="+", choices=sorted(CANDIDATES), default=list(CANDIDATES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/sft_recipe.json")
    args = parser.parse_args(argv)
    counts = sft.stage_shares(args.samples, recipes.PAPER_SFT_SAMPLES, unit=16)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for seed in args.seeds:
            benchmarks = report.load_benchmarks(n=args.per_benchmark, seed=seed, split="validation")
            tiers = sft.read_tiers({tier: args.tiers / f"{tier}.meta.json" for tier in TIERS}, seed)
            stages = [(f"sft-{tier}", tiers[tier][: counts[tier]]) for tier in TIERS]
            for name in args.only:
                rows.append(score_candidate(name, args.start, stages, benchmarks, seed, scratch))
                print(json.dumps({k: rows[-1][k] for k in ("candidate", "seed", "above chance", "mean image gain")}))
                print("   gains", rows[-1]["image gain"], flush=True)
    result = {
        "start": str(args.start.relative_to(ROOT) if args.start.is_relative_to(ROOT) else args.start),
        "samples": args.samples,
        "stages": counts,
        "per_benchmark": args.per_benchmark,
        "split": "validation",
        "summary": summary(rows),
        "rows": rows,
        **environment(ROOT),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
