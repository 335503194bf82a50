"""Readers for real image–text data, all yielding one common `Item`.

Three forms cover most public image–text sets:

- `read_hf`: a Hugging Face `datasets` directory (`save_to_disk`) or parquet files with an image
  column (a `datasets.Image` feature, raw bytes, or a path) and a text column;
- `read_webdataset`: webdataset tar shards (`key.jpg`/`key.png` + `key.txt`/`key.json`);
- `read_image_folder`: an image folder with a jsonl of texts (the form `build_pool` writes).

Readers never decode images: a corrupt file is the curation funnel's business, so reading a
broken data set never raises on its pixels.  Each item carries either the image bytes or a path.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")


@dataclass
class Item:
    """One image–text pair: `image` bytes or a `path` to them, its `text`, and anything else in `extra`."""

    id: str
    text: str
    source: str
    image: bytes | None = None
    path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def read_bytes(self) -> bytes:
        """The image's encoded bytes (raises OSError when the path cannot be read)."""
        if self.image is not None:
            return self.image
        if self.path is None:
            raise OSError(f"item {self.id} has neither image bytes nor a path")
        return Path(self.path).read_bytes()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return str(value[0]) if value else ""
    return str(value)


def _image_cell(value: Any, base: Path | None) -> tuple[bytes | None, str | None]:
    """(bytes, path) from an image column value: a datasets Image dict, raw bytes or a path."""
    if value is None:
        return None, None
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        if data is not None:
            return bytes(data), path
        value = path
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), None
    if isinstance(value, str) and value:
        path = Path(value)
        if not path.is_absolute() and base is not None:
            path = base / path
        return None, str(path)
    return None, None


def _rows_to_items(rows: Iterable[dict], image_column: str, text_column: str, id_column: str | None,
                   source: str, base: Path | None, prefix: str) -> Iterator[Item]:
    for index, row in enumerate(rows):
        data, path = _image_cell(row.get(image_column), base)
        item_id = str(row[id_column]) if id_column and row.get(id_column) is not None else f"{prefix}{index:08d}"
        extra = {k: v for k, v in row.items() if k not in (image_column, text_column)}
        yield Item(id=item_id, text=_text(row.get(text_column)), source=str(row.get("source") or source),
                   image=data, path=path, extra=extra)


def read_hf(path: str | os.PathLike, *, image_column: str = "image", text_column: str = "text",
            id_column: str | None = "id", split: str | None = None, source: str | None = None,
            batch_size: int = 256) -> Iterator[Item]:
    """Items from a `save_to_disk` directory, a parquet file, or a directory of parquet files.

    Images are read undecoded (`datasets.Image(decode=False)` or the parquet struct's bytes).
    For a saved `DatasetDict`, `split` picks the split (default: the only one, else "train").
    """
    path = Path(path)
    source = source or path.stem
    if path.is_dir() and not any(path.glob("*.parquet")):
        yield from _read_saved(path, image_column, text_column, id_column, split, source)
        return
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    import pyarrow.parquet as pq

    for file in files:
        rows = (row for batch in pq.ParquetFile(file).iter_batches(batch_size=batch_size)
                for row in batch.to_pylist())
        yield from _rows_to_items(rows, image_column, text_column, id_column, source, file.parent,
                                  prefix=f"{file.stem}-")


def _read_saved(path: Path, image_column: str, text_column: str, id_column: str | None,
                split: str | None, source: str) -> Iterator[Item]:
    import datasets

    data = datasets.load_from_disk(str(path))
    if isinstance(data, datasets.DatasetDict):
        split = split or (next(iter(data)) if len(data) == 1 else "train")
        data = data[split]
    if isinstance(data.features.get(image_column), datasets.Image):
        data = data.cast_column(image_column, datasets.Image(decode=False))
    yield from _rows_to_items(iter(data), image_column, text_column, id_column, source, path,
                              prefix=f"{source}-")


