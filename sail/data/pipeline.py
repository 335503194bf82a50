"""Glue between the curation steps and the files later stages read.

- `read_items(data_format, path)`: one entry point over the readers (`hf`, `webdataset`, `folder`);
- `alt_text_summary(items)`: per source, how much alt-text there is and, where world records are
  attached, how good it is against them;
- `export_items(items, out_dir)`: the curated pool and the reference subset on disk.

The export layout (read back with `read_curated` or `sail.data.read_image_folder`)::

    <out_dir>/
      images/<name>.png      every image decoded by the funnel's own path, stored as RGB PNG (an
                             upright RGB PNG is copied byte for byte: same pixels, no re-encode);
                             <name> is the id when it is a plain file name, else a safe name
                             derived from it (`sail.manifest.safe_name`): ids come from the data
      annotations.jsonl      one JSON object per line: id (as in the data), file (relative to out_dir), source,
                             alt_text, width, height, sha256 (of the original bytes), category,
                             converted_from (original mode, or null), cluster (reference subset
                             only) and, for world data, record (the ground truth, a JSON string)
      summary.json           counts per source and category, and the sha256 of annotations.jsonl

Items are skipped and counted by reason (`skipped` in the summary): an image that no longer
decodes (after the funnel there are none), or an id whose safe name another id already took
(only a crafted id can do that; the first keeps the file). Every image is written through
`sail.manifest.inside`, so no id can place a file outside `<out_dir>/images`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pandas as pd

from sail.data.balance import category_of
from sail.data.curation import load_rgb_png
from sail.data.readers import Item, read_hf, read_image_folder, read_webdataset
from sail.manifest import atomic_write_json, atomic_write_text, inside, safe_name, sha256_file

FORMATS = ("world", "hf", "webdataset", "folder")


def read_items(
    data_format: str,
    path: str | os.PathLike,
    *,
    source: str | None = None,
    text_field: str | None = None,
    allow_outside_root: bool = False,
) -> Iterator[Item]:
    """Items from `path` in one of the real-data formats (`world` pools are image folders too).

    `text_field` names where the alt-text is when the data does not use the reader's default (an
    hf column, a webdataset json field, a folder's jsonl field). `allow_outside_root` lets image
    paths in the data (hf, folder) lead outside its own folder; shards carry their images inside,
    so it does not apply to webdataset."""
    if data_format == "hf":
        text = {"text_column": text_field} if text_field else {}
        return read_hf(path, source=source, allow_outside_root=allow_outside_root, **text)
    text = {"text_field": text_field} if text_field else {}
    if data_format == "webdataset":
        return read_webdataset(path, source=source or "webdataset", **text)
    if data_format in ("folder", "world"):
        return read_image_folder(path, source=source, allow_outside_root=allow_outside_root, **text)
    raise ValueError(f"unknown data_format {data_format!r}; expected one of {', '.join(FORMATS)}")


def alt_text_summary(items: Sequence[Item]) -> pd.DataFrame:
    """One row per source: items, share with alt-text, mean words, and (world records only) the
    alt-text's colour-shape pair precision / F1 and hallucination rate against the record."""
    from sail.world import score_captions

    rows = []
    for source in sorted({item.source for item in items}):
        group = [item for item in items if item.source == source]
        texts = [item.text.strip() for item in group]
        row = {
            "source": source,
            "items": len(group),
            "with_alt_text": sum(bool(t) for t in texts) / len(group),
            "mean_words": sum(len(t.split()) for t in texts) / len(group),
        }
        scored = [
            (t, item.extra["record"])
            for t, item in zip(texts, group)
            if t and isinstance(item.extra.get("record"), dict)
        ]
        if scored:
            scores = score_captions([t for t, _ in scored], [r for _, r in scored])
            row.update(
                pair_precision=scores["pair_precision"],
                pair_f1=scores["pair_f1"],
                text_f1=scores["text_f1"],
                hallucination_rate=scores["hallucination_rate"],
            )
        rows.append(row)
    return pd.DataFrame(rows).set_index("source")


def export_items(items: Iterable[Item], out_dir: str | os.PathLike, *, clusters: dict[str, int] | None = None) -> dict:
    """Write items as `images/<id>.png` + `annotations.jsonl` + `summary.json` (layout in the module doc)."""
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    lines, sources, categories, skipped, files = [], Counter(), Counter(), Counter(), set()
    for item in items:
        file = f"images/{safe_name(item.id)}.png"
        image, png = load_rgb_png(item)
        if image is None or file in files:
            skipped["undecodable" if image is None else "name_taken"] += 1
            continue
        files.add(file)
        if png is None:
            image.save(inside(out_dir, file), format="PNG")
        else:  # already an upright RGB PNG: the same pixels without encoding them again
            inside(out_dir, file).write_bytes(png)
        record = item.extra.get("record")
        category = category_of(item)
        row = {
            "id": item.id,
            "file": file,
            "source": item.source,
            "alt_text": item.text,
            "width": image.width,
            "height": image.height,
            "sha256": item.extra.get("sha256"),
            "category": category,
            "converted_from": item.extra.get("converted_from"),
        }
        if clusters is not None:
            row["cluster"] = int(clusters[item.id])
        if isinstance(record, dict):
            row["record"] = json.dumps(record)
        lines.append(json.dumps(row))
        sources[item.source] += 1
        categories[category] += 1
    annotations = atomic_write_text(out_dir / "annotations.jsonl", "\n".join(lines) + ("\n" if lines else ""))
    summary = {
        "items": len(lines),
        "skipped": dict(skipped),
        "sources": dict(sorted(sources.items())),
        "categories": dict(sorted(categories.items())),
        "annotations_sha256": sha256_file(annotations),
        "layout": "images/<name>.png + annotations.jsonl (id, file, source, alt_text, width, height, sha256, "
        "category, converted_from[, cluster][, record])",
    }
    atomic_write_json(out_dir / "summary.json", summary)
    return summary


def read_curated(directory: str | os.PathLike) -> list[Item]:
    """The items `export_items` wrote (world records parsed back into `extra["record"]`).

    An export is the pipeline's own output: a line it cannot read means the export is damaged,
    which raises (naming the lines) instead of quietly training on part of it.
    """
    items = list(read_image_folder(directory))
    bad = [f"{item.id} ({item.problem}: {item.extra['detail']})" for item in items if item.problem]
    if bad:
        raise ValueError(f"{directory} is damaged: {len(bad)} unreadable annotation lines, e.g. {'; '.join(bad[:3])}")
    return items


__all__ = ["FORMATS", "alt_text_summary", "export_items", "read_curated", "read_items"]
