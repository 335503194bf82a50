"""The LM foundation's training step with the LM head on the answer positions only, against every position.

`SlotReader` sends only labelled positions through the 1,024-way head when it is given labels
(the loss is the same; `tests/test_foundations.py` pins it). This bench measures what that saves
on notebook 00's packed pretraining batches: both ways train the same fresh LM on the same
batches, interleaved batch by batch (order alternating), after a warm-up; a way costs the median
of its steps. It reports the share of positions that carry a label and the speed-up.

    .venv/bin/python bench/answer_logits.py [--steps 20] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer

from sail.foundations import FoundationBudget
from sail.foundations.language import build_language_model, lm_examples, slot_reader, world_text
from sail.foundations.slots import slot_collate
from sail.manifest import atomic_write_json
from sail.model import GEOMETRIES, IGNORE_INDEX, train_world_tokenizer
from sail.world import sample_records

WARM_UP = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per way")
    parser.add_argument("--out", type=Path, default=None, help="also write the result as JSON")
    args = parser.parse_args()

    geometry, budget = GEOMETRIES["tiny"], FoundationBudget()
    records = sample_records(
        "train", (args.steps + WARM_UP) * budget.batch_size, seed=0, card_fraction=budget.language_card_fraction
    )
    with tempfile.TemporaryDirectory() as folder:
        train_world_tokenizer(world_text(records[:1000], 0), vocab_size=geometry.vocab_size).save_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    examples = lm_examples(records, tokenizer, geometry.image_seq_length, seed=0)
    collate = slot_collate(tokenizer, budget.language_pack_length)
    batches = [collate(examples[i : i + budget.batch_size]) for i in range(0, len(examples), budget.batch_size)]
    for batch in batches:
        batch.pop("num_tokens")

    torch.manual_seed(0)
    reader = slot_reader(build_language_model(geometry, tokenizer), tokenizer)
    optimiser = torch.optim.AdamW(reader.parameters(), lr=budget.language_lr)

    def every_position(batch: dict) -> torch.Tensor:
        rest = {k: v for k, v in batch.items() if k not in ("input_ids", "slot_ids")}
        return reader.language(inputs_embeds=reader.embed(batch["input_ids"], batch["slot_ids"]), **rest).loss

    ways = {"every position": every_position, "answer positions": lambda batch: reader(**batch).loss}
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    for i, batch in enumerate(batches):
        for way in list(ways)[:: 1 if i % 2 else -1]:
            started = time.perf_counter()
            ways[way](batch).backward()
            optimiser.step()
            optimiser.zero_grad()
            if i >= WARM_UP:
                seconds[way].append(time.perf_counter() - started)

    labelled = sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in batches)
    positions = sum(b["labels"].numel() for b in batches)
    medians = {way: statistics.median(times) for way, times in seconds.items()}
    result = {
        "steps": args.steps,
        "threads": torch.get_num_threads(),
        "labelled_share": round(labelled / positions, 3),
        "rows": [
            {
                "way": way,
                "median_step_seconds": round(median, 4),
                "speed_up": round(medians["every position"] / median, 2),
            }
            for way, median in medians.items()
        ],
    }
    print(f"{result['labelled_share']:.0%} of positions carry a label")
    for row in result["rows"]:
        print(f"{row['way']:<20}{row['median_step_seconds']:>8.3f} s{row['speed_up']:>7.2f}x")
    if args.out is not None:
        atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