def _webdataset_key(name: str) -> tuple[str, str]:
    """webdataset's split of a member name: key = path up to the first dot of the basename."""
    folder, _, base = name.rpartition("/")
    stem, _, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), extension.lower()


def _sample_item(key: str, members: dict[str, bytes], shard: Path, source: str,
                 text_field: str) -> Item | None:
    image_ext = next((ext for ext in members if ext in IMAGE_EXTENSIONS), None)
    if image_ext is None:
        return None
    extra: dict[str, Any] = {"shard": shard.name}
    text = members["txt"].decode("utf-8", "replace") if "txt" in members else ""
    if "json" in members:
        try:
            meta = json.loads(members["json"])
        except (ValueError, UnicodeDecodeError):
            meta = {}
        if isinstance(meta, dict):
            extra.update(meta)
            if not text:
                text = _text(meta.get(text_field))
    return Item(id=key, text=text, source=str(extra.get("source") or source), image=members[image_ext],
                extra=extra)


def read_webdataset(shards: str | os.PathLike | Iterable[str | os.PathLike], *, source: str = "webdataset",
                    text_field: str = "caption") -> Iterator[Item]:
    """Items from webdataset tar shards (a folder of `*.tar`, one shard, or a list of them).

    Members sharing a key form one sample; the text is `key.txt`, else `key.json`'s `text_field`
    (other json fields go to `extra`).  Samples without an image member are skipped.
    """
    if isinstance(shards, (str, os.PathLike)):
        shards = sorted(Path(shards).glob("*.tar")) if Path(shards).is_dir() else [shards]
    for shard in map(Path, shards):
        key, members = None, {}
        with tarfile.open(shard, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                member_key, extension = _webdataset_key(member.name)
                if member_key != key and key is not None:
                    item = _sample_item(key, members, shard, source, text_field)
                    if item is not None:
                        yield item
                    members = {}
                key = member_key
                members[extension] = tar.extractfile(member).read()
        if key is not None:
            item = _sample_item(key, members, shard, source, text_field)
            if item is not None:
                yield item


def read_image_folder(root: str | os.PathLike, *, annotations: str = "annotations.jsonl",
                      file_field: str = "file", text_field: str = "alt_text", id_field: str = "id",
                      source: str | None = None) -> Iterator[Item]:
    """Items from `root/annotations` (one JSON object per line) naming files under `root`.

    A line that is not valid JSON is skipped; a missing file still yields an item (with its
    path), so the funnel can count it as missing instead of the reader hiding it.
    """
    root = Path(root)
    with open(root / annotations, encoding="utf-8") as lines:
        for number, line in enumerate(lines):
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if not isinstance(row, dict) or file_field not in row:
                continue
            extra = {k: v for k, v in row.items() if k not in (file_field, text_field, id_field)}
            if isinstance(extra.get("record"), str):
                try:
                    extra["record"] = json.loads(extra["record"])
                except ValueError:
                    pass
            yield Item(id=str(row.get(id_field, f"line-{number:08d}")), text=_text(row.get(text_field)),
                       source=str(row.get("source") or source or root.name), path=str(root / row[file_field]),
                       extra=extra)


def write_webdataset(items: Iterable[Item], out_dir: str | os.PathLike, *, per_shard: int = 1000,
                     image_ext: str = "png") -> list[Path]:
    """Write items as webdataset shards (`key.<image_ext>` + `key.txt` + `key.json`); returns the shards."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shards: list[Path] = []
    tar = None
    for index, item in enumerate(items):
        if index % per_shard == 0:
            if tar is not None:
                tar.close()
            shards.append(out_dir / f"shard-{len(shards):05d}.tar")
            tar = tarfile.open(shards[-1], "w")
        meta = {"id": item.id, "source": item.source, **item.extra}
        for extension, data in ((image_ext, item.read_bytes()), ("txt", item.text.encode()),
                                ("json", json.dumps(meta, default=str).encode())):
            info = tarfile.TarInfo(f"{item.id}.{extension}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    if tar is not None:
        tar.close()
    return shards
