"""Which image-slot skills a fresh LM foundation learns: copying a slot word against comparing one.

The LM foundation answers the questions it can answer by copying from its image slot (a cell's
colour, a card's title, how many cells are full) and none of those that need a comparison between a
word in the question and a word in the slot (is there a red circle? how many circles? is the top
left object yellow? which option is the answer?). This bench isolates the two skills on a synthetic
slot of single world words, with nothing else to learn, and trains a fresh LM of each geometry on
each task for the same steps:

- copy: one word in the slot's first place, the rest `empty`; "What is in the image?" -> the word;
- equality: the same slot; "Is there <word> in the image?" -> yes or no (half each), or
  "How many <word> are there?" -> 0 or 1;
- membership: 2 to 8 words in random places; the same questions (counts up to 8);
- find and after: eight numbered words ("1 red 2 star ..."); "Where is <word>?" -> its number, or
  "What is at <number>?" -> its word. Both must find a place by what it holds, as every
  comparison must; the world's questions name their places by the raster position (top left),
  which a fixed pattern of attention can find.

Scored on held-out sequences: the share of answers whose first token the LM predicts (teacher
forcing), beside the best a model that never reads the slot can do (the commonest first token of
each question form). Runs take one thread each and run side by side, one per core.

    .venv/bin/python bench/slot_skills.py [--steps 300] [--tasks copy equality membership]
                                          [--geometries tiny deeper wider] [--lr 1e-3]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from itertools import product
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER = ROOT / "outputs/tiny/artifacts/foundations/tokenizer"  # notebook 00's world tokenizer
TASKS = ("copy", "equality", "membership", "find", "after")
LM_SHAPES: dict[str, dict] = {  # overrides of the tiny geometry's LM
    "tiny": {},
    "deeper": {"text_layers": 8},
    "wider": {"text_hidden": 256, "text_heads": 8, "text_kv_heads": 4, "text_intermediate": 768},
}
TURNS = 8  # questions per sequence, about one slot
BATCH = 32


def task_turns(task: str, rng: random.Random, tokens_per_tile: int) -> tuple[list[str], list[tuple[str, str]]]:
    """One synthetic slot (a word per image token) and `TURNS` questions about it with answers."""
    from sail.world import COLOURS, SHAPES

    vocabulary = list(COLOURS + SHAPES)
    if task in ("find", "after"):  # numbered words: "1 red 2 star ..."
        words = rng.sample(vocabulary, tokens_per_tile // 2)
        slots = [token for number, word in enumerate(words, 1) for token in (str(number), word)]
        asked = [rng.randrange(len(words)) for _ in range(TURNS)]
        if task == "find":
            return slots, [(f"Where is {words[i]}?", str(i + 1)) for i in asked]
        return slots, [(f"What is at {i + 1}?", words[i]) for i in asked]
    count = 1 if task in ("copy", "equality") else rng.randint(2, 8)
    words = [rng.choice(vocabulary) for _ in range(count)]
    slots = words + ["empty"] * (tokens_per_tile - count)
    if task == "copy":
        return slots, [("What is in the image?", words[0])] * TURNS
    if task == "membership":
        rng.shuffle(slots)
    turns = []
    for _ in range(TURNS):
        asked = rng.choice(words) if rng.random() < 0.5 else rng.choice([w for w in vocabulary if w not in words])
        if rng.random() < 0.7:
            turns.append((f"Is there {asked} in the image?", "yes" if asked in words else "no"))
        else:
            turns.append((f"How many {asked} are there?", str(words.count(asked))))
    return slots, turns


def task_examples(task: str, tokenizer, n: int, seed: int, tokens_per_tile: int) -> list:
    """`n` chats of `TURNS` questions about one synthetic slot each, as `SlotExample`s."""
    from sail.foundations.slots import slot_text
    from sail.model import conversation

    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        slots, turns = task_turns(task, rng, tokens_per_tile)
        messages = conversation(*turns[0])
        for prompt, answer in turns[1:]:
            messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        examples.append((slot_text(text, len(slots)), [answer for _, answer in turns], slots))
    return examples


def first_tokens(batch: dict):
    """Mask of each answer's first labelled position (predicted from the position before it)."""
    from sail.model import IGNORE_INDEX

    labelled = batch["labels"] != IGNORE_INDEX
    before = labelled.clone()
    before[:, 1:] = labelled[:, :-1]
    before[:, 0] = False
    return labelled & ~before


