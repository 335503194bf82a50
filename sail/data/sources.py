"""Three world pools standing for the paper's image sources, and a pool writer that injects defects.

| source       | stands for | images                                   | alt-text                          |
|--------------|------------|------------------------------------------|-----------------------------------|
| `laion_coco` | LAION-COCO | generic scenes, a few cards (JPEG)       | noisy web alt-text                |
| `textcaps`   | TextCaps   | text-heavy: scenes with text, many cards (PNG) | usually quotes the text shown |
| `sa1b`       | SA-1B      | dense scenes with 3-4 objects (JPEG)     | mostly none, else a weak caption  |

`build_pool` writes an image folder + `annotations.jsonl` (read it back with
`sail.data.readers.read_image_folder`) and, when asked, injects defects of known kinds with
ground truth in `defects.json`, so the curation funnel's recall can be measured exactly.
"""

from __future__ import annotations

import io
import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from sail.manifest import atomic_write_json, atomic_write_text
from sail.world import alt_text, render, sample_records, weak_caption


@dataclass(frozen=True)
class Source:
    """One world pool: which records it keeps, how it writes alt-text, how it encodes images."""

    name: str
    stands_for: str
    description: str
    card_fraction: float
    keep: Callable[[dict], bool]
    alt: Callable[[dict, random.Random], str]
    image_format: str  # "JPEG" or "PNG"


def _textcaps_alt(record: dict, rng: random.Random) -> str:
    """Alt-text that quotes the shown text most of the time, as TextCaps-style images invite."""
    if record["kind"] == "card":
        card = record["card"]
        labels = [row[0] for row in card["table"]] if "table" in card else card["chart"]["labels"]
        kind = "table" if "table" in card else "chart"
        if rng.random() < 0.8:
            return f'{kind} titled "{card["title"]}" listing ' + ", ".join(labels)
        return alt_text(record, rng)
    base = alt_text(record, rng)
    words = [t["text"] for t in record["texts"] if t["text"] not in base]
    if words and rng.random() < 0.8:
        base += " with the text " + " and ".join(f'"{w}"' for w in words)
    return base


def _sa1b_alt(record: dict, rng: random.Random) -> str:
    """SA-1B ships no captions: mostly empty, sometimes a weak shapes-only caption."""
    return weak_caption(record, rng) if rng.random() < 0.2 else ""


SOURCES: dict[str, Source] = {
    "laion_coco": Source(
        "laion_coco", "LAION-COCO", "generic scenes with noisy web alt-text", 0.05, lambda r: True, alt_text, "JPEG"
    ),
    "textcaps": Source(
        "textcaps",
        "TextCaps",
        "text-heavy scenes and cards; alt-text quotes the text",
        0.35,
        lambda r: r["kind"] == "card" or len(r["texts"]) >= 1,
        _textcaps_alt,
        "PNG",
    ),
    "sa1b": Source(
        "sa1b",
        "SA-1B",
        "dense scenes with 3-4 objects and little or no alt-text",
        0.0,
        lambda r: r["kind"] == "scene" and len(r["objects"]) >= 3,
        _sa1b_alt,
        "JPEG",
    ),
}
DEFAULT_MIX = {"laion_coco": 0.5, "textcaps": 0.25, "sa1b": 0.25}
# Sources whose images legitimately come without alt-text (they are captioned, not recaptioned).
ALT_TEXT_OPTIONAL = ("sa1b",)


def source_records(name: str, n: int, seed: int = 0, *, split: str = "train", image_size: int = 96) -> list[dict]:
    """`n` world records of source `name`, ids `<name>-000000`...; deterministic in (name, n, seed)."""
    source = SOURCES[name]
    stream_seed = seed * 1009 + list(SOURCES).index(name) + 1  # each source its own candidate stream
    want = max(n, 1)
    while True:
        candidates = sample_records(split, want, stream_seed, card_fraction=source.card_fraction, image_size=image_size)
        kept = [r for r in candidates if source.keep(r)]
        if len(kept) >= n:
            break
        want *= 2
    records = []
    for index, record in enumerate(kept[:n]):
        record = dict(record, world_id=record["id"], id=f"{name}-{index:06d}")
        records.append(record)
    return records


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _encode_default(image: Image.Image, fmt: str) -> bytes:
    return _encode(image, fmt, quality=92) if fmt == "JPEG" else _encode(image, fmt)


# --- defects ---------------------------------------------------------------------------------

