"""Captioner distillation: the task mix, the labels and the split."""

from __future__ import annotations

import pytest

from sail.caption import CAPTION_PROMPT
from sail.caption.distill import Annotation, distillation_collate, distillation_rows, task_conversation
from sail.caption.pipeline import split_annotations
from sail.caption.teachers import RECAPTION_PROMPT
from sail.world import render


def _annotations(records, n=None):
    return [
        Annotation(r["id"], (lambda r=r: render(r)), f"alt text {i}", f"a caption of image {i}")
        for i, r in enumerate(records[:n])
    ]


def test_the_recaption_share_is_respected_and_every_annotation_appears_once(records):
    many = [Annotation(f"id-{i}", lambda: None, "alt", "caption") for i in range(2000)]
    rows = distillation_rows(many, recaption_fraction=0.2, seed=0)
    assert [a.id for a, _ in rows] == [a.id for a in many]
    assert 0.18 < sum(task == "recaption" for _, task in rows) / len(rows) < 0.22
    assert {task for _, task in distillation_rows(many, recaption_fraction=0.0, seed=0)} == {"caption"}
    assert {task for _, task in distillation_rows(many, recaption_fraction=1.0, seed=0)} == {"recaption"}
    with pytest.raises(ValueError, match=r"recaption_fraction must be in \[0, 1\], got 1.5"):
        distillation_rows(many, recaption_fraction=1.5, seed=0)


def test_each_task_asks_its_own_prompt():
    caption = task_conversation("caption", "red things", "A red circle.")
    recaption = task_conversation("recaption", 'say "red"', "A red circle.")
    assert caption[0]["content"][-1]["text"] == CAPTION_PROMPT
    assert recaption[0]["content"][-1]["text"] == RECAPTION_PROMPT.format(alt_text="say 'red'")
    with pytest.raises(ValueError, match="unknown captioner task 'summary'"):
        task_conversation("summary", "", "")


def test_labels_cover_the_caption_and_its_end_token_only(records, processor):
    annotations = _annotations(records, 4)
    rows = [(a, task) for a, task in zip(annotations, ["caption", "recaption", "caption", "recaption"])]
    batch = distillation_collate(processor)(rows)
    tokenizer = processor.tokenizer
    for row, (annotation, _) in enumerate(rows):
        labelled = batch["labels"][row][batch["labels"][row] != -100].tolist()
        assert tokenizer.decode(labelled) == annotation.caption + "<|im_end|>"
        assert "alt text" not in tokenizer.decode(labelled)


def test_train_and_validation_never_share_an_image(records):
    annotations = _annotations(records)
    train, validation = split_annotations(annotations, 0.25, seed=3)
    assert len(validation) == 16 and len(train) == 48
    assert not {a.id for a in train} & {a.id for a in validation}
    assert sorted(a.id for a in train + validation) == sorted(a.id for a in annotations)
    assert split_annotations(annotations, 0.0, seed=3)[1] == []
