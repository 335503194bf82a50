"""Caption sources of known quality, each a function of (record, rng).

- `alt_text`: short, noisy web alt-text: drops objects, swaps colours, adds junk.
- `weak_caption`: shape names with counts only (no colours, sizes, cells, relations, text).
- `teacher_caption`: detailed and correct, the stand-in for a strong captioner.

Teacher captions keep one item per clause and describe items in reading order (top left, top
right, bottom left, bottom right); variety comes from templates, size synonyms (large/big,
small/little), cell-phrase variants ("top"/"upper", "bottom"/"lower", "corner", "cell") and
sentence openers, never from reordering.  An object's noun phrase is always "a <size> <colour>
<shape>".  Texts are in double quotes; card facts are written "label: value".  Every template
here is parsed exactly by `sail.world.score.parse_caption`.
"""

import copy
import random
from collections import Counter

from sail.world.vocab import CARD_TITLES, CELLS, COLOURS, NUMBER_WORDS, SHAPES, WORDS

SIZE_SYNONYMS = {"small": ("small", "little"), "large": ("large", "big")}
ROW_WORDS = {"top": ("top", "upper"), "bottom": ("bottom", "lower")}
CELL_TEMPLATES = ("at the {row} {col}", "in the {row} {col}", "in the {row} {col} corner", "in the {row}-{col} cell")

OPENERS = (
    "",
    "Here is a simple scene.",
    "The picture is split into four cells.",
    "This image holds {n} {items}.",
    "A plain light background with a few things on it.",
)
OBJECT_TEMPLATES = (
    "{cell} there is {np}",
    "{np} sits {cell}",
    "{cell} we see {np}",
    "{np} is placed {cell}",
    "there is {np} {cell}",
    "{cell} you can spot {np}",
    "{np} appears {cell}",
)
TEXT_TEMPLATES = (
    '{cell} the {kind} "{text}" is written',
    'the {kind} "{text}" appears {cell}',
    '{cell} there is the {kind} "{text}"',
    '"{text}" is printed {cell}',
)
LINKS = ("Next, ", "Then ", "After that, ")
LEFT_OF_TEMPLATES = (
    "{a} is to the left of {b}",
    "{a} is left of {b}",
    "{b} is to the right of {a}",
    "{b} sits right of {a}",
)
ABOVE_TEMPLATES = (
    "{a} is above {b}",
    "{a} sits over {b}",
    "{b} is below {a}",
    "{b} lies under {a}",
    "{b} is beneath {a}",
)
RELATION_OPENERS = ("", "Also ", "Note that ")
COUNT_TEMPLATES = (
    "There are {n} {shapes} in total.",
    "In all there are {n} {shapes}.",
    "The image holds {n} {shapes} altogether.",
    "{N} {shapes} appear in the picture.",
)

CARD_OPENERS = (
    'This is a card titled "{title}".',
    'A white card with the title "{title}".',
    'The card is headed "{title}".',
    'The title reads "{title}".',
)
TABLE_TEMPLATES = (
    "It holds a small table with {n} rows: {facts}.",
    "Below the title a table lists {facts}.",
    "The table reads {facts}.",
    "A table gives {facts}.",
)
CHART_TEMPLATES = (
    "It shows a bar chart with {n} bars: {facts}.",
    "A bar chart gives {facts}.",
    "The bars read {facts}.",
    "Below the title a bar chart shows {facts}.",
)

ALT_TEMPLATES = (
    "photo of {x}",
    "{x} clipart",
    "stock image {x}",
    "{x} icon",
    "{x} vector illustration",
    "cute {x} drawing",
    "{x}",
)
ALT_CARD_TEMPLATES = ("{title} {kind}", "{kind} of {title}", "{title} {kind} template", "{kind} infographic")
JUNK = (
    "free download",
    "hd wallpaper",
    "png",
    "royalty free",
    "transparent background",
    "4k",
    "high quality",
    "best ideas",
)
WEAK_TEMPLATES = ("{x}", "a picture of {x}", "an image with {x}", "{x} on a plain background", "{x} in a picture")


