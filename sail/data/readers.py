"""Readers for real image–text data, all yielding one common `Item`.

Three forms cover most public image–text sets:

- `read_hf`: a Hugging Face `datasets` directory (`save_to_disk`) or parquet files with an image
  column (a `datasets.Image` feature, raw bytes, or a path) and a text column;
- `read_webdataset`: webdataset tar shards (`key.jpg`/`key.png` + `key.txt`/`key.json`);
- `read_image_folder`: an image folder with a jsonl of texts (the form `build_pool` writes).

Readers never decode images: a corrupt file is the curation funnel's business, so reading a
broken data set never raises on its pixels.  Each item carries either the image bytes or a path.

Readers never raise on a bad record either.  A record they cannot read (a malformed or non-UTF-8
jsonl line, a row without an image, a path that escapes the data's own folder, a truncated shard
or an unreadable parquet file) becomes an `Item` whose `problem` names the reason, with the
specifics in `extra["detail"]`; the funnel counts it under its `read` step and goes on.  Paths
in the data are trusted only inside the data's own root (the jsonl's folder, the parquet's
folder, the saved dataset's folder) unless the caller passes `allow_outside_root=True`.
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

from sail.manifest import inside

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
    problem: str | None = None  # why the reader could not read this record (None: it could)

    def read_bytes(self) -> bytes:
        """The image's encoded bytes (raises OSError when the path cannot be read)."""
        if self.image is not None:
            return self.image
        if self.path is None:
            raise FileNotFoundError(f"item {self.id} has neither image bytes nor a path")
        return Path(self.path).read_bytes()


def unreadable(item_id: str, problem: str, detail: str, source: str) -> Item:
    """The stand-in for a record a reader could not read: counted by the funnel, never used."""
    return Item(id=item_id, text="", source=source, extra={"detail": detail}, problem=problem)


def _data_path(root: Path, value: str, allow_outside_root: bool) -> tuple[str | None, str | None]:
    """(path, None) for a path named by the data, or (None, problem) when it cannot be trusted."""
    try:  # an absolute `value` replaces root
        return str((root / value).resolve() if allow_outside_root else inside(root, value)), None
    except OSError:  # a loop of links
        return None, "bad_path"
    except ValueError:  # a NUL byte, or a path that leaves root
        return None, "bad_path" if "\0" in value else "path_outside_root"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return str(value[0]) if value else ""
    return str(value)


def _image_cell(value: Any, base: Path, allow_outside_root: bool) -> tuple[bytes | None, str | None, str | None]:
    """(bytes, path, problem) from an image column value: a datasets Image dict, raw bytes or a path."""
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            return bytes(value["bytes"]), None, None
        value = value.get("path")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), None, None
    if isinstance(value, str) and value:
        return None, *_data_path(base, value, allow_outside_root)
    return None, None, "no_image"


def _with_record(extra: dict) -> dict:
    """`extra` with a world record stored as JSON text (a parquet or jsonl column) parsed back."""
    if isinstance(extra.get("record"), str):
        try:
            extra["record"] = json.loads(extra["record"])
        except ValueError:
            pass
    return extra


def _rows_to_items(
    rows: Iterable[dict],
    image_column: str,
    text_column: str,
    id_column: str | None,
    source: str,
    base: Path,
    prefix: str,
    allow_outside_root: bool,
) -> Iterator[Item]:
    for index, row in enumerate(rows):
        item_id = str(row[id_column]) if id_column and row.get(id_column) is not None else f"{prefix}{index:08d}"
        item_source = str(row.get("source") or source)
        data, path, problem = _image_cell(row.get(image_column), base, allow_outside_root)
        if problem:
            yield unreadable(item_id, problem, f"{image_column}={str(row.get(image_column))[:200]!r}", item_source)
            continue
        extra = _with_record({k: v for k, v in row.items() if k not in (image_column, text_column)})
        yield Item(id=item_id, text=_text(row.get(text_column)), source=item_source, image=data, path=path, extra=extra)


def read_hf(
    path: str | os.PathLike,
    *,
    image_column: str = "image",
    text_column: str = "text",
    id_column: str | None = "id",
    split: str | None = None,
    source: str | None = None,
    batch_size: int = 256,
    allow_outside_root: bool = False,
) -> Iterator[Item]:
    """Items from a `save_to_disk` directory, a parquet file, or a directory of parquet files.

    Images are read undecoded (`datasets.Image(decode=False)` or the parquet struct's bytes).
    For a saved `DatasetDict`, `split` picks the split (default: the only one, else "train").
    A parquet file that cannot be read becomes one `unreadable_file` item; the next file is read.
    """
    path = Path(path)
    source = source or path.stem
    if path.is_dir() and not any(path.glob("*.parquet")):
        yield from _read_saved(path, image_column, text_column, id_column, split, source, allow_outside_root)
        return
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    import pyarrow
    import pyarrow.parquet as pq

    for file in files:
        try:
            rows = (
                row for batch in pq.ParquetFile(file).iter_batches(batch_size=batch_size) for row in batch.to_pylist()
            )
            yield from _rows_to_items(
                rows, image_column, text_column, id_column, source, file.parent, f"{file.stem}-", allow_outside_root
            )
        except (OSError, pyarrow.ArrowException) as error:
            yield unreadable(f"{file.name}#unreadable", "unreadable_file", f"{file.name}: {error}", source)


