"""The curriculum judge: each SFT sample's task difficulty, data complexity and image-text relevance, 1-5.

SAIL-VL orders its SFT stages by these three scores (Knowledge 1.90 / 2.44 / 3.94, Instruction
2.15 / 2.62 / 4.45, Preference 2.20 / 2.74 / 4.55) but does not publish who scored them or how.
Two judges share one interface, `judge.score(rows, root) -> list[Judgement]`, over rows of
InternVL's conversation jsonl, and each says who it is (`name`) and what it reads (`reads`), so
a results file can tell statistics computed from the generator's metadata from a model's reading:

- `RulesJudge`, for the world, reads what the generators know and what the text shows:
  difficulty is the questions' generator difficulty (1-3, mapped onto 1, 3, 5; a caption counts
  as 1); complexity grows with the answers' length and the number of turns
  (1 + log2(1 + mean answer words) / 2 + (turns - 1) / 2, at most 5); relevance is
  1 + 4 x the share of the image's facts (its colours, shapes, texts, card labels and values)
  that the conversation names, so a text-only sample scores 1 and a full description 5.
- `ChatJudge`, for real data, asks any OpenAI-compatible VLM (the teacher's client,
  `sail.caption.teachers.OpenAIChatTeacher`) the fixed `RUBRIC` about the sample and its first
  image. A reply that does not parse gives NaN and stays in `raw`, never an exception.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PIL import Image

from sail.caption.quality import score_after

CRITERIA = ("difficulty", "complexity", "relevance")
PAPER_STAGE_MEANS = {  # SAIL-VL's curriculum statistics, per stage
    "knowledge": {"difficulty": 1.90, "complexity": 2.44, "relevance": 3.94},
    "instruction": {"difficulty": 2.15, "complexity": 2.62, "relevance": 4.45},
    "preference": {"difficulty": 2.20, "complexity": 2.74, "relevance": 4.55},
}
RUBRIC = """Rate this training conversation about the image on three criteria, each 1 to 5.
difficulty: how hard the task is (1 = naming one visible thing, 5 = several steps of reasoning).
complexity: how rich the text is (1 = one-word answers, 5 = long, structured, multi-turn answers).
relevance: how much the text depends on the image (1 = not at all, 5 = every statement is about it).
Reply with exactly three lines: "difficulty: N", "complexity: N", "relevance: N".

Conversation:
{conversation}"""


@dataclass(frozen=True)
class Judgement:
    difficulty: float
    complexity: float
    relevance: float
    raw: str = ""


class Judge(Protocol):
    name: str
    reads: str
    reads_generator: bool  # scores the world generator's own metadata: what it finds, the generator put there

    def score(self, rows: Sequence[dict], root: str | Path) -> list[Judgement]: ...


def _turns(row: dict) -> list[tuple[str, str]]:
    return [(turn["from"], turn["value"]) for turn in row["conversations"]]


_WORD = re.compile(r"[A-Za-z0-9]+")


class RulesJudge:
    """Scores from generator metadata (`difficulty`, `facts` in each row) and text statistics."""

    name = "rules"
    reads_generator = True
    reads = "the world generator's metadata (question difficulty, the image's facts) and the answers' length and turns"

    def score(self, rows: Sequence[dict], root: str | Path = "") -> list[Judgement]:
        return [self.judge(row) for row in rows]

    @staticmethod
    def judge(row: dict) -> Judgement:
        levels = row.get("difficulty") or [1]
        difficulty = 1 + 2 * (sum(levels) / len(levels) - 1)
        answers = [text for speaker, text in _turns(row) if speaker == "gpt"]
        words = sum(len(_WORD.findall(a)) for a in answers) / len(answers)
        complexity = min(5.0, 1 + math.log2(1 + words) / 2 + (len(answers) - 1) / 2)
        facts = {fact.lower() for fact in row.get("facts", [])}
        said = {word.lower() for _, text in _turns(row) for word in _WORD.findall(text)}
        named = sum(1 for fact in facts if set(fact.split()) <= said)
        relevance = 1 + 4 * named / len(facts) if facts else 1.0
        return Judgement(difficulty, complexity, relevance)


def parse_scores(text: str) -> dict[str, float]:
    """The three scores of a reply (NaN where absent or outside 1-5)."""
    found = {name: score_after(name, text, CRITERIA) for name in CRITERIA}
    return {name: math.nan if value is None else value for name, value in found.items()}


class ChatJudge:
    """`RUBRIC` asked of a chat VLM (anything with `ask(prompt, image)`), once per sample."""

    reads = "the samples' text and first image"
    reads_generator = False

    def __init__(self, client, rubric: str = RUBRIC):
        self.client, self.rubric = client, rubric
        # the served model's name where the client has one (OpenAIChatTeacher), else its kind
        self.name = str(getattr(client, "model", type(client).__name__))

    def score(self, rows: Sequence[dict], root: str | Path) -> list[Judgement]:
        judgements = []
        for row in rows:
            conversation = "\n".join(f"{speaker}: {text}" for speaker, text in _turns(row))
            images = row.get("image") or []
            first = images if isinstance(images, str) else (images[0] if images else None)
            image = None
            if first is not None:
                with Image.open(Path(root) / first) as opened:
                    image = opened.convert("RGB")
            reply = self.client.ask(self.rubric.format(conversation=conversation), image)
            judgements.append(Judgement(**parse_scores(reply), raw=reply))
        return judgements
