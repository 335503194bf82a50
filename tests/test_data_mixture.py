"""Mixtures (sail.data.mixture): conversation rows, meta files, repeat factors and refused sources."""

from __future__ import annotations

import json
import random
import re
import shutil
from dataclasses import replace
from operator import attrgetter
from pathlib import Path

import pytest
from PIL import Image

from sail.data.mixture import (
    MixtureError,
    Sample,
    conversation_row,
    next_different,
    read_mixture,
    read_source,
    repeat,
    rotate_images,
    write_meta,
    write_samples,
    write_source,
)


def _samples(n: int) -> list[Sample]:
    return [
        Sample(f"s{i}", "src", (f"/nowhere/{i}.png",), (("user", "<image>\nq"), ("assistant", "a"))) for i in range(n)
    ]


def _images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        # greyscale and RGBA files, so Sample.image() has something to convert
        mode = ("L", "RGBA")[index % 2]
        Image.new(mode, (4 + index, 3), 200).save(folder / name)


def _row(sample_id: str = "a", image: str | None = "a.png", turns=None) -> dict:
    row = conversation_row(sample_id, image or "gone.png", turns or [("Read it.", "the text")])
    if image is None:
        del row["image"]
    return row


def test_conversation_row_puts_the_image_in_the_first_human_turn_only():
    row = conversation_row("x1", "images/x1.png", [("Describe.", "A cat."), ("And the text?", 'the text "cat"')])
    assert row == {
        "id": "x1",
        "image": "images/x1.png",
        "conversations": [
            {"from": "human", "value": "<image>\nDescribe."},
            {"from": "gpt", "value": "A cat."},
            {"from": "human", "value": "And the text?"},
            {"from": "gpt", "value": 'the text "cat"'},
        ],
    }


def test_write_source_write_meta_read_mixture_round_trip_with_paths_relative_to_the_meta(tmp_path):
    data = tmp_path / "data"
    _images(data / "pool" / "images", ["a.png", "b.png", "c.png"])
    captions = [
        conversation_row("a", "images/a.png", [("Describe.", "A.")]),
        conversation_row("b", "images/b.png", [("Describe.", "B."), ("More?", "No.")]),
    ]
    ocr = [conversation_row("c", "images/c.png", [("Read.", 'the text "c"')])]
    assert write_source(captions, data / "sources" / "captions.jsonl") == 2
    assert write_source(ocr, data / "sources" / "ocr.jsonl") == 1
    assert [json.loads(line) for line in (data / "sources" / "captions.jsonl").read_text().splitlines()] == captions
    meta = write_meta(
        data / "meta" / "mix.json",
        {
            "captions": {"root": data / "pool", "annotation": data / "sources" / "captions.jsonl", "length": 2},
            "ocr": {
                "root": data / "pool",
                "annotation": data / "sources" / "ocr.jsonl",
                "repeat_time": 2,
                "length": 1,
            },
        },
    )
    assert json.loads(meta.read_text()) == {
        "captions": {"root": "../pool", "annotation": "../sources/captions.jsonl", "repeat_time": 1, "length": 2},
        "ocr": {"root": "../pool", "annotation": "../sources/ocr.jsonl", "repeat_time": 2, "length": 1},
    }

    moved = tmp_path / "elsewhere"
    shutil.move(data, moved)  # relative paths: the folder still reads after a move
    mixed = read_mixture(moved / "meta" / "mix.json", seed=0)
    assert sorted(s.id for s in mixed) == ["a", "b", "c", "c"]
    by_id = {s.id: s for s in mixed}
    assert by_id["b"] == Sample(
        "b",
        "captions",
        (str((moved / "pool" / "images" / "b.png").resolve()),),
        (("user", "<image>\nDescribe."), ("assistant", "B."), ("user", "More?"), ("assistant", "No.")),
    )
    assert by_id["c"].source == "ocr" and by_id["c"].messages == (
        ("user", "<image>\nRead."),
        ("assistant", 'the text "c"'),
    )
    for sample in mixed:
        image = sample.image()
        assert isinstance(image, Image.Image) and image.mode == "RGB"
    assert by_id["b"].image().size == (5, 3)


def test_repeat_time_two_gives_every_sample_twice():
    samples = _samples(3)
    assert repeat(samples, 2, random.Random(0)) == samples + samples


def test_repeat_time_half_keeps_half_distinct():
    samples = _samples(10)
    kept = repeat(samples, 0.5, random.Random(0))
    assert len(kept) == 5 and len(set(kept)) == 5 and set(kept) <= set(samples)
    assert kept == random.Random(0).sample(samples, 5)


def test_repeat_time_two_and_a_half_of_four_is_two_copies_and_two_seeded_distinct():
    samples = _samples(4)
    mixed = repeat(samples, 2.5, random.Random(3))
    assert len(mixed) == 10
    assert mixed[:8] == samples * 2
    assert mixed[8:] == random.Random(3).sample(samples, 2) and mixed[8] != mixed[9]


