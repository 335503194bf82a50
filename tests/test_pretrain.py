"""Pretraining in miniature (sail.pretrain): OCR scores, the log-linear fit, packed VLM batches,
and the world sources written from a curated pool."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import world_pool

from sail.caption import CAPTION_PROMPT
from sail.data.mixture import Sample, read_mixture, write_meta
from sail.pretrain import CAPTION_SOURCE_NAMES, OCR_SOURCE_NAMES, fit_log_linear, sample_collate, write_world_sources
from sail.pretrain.data import qa_turns
from sail.pretrain.scores import ocr_score
from sail.train import pack_batch
from sail.world import alt_text, render, teacher_caption, weak_caption
from sail.world.captions import wrong_caption
from sail.world.dataset import caption_rng
from sail.world.ocr import ocr_pairs

CARD = "title Farm log ; moon 4 ; cake 11"

# --- OCR score ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prediction, gold, expected",
    [
        ('the text "cat"', 'the text "cat"', 1.0),  # exact lookup
        ('the text "dog"', 'the text "cat"', 0.0),  # another word: distance 3/3
        ('the text "cats"', 'the text "cat"', 1 - 1 / 4),  # one edit over the longer 4 characters
        ("A small red circle at the top left.", 'the text "cat"', 0.0),  # a caption, not a reading
        ('the text ""', 'the text "cat"', 0.0),  # the wording alone earns nothing
        (CARD, CARD, 1.0),
        ("title Farm log ; moon 4 ; cake 10", CARD, (1 + 1 + (1 - 1 / 7)) / 3),  # "cake 10" vs "cake 11"
        ("title Farm log ; moon 4", CARD, (1 + 1 + 0) / 3),  # a missing place scores 0
        ("title Farm log ; moon 4 ; cake 11 ; cake 11", CARD, 3 / 4),  # an extra place counts too
        ("title Farm log ; cake 11", CARD, (1 + 0 + 0) / 3),  # each fact against the one in its place
        ("title  ;  ; ", CARD, 0.0),  # the wording alone earns nothing
        # a wrong title, 5 edits in 8 characters: 0 alone; with the shared "title " it would be 1 - 5/14
        ("title Fish pot ; moon 4 ; cake 11", CARD, (0 + 1 + 1) / 3),
    ],
)
def test_ocr_score_hand_cases(prediction, gold, expected):
    assert ocr_score(prediction, gold) == pytest.approx(expected, abs=1e-12)


# --- log-linear fit -----------------------------------------------------------------------


def test_fit_log_linear_recovers_an_exact_law():
    sizes = [10, 100, 1000, 5000]
    fit = fit_log_linear(sizes, [2 + 3 * math.log(x) for x in sizes])
    assert fit["a"] == pytest.approx(2) and fit["b"] == pytest.approx(3) and fit["r2"] == pytest.approx(1)


def test_fit_log_linear_r2_by_hand():
    # ln sizes 0, 1, 2 with scores 0, 2, 1: slope 0.5, intercept 0.5, residuals -0.5, 1, -0.5
    fit = fit_log_linear([1, math.e, math.e**2], [0, 2, 1])
    assert fit["b"] == pytest.approx(0.5) and fit["a"] == pytest.approx(0.5)
    assert fit["r2"] == pytest.approx(1 - 1.5 / 2)


def test_fit_log_linear_of_flat_scores_has_no_r2():
    fit = fit_log_linear([1, 10, 100], [5, 5, 5])
    assert fit["b"] == pytest.approx(0) and fit["a"] == pytest.approx(5) and np.isnan(fit["r2"])


def test_fit_log_linear_refuses_too_few_or_unpaired_points():
    with pytest.raises(ValueError, match=re.escape("at least 3 (size, score) pairs, got 2 sizes, 2 scores")):
        fit_log_linear([10, 100], [1, 2])
    with pytest.raises(ValueError, match=re.escape("got 3 sizes, 4 scores")):
        fit_log_linear([10, 100, 1000], [1, 2, 3, 4])


# --- packed VLM batches -------------------------------------------------------------------


def _caption_samples(records: list[dict], folder: Path) -> list[Sample]:
    """Short (weak) and long (teacher) captions alternating, the first short, so packing reorders."""
    samples = []
    for index, record in enumerate(records):
        path = folder / f"{record['id']}.png"
        render(record).save(path)
        write = weak_caption if index % 2 == 0 else teacher_caption
        caption = write(record, random.Random(index))
        samples.append(
            Sample(record["id"], "test", (str(path),), (("user", f"<image>\n{CAPTION_PROMPT}"), ("assistant", caption)))
        )
    return samples


def test_a_packed_vlm_batch_gives_the_padded_loss_with_tiles_in_packed_order(
    tmp_path, tokenizer, geometry, processor, records
):
    from sail.model import build_vlm

    samples = _caption_samples(records[:6], tmp_path)
    torch.manual_seed(0)
    model = build_vlm(geometry, tokenizer).eval()
    padded = sample_collate(processor)(samples)
    packed = sample_collate(processor, 128)(samples)
    lengths = padded["attention_mask"].sum(dim=1).tolist()
    assert lengths[0] < max(lengths)  # longest-first packing moves the sequences, and their tiles

    assert packed["input_ids"].shape[0] < len(samples)
    assert packed["num_tokens"] == padded["num_tokens"] == sum(lengths)
    assert packed["pixel_values"].shape == padded["pixel_values"].shape
    padded.pop("num_tokens"), packed.pop("num_tokens")
    with torch.no_grad():
        padded_loss = float(model(**padded).loss)
        packed_loss = float(model(**packed).loss)
        unordered = float(model(**{**packed, "pixel_values": padded["pixel_values"]}).loss)
        tiles = packed["pixel_values"].clone()
        tiles[[0, -1]] = tiles[[-1, 0]]
        swapped = float(model(**{**packed, "pixel_values": tiles}).loss)
    assert packed_loss == pytest.approx(padded_loss, rel=1e-5)
    # the tiles' order matters: left in the padded order, or two swapped, the loss moves
    assert abs(unordered - padded_loss) > 1e-4 and abs(swapped - padded_loss) > 1e-4


def test_text_only_and_multi_image_samples_collate_and_pack_to_the_padded_loss(
    tmp_path, tokenizer, geometry, processor, records
):
    from sail.model import build_vlm

    paths = []
    for record in records[:3]:
        paths.append(str(tmp_path / f"{record['id']}.png"))
        render(record).save(paths[-1])
    samples = [
        Sample("text", "t", (), (("user", "How many sides does a square have?"), ("assistant", "4"))),
        Sample(
            "two", "t", tuple(paths[:2]), (("user", "Image-1: <image>\nImage-2: <image>\nSame?"), ("assistant", "No"))
        ),
        Sample("one", "t", (paths[2],), (("user", f"<image>\n{CAPTION_PROMPT}"), ("assistant", "a red circle"))),
    ]
    torch.manual_seed(0)
    model = build_vlm(geometry, tokenizer).eval()
    padded = sample_collate(processor)(samples)
    packed = sample_collate(processor, 256)(samples)
    image_token = tokenizer.convert_tokens_to_ids(processor.image_token)
    per_row = (padded["input_ids"] == image_token).sum(dim=1).tolist()
    assert per_row == [0, 2 * geometry.image_seq_length, geometry.image_seq_length]  # each image where it stood
    assert padded["pixel_values"].shape[0] == packed["pixel_values"].shape[0] == 3
    padded.pop("num_tokens"), packed.pop("num_tokens")
    with torch.no_grad():
        assert float(model(**packed).loss) == pytest.approx(float(model(**padded).loss), rel=1e-5)


def test_pack_batch_with_pixel_values_needs_the_image_token():
    ids = torch.tensor([[1, 2, 3], [4, 5, 0]])
    batch = {
        "input_ids": ids,
        "attention_mask": (ids != 0).long(),
        "labels": ids.clone(),
        "pixel_values": torch.zeros(2, 3, 4, 4),
    }
    with pytest.raises(ValueError, match="packing a batch with pixel_values needs image_token_id"):
        pack_batch(batch, 8, pad_token_id=0)


def test_pack_batch_refuses_image_tokens_that_do_not_divide_into_the_tiles():
    ids = torch.tensor([[9, 9, 9, 1], [9, 2, 0, 0]])  # 4 image tokens (id 9), 3 tiles
    batch = {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": ids.clone()}
    batch["pixel_values"] = torch.zeros(3, 3, 4, 4)
    with pytest.raises(ValueError, match="4 image tokens do not divide into 3 tiles"):
        pack_batch(batch, 8, pad_token_id=0, image_token_id=9)


def test_pack_batch_moves_each_sequence_s_tiles_with_it():
    # sequence 0: one tile (2 image tokens), sequence 1: two tiles; longest first puts 1 before 0
    ids = torch.tensor([[9, 9, 1, 0, 0, 0, 0], [9, 9, 9, 9, 2, 3, 4]])
    batch = {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": ids.clone()}
    batch["pixel_values"] = torch.arange(3.0).view(3, 1, 1, 1)  # tile k is filled with k
    packed = pack_batch(batch, 10, pad_token_id=0, image_token_id=9)
    assert packed["input_ids"].tolist() == [[9, 9, 9, 9, 2, 3, 4, 9, 9, 1]]
    assert packed["pixel_values"].flatten().tolist() == [1.0, 2.0, 0.0]


# --- world sources ------------------------------------------------------------------------


def _captions(directory: Path, ids: list[str]) -> None:
    import datasets

    datasets.Dataset.from_dict({"id": ids, "caption": [f"caption of {i}" for i in ids]}).save_to_disk(str(directory))


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_world_sources_describe_the_caption_ids_and_read_the_texts(tmp_path):
    records = world_pool(tmp_path / "pool", 10)
    ids = list(records)[::-1][:8]  # not the pool's order, and not all of it
    with_text = [i for i in ids if ocr_pairs(records[i])]
    assert 0 < len(with_text) < len(ids) and any(records[i]["kind"] == "card" for i in with_text)
    _captions(tmp_path / "captions", ids)

    entries = write_world_sources(tmp_path / "pool", tmp_path / "captions", tmp_path / "out", seed=5, lq_error_rate=1)
    assert list(entries) == [*CAPTION_SOURCE_NAMES, *OCR_SOURCE_NAMES, "qa"]
    rows = {}
    for name, entry in entries.items():
        rows[name] = _rows(Path(entry["annotation"]))
        assert Path(entry["annotation"]) == tmp_path / "out" / f"{name}.jsonl"
        assert Path(entry["root"]) == tmp_path / "pool" and entry["length"] == len(rows[name])
    for name in CAPTION_SOURCE_NAMES:
        assert [r["id"] for r in rows[name]] == ids, name
        assert [r["image"] for r in rows[name]] == [f"images/{i}.png" for i in ids], name
        for row in rows[name]:
            human, gpt = row["conversations"]
            assert human == {"from": "human", "value": f"<image>\n{CAPTION_PROMPT}"} and gpt["from"] == "gpt"
    assert [r["conversations"][1]["value"] for r in rows["sail-caption-mini"]] == [f"caption of {i}" for i in ids]
    writers = {"teacher": teacher_caption, "weak": weak_caption, "alt-text": alt_text, "wrong-facts": wrong_caption}
    for name, write in writers.items():  # each caption drawn from its own (seed, id, source) generator
        expected = [write(records[i], caption_rng(5, i, name)) for i in ids]
        assert [r["conversations"][1]["value"] for r in rows[name]] == expected, name

    for name in OCR_SOURCE_NAMES:
        assert [r["id"] for r in rows[name]] == with_text, name
        assert [r["image"] for r in rows[name]] == [f"images/{i}.png" for i in with_text], name
    for hq, lq in zip(rows["ocr-hq"], rows["ocr-lq"]):
        expected = []
        for k, (prompt, answer) in enumerate(ocr_pairs(records[hq["id"]])):
            expected += [f"<image>\n{prompt}" if k == 0 else prompt, answer]
        turns = [turn["value"] for turn in hq["conversations"]]
        lq_turns = [turn["value"] for turn in lq["conversations"]]
        assert turns == expected
        # lq_error_rate 1: the same prompts, every answer misread
        assert lq_turns[0::2] == turns[0::2] and all(a != b for a, b in zip(lq_turns[1::2], turns[1::2]))

    # qa: one row per image with open questions; cards have none, and an empty row would not read back
    scenes = [i for i in ids if records[i]["kind"] == "scene"]
    assert len(scenes) < len(ids) and [r["id"] for r in rows["qa"]] == scenes
    for row in rows["qa"]:
        turns = qa_turns(records[row["id"]], 5)
        assert turns and [t["value"] for t in row["conversations"]] == [
            f"<image>\n{t}" if k == 0 else t for k, t in enumerate(x for turn in turns for x in turn)
        ]

    meta = write_meta(tmp_path / "meta.json", entries)  # the sources train as they stand
    mixed = read_mixture(meta, seed=0)
    assert len(mixed) == 5 * len(ids) + 2 * len(with_text) + len(scenes)
    assert all(Path(s.image_path) == (tmp_path / "pool" / "images" / f"{s.id}.png").resolve() for s in mixed)


def test_world_sources_refuse_a_caption_id_missing_from_theworld_pool(tmp_path):
    records = world_pool(tmp_path / "pool", 3)
    _captions(tmp_path / "captions", [*records, "train-999999"])
    with pytest.raises(ValueError, match=re.escape("1 caption ids have no world record in") + ".*'train-999999'"):
        write_world_sources(tmp_path / "pool", tmp_path / "captions", tmp_path / "out", seed=0, lq_error_rate=0.5)
