"""Padding-free packing of VLM batches: real-token share and step cost against padded batches.

Three ways to batch the same samples of notebook 04's pretraining mixture, all measured
interleaved in one run on one machine (the ratios carry over, the seconds do not):

- `padded`: `sample_collate(processor)`, each row right-padded to the batch's longest sample;
- `grouped`: padded too, but the batches are cut from a pool of `--pool-batches` batches sorted
  by token length (merely grouping rows by length: the order is no longer random);
- `packed L`: `sample_collate(processor, L)`, samples placed first-fit into rows of L tokens
  with restarted position ids (a block-diagonal mask), for each of `--pack-lengths`.

For each batch size: the real-token fraction (num_tokens / input_ids.numel()), the forward and
backward seconds per batch in the alignment setting (only the projector trains) and real
tokens/s, each against padded batches, after a warm-up: batch i of every way runs back to back
(order rotated), `--repeats` passes, and a way costs the sum of its batches' medians, so a burst
of load from elsewhere (this machine is shared) neither falls on one way alone nor survives the
median. Every way sees the same samples, so its tokens/s ratio is the inverse of its seconds'.
The packed loss must equal the padded loss (eval mode, 1e-5) on every batch.
A fixed number of samples per batch leaves each batch's last row part-empty: `bound` is the
most any packer of those batches could reach (every row full but the last), `pool` what
`pack_batch` reaches on the whole pool at once, i.e. with rows filled from a stream of samples
(a token-budget packer). `1 source`: the mean share of a batch held by its majority source
(caption or OCR), since grouping by length also groups by task. The goal it reports against:
>= 95% real tokens with packing.

    .venv/bin/python bench/packing.py [--batch-sizes 16 32] [--pack-lengths 192 256 384 512]
        [--pool-batches 8] [--repeats 5] [--out bench/results/packing.json]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch
from pretrain_setup import MIXTURE, ROOT, pretrain_samples, tiny_vlm

from sail.pretrain.data import sample_collate
from sail.train import pack_batch, set_trainable

GOAL = 0.95
ALIGNMENT = ("model.multi_modal_projector",)


def model_inputs(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k != "num_tokens"}


def forward_backward(model, batch: dict) -> float:
    model.zero_grad(set_to_none=True)
    started = time.perf_counter()
    model(**model_inputs(batch)).loss.backward()
    return time.perf_counter() - started


def batchings(samples, processor, batch_size: int, pack_lengths: list[int]) -> tuple[dict, dict, dict, list[int]]:
    """The batches of every way over the whole batches of `samples`; per way the collate seconds per
    batch and the mean share of a batch's majority source; each sample's token length."""
    samples = samples[: len(samples) // batch_size * batch_size]
    groups = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
    ways, collate_seconds, majority = {}, {}, {}

    def collate_all(name, collate, batches):
        started = time.perf_counter()
        ways[name] = [collate(rows) for rows in batches]
        collate_seconds[name] = (time.perf_counter() - started) / len(batches)
        shares = [max(Counter(s.source for s in rows).values()) / len(rows) for rows in batches]
        majority[name] = statistics.mean(shares)

    collate_all("padded", sample_collate(processor), groups)
    lengths = [n for batch in ways["padded"] for n in batch["attention_mask"].sum(dim=1).tolist()]
    by_length = [samples[i] for i in sorted(range(len(samples)), key=lambda i: lengths[i])]
    collate_all(
        "grouped",
        sample_collate(processor),
        [by_length[i : i + batch_size] for i in range(0, len(samples), batch_size)],
    )
    for length in pack_lengths:
        collate_all(f"packed {length}", sample_collate(processor, length), groups)
    return ways, collate_seconds, majority, lengths


def real_fraction(batches: list[dict]) -> float:
    return sum(b["num_tokens"] for b in batches) / sum(b["input_ids"].numel() for b in batches)


def whole_rows_bound(batches: list[dict], length: int) -> float:
    """The most any packer of these batches can reach: every row full but each batch's last."""
    tokens = [b["num_tokens"] for b in batches]
    return sum(tokens) / sum(math.ceil(t / length) * length for t in tokens)


