"""Data nobody here wrote: crafted ids and paths never write or read outside their folders, and
one bad record is counted with its reason instead of sinking the records around it."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from sail.data import read_hf, read_image_folder, read_webdataset, run_funnel
from sail.data.pipeline import export_items, read_curated
from sail.manifest import inside, safe_name


def _png(colour: str, size: int = 48) -> bytes:
    """A `colour` square with a noise pattern seeded by the colour, so no two are near duplicates."""
    noise = np.random.default_rng(sum(map(ord, colour))).integers(0, 64, (size, size, 3), dtype=np.uint8)
    pixels = np.clip(np.asarray(Image.new("RGB", (size, size), colour), np.int16) - noise, 0, 255).astype(np.uint8)
    pixels[0, 0] = Image.new("RGB", (1, 1), colour).getpixel((0, 0))  # the corner keeps the exact colour
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_shard(path: Path, samples: list[tuple[str, bytes, str]]) -> list[tarfile.TarInfo]:
    """A webdataset shard of (member key, png bytes, text); returns its members as written."""
    with tarfile.open(path, "w") as tar:
        for key, image, text in samples:
            for extension, data in (("png", image), ("txt", text.encode())):
                info = tarfile.TarInfo(f"{key}.{extension}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    with tarfile.open(path) as tar:
        return tar.getmembers()


@pytest.mark.parametrize(
    "text,name",
    [
        ("laion_coco-000001", "laion_coco-000001"),  # a plain id is its own file name
        ("../../escaped", "escaped-ea03bc47f879"),
        ("/etc/passwd", "etc_passwd-74acf3184453"),
        ("a/b", "a_b-c14cddc033f6"),
        ("a..b", "a_b-f62b42414c51"),  # not the same file as "a/b"
        ("..", "5ec1f7e700f3"),
        (".hidden", "hidden-1692419006a8"),
        ("é", "4a99557e4033"),
    ],
)
def test_safe_name(text, name):
    assert safe_name(text) == name


def test_inside_refuses_paths_that_leave_the_folder(tmp_path):
    assert inside(tmp_path, "images/a.png") == tmp_path.resolve() / "images" / "a.png"
    for bad in ("../x.png", "/etc/passwd", "images/../../x.png"):
        with pytest.raises(ValueError, match="resolves outside"):
            inside(tmp_path, bad)


def test_crafted_shard_ids_cannot_write_outside_the_export(tmp_path):
    data, export = tmp_path / "data", tmp_path / "a" / "b" / "export"
    data.mkdir()
    _write_shard(
        data / "shard-0.tar",
        [
            ("plain", _png("red"), "a red square"),
            ("../../escaped", _png("blue"), "a blue square"),
            ("/tmp/absolute", _png("green"), "a green square"),
            ("nested/deeper", _png("yellow"), "a yellow square"),
        ],
    )
    items = list(read_webdataset(data))
    assert [item.id for item in items] == ["plain", "../../escaped", "/tmp/absolute", "nested/deeper"]

    summary = export_items(items, export)

    assert summary["items"] == 4 and summary["skipped"] == {}
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png"))
    assert written == [
        "a/b/export/images/escaped-ea03bc47f879.png",
        "a/b/export/images/nested_deeper-28fa8bd36639.png",
        "a/b/export/images/plain.png",
        "a/b/export/images/tmp_absolute-de36c71057eb.png",
    ]
    assert not Path("/tmp/absolute.png").exists()
    back = {item.id: item for item in read_curated(export)}
    assert set(back) == {"plain", "../../escaped", "/tmp/absolute", "nested/deeper"}  # original ids kept
    assert back["../../escaped"].text == "a blue square"


def test_a_crafted_id_cannot_take_another_items_file(tmp_path):
    from sail.data import Item

    items = [
        Item(id="a/b", text="first", source="t", image=_png("red")),
        Item(id="a_b-c14cddc033f6", text="crafted", source="t", image=_png("blue")),
    ]
    summary = export_items(items, tmp_path / "export")
    assert summary["items"] == 1 and summary["skipped"] == {"name_taken": 1}
    [kept] = read_curated(tmp_path / "export")
    assert kept.id == "a/b" and Image.open(kept.path).getpixel((0, 0)) == (255, 0, 0)


def _jsonl_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    (folder / "images").mkdir(parents=True)
    for name, colour in (("a", "red"), ("b", "blue"), ("c", "green")):
        (folder / "images" / f"{name}.png").write_bytes(_png(colour))
    (tmp_path / "secret.png").write_bytes(_png("black"))
    lines = [
        json.dumps({"id": "ok-1", "file": "images/a.png", "alt_text": "a red square"}).encode(),
        json.dumps({"id": "../../evil", "file": "images/b.png", "alt_text": "a blue square"}).encode(),
        json.dumps({"id": "outside", "file": "../secret.png", "alt_text": "a black square"}).encode(),
        json.dumps({"id": "absolute", "file": str(tmp_path / "secret.png"), "alt_text": "a black square"}).encode(),
        json.dumps({"id": "null", "file": None, "alt_text": "no file"}).encode(),
        b'{"id": "latin", "file": "images/a.png", "alt_text": "caf\xe9"}',
        json.dumps({"id": "nul", "file": "images/a\u0000.png", "alt_text": "a red square"}).encode(),
        b"{not json",
        b"",
        json.dumps({"id": "ok-2", "file": "images/c.png", "alt_text": "a green square"}).encode(),
    ]
    (folder / "annotations.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return folder


def test_one_bad_jsonl_line_loses_only_itself(tmp_path):
    items = list(read_image_folder(_jsonl_folder(tmp_path)))

    assert [(item.id, item.problem) for item in items] == [
        ("ok-1", None),
        ("../../evil", None),
        ("outside", "path_outside_root"),
        ("absolute", "path_outside_root"),
        ("null", "no_image"),
        ("line-00000005", "not_utf8"),
        ("nul", "bad_path"),
        ("line-00000007", "malformed_json"),
        ("ok-2", None),
    ]
    assert items[5].extra["detail"].startswith("annotations.jsonl line 6: 'utf-8' codec can't decode byte 0xe9")

    result = run_funnel(items)  # never raises on a bad item
    assert result.summary()["steps"]["read"] == {
        "seen": 9,
        "kept": 3,
        "dropped": 6,
        "reasons": {"path_outside_root": 2, "no_image": 1, "not_utf8": 1, "bad_path": 1, "malformed_json": 1},
    }
    assert {item.id for item in result.kept} == {"ok-1", "../../evil", "ok-2"}


def test_paths_outside_the_root_are_read_only_when_the_user_says_so(tmp_path):
    folder = _jsonl_folder(tmp_path)
    items = {item.id: item for item in read_image_folder(folder, allow_outside_root=True)}
    assert items["outside"].problem is None and items["outside"].path == str(tmp_path / "secret.png")
    assert items["absolute"].problem is None and items["nul"].problem == "bad_path"


def test_a_damaged_export_is_refused_not_half_read(tmp_path):
    with pytest.raises(ValueError, match=r"damaged: 6 unreadable annotation lines, e\.g\. outside \(path_outside_root"):
        read_curated(_jsonl_folder(tmp_path))


def test_crafted_parquet_paths_and_an_unreadable_file(tmp_path):
    (tmp_path / "secret.png").write_bytes(_png("black"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "a-broken.parquet").write_bytes(b"PAR1 this is not parquet")
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table(
        {
            "id": ["../../pq", "p-out", "p-none", "p-ok"],
            "image": pa.array(
                [
                    {"bytes": _png("red"), "path": None},
                    {"bytes": None, "path": "../secret.png"},
                    None,
                    {"bytes": _png("blue"), "path": None},
                ],
                type=image,
            ),
            "text": ["a red square", "a black square", "nothing", "a blue square"],
        }
    )
    pq.write_table(table, data / "b-good.parquet")

    items = list(read_hf(data))

    assert [(item.id, item.problem) for item in items] == [
        ("a-broken.parquet#unreadable", "unreadable_file"),
        ("../../pq", None),
        ("p-out", "path_outside_root"),
        ("p-none", "no_image"),
        ("p-ok", None),
    ]
    assert items[0].extra["detail"].startswith("a-broken.parquet: ")
    export_items([item for item in items if not item.problem], tmp_path / "export")
    assert sorted(p.name for p in tmp_path.rglob("*.png")) == ["p-ok.png", "pq-79dcdb4a6a4a.png", "secret.png"]


@pytest.mark.parametrize("cut", ["mid_member", "member_boundary"])
def test_a_truncated_shard_is_reported_and_the_next_shard_read(tmp_path, cut):
    samples = [(f"s{i}", _png(colour), f"a {colour} square") for i, colour in enumerate(("red", "blue", "green"))]
    members = _write_shard(tmp_path / "shard-0.tar", samples)
    _write_shard(tmp_path / "shard-1.tar", [("t0", _png("white"), "a white square")])
    last = members[-1]  # s2.txt
    end = last.offset_data + (last.size // 512 + 1) * 512  # the end of its padded data: a member boundary
    length = last.offset_data + 2 if cut == "mid_member" else end
    data = (tmp_path / "shard-0.tar").read_bytes()
    (tmp_path / "shard-0.tar").write_bytes(data[:length])

    items = list(read_webdataset(tmp_path))

    assert [(item.id, item.problem) for item in items] == [
        ("s0", None),
        ("s1", None),
        ("s2", "truncated_shard"),
        ("t0", None),
    ]
    expected = "unexpected end of data" if cut == "mid_member" else "ends without an end-of-archive block"
    assert items[2].extra["detail"].startswith("shard-0.tar: ") and expected in items[2].extra["detail"]
    assert run_funnel(items).dropped["s2"] == {
        "step": "read",
        "reason": "truncated_shard",
        "detail": items[2].extra["detail"],
    }


def test_a_file_that_is_no_tar_is_one_unreadable_shard(tmp_path):
    (tmp_path / "shard-0.tar").write_bytes(b"not a tar at all" * 100)
    [item] = read_webdataset(tmp_path)
    assert (item.id, item.problem) == ("shard-0.tar#unreadable_shard", "unreadable_shard")
