"""The tiny language foundation: a Qwen2 LM pretrained on world text.

A real Qwen2.5 reads whatever context precedes a question; a 1M-parameter LM learns that only if
its pretraining asks for it. So most pretraining sequences put the scene's attribute words in the
image slot of the chat layout (`<img>top left large red circle ; top right empty ; ...</img>`)
and ask a benchmark's questions, for a caption, for a cell's content, for where an object is or
for a copy of the context; the rest are plain captions of every source. Later, the projector
only has to map image features onto something the LM already reads.

Reading a context needs a copy circuit (induction heads), which forms in a sudden transition
whose timing varies from run to run. A drill of copying random strings of world words comes first
and lasts until the LM copies held-out strings: the transition happens there, and world text then
reads its context within a few hundred steps (see `FoundationBudget`). A drill over a large
vocabulary (numbers, text words) did not learn to copy at all in 200 steps: the small world
vocabulary is what makes the drill quick.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase, Qwen2ForCausalLM

from sail.caption import CAPTION_PROMPT
from sail.eval.benchmarks import WORLD_BENCHMARKS, build_prompt, gold_text
from sail.foundations.slots import SlotExample, SlotReader, slot_collate, slot_text, slot_words
from sail.model import IGNORE_INDEX, Geometry, conversation, text_config
from sail.model.tokenizer import IMAGE_CONTEXT, TURN_START
from sail.train import validation_loss
from sail.world import CAPTION_SOURCES, CELLS, COLOURS, SHAPES, SIZES, score_captions, teacher_caption
from sail.world.ocr import LIST_PROMPT, LOOKUP_QUESTION, card_transcription, text_answer
from sail.world.questions import (
    ALL_OBJECTS,
    general_questions,
    hallusion_set,
    math_questions,
    ocr_questions,
    pope_questions,
    pope_statistics,
)


def cell_answer(record: dict, cell: str) -> str:
    return next(
        (f"a {o['size']} {o['colour']} {o['shape']}" for o in record["objects"] if o["cell"] == cell),
        next((text_answer(t["text"]) for t in record["texts"] if t["cell"] == cell), "nothing"),
    )


def lookup_turns(record: dict, rng: random.Random) -> list[tuple[str, str]]:
    """A "read the image slot" drill: a scene's every cell, asked in random order over four turns
    (the form notebook 05's OCR data asks a scene's text in); a card listed whole (the form it asks
    a card's text in). Every answer is copied from the slot: a dense signal for learning to read it."""
    if record["kind"] == "card":
        return [(LIST_PROMPT, card_transcription(record["card"]))]
    cells = rng.sample(CELLS, len(CELLS))
    turns = [(LOOKUP_QUESTION.format(cell=cells[0]), cell_answer(record, cells[0]))]
    return turns + [(f"And at the {cell}?", cell_answer(record, cell)) for cell in cells[1:]]


FIND_QUESTION = "Where is the {name}?"
NOWHERE = "nowhere"


def find_turns(record: dict, rng: random.Random) -> list[tuple[str, str]]:
    """A "find it in the image slot" drill: where two objects of a scene are and that two others are
    nowhere, in random order. The answer is the cell whose slot words match the question's, so it
    grows the circuit POPE and HallusionBench ask for (compare the question's words with every
    slot position), which a yes/no answer alone gives almost no gradient to start from. Objects
    shown in two cells are not asked; a card is listed whole, as `lookup_turns` does."""
    if record["kind"] == "card":
        return lookup_turns(record, rng)
    cells: dict[str, set[str]] = {}
    for obj in record["objects"]:
        cells.setdefault(f"{obj['colour']} {obj['shape']}", set()).add(obj["cell"])
    present = [name for name, where in cells.items() if len(where) == 1]
    absent = [name for name in ALL_OBJECTS if name not in cells]
    asked = rng.sample(present, min(2, len(present))) + rng.sample(absent, 2)
    rng.shuffle(asked)
    return [
        (FIND_QUESTION.format(name=name) if i == 0 else f"And the {name}?", min(cells.get(name, {NOWHERE})))
        for i, name in enumerate(asked)
    ]


def record_questions(record: dict, statistics: dict, seed: int) -> list[dict]:
    """Every benchmark kind of question the world asks of a record, each in the prompt its
    benchmark asks it with (`prompt`) and with its gold as a model should say it (`gold`). A
    HallusionBench set asks two figures, the record and an edited copy: both come, each question
    with the record it is about (`record`)."""
    asked = general_questions(record, seed) + ocr_questions(record, seed) + math_questions(record, seed)
    asked += pope_questions(record, statistics, seed, per_side=1) + hallusion_set(record, 0, seed)
    return [
        {**q, "prompt": build_prompt(q, WORLD_BENCHMARKS[q["benchmark"]]), "gold": gold_text(q["answer"])}
        for q in asked
    ]


def slot_example(
    tokenizer: PreTrainedTokenizerBase, record: dict | None, turns: Sequence[tuple[str, str]], tokens_per_tile: int
) -> SlotExample:
    """A chat of `turns` about `record`'s image (its slot filled with the record's words), or, with
    no record, a text-only chat."""
    messages = conversation(turns[0][0], turns[0][1], image=record is not None)
    for prompt, answer in turns[1:]:
        messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    if record is None:
        return text, [answer for _, answer in turns], []
    slots = slot_words(record, tokens_per_tile)
    return slot_text(text, len(slots)), [answer for _, answer in turns], slots


DRILL_WORDS = (*COLOURS, *SHAPES, *SIZES, "top", "bottom", "left", "right", "text", ";")


def copy_drills(tokenizer: PreTrainedTokenizerBase, n: int, seed: int, tokens_per_tile: int) -> list[SlotExample]:
    """Repeat the words of the image slot: 3 to 12 random world words one per token, then `empty`.
    Nothing but copying lowers this loss, so a drill of it grows the attention circuits (induction
    heads) that reading the slot needs, which world text alone grows only after many hundred steps.
    The small world vocabulary keeps the drill quick (over numbers and text words it did not learn
    to copy in 200 steps)."""
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        words = [rng.choice(DRILL_WORDS) for _ in range(rng.randint(3, min(12, tokens_per_tile)))]
        slots = words + ["empty"] * (tokens_per_tile - len(words))
        messages = conversation(LIST_PROMPT, " ".join(words))
        examples.append(
            (slot_text(tokenizer.apply_chat_template(messages, tokenize=False), len(slots)), [" ".join(words)], slots)
        )
    return examples


@torch.no_grad()
def answer_accuracy(reader: SlotReader, tokenizer: PreTrainedTokenizerBase, examples: Sequence[SlotExample]) -> float:
    """Share of answer tokens the LM predicts exactly, given the true ones before them (teacher
    forcing): on copy drills, how well it copies."""
    was_training = reader.training
    reader.eval()
    batch = slot_collate(tokenizer)(list(examples))
    batch.pop("num_tokens")
    batch = {k: v.to(reader.device) for k, v in batch.items()}
    labels = batch.pop("labels")[:, 1:]
    predicted = reader(**batch).logits[:, :-1].argmax(-1)
    reader.train(was_training)
    answered = labels != IGNORE_INDEX
    return float((predicted[answered] == labels[answered]).float().mean())


# What the LM pretrains on, as shares of its sequences.
MIXTURE = {"questions": 0.45, "lookup": 0.1, "find": 0.1, "caption": 0.25, "plain_caption": 0.1}
QUESTIONS_PER_SEQUENCE = 4


def lm_examples(
    records: Sequence[dict],
    tokenizer: PreTrainedTokenizerBase,
    tokens_per_tile: int,
    *,
    seed: int,
    mixture: dict[str, float] = MIXTURE,
    by_benchmark: bool = False,
) -> list[SlotExample]:
    """One example per record, its kind drawn by `mixture`: up to four benchmark questions about
    the image, the lookup drill (what is at a cell), the find drill (where an object is), a
    teacher caption, or a plain caption with no image. The questions are drawn from all the
    record's questions alike, or with `by_benchmark` benchmark by benchmark (`sample_by_benchmark`),
    so a benchmark that asks few questions of a record (TextVQA, RelationMCQ) is asked as often
    as one that asks many (POPE, HallusionBench)."""
    rng = random.Random(seed)
    statistics = pope_statistics(list(records[:2000]))
    kinds = rng.choices(list(mixture), weights=list(mixture.values()), k=len(records))
    examples = []
    for record, kind in zip(records, kinds):
        if kind == "questions":
            asked = record_questions(record, statistics, seed)
            about = rng.choice([q["record"] for q in asked])  # a HallusionBench edit, now and then
            asked = [q for q in asked if q["record"] is about]
            sample = sample_by_benchmark if by_benchmark else sample_questions
            chosen = sample(asked, min(QUESTIONS_PER_SEQUENCE, len(asked)), rng)
            examples.append(slot_example(tokenizer, about, [(q["prompt"], q["gold"]) for q in chosen], tokens_per_tile))
        elif kind in ("lookup", "find"):
            turns = lookup_turns(record, rng) if kind == "lookup" else find_turns(record, rng)
            examples.append(slot_example(tokenizer, record, turns, tokens_per_tile))
        else:
            caption = teacher_caption(record, rng)
            examples.append(
                slot_example(
                    tokenizer, record if kind == "caption" else None, [(CAPTION_PROMPT, caption)], tokens_per_tile
                )
            )
    return examples


def sample_questions(questions: Sequence[dict], k: int, rng: random.Random) -> list[dict]:
    """`k` of `questions`, each as likely as another."""
    return rng.sample(list(questions), k)


def sample_by_benchmark(questions: Sequence[dict], k: int, rng: random.Random) -> list[dict]:
    """`k` of `questions`, each draw first choosing a benchmark among those with questions left,
    then one of its questions: every benchmark the record is asked by is as likely as another."""
    left: dict[str, list[dict]] = {}
    for question in questions:
        left.setdefault(question["benchmark"], []).append(question)
    chosen = []
    for _ in range(k):
        benchmark = rng.choice(list(left))
        chosen.append(left[benchmark].pop(rng.randrange(len(left[benchmark]))))
        if not left[benchmark]:
            del left[benchmark]
    return chosen


def world_text(records: Sequence[dict], seed: int) -> list[str]:
    """Text to train the tokenizer on: every caption source, the slot words, and every benchmark
    question and drill in the prompts the LM will be asked them with."""
    rng = random.Random(seed)
    statistics = pope_statistics(list(records))
    texts = [f"user assistant {CAPTION_PROMPT} {LIST_PROMPT} {LOOKUP_QUESTION}"]
    for record in records:
        texts += [source(record, rng) for source in CAPTION_SOURCES.values()]
        texts += [prompt + " " + answer for prompt, answer in lookup_turns(record, rng)]
        texts += slot_words(record, 16)
        texts += [q["prompt"] + " " + q["gold"] for q in rng.sample(record_questions(record, statistics, seed), 2)]
    return texts


def build_language_model(geometry: Geometry, tokenizer: PreTrainedTokenizerBase) -> Qwen2ForCausalLM:
    return Qwen2ForCausalLM(text_config(geometry, tokenizer))


def slot_reader(language: Qwen2ForCausalLM, tokenizer: PreTrainedTokenizerBase) -> SlotReader:
    return SlotReader(language, tokenizer.convert_tokens_to_ids(IMAGE_CONTEXT))


def other_records(records: Sequence[dict]) -> list[dict]:
    """Each record's stand-in from another image of its kind (a scene for a scene, a card for a
    card): the next one in order, wrapping around."""
    out = []
    for here, record in enumerate(records):
        later = [*records[here + 1 :], *records[:here]]
        out.append(next((r for r in later if r["kind"] == record["kind"]), record))
    return out


def prompt_of(text: str) -> str:
    """A rendered chat cut after its last assistant header: what generation continues."""
    header = f"{TURN_START}assistant\n"
    return text[: text.rindex(header) + len(header)]


@torch.no_grad()
def question_accuracy(
    reader: SlotReader,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[dict],
    tokens_per_tile: int,
    *,
    seed: int,
    swapped: bool = False,
) -> dict[str, float]:
    """Exact-match accuracy of greedy answers to every benchmark kind of question about held-out
    records, per kind ("WorldVQA/colour"), from each question's own slot or (`swapped`) from another
    record's: what reading the slot is worth per kind, beside what the question alone earns."""
    statistics = pope_statistics(list(records))
    others = other_records(records)
    asked, examples = [], []
    for record, other in zip(records, others):
        for q in record_questions(record, statistics, seed):
            shown = other if swapped else q["record"]  # a HallusionBench edit is swapped for another image too
            asked.append(q)
            examples.append(slot_example(tokenizer, shown, [(q["prompt"], "")], tokens_per_tile))
    answers = []
    for start in range(0, len(examples), 64):
        chunk = examples[start : start + 64]
        answers += reader.generate(
            tokenizer, [prompt_of(t) for t, _, _ in chunk], [s for _, _, s in chunk], max_new_tokens=8
        )
    right: dict[str, list[bool]] = {}
    for q, answer in zip(asked, answers):
        kind = f"{q['benchmark']}/{'pope' if q['benchmark'] == 'WorldPOPE' else q['category']}"
        right.setdefault(kind, []).append(answer.lower() == q["gold"].lower())
    return {kind: sum(hits) / len(hits) for kind, hits in sorted(right.items())}


@torch.no_grad()
def context_caption_score(
    reader: SlotReader, tokenizer: PreTrainedTokenizerBase, records: Sequence[dict], tokens_per_tile: int
) -> dict[str, float]:
    """Greedy captions written from the slot words alone, scored against the records: how well the
    LM reads its image slot (an LM that ignores it scores near zero)."""
    examples = [slot_example(tokenizer, r, [(CAPTION_PROMPT, "")], tokens_per_tile) for r in records]
    captions = reader.generate(
        tokenizer, [prompt_of(t) for t, _, _ in examples], [s for _, _, s in examples], max_new_tokens=128
    )
    return score_captions(captions, list(records))


@torch.no_grad()
def language_report(
    reader: SlotReader, tokenizer: PreTrainedTokenizerBase, records: Sequence[dict], tokens_per_tile: int, seed: int = 0
) -> dict:
    """Held-out loss per answer token of teacher captions given the slot (conditional) and of each
    caption source without an image (plain); captions written from the slot; and every question
    kind's accuracy from its own slot and from another image's."""
    rng = random.Random(seed)
    captions = [teacher_caption(r, rng) for r in records]
    suites = {
        "conditional_teacher": [
            slot_example(tokenizer, r, [(CAPTION_PROMPT, c)], tokens_per_tile) for r, c in zip(records, captions)
        ]
    }
    for name, source in CAPTION_SOURCES.items():
        written = captions if name == "teacher" else [source(r, rng) for r in records]
        suites[f"plain_{name}"] = [
            slot_example(tokenizer, None, [(CAPTION_PROMPT, c)], tokens_per_tile) for c in written
        ]
    collate = slot_collate(tokenizer)
    report: dict = {
        f"{name}_loss": validation_loss(reader, collate, examples, batch_size=64) for name, examples in suites.items()
    }
    report["context_caption_pair_f1"] = context_caption_score(reader, tokenizer, records, tokens_per_tile)["pair_f1"]
    report["question_accuracy"] = {
        "own image": question_accuracy(reader, tokenizer, records, tokens_per_tile, seed=seed),
        "another image": question_accuracy(reader, tokenizer, records, tokens_per_tile, seed=seed, swapped=True),
    }
    return report


def reading_by_kind(accuracy: dict[str, dict[str, float]], margin: float = 0.05) -> str:
    """A sentence on which question kinds the LM answers from its slot: the kinds whose accuracy
    from their own slot beats another image's slot by more than `margin`, with both figures, and
    the kinds it answers no better (from the question alone)."""
    own, other = accuracy["own image"], accuracy["another image"]
    read = sorted((kind for kind in own if own[kind] - other[kind] > margin), key=lambda k: other[k] - own[k])
    unread = [kind for kind in own if kind not in read]
    sentence = (
        f"From its own image slot rather than another image's, the LM answers {len(read)} of {len(own)}"
        " held-out question kinds better"
    )
    if read:
        sentence += ": " + ", ".join(f"{kind} {own[kind]:.2f} against {other[kind]:.2f}" for kind in read)
    if unread:
        sentence += "; no better: " + ", ".join(unread)
    return sentence + "."
