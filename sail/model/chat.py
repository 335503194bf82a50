"""Conversations -> model inputs, with labels on assistant tokens only.

Label masking is where silent training bugs hide: a template that renders the assistant turn
differently from what the tokenizer sees leaves every label masked and the loss at zero. Here every
assistant span is located in the token ids and decoded back; anything that does not match the
conversation raises `TemplateMismatchError` instead of training on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from PIL import Image
from transformers import PreTrainedTokenizerBase, ProcessorMixin

from sail.model.tokenizer import TURN_END, TURN_START

IGNORE_INDEX = -100


class TemplateMismatchError(ValueError):
    """The rendered template and the conversation disagree; training on it would be wrong."""


def conversation(prompt: str, answer: str | None = None, *, image: bool = True) -> list[dict]:
    """A single-turn conversation; without `answer` it is a generation prompt."""
    user = ([{"type": "image"}] if image else []) + [{"type": "text", "text": prompt}]
    messages = [{"role": "user", "content": user}]
    if answer is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages


def assistant_texts(messages: Sequence[dict]) -> list[str]:
    texts = []
    for message in messages:
        if message["role"] == "assistant":
            content = message["content"]
            texts.append(
                content if isinstance(content, str) else "".join(i["text"] for i in content if i["type"] == "text")
            )
    return texts


def assistant_labels(
    input_ids: Sequence[int], tokenizer: PreTrainedTokenizerBase, expected: Sequence[str]
) -> list[int]:
    """Labels that keep each assistant answer and its `<|im_end|>`; everything else is IGNORE_INDEX.

    Raises TemplateMismatchError when the spans found are not exactly the expected answers
    (wrong template, truncation, a tokenizer that merges across the turn boundary).
    """
    ids = list(input_ids)
    header = tokenizer.encode(f"{TURN_START}assistant\n", add_special_tokens=False)
    turn_end = tokenizer.convert_tokens_to_ids(TURN_END)
    labels = [IGNORE_INDEX] * len(ids)
    found = []
    position = 0
    while True:
        start = _find(ids, header, position)
        if start < 0:
            break
        content_start = start + len(header)
        try:
            end = ids.index(turn_end, content_start)
        except ValueError:
            raise TemplateMismatchError("an assistant turn has no <|im_end|>: the sequence was truncated") from None
        found.append(tokenizer.decode(ids[content_start:end]))
        labels[content_start : end + 1] = ids[content_start : end + 1]
        position = end + 1
    if found != list(expected):
        raise TemplateMismatchError(
            f"assistant turns in the tokens {found!r} differ from the conversation's {list(expected)!r}"
        )
    if all(label == IGNORE_INDEX for label in labels):
        raise TemplateMismatchError("every label is masked: there is nothing to train on")
    return labels


def _find(sequence: list[int], pattern: list[int], start: int) -> int:
    for i in range(start, len(sequence) - len(pattern) + 1):
        if sequence[i : i + len(pattern)] == pattern:
            return i
    return -1


def encode_conversations(
    processor: ProcessorMixin,
    images: Sequence[Image.Image],
    conversations: Sequence[list[dict]],
    max_length: int | None = None,
) -> dict[str, torch.Tensor]:
    """A padded training batch: input_ids, attention_mask, pixel_values, labels, num_tokens."""
    texts = [processor.apply_chat_template(messages, tokenize=False) for messages in conversations]
    tokenizer = processor.tokenizer
    batch = processor(images=list(images) or None, text=texts, padding=True, padding_side="right", return_tensors="pt")
    if max_length is not None and batch["input_ids"].shape[1] > max_length:
        raise TemplateMismatchError(
            f"a sequence of {batch['input_ids'].shape[1]} tokens exceeds max_length {max_length}"
        )
    labels = mask_batch(
        batch["input_ids"], batch["attention_mask"], tokenizer, [assistant_texts(m) for m in conversations]
    )
    return {**batch, "labels": labels, "num_tokens": int(batch["attention_mask"].sum())}


def encode_texts(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], answers: Sequence[Sequence[str]]
) -> dict[str, torch.Tensor]:
    """A padded text-only batch (already rendered ChatML) with labels on the given answers."""
    batch = tokenizer(list(texts), padding=True, padding_side="right", add_special_tokens=False, return_tensors="pt")
    labels = mask_batch(batch["input_ids"], batch["attention_mask"], tokenizer, answers)
    return {**batch, "labels": labels, "num_tokens": int(batch["attention_mask"].sum())}


def mask_batch(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    tokenizer: PreTrainedTokenizerBase,
    answers: Sequence[Sequence[str]],
) -> torch.Tensor:
    """Labels for a right-padded batch: each row's assistant answers, all else IGNORE_INDEX."""
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    for row, expected in enumerate(answers):
        length = int(attention_mask[row].sum())
        labels[row, :length] = torch.tensor(assistant_labels(input_ids[row, :length].tolist(), tokenizer, expected))
    return labels


class Generation(NamedTuple):
    """One generated answer, and whether it stopped at `max_new_tokens` instead of its end token."""

    text: str
    hit_limit: bool


@torch.no_grad()
def generate_answers(
    model,
    processor: ProcessorMixin,
    conversations: Sequence[list[dict]],
    images: Sequence[Sequence[Image.Image]],
    *,
    max_new_tokens: int = 48,
    batch_size: int = 32,
) -> list[str]:
    """Greedy answers to many conversations (each ending with a user turn, its images given in
    order), batched with left padding so every prompt ends where generation starts."""
    found = generations(model, processor, conversations, images, max_new_tokens=max_new_tokens, batch_size=batch_size)
    return [answer.text for answer in found]


@torch.no_grad()
def generations(
    model,
    processor: ProcessorMixin,
    conversations: Sequence[list[dict]],
    images: Sequence[Sequence[Image.Image]],
    *,
    max_new_tokens: int = 48,
    batch_size: int = 32,
) -> list[Generation]:
    """`generate_answers`, saying of each answer whether it was cut at `max_new_tokens`."""
    tokenizer = processor.tokenizer
    was_training = model.training
    model.eval()
    answers = []
    try:
        for start in range(0, len(conversations), batch_size):
            chunk = conversations[start : start + batch_size]
            texts = [processor.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in chunk]
            pictures = [image for group in images[start : start + batch_size] for image in group]
            inputs = processor(
                images=pictures or None, text=texts, padding=True, padding_side="left", return_tensors="pt"
            ).to(model.device)
            if "pixel_values" in inputs:
                inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
            output = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
            new_tokens = output[:, inputs["input_ids"].shape[1] :]
            ended = (new_tokens == tokenizer.eos_token_id).any(dim=1).tolist()
            texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            answers.extend(Generation(text.strip(), not done) for text, done in zip(texts, ended))
    finally:
        model.train(was_training)
    return answers


def generate(
    model,
    processor: ProcessorMixin,
    images: Sequence[Image.Image],
    prompt: str,
    *,
    max_new_tokens: int = 48,
    batch_size: int = 32,
) -> list[str]:
    """Greedy answers to one prompt over many images."""
    return generate_answers(
        model,
        processor,
        [conversation(prompt)] * len(images),
        [[image] for image in images],
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    )
