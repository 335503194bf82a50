"""OCR data from the world: what an image's text says, asked the way the tiny LM already reads.

Both pretraining stages keep the LLM frozen, so an OCR task can only teach the vision side to
*show* the text; the LM must already know how to answer. The tiny LM foundation was pretrained to
answer "What is at the <cell>?" with `the text "<word>"` and "List what you see." with a copy of
its context, so OCR samples use exactly those two forms: a scene's text read cell by cell, a
card transcribed as title and facts. A real LLM answers any OCR prompt; only the form is ours.

A low-quality variant stands in for the paper's low-quality OCR data (pseudo-labels of a weak
OCR model): each answer is wrong, with a given probability, in one word or number.
"""

from __future__ import annotations

import random

from sail.world.captions import card_facts
from sail.world.vocab import CARD_TITLES, WORDS

LOOKUP_QUESTION = "What is at the {cell}?"
LIST_PROMPT = "List what you see."


def card_transcription(card: dict) -> str:
    """A card's text in reading order: `title <title> ; <label> <value> ; ...`."""
    return " ; ".join([f"title {card['title']}"] + [f"{label} {value}" for label, value in card_facts(card)])


def text_answer(text: str) -> str:
    return f'the text "{text}"'


def ocr_pairs(record: dict) -> list[tuple[str, str]]:
    """(prompt, answer) pairs reading every text of a record: one per scene text, one per card."""
    if record["kind"] == "card":
        return [(LIST_PROMPT, card_transcription(record["card"]))]
    return [(LOOKUP_QUESTION.format(cell=t["cell"]), text_answer(t["text"])) for t in record["texts"]]


def _other_word(word: str, rng: random.Random) -> str:
    if word.isdigit():
        return str((int(word) + rng.randint(1, 9)) % 100)
    return rng.choice([w for w in WORDS if w != word])


def low_quality(record: dict, rng: random.Random, error_rate: float) -> list[tuple[str, str]]:
    """`ocr_pairs` with each answer, at `error_rate`, misread in one place (a word, a number, the title)."""
    if not 0 <= error_rate <= 1:
        raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
    pairs = []
    for (prompt, answer), source in zip(ocr_pairs(record), _answer_sources(record)):
        if rng.random() < error_rate:
            answer = _misread(source, rng)
        pairs.append((prompt, answer))
    return pairs


def _answer_sources(record: dict) -> list[dict]:
    return [record["card"]] if record["kind"] == "card" else [{"text": t["text"]} for t in record["texts"]]


def _misread(source: dict, rng: random.Random) -> str:
    if "text" in source:
        return text_answer(_other_word(source["text"], rng))
    facts = card_facts(source)
    where = rng.randrange(len(facts) + 1)
    if where == len(facts):  # the title
        title = rng.choice([t for t in CARD_TITLES if t != source["title"]])
        return card_transcription({**source, "title": title})
    label, value = facts[where]
    facts[where] = (label, int(_other_word(str(value), rng)))
    return card_transcription({"title": source["title"], "table": facts})
