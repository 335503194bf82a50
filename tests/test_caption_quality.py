"""Caption quality: record-based scores per source, the plot, the human-evaluation sheet, the judge."""

from __future__ import annotations

import json
import math
import random

import matplotlib
import pandas as pd
import pytest

from sail.caption.quality import (
    HEADLINE,
    RUBRIC_COLUMNS,
    blind_pair_f1,
    caption_quality,
    headline_table,
    human_eval_sheet,
    judge,
    judge_summary,
    parse_judgement,
    quality_plot,
    read_human_eval,
)
from sail.caption.teachers import WorldTeacher, world_items
from sail.world import alt_text, render, sample_records, score_captions, weak_caption

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def sources(records):
    rng = random.Random(0)
    return {
        "teacher": WorldTeacher().caption(world_items(records)),
        "alt_text": [alt_text(r, rng) for r in records],
        "weak": [weak_caption(r, rng) for r in records],
    }


def test_quality_table_is_the_record_scorer_per_source(sources, records):
    quality = caption_quality(sources, records)
    assert list(quality.index) == ["teacher", "alt_text", "weak"]
    for source, captions in sources.items():
        expected = score_captions(captions, records)
        assert quality.loc[source, "pair_f1"] == expected["pair_f1"]
        assert quality.loc[source, "hallucination_rate"] == expected["hallucination_rate"]
    assert (quality["n"] == len(records)).all()
    headline = headline_table(quality)
    assert list(headline.columns) == [*HEADLINE, "hallucination_rate"]
    assert headline.loc["teacher", "objects"] == 1.0 and headline.loc["teacher", "text"] == 1.0
    assert headline.loc["teacher", "objects"] > headline.loc["alt_text", "objects"]
    assert headline.loc["alt_text", "hallucination_rate"] > 0 == headline.loc["teacher", "hallucination_rate"]
    with pytest.raises(ValueError, match="captions for"):
        caption_quality({"short": ["a red circle"]}, records)


def test_quality_plot_draws_one_bar_per_source_and_element(sources, records):
    ax = quality_plot(caption_quality(sources, records))
    assert len(ax.containers) == 3 and all(len(bars) == len(HEADLINE) + 1 for bars in ax.containers)
    assert {t.get_text() for t in ax.get_xticklabels()} == {*HEADLINE, "hallucination rate"}


def test_human_eval_sheet_round_trip(sources, records, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    ids = [r["id"] for r in records[:3]]
    for record in records[:3]:
        render(record).save(images / f"{record['id']}.png")
    subset = {name: captions[:3] for name, captions in sources.items()}
    sheet_path = tmp_path / "eval.csv"
    sheet = human_eval_sheet(sheet_path, images, ids, subset)
    read = pd.read_csv(sheet_path, keep_default_na=False)
    assert list(read.columns) == ["item", "image_path", "source", "caption", *RUBRIC_COLUMNS]
    assert len(read) == 9 and (read[list(RUBRIC_COLUMNS)] == "").all().all()
    assert read.loc[read["source"] == "weak", "caption"].tolist() == subset["weak"]
    assert all(p.endswith(".png") for p in read["image_path"]) and len(sheet) == 9

    # A rater fills it in; the summary reads it back per source.
    read["accuracy_1to5"] = [5 if s == "teacher" else 2 for s in read["source"]]
    read["detail_1to5"] = [4 if s == "teacher" else 1 for s in read["source"]]
    read["hallucination_yes_no"] = ["no" if s == "teacher" else "Yes" for s in read["source"]]
    read.to_csv(sheet_path, index=False)
    summary = read_human_eval(sheet_path)
    assert summary.loc["teacher", "accuracy"] == 5 and summary.loc["weak", "hallucination_rate"] == 1.0
    read.loc[0, "detail_1to5"] = 9
    read.to_csv(sheet_path, index=False)
    with pytest.raises(ValueError, match="outside 1-5"):
        read_human_eval(sheet_path)
    with pytest.raises(FileNotFoundError):
        human_eval_sheet(tmp_path / "x.csv", images, ["missing-id"], {"a": ["caption"]})


def test_blind_sheet_hides_sources_behind_a_key(sources, records, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    ids = [r["id"] for r in records[:2]]
    for record in records[:2]:
        render(record).convert("RGB").save(images / f"{record['id']}.jpg")
    path = tmp_path / "blind.csv"
    sheet = human_eval_sheet(path, images, ids, {k: v[:2] for k, v in sources.items()}, blind=True)
    assert set(sheet["source"]) == {"S1", "S2", "S3"}
    assert json.loads((tmp_path / "blind.key.json").read_text()) == {"S1": "teacher", "S2": "alt_text", "S3": "weak"}
    sheet["accuracy_1to5"], sheet["detail_1to5"], sheet["hallucination_yes_no"] = 3, 3, "no"
    sheet.to_csv(path, index=False)
    assert set(read_human_eval(path).index) == {"teacher", "alt_text", "weak"}


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("accuracy: 4\ndetail: 3\nhallucination: no", (4, 3, False)),
        ("**Accuracy**: 5/5\n**Detail** - 2 out of 5\n**Hallucination**: Yes.", (5, 2, True)),
        ('{"accuracy": 3, "detail": 4, "hallucination": "no"}', (3, 4, False)),
        ("Accuracy (1-5): 4\nDetail (1-5): 2\nHallucination (yes/no): no", (4, 2, False)),
        ("Accuracy score is 10/10, detail rating of 1/10; hallucinations: none", (5, 1, False)),
        ("accuracy: high, detail: 3", (None, 3, None)),
        ("accuracy: 7\ndetail: 0", (None, None, None)),
        ("I cannot rate this image.", (None, None, None)),
    ],
)
def test_judge_replies_are_parsed_robustly(reply, expected):
    parsed = parse_judgement(reply)
    for key, want in zip(("accuracy", "detail"), expected[:2]):
        assert math.isnan(parsed[key]) if want is None else parsed[key] == want
    assert parsed["hallucination"] is expected[2]


