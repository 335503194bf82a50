"""Caption production: a pool captioned in fixed shards by worker processes, resumable, across ranks.

SAIL-Caption is ~300M images captioned by SAIL-Captioner on many nodes. The same code here
captions the tiny pool on a laptop:

- **plan**: the pool's items, in their given order, cut into shards of `shard_size`; each image
  gets one task, caption or recaption (alt-text in the prompt), drawn from a hash of its id and
  the seed, so the plan never depends on how many processes or ranks run it. `plan.json` records
  the settings and a digest of the ids; a run that finds another plan there refuses to mix them.
- **ledger**: a shard is done when its file `shards/shard-<k>.jsonl` exists. Workers write each
  shard atomically (temporary file, then rename), so a killed run leaves only whole shards, and
  a rerun does exactly the missing ones: nothing is lost, nothing captioned twice.
- **workers**: processes that each load the captioner once (`sail.eval.Generator`, backend `hf`
  or `lmdeploy`) and caption a shard at a time in batches grouped by task.
- **ranks**: a run takes the shards `k` with `k % world_size == rank`, from a Slurm job array,
  Slurm tasks or torchrun (`rank_share`); `merge` then checks every shard is present exactly
  once before it writes the dataset.
- **bad input** never stops a run: an image that does not open, a recaption with an empty
  alt-text, an empty caption, a caption cut at the length limit are each written to the shard
  with a status.

    python -m sail.caption.production run --pool <dir> --captioner <dir> --out <dir> [--workers 2]
    python -m sail.caption.production merge --pool <dir> --out <dir>
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

from PIL import Image

from sail.caption import CAPTION_PROMPT
from sail.caption.teachers import RECAPTION_PROMPT
from sail.console import progress
from sail.data.pipeline import read_curated
from sail.data.readers import Item
from sail.manifest import atomic_write_json, atomic_write_text, sha256_file
from sail.model.processor import TRAINING_MAX_TILES

PLAN = "plan.json"
SHARDS = "shards"
DATASET = "dataset"
# Row statuses, all counted in the dataset's card. An image drawn for recaption without alt-text is
# captioned instead and kept; unreadable images, empty captions and captions cut at the length
# limit are left out.
OK, UNREADABLE, NO_ALT_TEXT = "ok", "unreadable image", "empty alt-text"
EMPTY, LENGTH_LIMIT = "empty caption", "length limit"
KEPT = (OK, NO_ALT_TEXT)


@dataclass(frozen=True)
class Settings:
    """What decides the captions a run writes; a resumed run must use the same."""

    captioner_dir: str
    backend: str = "hf"
    shard_size: int = 256
    batch_size: int = 32
    max_new_tokens: int = 96
    max_tiles: int = TRAINING_MAX_TILES  # as the captioner was trained
    recaption_fraction: float = 0.5
    seed: int = 0

    def __post_init__(self):
        if self.shard_size < 1 or self.batch_size < 1 or self.max_new_tokens < 1 or self.max_tiles < 1:
            raise ValueError("shard_size, batch_size, max_new_tokens and max_tiles must be positive")
        if not 0 <= self.recaption_fraction <= 1:
            raise ValueError(f"recaption_fraction must be in [0, 1], got {self.recaption_fraction}")


def captioner_identity(captioner_dir: str | os.PathLike) -> dict[str, str]:
    """The captioner's id (its folder name) and version (a digest of its config and weights)."""
    directory = Path(captioner_dir)
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{directory} holds no saved model (no config.json): run notebook 02 first")
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.json")) + sorted(directory.glob("*.safetensors")):
        digest.update(path.name.encode() + bytes.fromhex(sha256_file(path)))
    return {"captioner": directory.name, "captioner_version": digest.hexdigest()[:12]}


def task_of(item_id: str, recaption_fraction: float, seed: int) -> str:
    """The image's task, from its id alone: the same in every plan of the pool."""
    draw = int.from_bytes(hashlib.sha256(f"{seed}/{item_id}".encode()).digest()[:8], "big") / 2**64
    return "recaption" if draw < recaption_fraction else "caption"