def scores(reader, tokenizer, examples: list) -> dict:
    """First-token accuracy of the answers, and the blind level: per question form (its first two
    words), the commonest first answer token, as a model that never reads the slot would say it."""
    import torch

    from sail.foundations.slots import slot_collate

    batch = slot_collate(tokenizer)(examples)
    batch.pop("num_tokens")
    first = first_tokens(batch)
    with torch.no_grad():
        unlabelled = {name: value for name, value in batch.items() if name != "labels"}  # for every logit
        predicted = reader(**unlabelled).logits[:, :-1].argmax(-1)  # position t predicts token t + 1
    answers, guesses = batch["labels"][first], predicted[first[:, 1:]]
    forms = [form for text, _, _ in examples for form in _forms(text)]  # row by row, as the mask reads
    counts: dict[str, Counter] = {}
    for answer, form in zip(answers.tolist(), forms):
        counts.setdefault(form, Counter())[answer] += 1
    return {
        "accuracy": round(float((guesses == answers).float().mean()), 3),
        "blind": round(sum(c.most_common(1)[0][1] for c in counts.values()) / len(forms), 3),
    }


def _forms(text: str) -> list[str]:
    """The first two words of each user turn of a rendered chat: the question's form."""
    from sail.model.tokenizer import TURN_END, TURN_START

    turns = text.split(f"{TURN_START}user\n")[1:]
    return [" ".join(turn.split(TURN_END)[0].split("</img>")[-1].split()[:2]) for turn in turns]


def one_run(task: str, geometry_name: str, steps: int, lr: float, seed: int) -> dict:
    """A fresh LM of the geometry, trained on the task for `steps`, scored every 50 steps."""
    import torch

    torch.set_num_threads(1)
    from transformers import AutoTokenizer

    from sail.foundations.language import build_language_model, slot_reader
    from sail.foundations.slots import slot_collate
    from sail.model import GEOMETRIES
    from sail.train import Stage, train

    geometry = replace(GEOMETRIES["tiny"], **LM_SHAPES[geometry_name])
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    torch.manual_seed(seed)
    reader = slot_reader(build_language_model(geometry, tokenizer), tokenizer)
    heldout = task_examples(task, tokenizer, 256, seed + 1, geometry.image_seq_length)
    checks: list[dict] = []

    def check(model, step: int) -> bool:
        model.eval()
        checks.append({"step": step, **scores(model, tokenizer, heldout)})
        model.train()
        return False

    stage = Stage(
        name=f"slot-{task}",
        data=task_examples(task, tokenizer, steps * BATCH, seed, geometry.image_seq_length),
        collate=slot_collate(tokenizer),
        trainable=("language",),
        lr=lr,
        batch_size=BATCH,
        max_steps=steps,
        seed=seed,
        check_every=50,
        done_when=check,
    )
    begun = time.perf_counter()
    with tempfile.TemporaryDirectory() as runs:
        train(reader, stage, runs, progress=False)
    return {
        "task": task,
        "geometry": geometry_name,
        "lm": {k: v for k, v in asdict(geometry).items() if k.startswith("text_")},
        "lr": lr,
        "steps": steps,
        "seed": seed,
        "seconds": round(time.perf_counter() - begun, 1),
        "checks": checks,
        "final": checks[-1],
    }


def main() -> None:
    from sail.foundations import FoundationBudget

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--geometries", nargs="+", default=["tiny"], choices=sorted(LM_SHAPES))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=FoundationBudget().language_lr, help="default: the LM foundation's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0, help="runs side by side (default: one per core)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/slot_skills.json")
    args = parser.parse_args()

    from sail.manifest import atomic_write_json, environment

    jobs = list(product(args.tasks, args.geometries))
    with ProcessPoolExecutor(args.workers or os.cpu_count() or 1, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(one_run, task, name, args.steps, args.lr, args.seed) for task, name in jobs]
        runs = [future.result() for future in futures]
    for run in runs:
        final = run["final"]
        print(
            f"{run['task']:<11} {run['geometry']:<7} step {final['step']}: first-token accuracy {final['accuracy']:.3f}"
            f" (blind {final['blind']:.3f}) | " + " ".join(f"{c['step']}:{c['accuracy']:.2f}" for c in run["checks"])
        )
    atomic_write_json(args.out, {"runs": runs, "cpu_count": os.cpu_count(), **environment(ROOT)})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
