"""VLMEvalKit TSV reading and writing (`sail.eval.tsv`) with images from the SAIL world."""

import base64
import io
import struct
import warnings
import zlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sail.eval import encode_image, read_tsv, write_tsv
from sail.eval.tsv import MAX_PIXELS, decode_image
from sail.world import COLOURS, render, sample_records


@pytest.fixture(scope="module")
def world_rows():
    records = sample_records("test", 6, seed=0)
    rows = []
    for n, record in enumerate(records):
        obj = record["objects"][0]
        image = render(record)
        if n % 2 == 0:  # multiple choice: the true colour plus three others
            others = [c for c in COLOURS if c != obj["colour"]][n % 5 : n % 5 + 3]
            options = sorted([obj["colour"], *others])
            choices = dict(zip("ABCD", options))
            answer = "ABCD"[options.index(obj["colour"])]
            rows.append(
                {
                    "index": n,
                    "image": image,
                    "choices": choices,
                    "answer": answer,
                    "question": f"What colour is the {obj['shape']}?",
                    "hint": "Look at\tthe shape.\nOnly one." if n == 0 else None,
                    "category": "colour",
                    "l2-category": "attribute",
                    "record_id": record["id"],
                }
            )
        else:  # open question, several gold answers stored as a list literal
            rows.append(
                {
                    "index": n,
                    "image": image,
                    "answer": [obj["shape"], f"a {obj['shape']}"],
                    "question": "Which shape is shown first?",
                    "category": "shape",
                    "record_id": record["id"],
                }
            )
    return records, rows


def test_round_trip(tmp_path, world_rows):
    records, rows = world_rows
    path = write_tsv(rows, tmp_path / "world.tsv")
    header = path.read_text().splitlines()[0].split("\t")
    assert header[:4] == ['"index"', '"image"', '"question"', '"hint"']
    assert header[4:8] == ['"A"', '"B"', '"C"', '"D"']

    back = read_tsv(path)
    assert len(back) == len(rows)
    for record, row, got in zip(records, rows, back):
        assert got["index"] == row["index"]  # integer indices stay ints
        assert got["image"].mode == "RGB"
        assert np.array_equal(np.asarray(got["image"]), np.asarray(render(record)))
        assert got["question"] == row["question"]
        assert got["category"] == row["category"]
        assert got["record_id"] == record["id"]
        assert got["choices"] == row.get("choices", {})
        if got["choices"]:
            assert got["answer"] in got["choices"]
            assert got["l2-category"] == "attribute"
        else:
            assert got["answer"] == str(row["answer"])  # list literal, as VLMEvalKit
            assert got["l2-category"] is None
            assert "A" not in got
    assert back[0]["hint"] == "Look at\tthe shape.\nOnly one."  # tabs/newlines survive quoting
    assert back[2]["hint"] is None


def test_vlmevalkit_conventions(tmp_path, world_rows):
    records, _ = world_rows
    image = render(records[0])
    rows = [
        {
            "index": "q1",
            "image": image,
            "question": "Colour?",
            "answer": "B",
            "choices": {"A": "None", "B": "red", "C": "blue"},
        },
        # An image cell of <= 64 characters is the index of the row whose image it shares.
        {"index": "q2", "image": "q1", "question": "Shape?", "answer": "star"},
        {"index": "q3", "image": [image, render(records[1])], "question": "Same?", "answer": "No"},
    ]
    back = read_tsv(write_tsv(rows, tmp_path / "conv.tsv"))
    assert [r["index"] for r in back] == ["q1", "q2", "q3"]
    # pandas (and so VLMEvalKit) reads an option cell "None" as missing: the option is dropped.
    assert back[0]["choices"] == {"B": "red", "C": "blue"}
    assert np.array_equal(np.asarray(back[1]["image"]), np.asarray(image))
    assert isinstance(back[2]["image"], list) and len(back[2]["image"]) == 2
    assert np.array_equal(np.asarray(back[2]["image"][1]), np.asarray(render(records[1])))


def _frame(path, **override):
    image = encode_image(render(sample_records("test", 1, seed=0)[0]))
    data = {"index": [1, 2], "image": [image, image], "question": ["a?", "b?"], "answer": ["x", "y"]}
    data.update(override)
    pd.DataFrame(data).to_csv(path, sep="\t", index=False)
    return path