def ids_digest(items: Sequence[Item]) -> str:
    digest = hashlib.sha256()
    for item in items:
        digest.update(item.id.encode() + b"\n")
    return digest.hexdigest()[:16]


def make_plan(items: Sequence[Item], settings: Settings) -> dict:
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"the pool has {len(ids) - len(set(ids))} repeated ids: each image must be captioned once")
    return {
        "settings": asdict(settings),
        **captioner_identity(settings.captioner_dir),
        "images": len(items),
        "shards": -(-len(items) // settings.shard_size),
        "ids_sha256": ids_digest(items),
    }


def claim_plan(out_dir: Path, plan: dict) -> None:
    """Write the plan, or check that the one already there is the same (a resumed run)."""
    path = out_dir / PLAN
    if path.exists():
        old = json.loads(path.read_text())
        if old != plan:
            changed = sorted(k for k in set(old) | set(plan) if old.get(k) != plan.get(k))
            raise ValueError(
                f"{out_dir} holds a run with another plan (changed: {', '.join(changed)}): "
                "resume with the same pool, captioner and settings, or use another --out"
            )
        return
    atomic_write_json(path, plan)


def shard_items(items: Sequence[Item], shard: int, shard_size: int) -> Sequence[Item]:
    return items[shard * shard_size : (shard + 1) * shard_size]


def shard_path(out_dir: Path, shard: int) -> Path:
    return out_dir / SHARDS / f"shard-{shard:06d}.jsonl"


def rank_share() -> tuple[int, int]:
    """(rank, world size) from the scheduler: a Slurm job array (`SLURM_ARRAY_TASK_ID` from
    `SLURM_ARRAY_TASK_MIN`, of `SLURM_ARRAY_TASK_COUNT`), Slurm tasks (`SLURM_PROCID` of
    `SLURM_NTASKS`) or torchrun (`RANK` of `WORLD_SIZE`); (0, 1) when none is set."""
    env = os.environ
    if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        found = (
            int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", 0)),
            int(env["SLURM_ARRAY_TASK_COUNT"]),
        )
        names = ("SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT")
    elif "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        found, names = (int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"])), ("SLURM_PROCID", "SLURM_NTASKS")
    elif "RANK" in env and "WORLD_SIZE" in env:
        found, names = (int(env["RANK"]), int(env["WORLD_SIZE"])), ("RANK", "WORLD_SIZE")
    else:
        return 0, 1
    rank, world = found
    if not 0 <= rank < world:
        raise ValueError(f"{names[0]}={rank} is not in [0, {names[1]}={world})")
    return rank, world


def prompt_for(task: str, alt_text: str) -> str:
    if task == "recaption":
        return RECAPTION_PROMPT.format(alt_text=alt_text.replace('"', "'"))
    return CAPTION_PROMPT


# -- worker side ------------------------------------------------------------------------------

_GENERATOR = None


def _load_captioner(settings: Settings, threads: int) -> None:
    """Worker initializer: load the captioner once per process."""
    global _GENERATOR
    import torch

    from sail.eval.generation import Generator

    if threads:
        torch.set_num_threads(threads)
    _GENERATOR = Generator(
        settings.backend,
        settings.captioner_dir,
        max_new_tokens=settings.max_new_tokens,
        batch_size=settings.batch_size,
    )


def _open(item: Item) -> tuple[Image.Image | None, str]:
    try:
        with Image.open(item.path) as image:
            return image.convert("RGB"), ""
    except (OSError, ValueError, TypeError) as error:
        return None, f"{type(error).__name__}: {error}"


