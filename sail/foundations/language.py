"""The tiny language foundation: a Qwen2 LM pretrained on world text.

A real Qwen2.5 reads whatever context precedes a question; a 1M-parameter LM learns that only if
its pretraining asks for it. So most pretraining sequences are "context -> text": the image slot
of the chat layout holds the scene's attribute words (`<img>top left big red circle ; ...</img>`)
and the answer is the teacher caption. Later, the projector only has to map image features onto
something the LM already reads. The rest are plain captions of every source, so the LM also knows
the world's language unconditioned.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase, Qwen2ForCausalLM

from sail.caption import CAPTION_PROMPT
from sail.model import Geometry, conversation, text_config
from sail.model.chat import encode_texts
from sail.model.tokenizer import IMAGE_CONTEXT, IMAGE_END, IMAGE_START, TURN_END, TURN_START
from sail.world import CAPTION_SOURCES, teacher_caption



def context_words(record: dict, rng: random.Random) -> str:
    """What an image shows, as words, in shuffled item order (the LM must bind by content, not order)."""
    groups = [f"{o['cell']} {o['size']} {o['colour']} {o['shape']}" for o in record["objects"]]
    groups += [f"{t['cell']} text {t['text']}" for t in record["texts"]]
    card = record.get("card")
    if card:
        groups.append(f"title {card['title']}")
        facts = card.get("table") or list(zip(card["chart"]["labels"], card["chart"]["values"]))
        groups += [f"{label} {value}" for label, value in facts]
    rng.shuffle(groups)
    return " ; ".join(groups)


def read_context_text(tokenizer: PreTrainedTokenizerBase, record: dict, caption: str, rng: random.Random) -> str:
    """The chat layout with the image slot filled by context words instead of image tokens."""
    text = tokenizer.apply_chat_template(conversation(CAPTION_PROMPT, caption), tokenize=False)
    return text.replace(IMAGE_CONTEXT, f"{IMAGE_START}{context_words(record, rng)}{IMAGE_END}", 1)


def plain_text(caption: str) -> str:
    """A caption as a bare assistant turn: language modelling without any context."""
    return f"{TURN_START}assistant\n{caption}{TURN_END}\n"


def lm_examples(records: Sequence[dict], tokenizer: PreTrainedTokenizerBase, *, read_context_fraction: float,
                seed: int) -> list[tuple[str, str]]:
    """(sequence, answer) pairs: the answer is where the loss goes."""
    rng = random.Random(seed)
    sources = list(CAPTION_SOURCES.values())
    examples = []
    for record in records:
        if rng.random() < read_context_fraction:
            caption = teacher_caption(record, rng)
            examples.append((read_context_text(tokenizer, record, caption, rng), caption))
        else:
            caption = rng.choice(sources)(record, rng)
            examples.append((plain_text(caption), caption))
    return examples


def world_text(records: Sequence[dict], seed: int) -> list[str]:
    """Text to train the tokenizer on: every caption source, the prompts and the context words."""
    rng = random.Random(seed)
    texts = [f"user assistant {CAPTION_PROMPT}"]
    for record in records:
        texts += [source(record, rng) for source in CAPTION_SOURCES.values()]
        texts.append(context_words(record, rng))
    return texts


def build_language_model(geometry: Geometry, tokenizer: PreTrainedTokenizerBase) -> Qwen2ForCausalLM:
    return Qwen2ForCausalLM(text_config(geometry, tokenizer))


def lm_collate(tokenizer: PreTrainedTokenizerBase):
    def collate(rows: list[tuple[str, str]]) -> dict:
        return encode_texts(tokenizer, [text for text, _ in rows], [[answer] for _, answer in rows])

    return collate


@torch.no_grad()
def language_report(model: Qwen2ForCausalLM, tokenizer: PreTrainedTokenizerBase, records: Sequence[dict],
                    seed: int = 0) -> dict[str, float]:
    """Held-out loss per answer token: teacher captions with context (conditional), and each
    caption source without it (plain)."""
    rng = random.Random(seed)
    captions = [teacher_caption(r, rng) for r in records]
    suites = {"conditional_teacher": [(read_context_text(tokenizer, r, c, rng), c) for r, c in zip(records, captions)]}
    for name, source in CAPTION_SOURCES.items():
        suites[f"plain_{name}"] = [(plain_text(c), c) for c in
                                   (captions if name == "teacher" else [source(r, rng) for r in records])]
    collate = lm_collate(tokenizer)
    model.eval()
    report = {}
    for name, examples in suites.items():
        total, count = 0.0, 0
        for start in range(0, len(examples), 64):
            batch = collate(examples[start : start + 64])
            batch.pop("num_tokens")
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(model(**batch).loss) * n
            count += n
        report[f"{name}_loss"] = total / count
    return report