class FakeJudge:
    """A chat teacher that rates by a rule we can check (detailed sentences good, bare shapes bad)."""

    def __init__(self):
        self.prompts = []

    def ask(self, prompt, image=None):
        assert image is not None and image.size[0] > 0
        self.prompts.append(prompt)
        caption = prompt.split('Caption: "', 1)[1].split('"\n', 1)[0]
        if "garbled" in caption:
            return "Sorry, I cannot help with that."
        good = len(caption.split()) > 5
        return (
            f"**Accuracy**: {5 if good else 2}/5\nDetail: {4 if good else 1}\nHallucination: {'no' if good else 'yes'}"
        )


def test_judge_asks_once_per_caption_and_summarises(sources, records):
    items = world_items(records[:4])
    captions = {"teacher": sources["teacher"][:4], "weak": ["a star"] * 3 + ["garbled"]}
    fake = FakeJudge()
    judgements = judge(fake, items, captions)
    assert len(fake.prompts) == 8 and len(judgements) == 8
    assert "accuracy: <1-5>" in fake.prompts[0]
    summary = judge_summary(judgements)
    assert summary.loc["teacher", "accuracy"] == 5 and summary.loc["teacher", "hallucination_rate"] == 0
    assert summary.loc["weak", "accuracy"] == 2 and summary.loc["weak", "unparsed"] == 1
    assert judgements.loc[judgements["raw"].str.startswith("Sorry"), "hallucination"].tolist() == [None]


def _one_object(record_id: str, colour: str, shape: str) -> dict:
    """A scene showing one object and no text (a world record with its object replaced)."""
    template = sample_records("test", 1, seed=1)[0]
    shown = {**template["objects"][0], "colour": colour, "shape": shape}
    counts = {"shapes": {shape: 1}, "colours": {colour: 1}}
    return {**template, "id": record_id, "objects": [shown], "texts": [], "relations": [], "counts": counts}


RED_CIRCLE, BLUE_SQUARE = _one_object("a", "red", "circle"), _one_object("b", "blue", "square")


def test_a_captioner_that_describes_each_image_scores_above_its_blind_level():
    # own: both pairs right. Rotated: "red circle" against the blue square and back, no pair right.
    # Best constant: "A red circle." for both: 1 hit, 1 false, 1 missed: precision 1/2, recall 1/2.
    found = blind_pair_f1(["A red circle.", "A blue square."], [RED_CIRCLE, BLUE_SQUARE])
    assert found == {"own": 1.0, "rotated records": 0.0, "best constant caption": 0.5, "blind": 0.5}


def test_a_captioner_that_writes_one_caption_for_every_image_scores_its_own_level_blind():
    found = blind_pair_f1(["A red circle."] * 2, [RED_CIRCLE, BLUE_SQUARE])
    assert found == {"own": 0.5, "rotated records": 0.5, "best constant caption": 0.5, "blind": 0.5}


def test_the_constant_caption_is_chosen_among_the_commonest_only():
    captions = ["A blue square.", "A red circle.", "A red circle."]
    records = [RED_CIRCLE, BLUE_SQUARE, RED_CIRCLE]
    # "A red circle." for all three: 2 hits of 3 mentions and 3 pairs, F1 2/3; "A blue square.": 1/3
    assert blind_pair_f1(captions, records)["best constant caption"] == pytest.approx(2 / 3)
    assert blind_pair_f1(captions, records, candidates=1)["best constant caption"] == pytest.approx(2 / 3)
    assert blind_pair_f1(captions[:1] * 2 + captions[1:2], records, candidates=1)[
        "best constant caption"
    ] == pytest.approx(1 / 3)