# kind -> (group, what the funnel should do with it: "drop" or "convert")
DEFECT_KINDS: dict[str, tuple[str, str]] = {
    "exact_duplicate": ("duplicate", "drop"),
    "near_duplicate_jpeg": ("duplicate", "drop"),
    "near_duplicate_resize": ("duplicate", "drop"),
    "near_duplicate_jitter": ("duplicate", "drop"),
    "truncated": ("corrupt", "drop"),
    "zero_byte": ("corrupt", "drop"),
    "random_bytes": ("corrupt", "drop"),
    "mode_cmyk": ("odd_mode", "convert"),
    "mode_rgba": ("odd_mode", "convert"),
    "mode_i16": ("odd_mode", "convert"),
    "mode_palette": ("odd_mode", "convert"),
    "absurd_size": ("size", "drop"),
    "alt_empty": ("alt_text", "drop"),
    "alt_junk": ("alt_text", "drop"),
    "alt_too_long": ("alt_text", "drop"),
}
ADDED_KINDS = ("exact_duplicate", "near_duplicate_jpeg", "near_duplicate_resize", "near_duplicate_jitter")
ABSURD_SIZES = ((1, 500), (4000, 10), (500, 1), (12, 12), (300, 40))
JUNK_ALT = (
    "png hd wallpaper",
    "IMG_20190312_104455.jpg",
    "!!! ???",
    "untitled",
    "image",
    "4k free download",
    "DSC0042",
    "___",
    "click here",
)


def _near_duplicate(image: Image.Image, kind: str, rng: random.Random) -> tuple[bytes, str]:
    if kind == "near_duplicate_jpeg":
        return _encode(image, "JPEG", quality=rng.randint(55, 75)), "jpg"
    if kind == "near_duplicate_resize":
        scale = rng.choice((0.85, 0.9, 1.1, 1.2))
        resized = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BICUBIC)
        return _encode(resized, "PNG"), "png"
    jittered = ImageEnhance.Color(ImageEnhance.Brightness(image).enhance(rng.uniform(0.93, 1.07))).enhance(
        rng.uniform(0.9, 1.1)
    )
    return _encode(jittered, "JPEG", quality=90), "jpg"