def _read_saved(
    path: Path,
    image_column: str,
    text_column: str,
    id_column: str | None,
    split: str | None,
    source: str,
    allow_outside_root: bool,
) -> Iterator[Item]:
    import datasets

    data = datasets.load_from_disk(str(path))
    if isinstance(data, datasets.DatasetDict):
        split = split or (next(iter(data)) if len(data) == 1 else "train")
        data = data[split]
    if isinstance(data.features.get(image_column), datasets.Image):
        data = data.cast_column(image_column, datasets.Image(decode=False))
    yield from _rows_to_items(
        iter(data), image_column, text_column, id_column, source, path, f"{source}-", allow_outside_root
    )


def _webdataset_key(name: str) -> tuple[str, str]:
    """webdataset's split of a member name: key = path up to the first dot of the basename."""
    folder, _, base = name.rpartition("/")
    stem, _, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), extension.lower()


def _sample_item(key: str, members: dict[str, bytes], shard: Path, source: str, text_field: str) -> Item | None:
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
    item_id = str(extra.pop("id")) if extra.get("id") is not None else key  # `write_webdataset` keeps it there
    return Item(id=item_id, text=text, source=str(extra.get("source") or source), image=members[image_ext], extra=extra)


def read_webdataset(
    shards: str | os.PathLike | Iterable[str | os.PathLike], *, source: str = "webdataset", text_field: str = "caption"
) -> Iterator[Item]:
    """Items from webdataset tar shards (a folder of `*.tar`, one shard, or a list of them).

    Members sharing a key form one sample; the text is `key.txt`, else `key.json`'s `text_field`
    (other json fields go to `extra`).  Samples without an image member are skipped.  A shard cut
    short (no end-of-archive block, or a member's data missing) ends in one `truncated_shard` item
    that stands for the sample it was reading; the samples before it are kept.
    """
    if isinstance(shards, (str, os.PathLike)):
        shards = sorted(Path(shards).glob("*.tar")) if Path(shards).is_dir() else [shards]
    for shard in map(Path, shards):
        key, members, count = None, {}, 0
        try:
            with tarfile.open(shard, mode="r:*") as tar:
                for member in tar:
                    count += 1
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
                _check_end_of_archive(tar)
        except (tarfile.TarError, OSError, EOFError) as error:
            problem = "truncated_shard" if count else "unreadable_shard"
            yield unreadable(
                key or f"{shard.name}#{problem}", problem, f"{shard.name}: {error} after {count} members", source
            )
            continue
        if key is not None:
            item = _sample_item(key, members, shard, source, text_field)
            if item is not None:
                yield item


def _check_end_of_archive(tar: tarfile.TarFile) -> None:
    """Raise unless the archive ends with its end-of-archive block: tarfile stops silently at a
    shard cut between two members, which would pass a half-read shard off as whole."""
    tar.fileobj.seek(tar.offset)
    block = tar.fileobj.read(tarfile.BLOCKSIZE)
    if len(block) < tarfile.BLOCKSIZE or block.count(0) != tarfile.BLOCKSIZE:
        raise tarfile.ReadError("the shard ends without an end-of-archive block (cut short?)")


def read_image_folder(
    root: str | os.PathLike,
    *,
    annotations: str = "annotations.jsonl",
    file_field: str = "file",
    text_field: str = "alt_text",
    id_field: str = "id",
    source: str | None = None,
    allow_outside_root: bool = False,
) -> Iterator[Item]:
    """Items from `root/annotations` (one JSON object per line) naming files under `root`.

    Each line is decoded on its own, so one bad line (not UTF-8, not JSON, no file name, a path
    outside `root`) becomes one `unreadable` item and the lines around it are read.  A missing
    file still yields an item (with its path), so the funnel counts it as missing.
    """
    root = Path(root)
    default_source = source or root.name
    with open(root / annotations, "rb") as lines:
        for number, raw in enumerate(lines):
            line_id = f"line-{number:08d}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                yield unreadable(line_id, "not_utf8", f"{annotations} line {number + 1}: {error}", default_source)
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as error:
                yield unreadable(line_id, "malformed_json", f"{annotations} line {number + 1}: {error}", default_source)
                continue
            if not isinstance(row, dict):
                yield unreadable(
                    line_id, "malformed_json", f"{annotations} line {number + 1}: not an object", default_source
                )
                continue
            item_id = str(row[id_field]) if row.get(id_field) is not None else line_id
            item_source = str(row.get("source") or default_source)
            name = row.get(file_field)
            path, problem = (
                _data_path(root, name, allow_outside_root) if isinstance(name, str) and name else (None, "no_image")
            )
            if problem:
                yield unreadable(
                    item_id, problem, f"{annotations} line {number + 1}: {file_field}={name!r}", item_source
                )
                continue
            extra = _with_record({k: v for k, v in row.items() if k not in (file_field, text_field, id_field)})
            yield Item(id=item_id, text=_text(row.get(text_field)), source=item_source, path=path, extra=extra)


def write_webdataset(
    items: Iterable[Item], out_dir: str | os.PathLike, *, per_shard: int = 1000, image_ext: str = "png"
) -> list[Path]:
    """Write items as webdataset shards (`key.<image_ext>` + `key.txt` + `key.json`); returns the shards.

    Keys are running numbers (an id may hold dots or slashes, which webdataset reads as extensions
    and folders); the id itself is in `key.json`, where `read_webdataset` takes it from.
    """
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
        for extension, data in (
            (image_ext, item.read_bytes()),
            ("txt", item.text.encode()),
            ("json", json.dumps(meta, default=str).encode()),
        ):
            info = tarfile.TarInfo(f"{index:09d}.{extension}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    if tar is not None:
        tar.close()
    return shards
