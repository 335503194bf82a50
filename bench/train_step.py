"""Training-step cost per stage on this machine, measured side by side in one process.

What a stage trains decides what a step costs: alignment (projector only) skips the vision and LM
backward passes, advance adds the vision tower, SFT trains everything. The ratios, not the
seconds, carry over to other machines.

    .venv/bin/python bench/train_step.py [--steps 20] [--batch 32] [--profile tiny] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from sail.caption import caption_collate, caption_examples
from sail.foundations.language import world_text
from sail.model import GEOMETRIES, build_vlm, make_processor, train_world_tokenizer
from sail.train import Stage, train
from sail.world import sample_records

STAGES = {
    "alignment (projector)": ("model.multi_modal_projector",),
    "advance (vision + projector)": ("model.vision_tower", "model.multi_modal_projector"),
    "sft (everything)": ("",),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--profile", default="tiny", choices=["tiny"])
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args()

    geometry = GEOMETRIES[args.profile]
    records = sample_records("train", args.steps * args.batch)
    tokenizer = train_world_tokenizer(world_text(records[:2000], seed=0), vocab_size=geometry.vocab_size)
    processor = make_processor(tokenizer, geometry.tile_size, geometry.image_seq_length)
    data = caption_examples(records)
    rows = []
    for name, trainable in STAGES.items():
        torch.manual_seed(0)
        model = build_vlm(geometry, tokenizer)
        stage = Stage(
            name=name,
            data=data,
            collate=caption_collate(processor),
            trainable=trainable,
            lr=1e-3,
            batch_size=args.batch,
            max_steps=args.steps,
        )
        with tempfile.TemporaryDirectory() as run_dir:
            result = train(model, stage, run_dir, progress=False)
        step = statistics.median(b["seconds"] - a["seconds"] for a, b in zip(result.history, result.history[1:]))
        rows.append((name, step, result.tokens / result.steps / step))
    base = rows[-1][1]
    print(f"{args.profile} profile, batch {args.batch}, {args.steps} steps, {torch.get_num_threads()} threads")
    print(f"{'stage':<32}{'median step s':>14}{'vs sft':>8}{'tokens/s':>10}")
    for name, step, rate in rows:
        print(f"{name:<32}{step:>14.3f}{step / base:>8.2f}{rate:>10.0f}")
    if args.out is not None:
        table = [
            {"stage": name, "median_step_seconds": round(step, 4), "ratio_to_sft": round(step / base, 3),
             "tokens_per_second": round(rate)}
            for name, step, rate in rows
        ]  # fmt: skip
        args.out.write_text(json.dumps({"rows": table, "threads": torch.get_num_threads()}, indent=1) + "\n")


if __name__ == "__main__":
    main()