def caption_shard(items: Sequence[Item], settings: Settings, identity: dict[str, str]) -> list[dict]:
    """Rows for one shard, in the shard's order: every item once, with its status."""
    from sail.eval.generation import image_messages

    rows, pending = [], []
    for item in items:
        task = task_of(item.id, settings.recaption_fraction, settings.seed)
        row = {"id": item.id, "source": item.source, "alt_text": item.text, "task": task, "caption": "", **identity}
        row |= {"status": OK, "detail": ""}
        if task == "recaption" and not item.text.strip():
            row |= {"task": "caption", "status": NO_ALT_TEXT, "detail": "recaption drawn; captioned without alt-text"}
        image, problem = _open(item)
        if image is None:
            row |= {"status": UNREADABLE, "detail": problem}
        else:
            pending.append((row, image))
        rows.append(row)
    # Batches of one task: caption and recaption prompts differ in length, so less padding.
    pending.sort(key=lambda pair: (pair[0]["task"], len(pair[0]["alt_text"])))
    for start in range(0, len(pending), settings.batch_size):
        chunk = pending[start : start + settings.batch_size]
        messages = [image_messages(image, prompt_for(row["task"], row["alt_text"])) for row, image in chunk]
        for (row, _), found in zip(chunk, _GENERATOR.generations(messages, settings.max_tiles)):
            row["caption"] = found.text
            if found.hit_limit:
                row |= {"status": LENGTH_LIMIT, "detail": f"stopped at max_new_tokens={settings.max_new_tokens}"}
            elif not found.text:
                row |= {"status": EMPTY, "detail": "the captioner ended before writing anything"}
    return rows


def _run_shard(items: Sequence[Item], shard: int, out_dir: Path, settings: Settings, identity: dict) -> dict:
    started = time.perf_counter()
    rows = caption_shard(items, settings, identity)
    atomic_write_text(shard_path(out_dir, shard), "".join(json.dumps(row) + "\n" for row in rows))
    return {"shard": shard, "images": len(rows), "seconds": time.perf_counter() - started}


# -- driver -----------------------------------------------------------------------------------


def caption_pool(
    items: Sequence[Item],
    out_dir: str | os.PathLike,
    settings: Settings,
    *,
    workers: int = 1,
    threads_per_worker: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
    max_shards: int | None = None,
    show_progress: bool = True,
) -> dict:
    """Caption this rank's missing shards; returns what this call did.

    workers: processes, each with its own captioner (0: in this process). threads_per_worker: torch
    threads per worker (0: cores / workers). rank / world_size: default from the environment
    (`rank_share`). max_shards: stop after that many new shards (to show an interruption).
    """
    out_dir = Path(out_dir)
    if rank is None or world_size is None:
        rank, world_size = rank_share()
    plan = make_plan(items, settings)
    claim_plan(out_dir, plan)
    (out_dir / SHARDS).mkdir(exist_ok=True)
    mine = [k for k in range(plan["shards"]) if k % world_size == rank]
    for k in mine:  # a shard of this rank a killed worker was writing; other ranks' may be in progress
        for leftover in (out_dir / SHARDS).glob(f".{shard_path(out_dir, k).name}.*.tmp"):
            leftover.unlink()
    missing = [k for k in mine if not shard_path(out_dir, k).exists()]
    todo = missing[:max_shards]
    identity = {"captioner": plan["captioner"], "captioner_version": plan["captioner_version"]}
    images = sum(len(shard_items(items, k, settings.shard_size)) for k in todo)
    threads = threads_per_worker or max(1, (os.cpu_count() or 1) // max(1, workers))
    bar = progress(images, desc=f"rank {rank}/{world_size}: captioning", disable=not show_progress)
    started, done = time.perf_counter(), 0

    def finished(result: dict) -> None:
        nonlocal done
        done += result["images"]
        bar.update(result["images"])
        bar.set_postfix(images_per_s=f"{done / (time.perf_counter() - started):.1f}")

    if workers == 0:
        _load_captioner(settings, threads_per_worker)
        for k in todo:
            finished(_run_shard(shard_items(items, k, settings.shard_size), k, out_dir, settings, identity))
    elif todo:
        context = get_context("spawn")
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_load_captioner, initargs=(settings, threads)
        ) as pool:
            futures = [
                pool.submit(_run_shard, shard_items(items, k, settings.shard_size), k, out_dir, settings, identity)
                for k in todo
            ]
            for future in as_completed(futures):
                finished(future.result())
    bar.close()
    seconds = time.perf_counter() - started
    return {
        "rank": rank,
        "world_size": world_size,
        "shards_of_rank": len(mine),
        "shards_captioned": len(todo),
        "shards_already_done": len(mine) - len(missing),
        "images_captioned": done,
        "seconds": round(seconds, 2),
        "images_per_second": round(done / seconds, 2) if seconds and done else 0.0,
    }


