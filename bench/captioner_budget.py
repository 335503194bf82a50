"""What the teacher budget buys: distilled-captioner quality against the number of teacher annotations.

Notebook 02 distils its captioner from the teacher's captions of notebook 01's reference subset.
Here the same distillation (the tiny foundations, notebook 02's stage: projector + LM, lr 1e-3,
batch 32, recaption share 0.2) runs on world train images annotated by the world teacher, for
several annotation counts at the same number of steps, and each captioner is scored on the same
held-out world test images. The result: pair F1 and hallucination rate against annotations, and
the seconds each distillation took on this machine.

    .venv/bin/python bench/captioner_budget.py [--annotations 750 1500 3000 6000] [--steps 300]
        [--reference outputs/tiny/artifacts/curation/reference] [--merge]
        [--foundations outputs/tiny/artifacts/foundations] [--out bench/results/captioner_budget.json]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def distil_and_score(model, processor, rows, *, steps: int, seed: int, test_seed: int, eval_images: int = 128):
    """Notebook 02's distillation stage on (annotation, task) rows, then the captioner's scores on
    held-out world test images: (training result, scores)."""
    from sail.caption import captioner_trainable, evaluate_captioner
    from sail.caption.distill import distillation_collate
    from sail.train import Stage, train
    from sail.world import sample_records

    stage = Stage(
        name="sail-captioner",
        data=rows,
        collate=distillation_collate(processor),
        trainable=captioner_trainable(train_vision=False),
        lr=1e-3,
        batch_size=32,
        max_steps=steps,
        seed=seed,
    )
    with tempfile.TemporaryDirectory() as runs:
        result = train(model, stage, Path(runs), progress=False)
    _, scores = evaluate_captioner(model, processor, sample_records("test", eval_images, seed=test_seed))
    return result, scores


def distil(
    n: int, steps: int, foundations: Path, seed: int, eval_images: int, reference: Path | None, files: bool
) -> dict:
    import torch
    from transformers import AutoTokenizer

    from sail.caption.distill import Annotation, distillation_rows
    from sail.caption.teachers import WorldTeacher, world_items
    from sail.model import GEOMETRIES, compose_vlm, make_processor
    from sail.world import alt_text, render, sample_records

    geometry = GEOMETRIES["tiny"]
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(foundations / "tokenizer")
    model = compose_vlm(foundations / "vision", foundations / "language", tokenizer)
    processor = make_processor(tokenizer, geometry.tile_size, geometry.image_seq_length)
    if reference is None:  # world train images, uniformly drawn, with LAION-style alt-text
        records = sample_records("train", n, seed=seed)
        rng = random.Random(seed)
        alts = [alt_text(r, rng) for r in records]
        paths = None
    else:  # notebook 01's distribution-balanced reference subset, with its sources' alt-text
        from sail.data.pipeline import read_curated

        chosen = read_curated(reference)[:n]
        if len(chosen) < n:
            raise SystemExit(f"{reference} holds {len(chosen)} images, fewer than {n}")
        records, alts = [item.extra["record"] for item in chosen], [item.text for item in chosen]
        paths = [item.path for item in chosen] if files else None

    def image(index: int):
        """The record rendered afresh, or (`files`) the curated file, as notebook 02 reads it."""
        if paths is None:
            return render(records[index])
        with Image.open(paths[index]) as opened:
            return opened.convert("RGB")

    items = world_items(records, alts)
    captions = WorldTeacher(seed=seed).caption(items)
    recaptions = WorldTeacher(grounded=True, seed=seed).caption(items)
    annotations = {
        task: [
            Annotation(r["id"], (lambda i=i: image(i)), alt, c)
            for i, (r, alt, c) in enumerate(zip(records, alts, texts))
        ]
        for task, texts in (("caption", captions), ("recaption", recaptions))
    }
    by_id = {a.id: a for a in annotations["recaption"]}
    rows = [
        (by_id[a.id], task) if task == "recaption" else (a, task)
        for a, task in distillation_rows(annotations["caption"], recaption_fraction=0.2, seed=seed)
    ]
    result, scores = distil_and_score(
        model, processor, rows, steps=steps, seed=seed, test_seed=seed + 1, eval_images=eval_images
    )
    return {
        "images": "world train" if reference is None else f"reference subset ({'files' if files else 'rendered'})",
        "seed": seed,
        "annotations": n,
        "steps": result.steps,
        "epochs": round(result.steps * 32 / n, 2),
        "train_seconds": round(result.seconds, 1),
        "pair_f1": round(scores["pair_f1"], 4),
        "object_f1": round(scores["object_f1"], 4),
        "position_f1": round(scores["position_f1"], 4),
        "hallucination_rate": round(scores["hallucination_rate"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=int, nargs="+", default=[750, 1500, 3000, 6000])
    parser.add_argument("--steps", type=int, nargs="+", default=[300])
    parser.add_argument(
        "--reference", type=Path, default=None, help="annotate a curated export (notebook 01's reference/) instead"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-images", type=int, default=128)
    parser.add_argument("--foundations", type=Path, default=ROOT / "outputs/tiny/artifacts/foundations")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "captioner_budget.json")
    parser.add_argument("--merge", action="store_true", help="add to the rows already in --out")
    parser.add_argument("--files", action="store_true", help="with --reference: train on its image files, not renders")
    args = parser.parse_args()

    from sail.manifest import atomic_write_json, environment

    if not (args.foundations / "foundations.json").is_file():
        raise SystemExit(f"{args.foundations} holds no foundations: run notebook 00 (make pipeline) first")
    rows = json.loads(args.out.read_text())["rows"] if args.merge and args.out.is_file() else []
    for n in args.annotations:
        for steps in args.steps:
            rows.append(distil(n, steps, args.foundations, args.seed, args.eval_images, args.reference, args.files))
            print(rows[-1], flush=True)
            atomic_write_json(args.out, {"rows": rows, **environment(ROOT)})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