@pytest.mark.parametrize("repeat_time", [0, -1.5])
def test_repeat_refuses_a_non_positive_repeat_time(repeat_time):
    with pytest.raises(MixtureError, match=re.escape(f"repeat_time must be > 0, got {repeat_time}")):
        repeat(_samples(2), repeat_time, random.Random(0))


def _source(tmp_path: Path, rows: list, length: int | None = None) -> tuple[dict, Path]:
    _images(tmp_path / "root", ["a.png"])
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    (tmp_path / "src.jsonl").write_text("\n".join(lines) + "\n")
    entry = {"root": "root", "annotation": "src.jsonl"}
    if length is not None:
        entry["length"] = length
    return entry, tmp_path / "src.jsonl"


def test_read_source_reads_a_valid_source(tmp_path):
    entry, _ = _source(tmp_path, [_row(), "", _row("b")], length=2)
    samples = read_source("s", entry, tmp_path)
    assert [s.id for s in samples] == ["a", "b"]
    assert samples[0].messages == (("user", "<image>\nRead it."), ("assistant", "the text"))


def test_read_source_names_the_file_and_line_of_a_malformed_row(tmp_path):
    entry, path = _source(tmp_path, [_row(), '{"id": "b", "conversations": [', _row()])
    with pytest.raises(MixtureError, match=re.escape(f"{path}:2: not a conversation row (JSONDecodeError")):
        read_source("s", entry, tmp_path)


def test_read_source_refuses_an_unknown_role(tmp_path):
    row = _row()
    row["conversations"][0]["from"] = "system"
    entry, path = _source(tmp_path, [row])
    with pytest.raises(MixtureError, match=re.escape(f"{path}:1: not a conversation row (KeyError")):
        read_source("s", entry, tmp_path)


@pytest.mark.parametrize(
    "froms",
    [("human", "human"), ("gpt", "human"), ("human", "gpt", "human"), ()],
    ids=["two-human", "gpt-first", "ends-with-human", "empty"],
)
def test_read_source_refuses_turns_that_do_not_alternate(tmp_path, froms):
    row = _row()
    row["conversations"] = [{"from": who, "value": "<image>\nx" if i == 0 else "y"} for i, who in enumerate(froms)]
    entry, path = _source(tmp_path, [row])
    with pytest.raises(MixtureError, match=re.escape(f"{path}:1: turns must alternate human, gpt and end with gpt")):
        read_source("s", entry, tmp_path)


def test_read_source_refuses_a_placeholder_without_its_image(tmp_path):
    entry, path = _source(tmp_path, [_row(), _row("b", image=None)])
    with pytest.raises(
        MixtureError, match=re.escape(f"{path}:2: 0 image(s) need as many <image> in human turns (found 1)")
    ):
        read_source("s", entry, tmp_path)


def test_text_only_and_multi_image_rows_read_and_chat_with_their_images_in_place(tmp_path):
    _images(tmp_path / "root" / "images", ["a.png", "b.png"])
    text_only = conversation_row("t", [], [("How many sides has a square?", "4")])
    pair = conversation_row("m", ["images/a.png", "images/b.png"], [("Which is wider?", "Image-2"), ("Sure?", "Yes")])
    assert "image" not in text_only and pair["image"] == ["images/a.png", "images/b.png"]
    assert pair["conversations"][0]["value"] == "Image-1: <image>\nImage-2: <image>\nWhich is wider?"
    entry, _ = _source(tmp_path, [text_only, pair])
    t, m = read_source("s", entry, tmp_path)
    assert t.image_paths == () and t.images() == []
    assert t.chat() == [
        {"role": "user", "content": "How many sides has a square?"},
        {"role": "assistant", "content": "4"},
    ]
    assert m.image_paths == tuple(str((tmp_path / "root" / "images" / n).resolve()) for n in ("a.png", "b.png"))
    assert [image.size for image in m.images()] == [(4, 3), (5, 3)]
    assert m.chat()[0]["content"] == [
        {"type": "text", "text": "Image-1:"},
        {"type": "image"},
        {"type": "text", "text": "Image-2:"},
        {"type": "image"},
        {"type": "text", "text": "Which is wider?"},
    ]
    assert m.chat()[2] == {"role": "user", "content": "Sure?"}
    with pytest.raises(ValueError, match="sample 'm' has 2 images, not one"):
        m.image()


def test_write_samples_gives_another_process_exactly_these_samples(tmp_path):
    _images(tmp_path / "root" / "images", ["a.png", "b.png"])
    rows = [
        conversation_row("one", "images/a.png", [("Describe it.", "a red square")]),
        conversation_row("two", ["images/a.png", "images/b.png"], [("Which is wider?", "Image-2"), ("Sure?", "Yes")]),
        conversation_row("three", [], [("How many sides has a square?", "4")]),
    ]
    entry, _ = _source(tmp_path, rows)
    chosen = read_source("captions", entry, tmp_path)[:2] + [
        replace(sample, source="drills") for sample in read_source("captions", entry, tmp_path)[2:]
    ]
    meta = write_samples(chosen, tmp_path / "elsewhere" / "run")
    shutil.move(tmp_path / "elsewhere", tmp_path / "moved")  # relative paths inside the folder survive a move
    back = read_mixture(tmp_path / "moved" / "run" / meta.name, seed=0)
    by_id = attrgetter("id")
    assert sorted(back, key=by_id) == sorted(chosen, key=by_id)  # ids, sources, images and turns: no more, no less
    assert json.loads((tmp_path / "moved" / "run" / meta.name).read_text())["drills"]["length"] == 1