def _odd_mode(image: Image.Image, kind: str) -> tuple[bytes, str]:
    if kind == "mode_cmyk":
        return _encode(image.convert("CMYK"), "JPEG", quality=92), "jpg"
    if kind == "mode_rgba":
        rgba = image.convert("RGBA")
        alpha = np.full((image.height, image.width), 255, np.uint8)
        alpha[: image.height // 8] = 0  # a transparent strip, as logos and cut-outs have
        rgba.putalpha(Image.fromarray(alpha))
        return _encode(rgba, "PNG"), "png"
    if kind == "mode_i16":
        grey = np.asarray(image.convert("L"), dtype=np.uint16) * 257
        return _encode(Image.fromarray(grey), "PNG"), "png"
    return _encode(image.convert("P", palette=Image.ADAPTIVE, colors=32), "PNG"), "png"


def _corrupt(data: bytes, kind: str, rng: random.Random) -> bytes:
    if kind == "truncated":
        return data[: max(16, int(len(data) * rng.uniform(0.3, 0.7)))]
    if kind == "zero_byte":
        return b""
    return rng.randbytes(rng.randint(200, 4000))


def _count(n: int, rate: float, enabled: bool) -> int:
    return max(1, round(n * rate)) if enabled else 0


def build_pool(
    out_dir: str | os.PathLike,
    n: int,
    seed: int = 0,
    defects: bool = True,
    *,
    mix: dict[str, float] | None = None,
    image_size: int = 96,
    defect_rate: float = 0.02,
    split: str = "train",
) -> dict:
    """Write a pool of `n` clean world items (plus injected defects) to `out_dir`.

    Layout: `images/<id>.<ext>`, `annotations.jsonl` (id, file, source, alt_text, record),
    `defects.json` (one entry per injected defect: id, kind, group, expect, variant, and `of` =
    the original's id for duplicates).  Each defect kind is injected `max(1, defect_rate * n)`
    times.  Duplicates are added as new items; the other kinds replace an item's image or
    alt-text in place (victims are distinct, and never the original of a duplicate).  The
    annotation order is shuffled, so copies do not simply follow their originals.
    Returns a summary dict (also written as `pool.json`).
    """
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    mix = mix or DEFAULT_MIX
    total = sum(mix.values())
    sizes = {name: int(n * share / total) for name, share in mix.items()}
    sizes[next(iter(mix))] += n - sum(sizes.values())
    rng = random.Random(f"pool/{seed}")

    rows: list[dict] = []
    images: dict[str, Image.Image] = {}
    payload: dict[str, tuple[bytes, str]] = {}
    for name, count in sizes.items():
        source = SOURCES[name]
        for record in source_records(name, count, seed, split=split, image_size=image_size):
            image = render(record)
            images[record["id"]] = image
            ext = "jpg" if source.image_format == "JPEG" else "png"
            payload[record["id"]] = (_encode_default(image, source.image_format), ext)
            alt = source.alt(record, random.Random(f"{seed}/{record['id']}/alt"))
            rows.append({"id": record["id"], "source": name, "alt_text": alt, "record": record})

    injected: list[dict] = []
    if defects:
        by_id = {row["id"]: row for row in rows}
        order = [row["id"] for row in rows]
        rng.shuffle(order)
        in_place = [k for k in DEFECT_KINDS if k not in ADDED_KINDS]
        plan = {kind: _count(n, defect_rate, True) for kind in DEFECT_KINDS}
        needed = sum(plan.values())
        if needed > len(order):
            raise ValueError(f"a pool of {n} items is too small for {needed} defects; raise n or lower defect_rate")
        originals = order[: sum(plan[k] for k in ADDED_KINDS)]
        victims = order[len(originals) :]
        alt_victims = [i for i in victims if by_id[i]["source"] not in ALT_TEXT_OPTIONAL]
        other_victims = [i for i in victims if by_id[i]["source"] in ALT_TEXT_OPTIONAL] + [
            i for i in victims if by_id[i]["source"] not in ALT_TEXT_OPTIONAL
        ]
        alt_victims = alt_victims[::-1]  # take alt-text victims from the other end than image victims
        used: set[str] = set()

        def take(pool: list[str]) -> str:
            while pool:
                candidate = pool.pop(0)
                if candidate not in used:
                    used.add(candidate)
                    return candidate
            raise ValueError("not enough items to inject every defect; raise n")

        copy_index = 0
        for kind in ADDED_KINDS:
            for _ in range(plan[kind]):
                original = originals[copy_index % len(originals)]
                copy_index += 1
                row = by_id[original]
                new_id = f"{row['source']}-dup{copy_index:05d}"
                if kind == "exact_duplicate":
                    data, ext = payload[original]
                else:
                    data, ext = _near_duplicate(images[original], kind, rng)
                payload[new_id] = (data, ext)
                record = row["record"]
                alt = SOURCES[row["source"]].alt(record, random.Random(f"{seed}/{new_id}/alt"))
                rows.append({"id": new_id, "source": row["source"], "alt_text": alt, "record": record})
                injected.append({"id": new_id, "kind": kind, "of": original})
        for kind in in_place:
            for _ in range(plan[kind]):
                victim = take(alt_victims if kind.startswith("alt_") else other_victims)
                entry = {"id": victim, "kind": kind}
                if kind.startswith("alt_"):
                    if kind == "alt_empty":
                        text = rng.choice(("", "   ", "\n"))
                    elif kind == "alt_junk":
                        text = rng.choice(JUNK_ALT)
                    else:
                        text = " ".join([by_id[victim]["alt_text"]] * 40)
                    by_id[victim]["alt_text"] = text
                elif kind.startswith("mode_"):
                    payload[victim] = _odd_mode(images[victim], kind)
                elif kind == "absurd_size":
                    width, height = rng.choice(ABSURD_SIZES)
                    entry["variant"] = f"{width}x{height}"
                    payload[victim] = (_encode(images[victim].resize((width, height)), "PNG"), "png")
                else:
                    data, ext = payload[victim]
                    payload[victim] = (_corrupt(data, kind, rng), ext)
                injected.append(entry)
        for entry in injected:
            entry["group"], entry["expect"] = DEFECT_KINDS[entry["kind"]]

    rng.shuffle(rows)
    lines = []
    for row in rows:
        data, ext = payload[row["id"]]
        file = f"images/{row['id']}.{ext}"
        (out_dir / file).write_bytes(data)
        lines.append(
            json.dumps(
                {
                    "id": row["id"],
                    "file": file,
                    "source": row["source"],
                    "alt_text": row["alt_text"],
                    "record": json.dumps(row["record"]),
                }
            )
        )
    atomic_write_text(out_dir / "annotations.jsonl", "\n".join(lines) + "\n")
    atomic_write_json(out_dir / "defects.json", injected)
    summary = {
        "n_clean": n,
        "n_items": len(rows),
        "seed": seed,
        "image_size": image_size,
        "split": split,
        "sources": {
            name: {
                "items": sum(r["source"] == name for r in rows),
                "stands_for": SOURCES[name].stands_for,
                "description": SOURCES[name].description,
            }
            for name in sizes
        },
        "defects": {kind: sum(d["kind"] == kind for d in injected) for kind in DEFECT_KINDS if defects},
        "defect_rate": defect_rate if defects else 0.0,
    }
    atomic_write_json(out_dir / "pool.json", summary)
    return summary


def load_defects(pool_dir: str | os.PathLike) -> list[dict]:
    """The ground truth `build_pool` wrote: one dict per injected defect."""
    return json.loads((Path(pool_dir) / "defects.json").read_text())
