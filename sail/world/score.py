"""Exact, record-based scoring of captions.

`parse_caption` extracts the elements a caption mentions; `score_caption` matches them
against the elements a record shows, as multisets:

- pair: (colour, shape) of every object noun phrase ("red circle", "a big red circle");
- object: (size, colour, shape) where a size word is given (big = large, little = small);
- position: (colour, shape, cell) where a cell phrase ("top left", "upper-left", ...) is in the
  same clause (clauses end at . ; : ! ? , "and", "while"); the nearest cell phrase wins;
- text: quoted strings and card facts "label: value" (lowercased; a card's title is a text);
- relation: (colour, shape, relation, colour, shape), canonical "left of" / "above"
  ("right of", "below", "under", ... are flipped); noun phrases inside a relation count only
  as a relation, not as pair mentions;
- shape: the *set* of shape words mentioned, singular or plural;
- count: "<two..six or 2..6> <plural shape>" claims, matched against shapes present >= 2 times.

Conventions: precision = matched / mentioned, recall = matched / gold, F1 = 2 matched /
(mentioned + gold).  A zero denominator gives 1.0 when mentioned and gold are *both* empty
(nothing to say, nothing said) and 0.0 otherwise.  "hallucination_rate" is the fraction of
mentioned pairs whose (colour, shape) does not occur in the record at all (0.0 when no pair is
mentioned).  `score_captions` micro-averages: it sums matches, mentions and gold over the
corpus before dividing.  Teacher captions name at most two relations, so their relation
recall is below 1 by design; relation precision is the meaningful number there.
"""

import re
from collections import Counter

from sail.world.vocab import COLOURS, SHAPES

ELEMENT_TYPES = ("pair", "object", "position", "text", "relation", "shape", "count")
SIZE_WORDS = {"small": "small", "little": "small", "large": "large", "big": "large"}
RELATION_WORDS = {
    "to the left of": "left of",
    "left of": "left of",
    "to the right of": "right of",
    "right of": "right of",
    "above": "above",
    "over": "above",
    "below": "below",
    "under": "below",
    "beneath": "below",
}
COUNT_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6}

_SIZE = "|".join(SIZE_WORDS)
_COLOUR = "|".join(COLOURS)
_SHAPE = "|".join(SHAPES)
_RELATION = "|".join(RELATION_WORDS)
_RELATION_NP = rf"(?:(?:the|a|an)\s+)?(?:(?:{_SIZE})\s+)?({_COLOUR})\s+({_SHAPE})"

NOUN_PHRASE = re.compile(rf"\b(?:({_SIZE})\s+)?({_COLOUR})\s+({_SHAPE})s?\b")
RELATION = re.compile(
    rf"\b{_RELATION_NP}\s+(?:(?:is|sits|lies|appears|stands)\s+)?"
    rf"(?:(?:directly|just)\s+)?({_RELATION})\s+{_RELATION_NP}\b"
)
CELL = re.compile(r"\b(top|upper|bottom|lower)[\s-]+(left|right)\b")
QUOTED = re.compile(r'"([^"\n]{1,60})"')
FACT = re.compile(r"\b([a-z]+):\s*(\d{1,6})\b")
COUNT = re.compile(rf"\b(two|three|four|five|six|[2-6])\s+({_SHAPE})s\b")
SHAPE_WORD = re.compile(rf"\b({_SHAPE})s?\b")
CLAUSE_BREAK = re.compile(r"[.;:!?,\n]|\band\b|\bwhile\b")


def _normalise_text(text: str) -> str:
    return " ".join(text.lower().split())


def _canonical_relation(c1: str, s1: str, relation: str, c2: str, s2: str) -> tuple[str, ...]:
    if relation == "right of":
        return c2, s2, "left of", c1, s1
    if relation == "below":
        return c2, s2, "above", c1, s1
    return c1, s1, relation, c2, s2


def _placed(clause: str) -> list[tuple[tuple[str, str, str | None], tuple[str, str] | None]]:
    """Noun phrases of one clause, each with its nearest cell phrase (or None)."""
    cells = [(m.start(), ("top" if m[1] in ("top", "upper") else "bottom") + " " + m[2]) for m in CELL.finditer(clause)]
    found = []
    for match in NOUN_PHRASE.finditer(clause):
        size = SIZE_WORDS[match[1]] if match[1] else None
        cell = min(cells, key=lambda c: abs(c[0] - match.start()))[1] if cells else None
        found.append(((size, match[2], match[3]), cell))
    return found


