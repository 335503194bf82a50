"""Pretraining sources written from the curated pool, in InternVL's conversation jsonl.

Every caption source describes the same pool images, so an ablation row differs in its captions
only: SAIL-Caption-mini (notebook 03's distilled captions), the teacher (exact, detailed), the
weak captioner (shapes and counts), the alt-text, and `wrong-facts` (the teacher's detailed form
about a different image: format without facts). OCR sources read every pool image that shows
text: `ocr-hq` exactly, `ocr-lq` with misread answers. `qa` asks short open questions about
each scene image (colour, shape, existence, counting; cards have none): a small SFT set, to see
whether what pretraining ranked survives fine-tuning.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import datasets
import torch
from transformers import ProcessorMixin

from sail.caption import CAPTION_PROMPT
from sail.data.mixture import IMAGE_PLACEHOLDER, Sample, conversation_row, write_source
from sail.data.pipeline import read_curated
from sail.model import encode_conversations
from sail.train import pack_batch
from sail.world import general_questions, render
from sail.world.captions import alt_text, teacher_caption, weak_caption, wrong_caption
from sail.world.dataset import caption_rng
from sail.world.ocr import low_quality, ocr_pairs

CAPTION_SOURCE_NAMES = ("sail-caption-mini", "teacher", "weak", "alt-text", "wrong-facts")
OCR_SOURCE_NAMES = ("ocr-hq", "ocr-lq")
WRITERS = {"teacher": teacher_caption, "weak": weak_caption, "alt-text": alt_text, "wrong-facts": wrong_caption}


def write_world_sources(
    pool_dir: str | os.PathLike,
    captions_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    seed: int,
    lq_error_rate: float,
) -> dict[str, dict]:
    """Write every source as `<out_dir>/<name>.jsonl` over the pool's images; returns meta entries.

    The images are those SAIL-Caption-mini (`captions_dir`, a saved HF dataset) kept, in its order.
    """
    pool_dir, out_dir = Path(pool_dir), Path(out_dir)
    items = {item.id: item for item in read_curated(pool_dir)}
    captions = datasets.load_from_disk(str(captions_dir)).select_columns(["id", "caption"])
    ids = captions["id"]
    missing = [i for i in ids if i not in items or not isinstance(items[i].extra.get("record"), dict)]
    if missing:
        raise ValueError(f"{len(missing)} caption ids have no world record in {pool_dir}, e.g. {missing[:3]}")
    image = {i: os.path.relpath(items[i].path, pool_dir) for i in ids}
    record = {i: items[i].extra["record"] for i in ids}
    rows: dict[str, list[dict]] = {"sail-caption-mini": []}
    for row in captions:
        rows["sail-caption-mini"].append(
            conversation_row(row["id"], image[row["id"]], [(CAPTION_PROMPT, row["caption"])])
        )
    for name, write in WRITERS.items():
        rows[name] = [
            conversation_row(i, image[i], [(CAPTION_PROMPT, write(record[i], caption_rng(seed, i, name)))]) for i in ids
        ]
    rows["ocr-hq"], rows["ocr-lq"] = [], []
    for i in ids:
        if pairs := ocr_pairs(record[i]):
            rows["ocr-hq"].append(conversation_row(i, image[i], pairs))
            misread = low_quality(record[i], random.Random(f"{seed}/{i}/ocr-lq"), lq_error_rate)
            rows["ocr-lq"].append(conversation_row(i, image[i], misread))
    # cards have no open questions: an empty conversation would be refused when the mixture is read
    rows["qa"] = [conversation_row(i, image[i], turns) for i in ids if (turns := qa_turns(record[i], seed))]
    entries = {}
    for name, source_rows in rows.items():
        path = out_dir / f"{name}.jsonl"
        entries[name] = {"root": str(pool_dir), "annotation": str(path), "length": write_source(source_rows, path)}
    return entries


def open_questions(record: dict, seed: int) -> list[dict]:
    """The world's open-ended general questions about a record (VQA accuracy, short golds)."""
    return [q for q in general_questions(record, seed) if q["metric"] == "vqa_accuracy"]


def qa_turns(record: dict, seed: int, most: int = 3) -> list[tuple[str, str]]:
    """Up to `most` of a record's open questions as (question, answer) turns."""
    return [(q["question"], q["answer"][0]) for q in open_questions(record, seed)[:most]]


def sample_collate(processor: ProcessorMixin, pack_length: int | None = None):
    """Collate `Sample`s into a training batch, packed into rows of `pack_length` tokens if given."""
    tokenizer = processor.tokenizer
    image_token_id = tokenizer.convert_tokens_to_ids(processor.image_token)

    def collate(samples: list[Sample]) -> dict:
        images = [image for s in samples for image in s.images()]
        batch = encode_conversations(processor, images, [s.chat() for s in samples])
        if pack_length is None:
            return batch
        return pack_batch(batch, pack_length, tokenizer.pad_token_id, image_token_id)

    return collate


def padding_share(batch: dict) -> float:
    """The share of a collated batch's positions that hold no real token."""
    return 1 - batch["num_tokens"] / torch.as_tensor(batch["input_ids"]).numel()


def held_out_samples(records: list[dict], out_dir: str | os.PathLike, source: str) -> list[Sample]:
    """Test records' OCR conversations as `Sample`s, their images rendered into `out_dir`.

    Each sample's source is `<source>/<record kind>` (card or scene), so `rotate_images` swaps a
    card's image for another card's and a scene's for another scene's: the swapped image still
    fits the question's kind, only not its answer."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = []
    for record in records:
        path = out_dir / f"{record['id']}.png"
        render(record).save(path)
        turns = tuple(
            message for prompt, answer in ocr_pairs(record) for message in (("user", prompt), ("assistant", answer))
        )
        turns = (("user", f"{IMAGE_PLACEHOLDER}\n{turns[0][1]}"), *turns[1:])
        samples.append(Sample(record["id"], f"{source}/{record['kind']}", (str(path),), turns))
    return samples
