"""What `sail.train.train` costs over a bare PyTorch loop: tokens/s of both on the same work.

Same model (a fresh copy of the tiny VLM per run), same data (notebook 04's mixture, packed by
`sample_collate(processor, --pack-length)`), same batches in the same order (the trainer's own
seeded epoch order), same optimiser (AdamW with the stage's lr, weight decay and warm-up cosine),
same clipping, same number of steps: the alignment stage of the tiny recipe. The bare loop is
collate, zero_grad, forward, backward, clip, step. Ways, alternated (A B C ... A B C ...) and
compared per round, medians over `--repeats` rounds after one short warm-up round:

- `bare`: the loop above;
- `train()`: `sail.train.train` with a fresh output folder (jsonl log, one checkpoint at the end);
- `train(), N loader workers`: the same with `loader_workers=N` (a DataLoader process collates ahead);
- `bare, torch.compile` (with `--compile`): the bare loop on `torch.compile(model)`, after one
  untimed epoch that compiles it (once per packed row count until dynamo marks the shape dynamic;
  its step seconds are recorded). Off by default: with an empty inductor cache (/tmp/torchinductor_*)
  each compile takes about a minute on two cores, with a warm one seconds.

Three ratios of the trainer's tokens/s to the bare loop's: `loop` (the steps alone: the trainer's
last log line against the bare loop's steps), `+checkpoint` (train()'s own `seconds`, which include
its final checkpoint) and `wall` (the whole call: accelerator, first-batch collate, checkpoint).
The goal it reports against: loop ratio >= 0.95.

    .venv/bin/python bench/trainer_overhead.py [--steps 32] [--repeats 5] [--pack-length 256]
        [--loader-workers 1] [--compile] [--out bench/results/trainer_overhead.json]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import statistics
import tempfile
import time
from pathlib import Path

import torch
from pretrain_setup import MIXTURE, ROOT, pretrain_samples, tiny_vlm

from sail.pretrain.data import sample_collate
from sail.train import Stage, set_trainable, train, warmup_cosine
from sail.train import recipe as recipes
from sail.train.stage import parameter_groups
from sail.train.trainer import _EpochOrder  # the trainer's batch order, so both loops see the same batches

GOAL = 0.95


def bare_loop(model, stage: Stage, runner=None) -> dict:
    """The stage's steps without the trainer; seconds of the setup, the steps and each step.

    `runner` (default: `model`) is what runs forward, e.g. `torch.compile(model)`.
    """
    started = time.perf_counter()
    torch.manual_seed(stage.seed)
    set_trainable(model, stage.trainable)
    model.train()
    runner = model if runner is None else runner
    order = _EpochOrder(len(stage.data), stage.batch_size, stage.seed, 1, 0)
    optimizer = torch.optim.AdamW(parameter_groups(model, stage), weight_decay=stage.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(stage.max_steps, stage.warmup_fraction, stage.min_lr_ratio)
    )
    trainable = [p for p in model.parameters() if p.requires_grad]

    def collate(step: int) -> dict:
        epoch, position = divmod(step, order.batches_per_epoch)
        return stage.collate([stage.data[i] for i in order.indices(epoch, position)])

    batch = collate(0)  # as train() does before its clock starts (it plans the schedule from it)
    loop_started = time.perf_counter()
    steps, tokens, loss = [], 0, None
    for step in range(stage.max_steps):
        step_started = time.perf_counter()
        batch = batch if step == 0 else collate(step)
        tokens += batch.pop("num_tokens")
        optimizer.zero_grad()
        loss = runner(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, stage.max_grad_norm)
        optimizer.step()
        schedule.step()
        steps.append(time.perf_counter() - step_started)
    ended = time.perf_counter()
    return {
        "tokens": tokens,
        "loop_seconds": ended - loop_started,
        "checkpoint_seconds": 0.0,
        "wall_seconds": ended - started,
        "step_seconds": steps,
        "last_loss": float(loss.detach()),
    }


def trainer_run(model, stage: Stage, loader_workers: int) -> dict:
    with tempfile.TemporaryDirectory() as output_dir, contextlib.redirect_stdout(io.StringIO()):
        started = time.perf_counter()
        result = train(model, stage, output_dir, progress=False, loader_workers=loader_workers)
        wall = time.perf_counter() - started
    ends = [0.0] + [record["seconds"] for record in result.history]
    loop = ends[-1]
    return {
        "tokens": result.tokens,
        "loop_seconds": loop,
        "checkpoint_seconds": result.seconds - loop,
        "wall_seconds": wall,
        "step_seconds": [b - a for a, b in zip(ends, ends[1:])],
        "last_loss": result.history[-1]["loss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--pack-length", type=int, default=256)
    parser.add_argument("--loader-workers", type=int, default=1)
    parser.add_argument("--compile", action="store_true", help="also the bare loop on torch.compile(model)")
    parser.add_argument("--mixture", type=Path, default=MIXTURE)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "trainer_overhead.json")
    args = parser.parse_args()

    from sail.manifest import atomic_write_json, environment

    started = time.perf_counter()
    base, processor, what = tiny_vlm()
    collate = sample_collate(processor, args.pack_length)
    batch_size = recipes.recipe("alignment", "tiny").micro_batch
    with tempfile.TemporaryDirectory() as work:
        samples, data = pretrain_samples(args.mixture, Path(work), args.steps * batch_size)

        def stage(steps: int) -> Stage:  # one epoch of `steps` batches: the same samples for every way
            return recipes.stage(
                "alignment", "tiny", data=samples[: steps * batch_size], collate=collate, max_steps=steps
            )

        ways = {
            "bare": lambda steps: bare_loop(copy.deepcopy(base), stage(steps)),
            "train()": lambda steps: trainer_run(copy.deepcopy(base), stage(steps), 0),
        }
        if args.loader_workers:
            ways[f"train(), {args.loader_workers} loader workers"] = lambda steps: trainer_run(
                copy.deepcopy(base), stage(steps), args.loader_workers
            )
        compiled = {"skipped": "not asked for (--compile): a cold compile takes minutes on two cores"}
        if args.compile:
            compiled = {"compile_steps_seconds": None, "error": None}
            # One compiled copy, its weights reset to the base before each run: a fresh copy could compile again.
            model = copy.deepcopy(base)
            runner = torch.compile(model)

            def compiled_run(steps: int) -> dict:
                model.load_state_dict(base.state_dict())
                return bare_loop(model, stage(steps), runner)

            try:  # every packed row count is a new shape until dynamo makes it dynamic: run a whole epoch
                probe = compiled_run(args.steps)
                compiled["compile_steps_seconds"] = [round(s, 2) for s in probe["step_seconds"]]
                ways["bare, torch.compile"] = compiled_run
            except Exception as error:  # report why, measure the rest
                compiled["error"] = f"{type(error).__name__}: {str(error)[:500]}"
            print(f"torch.compile: {compiled}")
        print(
            f"{len(samples)} samples from {data}; {what}; alignment stage, batch {batch_size}, "
            f"packed to {args.pack_length}, {args.steps} steps; {torch.get_num_threads()} threads"
        )
        for run in ways.values():  # warm-up round
            run(args.warmup_steps)
        runs: dict[str, list[dict]] = {name: [] for name in ways}
        for _ in range(args.repeats):
            for name, run in ways.items():
                runs[name].append(run(args.steps))

    if len({r["tokens"] for name in runs for r in runs[name]}) != 1:
        raise SystemExit(
            f"the ways processed different tokens: { {n: [r['tokens'] for r in rs] for n, rs in runs.items()} }"
        )
    tokens = runs["bare"][0]["tokens"]
    rows = []
    for name, results in runs.items():
        row = {"way": name, "tokens": tokens}
        for kind, seconds in (
            ("loop", lambda r: r["loop_seconds"]),
            ("+checkpoint", lambda r: r["loop_seconds"] + r["checkpoint_seconds"]),
            ("wall", lambda r: r["wall_seconds"]),
        ):
            ratios = [seconds(b) / seconds(r) for r, b in zip(results, runs["bare"])]  # bare: no checkpoint
            row[f"{kind}_tokens_per_second"] = round(tokens / statistics.median(seconds(r) for r in results), 1)
            row[f"{kind}_ratio_to_bare"] = round(statistics.median(ratios), 3)
        row["median_step_seconds"] = round(statistics.median(s for r in results for s in r["step_seconds"]), 4)
        row["slowest_step_seconds"] = round(statistics.median(max(r["step_seconds"]) for r in results), 4)
        row["checkpoint_seconds"] = round(statistics.median(r["checkpoint_seconds"] for r in results), 3)
        row["setup_seconds"] = round(
            statistics.median(r["wall_seconds"] - r["loop_seconds"] - r["checkpoint_seconds"] for r in results), 3
        )
        row["last_loss"] = results[-1]["last_loss"]
        row["runs"] = [{k: v for k, v in r.items() if k != "step_seconds"} for r in results]
        rows.append(row)

    print(
        f"\nmedian of {args.repeats} alternated rounds; "
        "ratios: each way's tokens/s over the bare loop's in the same round"
    )
    print(
        f"{'way':<30}{'loop tok/s':>11}{'ratio':>7}{'+ckpt':>7}{'wall tok/s':>11}{'ratio':>7}"
        f"{'step s':>8}{'max s':>7}{'ckpt s':>8}{'setup s':>8}{'last loss':>11}"
    )
    for row in rows:
        print(
            f"{row['way']:<30}{row['loop_tokens_per_second']:>11.0f}{row['loop_ratio_to_bare']:>7.3f}"
            f"{row['+checkpoint_ratio_to_bare']:>7.3f}{row['wall_tokens_per_second']:>11.0f}"
            f"{row['wall_ratio_to_bare']:>7.3f}{row['median_step_seconds']:>8.3f}{row['slowest_step_seconds']:>7.3f}"
            f"{row['checkpoint_seconds']:>8.3f}"
            f"{row['setup_seconds']:>8.3f}{row['last_loss']:>11.6f}"
        )
    trainer = next(row for row in rows if row["way"] == "train()")
    same_loss = all(abs(row["last_loss"] - rows[0]["last_loss"]) < 1e-5 for row in rows)
    print(f"every way ends on the bare loop's last loss (1e-5), i.e. did the same work: {same_loss}")
    print(
        f"\ngoal: train() >= {GOAL:.2f} of the bare loop's tokens/s: loop {trainer['loop_ratio_to_bare']:.3f}, "
        f"with its checkpoint {trainer['+checkpoint_ratio_to_bare']:.3f}, wall {trainer['wall_ratio_to_bare']:.3f}"
    )
    atomic_write_json(
        args.out,
        {
            "goal_ratio": GOAL,
            "goal_met_loop": trainer["loop_ratio_to_bare"] >= GOAL,
            "rows": rows,
            "compile": compiled,
            "same_last_loss": same_loss,
            "data": data,
            "model": what,
            "batch_size": batch_size,
            "pack_length": args.pack_length,
            "steps": args.steps,
            "repeats": args.repeats,
            "threads": torch.get_num_threads(),
            "seconds": round(time.perf_counter() - started, 1),
            **environment(ROOT),
        },
    )
    print(f"wrote {args.out} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
