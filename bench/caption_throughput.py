"""Caption production throughput: images/s of the same captioner on the same images, side by side.

Ways of running `sail.caption.production.caption_pool`, each on the first `--images` images of a
curated pool (one-at-a-time on fewer: it is a rate), all measured in one run on one machine:

- `one at a time`: batch 1, one process with every core's threads: plain `generate` per image;
- `batched`: batches of each of `--batch-sizes` in one process, grouped by task (prompt length);
- `workers`: the same batches in `--workers` processes with `cores / workers` threads each (their
  start-up, loading the captioner, is counted: it is what a run pays);
- with `--backends hf lmdeploy` on a GPU machine, lmdeploy's pipeline on the same images.

    .venv/bin/python bench/caption_throughput.py [--pool outputs/tiny/artifacts/curation/pool]
        [--captioner outputs/tiny/artifacts/sail-captioner] [--images 2048] [--batch-sizes 32 128]
        [--out bench/results/caption_throughput.json]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(items, captioner: Path, *, backend: str, batch_size: int, workers: int, threads: int) -> dict:
    from sail.caption.production import Settings, caption_pool

    settings = Settings(str(captioner), backend=backend, shard_size=max(batch_size, 64), batch_size=batch_size)
    with tempfile.TemporaryDirectory() as out:
        report = caption_pool(items, out, settings, workers=workers, threads_per_worker=threads, show_progress=False)
    return {
        "images": report["images_captioned"],
        "seconds": report["seconds"],
        "images_per_second": report["images_per_second"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, default=ROOT / "outputs/tiny/artifacts/curation/pool")
    parser.add_argument("--captioner", type=Path, default=ROOT / "outputs/tiny/artifacts/sail-captioner")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--one-at-a-time-images", type=int, default=64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backends", nargs="+", default=["hf"], choices=["hf", "lmdeploy"])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "caption_throughput.json")
    args = parser.parse_args()

    from sail.data.pipeline import read_curated
    from sail.manifest import atomic_write_json, environment

    if not (args.captioner / "config.json").is_file():
        raise SystemExit(f"{args.captioner} holds no captioner: run `make pipeline` (notebooks 01 and 02) first")
    items = read_curated(args.pool)[: args.images]
    cores = os.cpu_count() or 1
    ways = {"one at a time": dict(batch_size=1, workers=0, threads=cores, images=args.one_at_a_time_images)}
    for size in args.batch_sizes:
        ways[f"batched ({size})"] = dict(batch_size=size, workers=0, threads=cores, images=len(items))
    for size in args.batch_sizes:
        ways[f"{args.workers} workers x batch {size}"] = dict(
            batch_size=size, workers=args.workers, threads=max(1, cores // args.workers), images=len(items)
        )
    rows = []
    for backend in args.backends:
        for name, way in ways.items():
            if backend == "lmdeploy" and way["workers"]:
                continue  # one lmdeploy engine batches on the GPU by itself
            subset = items[: way.pop("images")]
            row = {"backend": backend, "way": name, **way, **measure(subset, args.captioner, backend=backend, **way)}
            rows.append(row)
            print(
                f"{backend:8s} {name:28s} {row['images']:5d} images {row['seconds']:7.1f} s "
                f"{row['images_per_second']:7.1f} img/s"
            )
    baseline = next(
        row["images_per_second"] for row in rows if row["way"] == "one at a time" and row["backend"] == "hf"
    )
    for row in rows:
        row["ratio_to_one_at_a_time"] = round(row["images_per_second"] / baseline, 2)
        print(f"{row['backend']:8s} {row['way']:28s} {row['ratio_to_one_at_a_time']:6.2f}x one at a time")
    atomic_write_json(args.out, {"rows": rows, "cpu_count": cores, **environment(ROOT)})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
