"""VLMEvalKit's TSV benchmark format: read it into rows with decoded images, and write it.

A VLMEvalKit benchmark file is a tab-separated table with a header and one question per row:
`index`, `image` (base64-encoded image bytes), `question`, option columns `A`, `B`, `C`, ... when
the question is multiple choice, `answer`, `category`, and optional extras such as `hint`,
`l2-category` or `split`.  Two conventions of VLMEvalKit's loader (ImageBaseDataset.__init__)
are followed here: an `image` cell of at most 64 characters is the index of another row whose
image it shares, and an `image` cell holding a Python list literal carries several images.

`read_tsv` gives one dict per row: the scalar columns as strings (an empty cell is None), the
`index` as int when every index is an integer, `image` as an RGB `PIL.Image` (a list of them for
several images), and the option columns gathered into `choices: {letter: text}` (empty for open
questions).  `write_tsv` writes such rows back; images are stored as PNG so they round-trip
pixel-exactly.

Hostile input ends in a ValueError naming the file, never in an exception from deep inside
pandas or PIL: the file must be UTF-8 (a leading byte-order mark, as some Windows tools write,
is accepted), and an image whose header declares more than `max_pixels` pixels (default
`MAX_PIXELS`, the curation funnel's `FunnelConfig.max_pixels`) is refused from its header,
before any pixel is decoded (a decompression-bomb guard; PIL's own `DecompressionBombError`
is reported the same way).
"""

from __future__ import annotations

import ast
import base64
import binascii
import csv
import io
import re
import string
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd
from PIL import Image, UnidentifiedImageError

__all__ = ["decode_image", "encode_image", "read_tsv", "write_tsv"]

REQUIRED_COLUMNS = ("index", "image", "question")
# Leading columns of a written file, in VLMEvalKit's usual order; option letters go after hint.
_LEADING = ("index", "image", "question", "hint")
_TRAILING = ("answer", "category", "l2-category")
_OPTION_LETTERS = tuple(string.ascii_uppercase)
# Cells pandas reads as missing by default.  VLMEvalKit loads its TSVs with pandas' defaults, so
# an option (or hint) cell spelled like this is absent for it: the option is not offered.
_PANDAS_NA_TOKENS = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)
_MAX_REFERENCE_LENGTH = 64
# Largest image (width * height) decoded; the same default as the curation funnel's
# FunnelConfig.max_pixels (not imported: sail.data pulls sklearn and imagehash into evaluation).
MAX_PIXELS = 40_000_000
_PIL_PIXEL_COUNT = re.compile(r"\((\d+) pixels\)")
_INTEGER = re.compile(r"[+-]?\d+")


def encode_image(image: Image.Image) -> str:
    """Base64 of the image saved as PNG (lossless)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class ImageTooLargeError(ValueError):
    """An encoded image declares more pixels than the decoder accepts."""


def _too_many_pixels(pixels: int | None, max_pixels: int, detail: str = "") -> ImageTooLargeError:
    count = f"{pixels} pixels" if pixels is not None else f"more pixels than PIL allows ({detail})"
    return ImageTooLargeError(f"too many pixels: {count}, limit {max_pixels}")


def decode_image(data: str, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The RGB image whose encoded bytes are base64 `data`.

    Raises ImageTooLargeError (a ValueError) when the image header declares more than
    `max_pixels` pixels; the check reads only the header, no pixel is decoded.
    """
    raw = base64.b64decode(data)
    try:
        with warnings.catch_warnings():
            # The explicit max_pixels check below replaces PIL's warning threshold.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as image:  # reads the header only
                width, height = image.size
                if width * height > max_pixels:
                    raise _too_many_pixels(width * height, max_pixels)
                return image.convert("RGB")
    except Image.DecompressionBombError as err:
        # PIL refuses images above 2 * Image.MAX_IMAGE_PIXELS in Image.open itself.
        found = _PIL_PIXEL_COUNT.search(str(err))
        raise _too_many_pixels(int(found.group(1)) if found else None, max_pixels, str(err)) from None


