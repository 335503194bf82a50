"""Captioner distillation: a VLM learns the teacher's detailed captions, in two tasks.

SAIL-Captioner is InternVL2-8B fine-tuned on GPT-4o captions of the reference subset, so that it
can caption the whole pool at a fraction of the teacher's cost. It learns two tasks: *caption*
(image -> detailed caption) and *recaption* (image + web alt-text -> detailed caption), the second
letting it use whatever the alt-text gets right (names, rendered text) without copying its errors.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from transformers import ProcessorMixin

from sail.caption import CAPTION_PROMPT
from sail.caption.teachers import RECAPTION_PROMPT
from sail.model import conversation, encode_conversations, generate_answers



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


def distillation_rows(annotations: Sequence[Annotation], *, recaption_fraction: float, seed: int) -> list[tuple[Annotation, str]]:
    """(annotation, task) pairs: every annotation once, a `recaption_fraction` share of them as recaption."""
    if not 0 <= recaption_fraction <= 1:
        raise ValueError(f"recaption_fraction must be in [0, 1], got {recaption_fraction}")
    rng = random.Random(seed)
    return [(a, "recaption" if rng.random() < recaption_fraction else "caption") for a in annotations]


def distillation_collate(processor: ProcessorMixin):
    def collate(rows: list[tuple[Annotation, str]]) -> dict:
        return encode_conversations(processor, [a.image() for a, _ in rows],
                                    [task_conversation(task, a.alt_text, a.caption) for a, task in rows])

    return collate


def caption_pool(model, processor: ProcessorMixin, annotations: Sequence[Annotation], task: str, *,
                 max_new_tokens: int = 128, batch_size: int = 32) -> list[str]:
    """The captioner's captions for images, in caption or recaption mode."""
    return generate_answers(model, processor, [task_conversation(task, a.alt_text) for a in annotations],
                            [[a.image()] for a in annotations], max_new_tokens=max_new_tokens, batch_size=batch_size)


def write_model_card(directory: str | Path, *, name: str, base: str, training: dict, quality: dict) -> Path:
    """A Hugging Face model card (YAML front matter + sections), every number from the run."""
    rows = "\n".join(f"| {source} | " + " | ".join(f"{scores[m]:.3f}" for m in ("pair_f1", "object_f1", "position_f1",
                                                                                   "text_f1", "hallucination_rate")) + " |"
                     for source, scores in quality.items())
    text = f"""---
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
""" + "\n".join(f"| {k} | {v} |" for k, v in training.items()) + f"""

## Caption quality against the ground-truth records (held-out images)

| source | pair F1 | object F1 | position F1 | text F1 | hallucination rate |
|---|---|---|---|---|---|
{rows}

## Use

```python
from transformers import AutoModelForImageTextToText, AutoTokenizer, AutoImageProcessor
model = AutoModelForImageTextToText.from_pretrained("{Path(directory).name}")
```
"""
    path = Path(directory) / "README.md"
    path.write_text(text)
    return path