# How often the teacher leaves its house style (the first option of every template list) for a
# random alternative. A real teacher (GPT-4o) has a house style too; a fully uniform choice among
# templates makes the tiny models spend their few minutes learning phrasing instead of content.
TEACHER_VARIETY = 0.25


def _pick(options: tuple[str, ...], rng: random.Random, variety: float) -> str:
    return rng.choice(options) if rng.random() < variety else options[0]


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _join(parts: list[str], rng: random.Random) -> str:
    if len(parts) == 1:
        return parts[0]
    if rng.random() < 0.3:
        return "; ".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _number(n: int) -> str:
    return NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)


def card_facts(card: dict) -> list[tuple[str, int]]:
    """A card's (label, value) pairs, from its table or its chart."""
    if "table" in card:
        return [(label, value) for label, value in card["table"]]
    return list(zip(card["chart"]["labels"], card["chart"]["values"]))


# --- alt-text ---------------------------------------------------------------------------


def alt_text(record: dict, rng: random.Random) -> str:
    """Noisy web-style alt-text: half the objects, 30% wrong colours, no layout, junk words."""
    if record["kind"] == "card":
        kind = "table" if "table" in record["card"] else "chart"
        text = rng.choice(ALT_CARD_TEMPLATES).format(title=record["card"]["title"].lower(), kind=kind)
    else:
        kept = [o for o in record["objects"] if rng.random() < 0.5] or [rng.choice(record["objects"])]
        rng.shuffle(kept)
        names = []
        for obj in kept:
            colour = obj["colour"]
            if rng.random() < 0.3:
                colour = rng.choice([c for c in COLOURS if c != colour])
            names.append(f"{colour} {obj['shape']}")
        text = rng.choice(ALT_TEMPLATES).format(x=rng.choice((", ", " and ")).join(names))
        if record["texts"] and rng.random() < 0.5:
            text += f' with text "{rng.choice(record["texts"])["text"]}"'
    if rng.random() < 0.5:
        text += " " + rng.choice(JUNK)
    return text


# --- weak captions ----------------------------------------------------------------------


def weak_caption(record: dict, rng: random.Random) -> str:
    """Shapes with their counts only, like a weak open captioner ("two circles and a star")."""
    if record["kind"] == "card":
        options = (
            ("a table", "a document with a table")
            if "table" in record["card"]
            else ("a chart", "a bar chart", "a graph with bars")
        )
        return rng.choice(options)
    counts = Counter(o["shape"] for o in record["objects"])  # insertion order = reading order
    parts = [f"a {shape}" if n == 1 else f"{_number(n)} {shape}s" for shape, n in counts.items()]
    listing = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return rng.choice(WEAK_TEMPLATES).format(x=listing)


# --- teacher captions -------------------------------------------------------------------


def _cell_phrase(cell: str, rng: random.Random, variety: float) -> str:
    row, col = cell.split()
    return _pick(CELL_TEMPLATES, rng, variety).format(row=_pick(ROW_WORDS[row], rng, variety), col=col)


def _object_clause(obj: dict, rng: random.Random, variety: float) -> str:
    np = f"a {_pick(SIZE_SYNONYMS[obj['size']], rng, variety)} {obj['colour']} {obj['shape']}"
    return _pick(OBJECT_TEMPLATES, rng, variety).format(np=np, cell=_cell_phrase(obj["cell"], rng, variety))


def _text_clause(text: dict, rng: random.Random, variety: float) -> str:
    kind = _pick(("number", "text") if text["text"].isdigit() else ("word", "text"), rng, variety)
    return _pick(TEXT_TEMPLATES, rng, variety).format(
        kind=kind, text=text["text"], cell=_cell_phrase(text["cell"], rng, variety)
    )