class _RowError(ValueError):
    pass


def _undecodable_byte(path: Path) -> str | None:
    """Where the first byte that is not UTF-8 lies in the file, or None if it is all UTF-8."""
    offset = 0
    with path.open("rb") as stream:
        for line_number, line in enumerate(stream, start=1):
            # A newline byte never occurs inside a UTF-8 sequence, so lines decode alone.
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as err:
                bad = line[err.start : err.end]
                return f"byte(s) {bad.hex(' ')} at byte offset {offset + err.start} (line {line_number}): {err.reason}"
            offset += len(line)
    return None


def _row_label(position: int, index) -> str:
    # position 0 is the first data row, which is line 2 of the file (after the header).
    return f"row {position + 1} (index {index!r})"


def _cell(value) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value)
    return text if text != "" else None


def _image_cells(cell: str) -> list[str] | None:
    """The base64 strings of a multi-image cell, or None for a single image."""
    if not cell.startswith("["):
        return None
    try:
        parsed = ast.literal_eval(cell)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(parsed, list) and parsed and all(isinstance(x, str) for x in parsed):
        return parsed
    return None


def read_tsv(path: str | Path, max_pixels: int = MAX_PIXELS) -> list[dict]:
    """Rows of a VLMEvalKit benchmark TSV, images decoded (see the module docstring).

    Raises ValueError naming the file (and the row, where there is one) for: bytes that are
    not UTF-8 (with their byte offset and line), a table pandas cannot parse, missing required
    columns (index, image, question), an empty or duplicate index, an empty question, a missing
    image, an image reference to an unknown row, image data that does not decode, and an image
    whose header declares more than `max_pixels` pixels ("too many pixels", checked before any
    pixel is decoded).

    Cells are kept as written ("None" stays the text "None"), except option and hint cells,
    which are dropped when pandas' default reader would read them as missing, as VLMEvalKit's
    loader does.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # A row with more fields than the header is an error, not a silently dropped cell
            # (nor, as pandas would do by default, a shift of every column by one).
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                path, sep="\t", dtype=str, keep_default_na=False, na_filter=False, index_col=False, encoding="utf-8-sig"
            )
    except UnicodeDecodeError as err:
        where = _undecodable_byte(path) or str(err)
        raise ValueError(f"{path}: not UTF-8 text: {where}") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning) as err:
        raise ValueError(f"{path}: not a well-formed TSV table: {err}") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: empty file (no header row)") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing required column(s) {missing}; found {list(frame.columns)}")
    letters = [c for c in frame.columns if c in _OPTION_LETTERS]
    records = frame.to_dict(orient="records")

    indices: list[str] = []
    seen: dict[str, int] = {}
    for pos, rec in enumerate(records):
        index = _cell(rec["index"])
        if index is None:
            raise ValueError(f"{path}: {_row_label(pos, None)}: empty index")
        if index in seen:
            raise ValueError(f"{path}: {_row_label(pos, index)}: index already used by row {seen[index] + 1}")
        seen[index] = pos
        indices.append(index)
    as_int = bool(indices) and all(_INTEGER.fullmatch(i) for i in indices)

    decoded: dict[str, Image.Image] = {}

    def image_of(pos: int, cell: str):
        if cell in decoded:
            return decoded[cell]
        parts = _image_cells(cell)
        which = ""  # which image of a multi-image cell failed
        try:
            if parts is None:
                image = decode_image(cell, max_pixels)
            else:
                image = []
                for number, part in enumerate(parts, start=1):
                    which = f"image {number} of {len(parts)}: "
                    image.append(decode_image(part, max_pixels))
        except ImageTooLargeError as err:
            raise _RowError(f"{which}{err}") from None
        except (binascii.Error, UnidentifiedImageError, OSError, ValueError) as err:
            raise _RowError(f"{which}image does not decode ({type(err).__name__}: {err})") from None
        decoded[cell] = image
        return image

    rows: list[dict] = []
    for pos, rec in enumerate(records):
        index = indices[pos]
        label = f"{path}: {_row_label(pos, index)}"
        try:
            if _cell(rec["question"]) is None:
                raise _RowError("empty question")
            cell = _cell(rec["image"])
            if cell is None:
                raise _RowError("no image")
            if len(cell) <= _MAX_REFERENCE_LENGTH:
                target = seen.get(cell)
                target_cell = _cell(records[target]["image"]) if target is not None else None
                if target_cell is None or len(target_cell) <= _MAX_REFERENCE_LENGTH:
                    raise _RowError(f"image cell {cell!r} is neither image data nor the index of a row with image data")
                cell = target_cell
            image = image_of(pos, cell)
        except _RowError as err:
            raise ValueError(f"{label}: {err}") from None

        row: dict = {}
        for column, value in rec.items():
            if column in letters or column == "image":
                continue
            row[column] = _cell(value)
        if "hint" in row and row["hint"] is not None and row["hint"] in _PANDAS_NA_TOKENS:
            row["hint"] = None
        row["index"] = int(index) if as_int else index
        row["image"] = image
        row["choices"] = {
            letter: str(rec[letter])
            for letter in letters
            if _cell(rec[letter]) is not None and str(rec[letter]) not in _PANDAS_NA_TOKENS
        }
        rows.append(row)
    return rows


def _image_cell(value, label: str) -> str:
    if isinstance(value, Image.Image):
        return encode_image(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Image.Image) for v in value):
        return str([encode_image(v) for v in value])
    if isinstance(value, str) and value:
        return value  # already base64, or a reference to another row's index
    raise ValueError(
        f"{label}: image must be a PIL image, a list of them, or a base64 string; got {type(value).__name__}"
    )


def _text_cell(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)  # lists and dicts take their Python literal form, as VLMEvalKit stores them


def write_tsv(rows: Iterable[Mapping], path: str | Path) -> Path:
    """Write rows in VLMEvalKit's TSV format and return the path.

    Each row needs `index`, `image` (PIL image, list of images, or a base64/reference string)
    and `question`; `choices` ({letter: text}) becomes the A/B/C... columns; every other key
    becomes a column (None -> empty cell, lists -> their Python literal).  Every cell is quoted,
    as VLMEvalKit's own dump does, so tabs and newlines in text survive.
    """
    path = Path(path)
    table: list[dict[str, str]] = []
    columns: list[str] = []
    letters: set[str] = set()
    for pos, row in enumerate(rows):
        label = _row_label(pos, row.get("index"))
        missing = [c for c in REQUIRED_COLUMNS if row.get(c) is None]
        if missing:
            raise ValueError(f"{label}: missing {missing}")
        out: dict[str, str] = {}
        for key, value in row.items():
            if key == "choices":
                continue
            if key in _OPTION_LETTERS:
                raise ValueError(f"{label}: give options through 'choices', not a column {key!r}")
            out[key] = _image_cell(value, label) if key == "image" else _text_cell(value)
            if key not in columns:
                columns.append(key)
        for letter, text in (row.get("choices") or {}).items():
            if letter not in _OPTION_LETTERS:
                raise ValueError(f"{label}: option key {letter!r} is not a capital letter")
            out[letter] = _text_cell(text)
            letters.add(letter)
        table.append(out)
    ordered = [c for c in _LEADING if c in columns] + sorted(letters)
    ordered += [c for c in _TRAILING if c in columns]
    ordered += [c for c in columns if c not in ordered]
    frame = pd.DataFrame(table, columns=ordered).fillna("")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="\t", index=False, encoding="utf-8", quoting=csv.QUOTE_ALL)
    return path
