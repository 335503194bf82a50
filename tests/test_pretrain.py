"""Pretraining in miniature (sail.pretrain): OCR scores, the log-linear fit, packed VLM batches,
and the world sources written from a curated pool."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import world_pool

from sail.caption import CAPTION_PROMPT
from sail.data.mixture import Sample, read_mixture, rotate_images, write_meta
from sail.pretrain import CAPTION_SOURCE_NAMES, OCR_SOURCE_NAMES, fit_log_linear, sample_collate, write_world_sources
from sail.pretrain.data import held_out_samples, qa_turns
from sail.pretrain.report import sweep_plot
from sail.pretrain.scores import blind_scores, next_record_golds, ocr_score, qa_scores, table2_scores
from sail.train import pack_batch
from sail.world import alt_text, render, sample_records, teacher_caption, weak_caption
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


# --- blind levels: the same answers scored without their images ---------------------------


def test_next_record_golds_takes_the_same_place_of_the_same_kind_on_the_next_record():
    keys = [("a", "scene"), ("a", "scene"), ("b", "card"), ("c", "scene")]
    # a's two scene questions get c's one (cycling); c gets a's first; b is the only card: its own
    assert next_record_golds(keys, ["a1", "a2", "b1", "c1"]) == ["c1", "c1", "b1", "a1"]


def _exact(answer: str, gold: str) -> float:
    return float(answer == gold)


def test_blind_scores_take_the_better_of_rotated_golds_and_the_best_constant():
    keys = [(f"r{i}", "colour") for i in range(4)]
    golds = ["red", "blue", "green", "blue"]
    # rotated golds blue, green, blue, red: no answer matches; "blue" for all scores 2 of 4, "red" 1
    assert blind_scores(["red", "red", "red", "blue"], golds, keys, _exact, {"colour": ["red", "blue"]}) == [
        0.0,
        1.0,
        0.0,
        1.0,
    ]
    # answers that happen to match the next image's gold: rotation scores 3 of 4, above any constant
    assert blind_scores(["blue", "green", "blue", "yellow"], golds, keys, _exact, {"colour": ["blue"]}) == [
        1.0,
        1.0,
        1.0,
        0.0,
    ]


def _scene(record_id: str, colour: str, shape: str, text: str) -> dict:
    """A scene showing one object and one word (a world record with both replaced)."""
    template = sample_records("test", 1, seed=1)[0]
    shown = {**template["objects"][0], "colour": colour, "shape": shape}
    word = {"text": text, "cell": "top left", "bbox": [4, 4, 40, 12], "center": [22, 8], "font_size": 14}
    counts = {"shapes": {shape: 1}, "colours": {colour: 1}}
    return {**template, "id": record_id, "objects": [shown], "texts": [word], "relations": [], "counts": counts}


CAT, DOG = _scene("a", "red", "circle", "cat"), _scene("b", "blue", "square", "dog")


def test_table2_scores_put_a_model_that_looks_above_its_blind_level():
    found = table2_scores(
        ["A red circle.", "A blue square."], [CAT, DOG], ['the text "cat"', 'the text "dog"'], [CAT, DOG]
    )
    # Caption: own 100, blind 50 (one caption for both). OCR: own 100; rotated "cat" vs "dog" 0;
    # 'the text "cat"' for both reads one of two: blind 50
    assert found == {
        "Overall": 100.0,
        "Caption": 100.0,
        "OCR": 100.0,
        "Overall blind": 50.0,
        "Caption blind": 50.0,
        "OCR blind": 50.0,
    }


def test_table2_scores_put_a_model_that_answers_the_same_everywhere_at_its_blind_level():
    found = table2_scores(["A red circle."] * 2, [CAT, DOG], ['the text "cat"'] * 2, [CAT, DOG])
    assert found == {
        "Overall": 50.0,
        "Caption": 50.0,
        "OCR": 50.0,
        "Overall blind": 50.0,
        "Caption blind": 50.0,
        "OCR blind": 50.0,
    }
    with pytest.raises(ValueError, match="1 OCR answers for 2 OCR questions"):
        table2_scores(["A red circle."] * 2, [CAT, DOG], ['the text "cat"'], [CAT, DOG])


def _open_question(category: str, answer: str) -> dict:
    return {"category": category, "answer": [answer] * 10}


def test_qa_scores_credit_a_blind_model_with_the_best_gold_answer_of_each_category():
    existence, colours = ["yes", "yes", "yes", "no"], ["red", "red", "blue", "green"]
    questions = [
        ({"id": f"r{i}"}, _open_question(category, answer))
        for i in range(4)
        for category, answer in (("existence", existence[i]), ("colour", colours[i]))
    ]
    answers = [answer for _ in range(4) for answer in ("no", "blue")]
    found = qa_scores(answers, questions)
    # own: one existence and one colour right of 8 (25). Blind: "yes" 3 of 4, "red" 2 of 4, both
    # gold answers the model never gave: 5 of 8 (62.5); rotated golds score 2 of 8 only
    assert found["VQA"] == 25.0 and found["VQA blind"] == 62.5
    assert found["VQA low"] < -37.5 < found["VQA high"]  # the interval is of own minus blind, per question
    assert found["VQA distinct answers"] == 2


def test_qa_scores_interval_of_a_model_that_answers_every_question_right():
    golds = ["yes", "yes", "no", "no"]
    questions = [({"id": f"r{i}"}, _open_question("existence", gold)) for i, gold in enumerate(golds)]
    found = qa_scores(["Yes", "yes", "no", "No."], questions)
    # blind: "yes" (or "no") for all, or each answer against the next image's gold: 2 of 4 either way
    assert (found["VQA"], found["VQA blind"], found["VQA distinct answers"]) == (100.0, 50.0, 2)
    assert 0 <= found["VQA low"] <= 50 <= found["VQA high"] <= 100
    constant = qa_scores(["yes"] * 4, questions)
    assert constant["VQA"] == constant["VQA blind"] == 50.0
    assert constant["VQA low"] < 0 < constant["VQA high"]


def test_held_out_samples_rotate_within_their_kind_of_image(tmp_path):
    records = [r for r in sample_records("test", 60, seed=1, card_fraction=0.3) if ocr_pairs(r)][:6]
    kinds = {r["id"]: r["kind"] for r in records}
    assert set(kinds.values()) == {"card", "scene"}
    samples = held_out_samples(records, tmp_path, "ocr-test")
    assert [s.source for s in samples] == [f"ocr-test/{r['kind']}" for r in records]
    for own, swapped in zip(samples, rotate_images(samples)):
        other = Path(swapped.image_path).stem
        assert other != own.id and kinds[other] == kinds[own.id] and swapped.messages == own.messages


def test_sweep_plot_draws_the_blind_level_and_says_its_axis_is_zoomed():
    sweep = pd.DataFrame(
        {
            "size": [256, 64, 128],
            "Overall": [3.0, 1.0, 2.0],
            "Caption": [4.0, 2.0, 3.0],
            "OCR": [2.0, 0.0, 1.0],
            "Overall blind": [2.5, 1.5, 2.0],
        }
    )
    fitted = pd.DataFrame({"a": 0.0, "b": 1.0, "r2": 1.0}, index=["Overall", "Caption", "OCR"])
    figure = sweep_plot(sweep, sweep.iloc[:0], fitted, "sweep")
    ax = figure.axes[0]
    blind = next(line for line in ax.get_lines() if line.get_label().startswith("Overall blind"))
    assert list(blind.get_xdata()) == [64, 128, 256] and list(blind.get_ydata()) == [1.5, 2.0, 2.5]
    assert blind.get_linestyle() == "--"
    assert "zoomed" in ax.get_ylabel() and "0–100" in ax.get_ylabel()


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


def test_run_points_side_by_side_give_the_rows_one_after_another_gives_in_job_order(tmp_path, tokenizer, geometry):
    """Runs trained in two processes of one thread each come back as the rows one thread gives
    here, in the order of the jobs, and a run's own `save_to` is kept."""
    from functools import partial

    from transformers import AutoModelForImageTextToText

    from sail.model import build_vlm, make_processor
    from sail.pretrain.experiment import Evaluation, Run, Seeded, run_points
    from sail.pretrain.scores import test_records

    torch.manual_seed(0)
    build_vlm(geometry, tokenizer).save_pretrained(tmp_path / "start")
    processor = make_processor(tokenizer, geometry.tile_size, geometry.image_seq_length)
    start = Seeded(partial(AutoModelForImageTextToText.from_pretrained, tmp_path / "start"))
    captions, ocr = test_records(2, 2, seed=0)
    evaluation = Evaluation(captions, ocr, held_out_samples(ocr, tmp_path / "test", "ocr-test"))
    shown = [r for r in sample_records("train", 64, seed=1, card_fraction=0.3) if ocr_pairs(r)]
    pool = held_out_samples(shown[:16], tmp_path / "pool", "pool")
    jobs = [  # submitted longest first; "short" waits for a free process and ends last
        (Run("short", "alignment", "pool", 16, 1, seed=0), {}),
        (Run("long", "alignment", "pool", 16, 6, seed=1), {"save_to": tmp_path / "kept"}),
        (Run("middle", "alignment", "pool", 16, 3, seed=2), {}),
    ]
    common = dict(profile="tiny", pack_length=None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = run_points(jobs, start, {"pool": pool}, processor, evaluation, runs_dir=tmp_path / "here", **common)
    finally:
        torch.set_num_threads(threads)
    (tmp_path / "kept" / "config.json").unlink()
    apart = run_points(
        jobs, start, {"pool": pool}, processor, evaluation, workers=2, runs_dir=tmp_path / "apart", **common
    )
    assert [row["run"] for row in apart] == ["short", "long", "middle"]
    assert [row["steps"] for row in apart] == [1, 6, 3]
    measured = ("tokens", "Caption", "OCR", "OCR answer loss", "OCR answer loss swapped", "final loss")
    for one, other in zip(here, apart):
        assert {k: one[k] for k in measured} == {k: other[k] for k in measured}
    assert (tmp_path / "kept" / "config.json").is_file()


def test_the_oracle_fits_the_projector_alone_onto_each_image_token_s_slot_vector(tmp_path, tokenizer, geometry):
    from sail.model import build_vlm, make_processor
    from sail.pretrain.oracle import fit_oracle, slot_target_collate

    torch.manual_seed(0)
    vlm = build_vlm(geometry, tokenizer)
    processor = make_processor(tokenizer, geometry.tile_size, geometry.image_seq_length, max_tiles=6)
    scene = next(r for r in sample_records("train", 16, seed=0) if r["kind"] == "scene")
    card = sample_records("train", 1, seed=0, card_fraction=1.0)[0]
    batch = slot_target_collate(vlm, processor)([scene, card])
    hidden = vlm.config.text_config.hidden_size
    assert batch["pixel_values"].shape[0] == 1 + 3 and batch["targets"].shape == (64, hidden)
    table = vlm.get_input_embeddings().weight
    top_left = table[tokenizer.encode(" top left", add_special_tokens=False)].sum(0)  # a scene's first token: a place
    assert torch.allclose(batch["targets"][0], top_left)
    title = table[tokenizer.encode(" title", add_special_tokens=False)].sum(0)  # a card's first word, each tile
    assert all(torch.allclose(batch["targets"][16 + 16 * tile], title) for tile in range(3))
    with pytest.raises(ValueError, match="1 tiles of 16 image tokens, but the records' slots hold 48 words"):
        slot_target_collate(vlm, make_processor(tokenizer, geometry.tile_size, geometry.image_seq_length))([card])

    before = {name: value.clone() for name, value in vlm.state_dict().items()}
    records = sample_records("train", 48, seed=1)
    # a random LM's embeddings are small: the recipe's 1e-2 overshoots them at once
    spent = fit_oracle(vlm, processor, records, profile="tiny", steps=3, runs_dir=tmp_path, lr=1e-3)
    assert spent["steps"] == 3 and spent["final loss"] < spent["first loss"]
    moved = {name for name, value in vlm.state_dict().items() if not torch.equal(value, before[name])}
    assert moved and all(name.startswith("model.multi_modal_projector.") for name in moved)
