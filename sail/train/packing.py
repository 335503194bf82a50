"""Padding-free packing of a text batch: several sequences share one row, none attends to another.

A right-padded batch spends every row's compute on its longest member: on the tiny LM's mixed
sequences (18 to 130 tokens) about 40% of the positions are padding. Packing places the sequences
first-fit, longest first, into rows of `row_length` positions and restarts `position_ids` at each
sequence; with no `attention_mask`, transformers reads the restarts as sequence boundaries and
builds a block-diagonal causal mask, so every token sees exactly what it saw unpacked and the
loss (a mean over labelled tokens) is the same.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100


def pack_batch(batch: dict[str, torch.Tensor], row_length: int, pad_token_id: int) -> dict[str, torch.Tensor]:
    """`input_ids`, `labels`, `position_ids` (and `num_tokens`, `use_cache=False`) of a right-padded batch, packed.

    Unused positions at the end of a row are padding with their own restarted positions and no
    labels. `row_length` grows to the longest sequence when that is longer.
    """
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    row_length = max(row_length, *lengths)
    rows: list[list[int]] = []  # sequence indices per row
    free: list[int] = []  # positions left per row
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = next((r for r, room in enumerate(free) if room >= lengths[index]), None)
        if row is None:
            rows.append([])
            free.append(row_length)
            row = len(rows) - 1
        rows[row].append(index)
        free[row] -= lengths[index]

    input_ids = torch.full((len(rows), row_length), pad_token_id, dtype=batch["input_ids"].dtype)
    labels = torch.full((len(rows), row_length), IGNORE_INDEX, dtype=batch["labels"].dtype)
    position_ids = torch.zeros((len(rows), row_length), dtype=torch.long)
    for row, members in enumerate(rows):
        start = 0
        for index in members:
            length = lengths[index]
            input_ids[row, start : start + length] = batch["input_ids"][index, :length]
            labels[row, start : start + length] = batch["labels"][index, :length]
            position_ids[row, start : start + length] = torch.arange(length)
            start += length
        position_ids[row, start:] = torch.arange(row_length - start)
    # Without a cache transformers looks for the restarts; with one it would let rows see across them.
    return {
        "input_ids": input_ids,
        "labels": labels,
        "position_ids": position_ids,
        "use_cache": False,
        "num_tokens": int(sum(lengths)),
    }
