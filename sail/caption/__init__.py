"""Captioning: training examples from the world, and captions scored against the records."""

from __future__ import annotations

import random
from collections.abc import Sequence

from transformers import ProcessorMixin

from sail.model import conversation, encode_conversations, generate
from sail.model.build import MODULES
from sail.world import CAPTION_SOURCES, render, score_captions

CAPTION_PROMPT = "Describe the image in detail."


def captioner_trainable(train_vision: bool) -> tuple[str, ...]:
    """What captioner training updates: the projector and the language model, plus the vision
    tower only when asked. A freshly initialised projector sends large, noisy gradients back
    through the vision tower in the first steps and blurs features the ViT already had; the tiny
    foundation ViT already tells every attribute apart, so it is kept frozen there."""
    if train_vision:
        return ("",)
    return (MODULES["projector"], MODULES["language"], "lm_head")


def caption_examples(records: Sequence[dict], source: str = "teacher", seed: int = 0) -> list[tuple[dict, str]]:
    """(record, caption) pairs from one caption source; the image is rendered when batched."""
    rng = random.Random(seed)
    write = CAPTION_SOURCES[source]
    return [(record, write(record, rng)) for record in records]


def caption_collate(processor: ProcessorMixin, prompt: str = CAPTION_PROMPT):
    def collate(rows: list[tuple[dict, str]]) -> dict:
        return encode_conversations(processor, [render(r) for r, _ in rows], [conversation(prompt, c) for _, c in rows])

    return collate


def evaluate_captioner(
    model, processor: ProcessorMixin, records: Sequence[dict], *, prompt: str = CAPTION_PROMPT, max_new_tokens: int = 96
) -> tuple[list[str], dict[str, float]]:
    """Greedy captions for held-out records and their record-based scores (micro-averaged)."""
    captions = generate(model, processor, [render(r) for r in records], prompt, max_new_tokens=max_new_tokens)
    return captions, score_captions(captions, list(records))


__all__ = ["CAPTION_PROMPT", "caption_collate", "caption_examples", "captioner_trainable", "evaluate_captioner"]