def test_malformed_files_raise_clear_errors(tmp_path):
    garbage = base64.b64encode(b"definitely not an image " * 4).decode()
    cases = [
        ({"image": [None, garbage]}, r"row 1 \(index '1'\): no image"),
        ({"image": ["x" * 80, garbage]}, r"row 1 \(index '1'\): image does not decode"),
        ({"index": [1, 1]}, r"row 2 \(index '1'\): index already used by row 1"),
        ({"question": ["a?", ""]}, r"row 2 \(index '2'\): empty question"),
    ]
    for override, message in cases:
        path = _frame(tmp_path / "bad.tsv", **override)
        with pytest.raises(ValueError, match=message):
            read_tsv(path)
    path = _frame(tmp_path / "ref.tsv")
    text = path.read_text().splitlines()
    text[2] = "\t".join(["2", "99", "b?", "y"])
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=r"row 2 \(index '2'\): image cell '99' is neither"):
        read_tsv(path)

    path.write_text("index\timage\tquestion\n1\tabc\tq\textra\n")
    with pytest.raises(ValueError, match="not a well-formed TSV"):
        read_tsv(path)
    path.write_text("index\tquestion\n1\tq\n")
    with pytest.raises(ValueError, match=r"missing required column\(s\) \['image'\]"):
        read_tsv(path)


def test_write_rejects_bad_rows(tmp_path):
    with pytest.raises(ValueError, match="missing"):
        write_tsv([{"index": 1, "question": "q"}], tmp_path / "x.tsv")
    with pytest.raises(ValueError, match="choices"):
        write_tsv([{"index": 1, "image": "abc", "question": "q", "A": "x"}], tmp_path / "x.tsv")


def _png_declaring(width: int, height: int) -> bytes:
    """A few-hundred-byte PNG whose IHDR declares width x height (its pixel data is 1x1)."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), (200, 10, 10)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # CRC of type + IHDR body
    return bytes(data)


@pytest.mark.parametrize("side", [30000, 7000])  # above PIL's own bomb limit; only above ours
def test_too_many_pixels_is_refused_from_the_header(tmp_path, side):
    bomb = base64.b64encode(_png_declaring(side, side)).decode()
    assert len(bomb) < 200
    good = encode_image(render(sample_records("test", 1, seed=0)[0]))
    limit = rf"{side * side} pixels, limit {MAX_PIXELS}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        with pytest.raises(ValueError, match=rf"too many pixels: {limit}"):
            decode_image(bomb)

        path = _frame(tmp_path / "bomb.tsv", image=[good, bomb])
        with pytest.raises(ValueError, match=rf"bomb\.tsv: row 2 \(index '2'\): too many pixels: {limit}"):
            read_tsv(path)
        path = _frame(tmp_path / "bombs.tsv", image=[good, str([good, bomb])])
        with pytest.raises(
            ValueError,
            match=rf"bombs\.tsv: row 2 \(index '2'\): image 2 of 2: "
            rf"too many pixels: {limit}",
        ):
            read_tsv(path)
    # The limit is the caller's.
    width, height = Image.open(io.BytesIO(base64.b64decode(good))).size
    with pytest.raises(
        ValueError,
        match=rf"row 1 \(index '1'\): too many pixels: "
        rf"{width * height} pixels, limit 100$",
    ):
        read_tsv(tmp_path / "bomb.tsv", max_pixels=100)


def test_non_utf8_file_names_the_file_and_byte(tmp_path):
    path = _frame(tmp_path / "latin.tsv", question=["caf\u00e9?", "b?"])
    raw = path.read_bytes()
    offset = raw.index("\u00e9".encode())
    path.write_bytes(raw.replace("\u00e9".encode(), b"\xe9"))  # latin-1, as a Windows tool writes
    with pytest.raises(
        ValueError,
        match=rf"latin\.tsv: not UTF-8 text: byte\(s\) e9 at byte "
        rf"offset {offset} \(line 2\)",
    ):
        read_tsv(path)
    path.write_bytes(b"\xff" + raw)
    with pytest.raises(
        ValueError,
        match=r"latin\.tsv: not UTF-8 text: byte\(s\) ff at byte "
        r"offset 0 \(line 1\)",
    ):
        read_tsv(path)


def test_byte_order_mark_is_accepted(tmp_path, world_rows):
    _, rows = world_rows
    path = write_tsv(rows[:2], tmp_path / "bom.tsv")
    plain = read_tsv(path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    back = read_tsv(path)
    assert [r["index"] for r in back] == [r["index"] for r in plain] == [0, 1]
    assert list(back[0]) == list(plain[0])
    assert back[0]["question"] == rows[0]["question"]
    assert np.array_equal(np.asarray(back[1]["image"]), np.asarray(plain[1]["image"]))
