"""How much notebook 02's captioner depends on its seed: its distillation, cell for cell, per seed.

The teacher, the train/validation split, the task draw, the projector's initial weights and the
batch order all follow notebook 02's `seed`; the foundations and the 128 held-out test images
(notebook 02's, seed 0) stay fixed, so only the distillation's own randomness varies.

    .venv/bin/python bench/captioner_seeds.py [--seeds 0 1 2] [--out bench/results/captioner_seeds.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from captioner_budget import distil_and_score  # bench/ is this script's own folder on sys.path

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "outputs/tiny/artifacts"


def distil(seed: int, steps: int) -> dict:
    import torch
    from transformers import AutoTokenizer

    from sail.caption.distill import Annotation, distillation_rows
    from sail.caption.pipeline import load_reference, split_annotations, teacher_items, to_annotations
    from sail.caption.teachers import WorldTeacher
    from sail.model import GEOMETRIES, compose_vlm, make_processor

    foundations, geometry = ARTIFACTS / "foundations", GEOMETRIES["tiny"]
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(foundations / "tokenizer")
    model = compose_vlm(foundations / "vision", foundations / "language", tokenizer)
    processor = make_processor(tokenizer, geometry.tile_size, geometry.image_seq_length)
    reference = load_reference(ARTIFACTS / "curation")
    items = teacher_items(reference)
    captions = WorldTeacher(seed=seed).caption(items)
    with_alt = [item for item in items if (item.alt_text or "").strip()]
    recaptions = dict(zip((i.id for i in with_alt), WorldTeacher(grounded=True, seed=seed).caption(with_alt)))
    annotations = to_annotations(reference, captions)
    grounded = {
        a.id: Annotation(a.id, a.image, a.alt_text, recaptions[a.id]) for a in annotations if a.id in recaptions
    }
    train_annotations, _ = split_annotations(annotations, 0.1, seed=seed)
    rows = [
        (grounded[a.id], task) if task == "recaption" and a.id in grounded else (a, "caption")
        for a, task in distillation_rows(train_annotations, recaption_fraction=0.2, seed=seed)
    ]
    result, scores = distil_and_score(model, processor, rows, steps=steps, seed=seed, test_seed=1)
    return {
        "seed": seed,
        "steps": result.steps,
        "train_seconds": round(result.seconds, 1),
        "pair_f1": round(scores["pair_f1"], 4),
        "hallucination_rate": round(scores["hallucination_rate"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "captioner_seeds.json")
    args = parser.parse_args()

    from sail.manifest import atomic_write_json, environment

    rows = []
    for seed in args.seeds:
        rows.append(distil(seed, args.steps))
        print(rows[-1], flush=True)
        atomic_write_json(args.out, {"rows": rows, **environment(ROOT)})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
