"""Captioner distillation: a VLM learns the teacher's detailed captions, in two tasks.

SAIL-Captioner is InternVL2-8B fine-tuned on GPT-4o captions of the reference subset, so that it
can caption the whole pool at a fraction of the teacher's cost. It learns two tasks: *caption*
(image -> detailed caption) and *recaption* (image + web alt-text -> detailed caption), the second
letting it use whatever the alt-text gets right (names, rendered text) without copying its errors.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from transformers import ProcessorMixin

from sail.caption import CAPTION_PROMPT
from sail.caption.teachers import RECAPTION_PROMPT
from sail.manifest import atomic_write_text
from sail.model import conversation, encode_conversations, generate_answers
from sail.train import pack_batch


@dataclass(frozen=True)
class Annotation:
    """One teacher-annotated image: the unit of the reference subset."""

    id: str
    image: Callable[[], Image.Image]
    alt_text: str
    caption: str


def task_conversation(task: str, alt_text: str, caption: str | None = None) -> list[dict]:
    if task == "caption":
        return conversation(CAPTION_PROMPT, caption)
    if task == "recaption":
        return conversation(RECAPTION_PROMPT.format(alt_text=alt_text.replace('"', "'")), caption)
    raise ValueError(f"unknown captioner task {task!r}: expected 'caption' or 'recaption'")


def distillation_rows(
    annotations: Sequence[Annotation], *, recaption_fraction: float, seed: int
) -> list[tuple[Annotation, str]]:
    """(annotation, task) pairs: every annotation once, a `recaption_fraction` share of them as recaption."""
    if not 0 <= recaption_fraction <= 1:
        raise ValueError(f"recaption_fraction must be in [0, 1], got {recaption_fraction}")
    rng = random.Random(seed)
    return [(a, "recaption" if rng.random() < recaption_fraction else "caption") for a in annotations]


def distillation_collate(processor: ProcessorMixin, pack_length: int | None = None):
    """Batches of (annotation, task) rows, packed into rows of `pack_length` tokens when given."""
    image_token_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)

    def collate(rows: list[tuple[Annotation, str]]) -> dict:
        batch = encode_conversations(
            processor,
            [a.image() for a, _ in rows],
            [task_conversation(task, a.alt_text, a.caption) for a, task in rows],
        )
        if pack_length is None:
            return batch
        return pack_batch(batch, pack_length, processor.tokenizer.pad_token_id, image_token_id)

    return collate


def caption_pool(
    model,
    processor: ProcessorMixin,
    annotations: Sequence[Annotation],
    task: str,
    *,
    max_new_tokens: int = 128,
    batch_size: int = 32,
) -> list[str]:
    """The captioner's captions for images, in caption or recaption mode."""
    return generate_answers(
        model,
        processor,
        [task_conversation(task, a.alt_text) for a in annotations],
        [[a.image()] for a in annotations],
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    )


# Columns of the card's quality table: the scorer's keys under the names the notebook's table uses.
CARD_COLUMNS = (
    ("pair_f1", "objects F1"),
    ("object_f1", "attributes F1"),
    ("position_f1", "positions F1"),
    ("relation_f1", "relations F1"),
    ("text_f1", "text F1"),
    ("hallucination_rate", "hallucination rate"),
)


def write_model_card(directory: str | Path, *, name: str, base: str, training: dict, quality: dict) -> Path:
    """A Hugging Face model card (YAML front matter + sections), every number from the run.

    `quality` maps each caption source to its scores (`sail.caption.quality.caption_quality` rows,
    `n` = the number of held-out images).
    """
    images = {int(scores["n"]) for scores in quality.values() if "n" in scores}
    on = f"{images.pop()} held-out images" if len(images) == 1 else "held-out images"
    header = "| source | " + " | ".join(label for _, label in CARD_COLUMNS) + " |"
    rows = "\n".join(
        f"| {source} | " + " | ".join(f"{scores[key]:.3f}" for key, _ in CARD_COLUMNS) + " |"
        for source, scores in quality.items()
    )
    text = (
        f"""---
library_name: transformers
pipeline_tag: image-text-to-text
tags: [sail, captioner, internvl]
base_model: {base}
---

# {name}

A captioner distilled from teacher captions of a reference subset, as SAIL-Captioner is distilled
from GPT-4o captions. Two tasks: `caption` ("{CAPTION_PROMPT}") and `recaption`
('{RECAPTION_PROMPT}').

## Training

| setting | value |
|---|---|
"""
        + "\n".join(f"| {k} | {v} |" for k, v in training.items())
        + f"""

## Caption quality against the ground-truth records ({on})

{header}
|---|{"---|" * len(CARD_COLUMNS)}
{rows}

Exact matches against each image's record, micro-averaged: objects = colour-shape pairs,
attributes = size-colour-shape triples, positions = object + grid cell, relations = spatial
relations between two objects, text = quoted texts and card facts. The hallucination rate is the
share of mentioned colour-shape pairs absent from the image (lower is better). The world teacher
names at most two relations per caption, so its relation recall, and relation F1, are below 1 by design.

## Use

```python
from transformers import AutoModelForImageTextToText, AutoProcessor
model = AutoModelForImageTextToText.from_pretrained("{Path(directory).name}")
processor = AutoProcessor.from_pretrained("{Path(directory).name}")
```
"""
    )
    path = Path(directory) / "README.md"
    atomic_write_text(path, text)
    return path


def model_card_preview(path: str | Path) -> str:
    """A model card as a notebook shows it: the YAML front matter in a code block, the body's
    headings demoted two levels so they sit under the notebook's own."""
    text = Path(path).read_text()
    front, body = ("", text)
    if text.startswith("---\n"):
        end = text.index("\n---\n", 4)
        front, body = text[4:end], text[end + 5 :]
    body = re.sub(r"^(#+) ", lambda m: "#" * min(len(m[1]) + 2, 6) + " ", body, flags=re.MULTILINE)
    return (f"```yaml\n{front}\n```\n" if front else "") + body