def read_shards(items: Sequence[Item], out_dir: str | os.PathLike) -> list[dict]:
    """Every shard's rows, checked against the plan: each shard present, each image exactly once."""
    out_dir = Path(out_dir)
    plan = json.loads((out_dir / PLAN).read_text())
    if plan["ids_sha256"] != ids_digest(items):
        raise ValueError(f"{out_dir} was planned over another pool: its ids differ from the ones given")
    size = plan["settings"]["shard_size"]
    missing = [k for k in range(plan["shards"]) if not shard_path(out_dir, k).exists()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {plan['shards']} shards are missing (e.g. {shard_path(out_dir, missing[0]).name}): "
            "run every rank to the end (rerunning resumes) before merging"
        )
    extra = sorted(p.name for p in (out_dir / SHARDS).glob("shard-*.jsonl") if int(p.stem[6:]) >= plan["shards"])
    if extra:
        raise ValueError(f"{out_dir} has shards beyond its plan of {plan['shards']}: {', '.join(extra[:3])}")
    rows = []
    for k in range(plan["shards"]):
        shard = [json.loads(line) for line in shard_path(out_dir, k).read_text().splitlines()]
        expected = [item.id for item in shard_items(items, k, size)]
        if [row["id"] for row in shard] != expected:
            raise ValueError(f"{shard_path(out_dir, k).name} does not hold exactly the images its plan gives it")
        rows += shard
    return rows


def merge(items: Sequence[Item], out_dir: str | os.PathLike) -> dict:
    """Check the shards, then write the rows with a complete caption (`KEPT`) as a Hugging Face
    dataset (`<out>/dataset`); returns the counts: images, captions, captions per task, statuses."""
    import datasets

    out_dir = Path(out_dir)
    rows = read_shards(items, out_dir)
    by_id = {item.id: item for item in items}
    kept = [row for row in rows if row["status"] in KEPT]
    if not kept:
        raise ValueError(
            f"no caption of the {len(rows)} images is complete ({dict(Counter(row['status'] for row in rows))}): "
            "a captioner that never ends a caption within max_new_tokens needs training, or a larger limit"
        )
    columns = ("caption", "task", "alt_text", "source", "captioner", "captioner_version", "id")
    features = datasets.Features({"image": datasets.Image(), **{name: datasets.Value("string") for name in columns}})

    def examples():
        for row in kept:  # images read one at a time: the pool never sits in memory
            yield {"image": {"bytes": Path(by_id[row["id"]].path).read_bytes(), "path": None}} | {
                name: row[name] for name in columns
            }

    with tempfile.TemporaryDirectory(dir=out_dir) as cache:
        dataset = datasets.Dataset.from_generator(examples, features=features, cache_dir=cache)
        shutil.rmtree(out_dir / DATASET, ignore_errors=True)
        dataset.save_to_disk(str(out_dir / DATASET))
    return {
        "images": len(rows),
        "captions": len(kept),
        "tasks": dict(Counter(row["task"] for row in kept)),
        "statuses": dict(Counter(row["status"] for row in rows)),
    }


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sail.caption.production", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="caption this rank's missing shards")
    merged = commands.add_parser("merge", help="check every shard and write the dataset")
    for command in (run, merged):
        command.add_argument("--pool", required=True, help="a curated export: annotations.jsonl + images/")
        command.add_argument("--out", required=True)
    run.add_argument("--captioner", required=True, help="a captioner saved in Hugging Face format")
    run.add_argument("--backend", default="hf", choices=["hf", "lmdeploy"])
    run.add_argument("--workers", type=int, default=1)
    run.add_argument("--threads-per-worker", type=int, default=0)
    for name, default in asdict(Settings("")).items():
        if name not in ("captioner_dir", "backend"):
            run.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    items = read_curated(args.pool)
    if args.command == "merge":
        print(json.dumps(merge(items, args.out)))
        return
    tuned = {name: getattr(args, name) for name in asdict(Settings("")) if name not in ("captioner_dir", "backend")}
    settings = Settings(captioner_dir=args.captioner, backend=args.backend, **tuned)
    report = caption_pool(items, args.out, settings, workers=args.workers, threads_per_worker=args.threads_per_worker)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