def whole_pool_fractions(samples, processor, lengths: list[int]) -> dict[int, float]:
    """Real tokens per pack length when the whole pool is packed at once (rows filled from a stream)."""
    tokenizer = processor.tokenizer
    image_token_id = tokenizer.convert_tokens_to_ids(processor.image_token)
    padded = sample_collate(processor)(samples)
    fractions = {}
    for length in lengths:
        packed = pack_batch(padded, length, tokenizer.pad_token_id, image_token_id)
        fractions[length] = packed["num_tokens"] / packed["input_ids"].numel()
    return fractions


@torch.no_grad()
def loss_differences(model, ways: dict) -> dict[str, float]:
    """Largest |packed loss - padded loss| over the batches, per pack length (eval mode)."""
    model.eval()
    padded = [float(model(**model_inputs(b)).loss) for b in ways["padded"]]
    differences = {}
    for name, batches in ways.items():
        if name.startswith("packed"):
            losses = [float(model(**model_inputs(b)).loss) for b in batches]
            differences[name] = max(abs(a - b) for a, b in zip(padded, losses))
    model.train()
    return differences


def time_ways(model, ways: dict, repeats: int, warmup_batches: int) -> dict[str, list[list[float]]]:
    """Seconds of every batch of every way, `repeats` times: batch i of each way back to back, in an
    order rotated per batch and pass, so a burst of load from elsewhere falls on all ways alike."""
    names = list(ways)
    for name in names:
        for batch in ways[name][:warmup_batches]:
            forward_backward(model, batch)
    seconds = {name: [[] for _ in ways[name]] for name in names}
    for repeat in range(repeats):
        for index in range(len(ways["padded"])):
            shift = (repeat + index) % len(names)
            for name in names[shift:] + names[:shift]:
                seconds[name][index].append(forward_backward(model, ways[name][index]))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--pack-lengths", type=int, nargs="+", default=[192, 256, 384, 512])
    parser.add_argument("--pool-batches", type=int, default=8, help="batches of the largest size in the pool")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup-batches", type=int, default=2)
    parser.add_argument("--mixture", type=Path, default=MIXTURE)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "packing.json")
    args = parser.parse_args()

    from sail.manifest import atomic_write_json, environment

    started = time.perf_counter()
    pool_size = args.pool_batches * max(args.batch_sizes)
    with tempfile.TemporaryDirectory() as work:
        samples, data = pretrain_samples(args.mixture, Path(work), pool_size)
        model, processor, what = tiny_vlm()
        set_trainable(model, ALIGNMENT)
        model.train()
        print(f"{len(samples)} samples from {data}; {what}; {torch.get_num_threads()} threads")
        pool_fraction = whole_pool_fractions(samples, processor, args.pack_lengths)
        rows, checks = [], []
        for batch_size in args.batch_sizes:
            ways, collate_seconds, majority, lengths = batchings(samples, processor, batch_size, args.pack_lengths)
            differences = loss_differences(model, ways)
            checks += [
                {"batch_size": batch_size, "way": name, "max_abs_difference": d} for name, d in differences.items()
            ]
            seconds = time_ways(model, ways, args.repeats, args.warmup_batches)
            tokens = sum(b["num_tokens"] for b in ways["padded"])
            # a way's cost: the sum over its batches of each batch's median over the passes
            cost = {name: sum(statistics.median(times) for times in seconds[name]) for name in ways}
            for name, batches in ways.items():
                passes = [sum(times[r] for times in seconds[name]) for r in range(args.repeats)]
                padded_passes = [sum(times[r] for times in seconds["padded"]) for r in range(args.repeats)]
                length = int(name.split()[1]) if name.startswith("packed") else None
                rows.append(
                    {
                        "batch_size": batch_size,
                        "way": name,
                        "batches": len(batches),
                        "rows_per_batch": statistics.mean(b["input_ids"].shape[0] for b in batches),
                        "row_length": statistics.mean(b["input_ids"].shape[1] for b in batches),
                        "real_fraction": round(real_fraction(batches), 4),
                        "whole_rows_bound": round(whole_rows_bound(batches, length), 4) if length else None,
                        "whole_pool_fraction": round(pool_fraction[length], 4) if length else None,
                        "collate_seconds_per_batch": round(collate_seconds[name], 4),
                        "majority_source_share": round(majority[name], 3),
                        "seconds_per_batch": round(cost[name] / len(batches), 4),
                        "seconds_ratio_to_padded": round(cost[name] / cost["padded"], 3),
                        "tokens_per_second": round(tokens / cost[name], 1),
                        "tokens_per_second_ratio_to_padded": round(cost["padded"] / cost[name], 3),
                        "pass_seconds": [round(s, 3) for s in passes],
                        "median_pass_ratio_to_padded": round(
                            statistics.median(s / p for s, p in zip(passes, padded_passes)), 3
                        ),
                        "loss_difference_to_padded": differences.get(name),
                    }
                )
            print(
                f"\nbatch {batch_size}: {len(ways['padded'])} batches, sample lengths {min(lengths)}-{max(lengths)} "
                f"(mean {statistics.mean(lengths):.0f}); each batch's median of {args.repeats} interleaved passes"
            )
            print(
                f"{'way':<12}{'rows x len':>12}{'real':>8}{'bound':>8}{'pool':>8}{'s/batch':>9}"
                f"{'vs pad':>8}{'tok/s':>8}{'vs pad':>8}{'1 source':>9}{'|dloss|':>10}"
            )
            for row in rows[-len(ways) :]:
                bound = f"{row['whole_rows_bound']:.1%}" if row["whole_rows_bound"] else "-"
                pool = f"{row['whole_pool_fraction']:.1%}" if row["whole_pool_fraction"] else "-"
                difference = row["loss_difference_to_padded"]
                print(
                    f"{row['way']:<12}{row['rows_per_batch']:>5.1f} x{row['row_length']:>4.0f}"
                    f"{row['real_fraction']:>8.1%}{bound:>8}{pool:>8}{row['seconds_per_batch']:>9.3f}"
                    f"{row['seconds_ratio_to_padded']:>8.2f}{row['tokens_per_second']:>8.0f}"
                    f"{row['tokens_per_second_ratio_to_padded']:>8.2f}{row['majority_source_share']:>9.0%}"
                    + (f"{difference:>10.1e}" if difference is not None else f"{'-':>10}")
                )
    packed = [row for row in rows if row["way"].startswith("packed")]
    best = max(packed, key=lambda row: row["real_fraction"])
    losses_equal = all(check["max_abs_difference"] < 1e-5 for check in checks)
    summary = {
        "goal_real_fraction": GOAL,
        "goal_met_by": [f"batch {r['batch_size']}, {r['way']}" for r in packed if r["real_fraction"] >= GOAL],
        "best_packed": {
            k: best[k] for k in ("batch_size", "way", "real_fraction", "tokens_per_second_ratio_to_padded")
        },
        "packed_loss_equals_padded_to_1e-5": losses_equal,
        "max_loss_difference": max(check["max_abs_difference"] for check in checks),
    }
    print(
        f"\ngoal >= {GOAL:.0%} real tokens with packing: "
        + (
            ", ".join(summary["goal_met_by"])
            or f"not met (best {best['real_fraction']:.1%}, batch {best['batch_size']}, {best['way']})"
        )
    )
    print(
        f"packed loss equals padded loss to 1e-5 on every batch: {losses_equal} "
        f"(max {summary['max_loss_difference']:.1e})"
    )
    atomic_write_json(
        args.out,
        {
            "summary": summary,
            "rows": rows,
            "loss_checks": checks,
            "data": data,
            "model": what,
            "samples": len(samples),
            "repeats": args.repeats,
            "threads": torch.get_num_threads(),
            "seconds": round(time.perf_counter() - started, 1),
            **environment(ROOT),
        },
    )
    print(f"wrote {args.out} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