def _item_sentences(record: dict, rng: random.Random, variety: float) -> list[str]:
    items = [(o["cell"], _object_clause, o) for o in record["objects"]]
    items += [(t["cell"], _text_clause, t) for t in record["texts"]]
    clauses = [describe(item, rng, variety) for _, describe, item in sorted(items, key=lambda i: CELLS.index(i[0]))]
    sentences = []
    index = 0
    while index < len(clauses):
        clause = clauses[index]
        if index + 1 < len(clauses) and rng.random() < variety * 0.5:
            clause += " and " + clauses[index + 1]
            index += 1
        if sentences and rng.random() < variety * 0.5:
            clause = rng.choice(LINKS) + clause
        sentences.append(_capitalise(clause) + ".")
        index += 1
    return sentences


def _relation_sentence(record: dict, relation: dict, rng: random.Random, variety: float) -> str:
    subject, other = record["objects"][relation["subject"]], record["objects"][relation["object"]]
    templates = LEFT_OF_TEMPLATES if relation["relation"] == "left of" else ABOVE_TEMPLATES
    clause = _pick(templates, rng, variety).format(
        a=f"the {subject['colour']} {subject['shape']}", b=f"the {other['colour']} {other['shape']}"
    )
    return _capitalise(_pick(RELATION_OPENERS, rng, variety) + clause) + "."


def _teacher_card(card: dict, rng: random.Random, variety: float) -> str:
    facts = [f"{label}: {value}" for label, value in card_facts(card)]
    body = _pick(TABLE_TEMPLATES if "table" in card else CHART_TEMPLATES, rng, variety)
    return " ".join(
        (
            _pick(CARD_OPENERS, rng, variety).format(title=card["title"]),
            body.format(n=_number(len(facts)), facts=_join(facts, rng)),
        )
    )


def teacher_caption(record: dict, rng: random.Random, variety: float = TEACHER_VARIETY) -> str:
    """Detailed, correct caption: every item with its cell, up to two relations, repeated-shape counts.

    `variety` is the chance of each phrasing choice leaving the house style (0: one fixed style,
    1: uniform over all templates).
    """
    if record["kind"] == "card":
        return _teacher_card(record["card"], rng, variety)
    n = len(record["objects"]) + len(record["texts"])
    opener = _pick(OPENERS, rng, variety).format(n=_number(n), items="item" if n == 1 else "items")
    sentences = [opener] if opener else []
    sentences += _item_sentences(record, rng, variety)
    chosen = (
        rng.sample(record["relations"], len(record["relations"])) if rng.random() < variety else record["relations"]
    )
    sentences += [_relation_sentence(record, relation, rng, variety) for relation in chosen[:2]]
    for shape, n in record["counts"]["shapes"].items():
        if n > 1:
            template = _pick(COUNT_TEMPLATES, rng, variety)
            sentences.append(template.format(n=_number(n), N=_capitalise(_number(n)), shapes=shape + "s"))
    return " ".join(sentences)


def wrong_caption(record: dict, rng: random.Random) -> str:
    """The teacher's detailed form about a different image: every object has another colour or
    shape, every text and card value another word or number. A control that keeps the caption's
    *format* and drops its *facts*, so a source that wins on facts is told apart from one that
    merely writes like the evaluation expects."""
    wrong = copy.deepcopy(record)
    for obj in wrong["objects"]:
        if rng.random() < 0.5:
            obj["colour"] = rng.choice([c for c in COLOURS if c != obj["colour"]])
        else:
            obj["shape"] = rng.choice([s for s in SHAPES if s != obj["shape"]])
    for text in wrong["texts"]:
        text["text"] = rng.choice([w for w in WORDS if w != text["text"]])
    if wrong["card"]:
        card = wrong["card"]
        card["title"] = rng.choice([t for t in CARD_TITLES if t != card["title"]])
        if "table" in card:
            card["table"] = [[label, (value + rng.randint(1, 9)) % 100] for label, value in card["table"]]
        else:
            card["chart"]["values"] = [value + rng.randint(1, 9) for value in card["chart"]["values"]]
    return teacher_caption(wrong, rng)


# The caption sources the foundations learn from (`wrong_caption` is an ablation control only).
CAPTION_SOURCES = {"alt_text": alt_text, "weak": weak_caption, "teacher": teacher_caption}
