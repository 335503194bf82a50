"""Readers for real image–text formats, exercised on world data written in each form."""

import io
import json
import tarfile

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from sail.data import (
    Item,
    build_pool,
    decode,
    read_hf,
    read_image_folder,
    read_webdataset,
    run_funnel,
    write_webdataset,
)
from sail.data.pipeline import read_items
from sail.world import world_dataset


@pytest.fixture(scope="module")
def world():
    return world_dataset("train", 10, seed=2)


def _same_pixels(item: Item, row: dict) -> bool:
    return decode(item.read_bytes())[0].tobytes() == row["image"].convert("RGB").tobytes()


def test_hf_saved_directory(tmp_path, world):
    world.save_to_disk(tmp_path / "saved")
    items = list(read_hf(tmp_path / "saved", text_column="alt_text", source="world"))
    assert [i.id for i in items] == world["id"]
    assert [i.text for i in items] == world["alt_text"]
    assert all(_same_pixels(i, row) for i, row in zip(items, world))
    assert items[0].extra["record"]["id"] == world[0]["id"]  # the JSON column is read back as a record
    datasets.DatasetDict({"train": world, "test": world.select(range(3))}).save_to_disk(tmp_path / "dict")
    assert len(list(read_hf(tmp_path / "dict", text_column="alt_text", split="test"))) == 3
    assert len(list(read_hf(tmp_path / "dict", text_column="alt_text"))) == 10  # "train" by default


def test_parquet_with_image_feature_and_with_raw_bytes(tmp_path, world):
    (tmp_path / "feature").mkdir()
    world.select(range(6)).to_parquet(tmp_path / "feature" / "part-0.parquet")
    world.select(range(6, 10)).to_parquet(tmp_path / "feature" / "part-1.parquet")
    items = list(read_hf(tmp_path / "feature", text_column="teacher_caption"))
    assert [i.id for i in items] == world["id"] and [i.text for i in items] == world["teacher_caption"]
    assert all(_same_pixels(i, row) for i, row in zip(items, world))

    raw = []
    for row in world:
        buffer = io.BytesIO()
        row["image"].save(buffer, format="PNG")
        raw.append(buffer.getvalue())
    table = pa.table({"key": world["id"], "jpg": raw, "caption": world["weak_caption"]})
    pq.write_table(table, tmp_path / "raw.parquet")
    items = list(read_hf(tmp_path / "raw.parquet", image_column="jpg", text_column="caption", id_column="key"))
    assert [i.id for i in items] == world["id"] and items[3].image == raw[3]
    assert items[0].source == "raw"


def test_webdataset_shards(tmp_path, world):
    with tarfile.open(tmp_path / "shard-0.tar", "w") as tar:
        for index, row in enumerate(world):
            buffer = io.BytesIO()
            row["image"].save(buffer, format="JPEG" if index % 2 else "PNG")
            members = {("jpg" if index % 2 else "png"): buffer.getvalue()}
            if index % 2:
                members["txt"] = row["alt_text"].encode()
            else:
                members["json"] = json.dumps({"caption": row["alt_text"], "kind": row["kind"]}).encode()
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{row['id']}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("orphan.txt")  # a sample without an image is skipped
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    items = list(read_webdataset(tmp_path))
    assert [i.id for i in items] == world["id"]
    assert [i.text for i in items] == world["alt_text"]
    assert items[0].extra["kind"] == world[0]["kind"]
    assert _same_pixels(items[0], world[0])

    shards = write_webdataset(items, tmp_path / "copy", per_shard=4)
    assert len(shards) == 3
    again = list(read_webdataset(shards))
    assert [(i.id, i.text, i.image) for i in again] == [(i.id, i.text, i.image) for i in items]


def test_read_items_takes_the_alt_text_from_a_named_field(tmp_path, world):
    world.to_parquet(tmp_path / "part-0.parquet")
    assert [i.text for i in read_items("hf", tmp_path, text_field="alt_text")] == world["alt_text"]
    assert {i.text for i in read_items("hf", tmp_path)} == {""}  # the default column "text" is not there


def test_image_folder_with_jsonl(tmp_path):
    build_pool(tmp_path / "pool", 12, seed=1, defects=False)
    items = list(read_image_folder(tmp_path / "pool"))
    assert len(items) == 12 and {i.source for i in items} == {"laion_coco", "textcaps", "sa1b"}
    assert all(isinstance(i.extra["record"], dict) for i in items)
    result = run_funnel(items)
    assert len(result.kept) + result.summary()["steps"]["alt_text"]["dropped"] == 12

    folder = tmp_path / "custom"
    (folder / "img").mkdir(parents=True)
    Image.new("RGB", (40, 40), "red").save(folder / "img" / "a.png")
    lines = [
        json.dumps({"image": "img/a.png", "caption": "a red square", "uid": 7}),
        "{not json",
        json.dumps({"image": "img/gone.png", "caption": "lost"}),
    ]
    (folder / "texts.jsonl").write_text("\n".join(lines) + "\n")
    items = list(
        read_image_folder(folder, annotations="texts.jsonl", file_field="image", text_field="caption", id_field="uid")
    )
    assert [(i.id, i.text, i.problem) for i in items] == [
        ("7", "a red square", None),
        ("line-00000001", "", "malformed_json"),
        ("line-00000002", "lost", None),
    ]
    result = run_funnel(items)
    assert result.dropped["line-00000001"] == {
        "step": "read",
        "reason": "malformed_json",
        "detail": result.dropped["line-00000001"]["detail"],
    }
    assert result.dropped["line-00000001"]["detail"].startswith("texts.jsonl line 2: ")
    assert result.dropped["line-00000002"]["reason"] == "missing_file"