def parse_caption(text: str) -> dict[str, list]:
    """Elements a caption mentions, as lists of tuples (multisets), keyed by element type."""
    text = text.lower().replace("\u201c", '"').replace("\u201d", '"')
    texts = [_normalise_text(m[1]) for m in QUOTED.finditer(text)]
    unquoted = QUOTED.sub(lambda m: " " * len(m[0]), text)
    texts += [f"{label}: {int(value)}" for label, value in FACT.findall(unquoted)]
    relations = [_canonical_relation(m[1], m[2], RELATION_WORDS[m[3]], m[4], m[5]) for m in RELATION.finditer(unquoted)]
    parsed: dict[str, list] = {
        "pair": [],
        "object": [],
        "position": [],
        "text": texts,
        "relation": relations,
        "shape": sorted(set(SHAPE_WORD.findall(unquoted))),
        "count": [(shape, COUNT_WORDS.get(n) or int(n)) for n, shape in COUNT.findall(unquoted)],
    }
    for clause in CLAUSE_BREAK.split(RELATION.sub(".", unquoted)):
        for (size, colour, shape), cell in _placed(clause):
            parsed["pair"].append((colour, shape))
            if size:
                parsed["object"].append((size, colour, shape))
            if cell:
                parsed["position"].append((colour, shape, cell))
    return parsed


def record_elements(record: dict) -> dict[str, list]:
    """Elements a record shows, in the same form as `parse_caption`."""
    objects = record["objects"]
    texts = [_normalise_text(t["text"]) for t in record["texts"]]
    card = record["card"]
    if card:
        facts = card["table"] if "table" in card else zip(card["chart"]["labels"], card["chart"]["values"])
        texts += [_normalise_text(card["title"])] + [f"{label}: {value}" for label, value in facts]
    return {
        "pair": [(o["colour"], o["shape"]) for o in objects],
        "object": [(o["size"], o["colour"], o["shape"]) for o in objects],
        "position": [(o["colour"], o["shape"], o["cell"]) for o in objects],
        "text": texts,
        "relation": [
            (
                objects[r["subject"]]["colour"],
                objects[r["subject"]]["shape"],
                r["relation"],
                objects[r["object"]]["colour"],
                objects[r["object"]]["shape"],
            )
            for r in record["relations"]
        ],
        "shape": sorted({o["shape"] for o in objects}),
        "count": [(shape, n) for shape, n in record["counts"]["shapes"].items() if n > 1],
    }


def _tally(caption: str, record: dict) -> Counter:
    """Matched / mentioned / gold counts per element type, plus hallucinated pairs."""
    mentioned, gold = parse_caption(caption), record_elements(record)
    tally: Counter = Counter()
    for kind in ELEMENT_TYPES:
        said, shown = Counter(mentioned[kind]), Counter(gold[kind])
        tally[f"{kind}_matched"] = sum((said & shown).values())
        tally[f"{kind}_mentioned"] = sum(said.values())
        tally[f"{kind}_gold"] = sum(shown.values())
    tally["hallucinated"] = sum(1 for pair in mentioned["pair"] if pair not in set(gold["pair"]))
    return tally


def _ratio(numerator: int, denominator: int, other: int) -> float:
    if denominator:
        return numerator / denominator
    return 1.0 if other == 0 else 0.0


def _rates(tally: Counter) -> dict[str, float]:
    scores = {}
    for kind in ELEMENT_TYPES:
        matched, said, shown = (tally[f"{kind}_{part}"] for part in ("matched", "mentioned", "gold"))
        scores[f"{kind}_precision"] = _ratio(matched, said, shown)
        scores[f"{kind}_recall"] = _ratio(matched, shown, said)
        scores[f"{kind}_f1"] = _ratio(2 * matched, said + shown, 0)
    pairs_said = tally["pair_mentioned"]
    scores["hallucination_rate"] = tally["hallucinated"] / pairs_said if pairs_said else 0.0
    return scores


def score_caption(caption: str, record: dict) -> dict[str, float]:
    """Precision / recall / F1 per element type and the hallucination rate of one caption."""
    return _rates(_tally(caption, record))


def score_captions(captions: list[str], records: list[dict]) -> dict[str, float]:
    """Micro-averaged scores over a corpus (sums before dividing), plus "n"."""
    if len(captions) != len(records):
        raise ValueError(f"{len(captions)} captions for {len(records)} records")
    total: Counter = Counter()
    for caption, record in zip(captions, records):
        total.update(_tally(caption, record))
    return {**_rates(total), "n": float(len(records))}