def test_read_source_refuses_an_image_outside_its_root(tmp_path):
    entry, path = _source(tmp_path, [_row(image="../x.png")])
    with pytest.raises(MixtureError, match=re.escape(f"{path}:1: image '../x.png' lies outside the source's root")):
        read_source("s", entry, tmp_path)


@pytest.mark.parametrize(
    "first, later, answer, found",
    [
        ("<image>\nq", "<image>\nagain", "a", 2),
        ("<image><image>\nq", "again", "a", 2),
        ("q", "again", "a", 0),
        ("<image>\nq", "again", "<image> a", 1),
    ],
    ids=["later-turn-too", "two-in-first", "none", "in-an-answer"],
)
def test_read_source_wants_one_placeholder_per_image_in_human_turns_only(tmp_path, first, later, answer, found):
    row = _row(turns=[("q", answer), ("again", "b")])
    row["conversations"][0]["value"], row["conversations"][2]["value"] = first, later
    entry, path = _source(tmp_path, [row])
    message = f"{path}:1: 1 image(s) need as many <image> in human turns (found {found}) and none in gpt turns"
    with pytest.raises(MixtureError, match=re.escape(message)):
        read_source("s", entry, tmp_path)


def test_read_source_refuses_a_length_that_disagrees_with_the_file(tmp_path):
    entry, path = _source(tmp_path, [_row(), _row("b")], length=3)
    with pytest.raises(MixtureError, match=re.escape(f"source 's': the meta file says 3 rows, {path} has 2")):
        read_source("s", entry, tmp_path)


def test_read_mixture_refuses_a_meta_entry_without_a_root(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps({"s": {"annotation": "src.jsonl"}}))
    with pytest.raises(MixtureError, match=re.escape("source 's' lacks ['root']")):
        read_mixture(tmp_path / "meta.json")


def test_read_mixture_is_deterministic_for_a_seed_and_differs_for_another(tmp_path):
    names = [f"{i}.png" for i in range(8)]
    _images(tmp_path / "pool", names)
    rows = [conversation_row(f"id{i}", name, [("q", "a")]) for i, name in enumerate(names)]
    write_source(rows[:5], tmp_path / "one.jsonl")
    write_source(rows[5:], tmp_path / "two.jsonl")
    meta = write_meta(
        tmp_path / "meta.json",
        {
            "one": {"root": tmp_path / "pool", "annotation": tmp_path / "one.jsonl", "length": 5},
            "two": {"root": tmp_path / "pool", "annotation": tmp_path / "two.jsonl", "length": 3},
        },
    )
    # repeat_time 1 everywhere: only the shuffle can tell the seeds apart
    first, again, other = read_mixture(meta, seed=0), read_mixture(meta, seed=0), read_mixture(meta, seed=1)
    assert sorted(s.id for s in first) == sorted(s.id for s in other) == [f"id{i}" for i in range(8)]
    assert [s.id for s in first] == [s.id for s in again]
    assert [s.id for s in first] != [s.id for s in other]
    assert [s.source for s in first] != ["one"] * 5 + ["two"] * 3  # the sources are mixed, not concatenated


def test_rotate_images_gives_each_sample_the_next_image_of_its_own_source():
    cards = [Sample(f"c{i}", "cards", (f"/c{i}.png",), (("user", "<image>\nq"), ("assistant", "a"))) for i in range(3)]
    scene = Sample("s0", "scenes", ("/s0.png",), (("user", "<image>\nq"), ("assistant", "b")))
    rotated = rotate_images([cards[0], scene, cards[1], cards[2]])
    assert [s.image_paths for s in rotated] == [("/c1.png",), ("/s0.png",), ("/c2.png",), ("/c0.png",)]
    assert [(s.id, s.source, s.messages) for s in rotated] == [
        (s.id, s.source, s.messages) for s in [cards[0], scene, cards[1], cards[2]]
    ]


def test_rotate_images_never_hands_a_sample_its_own_image_back():
    # two questions about c0's image, then c1: both c0 questions get c1's image, c1 gets c0's
    asked = [
        Sample(f"q{i}", "cards", (path,), (("user", "<image>\nq"), ("assistant", "a")))
        for i, path in enumerate(["/c0.png", "/c0.png", "/c1.png"])
    ]
    assert [s.image_paths for s in rotate_images(asked)] == [("/c1.png",), ("/c1.png",), ("/c0.png",)]
    alone = rotate_images(asked[:2])  # a source with one image keeps it: nothing else to show
    assert [s.image_paths for s in alone] == [("/c0.png",), ("/c0.png",)]


def test_next_different_skips_equal_keys_and_wraps():
    assert next_different(["a", "a", "b", "c", "c"]) == [2, 2, 3, 0, 0]
    assert next_different(["a", "a"]) == [0, 1]
    assert next_different([]) == []
