"""One training loop for every stage, on accelerate (plain, DDP or DeepSpeed ZeRO).

Read it top to bottom: freeze what the stage does not train, build the optimiser and schedule,
resume from the newest checkpoint if there is one, then step through the data until the stage's
token or step budget is spent or its `done_when` check passes, checkpointing the full state
(weights, optimiser, scheduler, RNG, data position) so an interrupted run resumes exactly where
it stopped. A NaN or infinity stops the run before it reaches a checkpoint, and a broken
checkpoint is set aside for the one before it, so a diverged run never resumes into more NaN.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import socket
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import Accelerator, DeepSpeedPlugin
from accelerate.scheduler import AcceleratedScheduler
from accelerate.state import AcceleratorState
from accelerate.utils import InitProcessGroupKwargs
from torch import nn
from torch.utils.data import DataLoader

from sail import console
from sail.manifest import atomic_write_json, atomic_write_text
from sail.train.packing import IGNORE_INDEX
from sail.train.stage import Stage, parameter_groups, set_trainable, warmup_cosine

STATE_FILE = "trainer_state.json"
LOG_FILE = "log.jsonl"


class NonFiniteError(RuntimeError):
    """The loss, gradient norm or weights went NaN or infinite: training on would only save NaN."""


class CheckpointError(RuntimeError):
    """Checkpoints exist but none of them can be resumed from."""


@dataclass
class TrainState:
    """Where a run is: saved with every checkpoint, so resuming neither repeats nor skips data."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    tokens: int = 0
    planned_steps: int = 0
    done_early: bool = False


@dataclass
class TrainResult:
    stage: str
    steps: int
    tokens: int
    seconds: float
    trainable: list[dict]
    history: list[dict]
    resumed_from_step: int
    backend: str
    done_early: bool = False


def make_accelerator(
    deepspeed_config: str | Path | dict | None = None,
    *,
    batch_size: int = 1,
    gradient_accumulation: int = 1,
    max_grad_norm: float = 1.0,
    mixed_precision: str = "no",
    tracker: str | None = None,
    project_dir: str | Path | None = None,
) -> Accelerator:
    """A plain Accelerator, or one driving DeepSpeed from a JSON config (which also runs on CPU).

    The trainer steps its schedule once per optimiser step itself: accelerate's own stepping would
    advance it once per process. Each call starts from a fresh accelerate state (the process group
    is kept): a notebook trains several runs, and accelerate refuses to change precision or to take
    a second DeepSpeed plugin in a process that already made an Accelerator.
    """
    AcceleratorState._reset_state()
    common = dict(
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=gradient_accumulation,
        step_scheduler_with_optimizer=False,
        log_with=tracker,
        project_dir=project_dir,
    )
    if deepspeed_config is None:
        # Without CUDA, accelerate sets up a process group only when told it runs on CPU.
        distributed_cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
        return Accelerator(cpu=distributed_cpu, **common)
    on_cpu = not torch.cuda.is_available()
    _single_process_defaults()
    if on_cpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        import deepspeed.ops

        # Skip a ~60 s g++ build of the shared-memory collective; gloo does the job on one machine.
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    config = deepspeed_config if isinstance(deepspeed_config, dict) else json.loads(Path(deepspeed_config).read_text())
    world = int(os.environ["WORLD_SIZE"])
    filled = {
        "train_micro_batch_size_per_gpu": batch_size,
        "gradient_accumulation_steps": gradient_accumulation,
        "gradient_clipping": max_grad_norm,
        "train_batch_size": batch_size * gradient_accumulation * world,
    }
    config = {k: (filled.get(k, v) if v == "auto" else v) for k, v in config.items()}
    handlers = [InitProcessGroupKwargs(backend="gloo")] if on_cpu else []
    return Accelerator(deepspeed_plugin=DeepSpeedPlugin(hf_ds_config=config), kwargs_handlers=handlers, **common)


def _single_process_defaults() -> None:
    """DeepSpeed wants a process group even for one process; give it a local one."""
    if "WORLD_SIZE" in os.environ:
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


def format_trainable(rows: list[dict]) -> str:
    lines = [f"{'module':<32}{'parameters':>14}{'trainable':>14}"]
    lines += [f"{r['module']:<32}{r['parameters']:>14,}{r['trainable']:>14,}" for r in rows]
    lines.append(f"{'total':<32}{sum(r['parameters'] for r in rows):>14,}{sum(r['trainable'] for r in rows):>14,}")
    return "\n".join(lines)


class _StepLog:
    """One JSON line per optimiser step, appended by the main process as the run goes.

    A resumed run first drops the lines after its checkpoint's step (written before an interruption
    the checkpoint never saw), so every step appears exactly once.
    """

    def __init__(self, path: Path, accelerator: Accelerator, keep_through: int):
        self.path, self.main = path, accelerator.is_main_process
        if self.main:
            kept = [r for r in _read_jsonl(path) if r["step"] <= keep_through] if path.exists() else []
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
        accelerator.wait_for_everyone()

    def write(self, record: dict) -> None:
        if self.main:
            with self.path.open("a") as file:
                file.write(json.dumps(record) + "\n")


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_log(output_dir: str | Path) -> list[dict]:
    """Every optimiser step of the stage run in `output_dir` (loss, lr, grad norm, tokens, tokens/s)."""
    path = Path(output_dir) / LOG_FILE
    return _read_jsonl(path) if path.exists() else []


def checkpoints(output_dir: str | Path) -> list[Path]:
    """The kept checkpoints, oldest first (half-written `.partial` and set-aside `.bad` ones excluded)."""
    return sorted(Path(output_dir, "checkpoints").glob("step-???????"))


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    kept = checkpoints(output_dir)
    return kept[-1] if kept else None


def train(
    model: nn.Module,
    stage: Stage,
    output_dir: str | Path,
    *,
    deepspeed_config: str | Path | dict | None = None,
    checkpoint_every: int | None = None,
    keep_checkpoints: int = 1,
    mixed_precision: str = "no",
    gradient_checkpointing: bool = False,
    loader_workers: int = 0,
    tracker: str | None = None,
    progress: bool = True,
    log_every: int = 10,
) -> TrainResult:
    """Train `model` in place for one stage; checkpoints go to `output_dir/checkpoints/`, one line
    per optimiser step to `output_dir/log.jsonl` (and to `tracker`, e.g. "tensorboard", if given).

    Each optimiser step takes `stage.gradient_accumulation` micro-batches per process, collated by
    `loader_workers` DataLoader processes (0: here). Its loss is the mean over every supervised
    token of the whole step, however the tokens fall into micro-batches and processes.
    It resumes from the newest good checkpoint (see `_resume`). If the stage's budget changed since
    then, the schedule is re-planned to the new length with a warning, rather than refused: whoever
    raises `max_steps` wants the longer run, not the old cosine ending early and idling at its floor.
    A non-finite loss or gradient norm raises `NonFiniteError` before that step is saved.
    """
    output_dir = Path(output_dir)
    accelerator = make_accelerator(
        deepspeed_config,
        batch_size=stage.batch_size,
        gradient_accumulation=stage.gradient_accumulation,
        max_grad_norm=stage.max_grad_norm,
        mixed_precision=mixed_precision,
        tracker=tracker,
        project_dir=output_dir,
    )
    torch.manual_seed(stage.seed)
    rows = set_trainable(model, stage.trainable)
    if progress:  # a sweep of quiet runs shows its stage once, not per run
        accelerator.print(
            f"stage {stage.name!r} trains {', '.join(stage.trainable) or 'the whole model'}:\n{format_trainable(rows)}"
        )
    if gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})

    order = _EpochOrder(
        len(stage.data), stage.batch_size, stage.seed, accelerator.num_processes, accelerator.process_index
    )
    first_batch = stage.collate([stage.data[i] for i in order.indices(0, 0)])
    tokens_per_step = first_batch["num_tokens"] * accelerator.num_processes * stage.gradient_accumulation
    planned_steps = _planned_steps(stage, tokens_per_step)
    factor = warmup_cosine(planned_steps, stage.warmup_fraction, stage.min_lr_ratio)

    optimizer = torch.optim.AdamW(parameter_groups(model, stage), weight_decay=stage.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    model, optimizer, schedule = accelerator.prepare(model, optimizer, schedule)
    state, checkpoint = _resume(accelerator, model, output_dir)
    resumed_from = state.step
    origin = f"stage {stage.name!r}, " + (f"resumed from {checkpoint}" if checkpoint else "fresh start")
    if checkpoint:
        first_batch = None  # a checkpoint is always past the first batch
        accelerator.print(f"resumed from {checkpoint} at step {state.step} ({state.tokens:,} tokens)")
    if state.planned_steps not in (0, planned_steps):
        warnings.warn(
            f"{origin}: its budget changed, so the schedule is re-planned from {state.planned_steps} "
            f"to {planned_steps} steps, continuing at step {state.step}",
            stacklevel=2,
        )
        _follow_schedule(schedule, factor)
    state.planned_steps = planned_steps
    log = _StepLog(output_dir / LOG_FILE, accelerator, keep_through=state.step)
    if tracker:
        accelerator.init_trackers(stage.name, config={"lr": stage.lr, "batch_size": stage.batch_size})

    model.train()
    bar = console.progress(
        state.planned_steps,
        initial=state.step,
        desc=stage.name,
        disable=not progress or not accelerator.is_main_process,
    )
    batches = _micro_batches(stage, order, state.epoch, state.batch_in_epoch, loader_workers, first_batch)
    started = time.perf_counter()
    while not _spent(stage, state):
        step_started = time.perf_counter()
        window = [next(batches) for _ in range(stage.gradient_accumulation)]
        weights = _token_weights(accelerator, [batch for batch, _ in window])
        step_loss, step_tokens = 0.0, 0
        for (batch, position), weight in zip(window, weights):
            step_tokens += batch.pop("num_tokens")
            batch = {k: v.to(accelerator.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            with accelerator.accumulate(model):  # syncs gradients (and lets DeepSpeed step) on the last one
                loss = model(**batch).loss
                # accelerate (or DeepSpeed) divides by the accumulation; the weight makes it a token mean
                accelerator.backward(loss * weight * stage.gradient_accumulation)
            step_loss += float(loss.detach()) * weight
            state.epoch, state.batch_in_epoch = position
        step_loss = float(accelerator.reduce(torch.tensor(step_loss, device=accelerator.device), reduction="mean"))
        gradient_norm = _clip_gradients(accelerator, model, stage.max_grad_norm)
        _require_finite(origin, state.step + 1, loss=step_loss, gradient_norm=gradient_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()

        state.step += 1
        step_tokens = int(accelerator.reduce(torch.tensor(step_tokens, device=accelerator.device), reduction="sum"))
        state.tokens += step_tokens
        seconds = time.perf_counter() - step_started
        record = {
            "step": state.step,
            "loss": step_loss,
            "lr": schedule.get_last_lr()[0],
            "grad_norm": gradient_norm,
            "tokens": state.tokens,
            "tokens_per_second": round(step_tokens / seconds, 1),
            "seconds": round(time.perf_counter() - started, 3),
        }
        log.write(record)
        if tracker:
            accelerator.log({k: v for k, v in record.items() if k != "step" and v is not None}, step=state.step)
        bar.update(1)
        if state.step % log_every == 0:
            bar.set_postfix(loss=f"{step_loss:.3f}")
        if stage.done_when and state.step % stage.check_every == 0:
            model.eval()
            state.done_early = bool(stage.done_when(accelerator.unwrap_model(model), state.step))
            model.train()
        if checkpoint_every and state.step % checkpoint_every == 0:
            _save_checkpoint(accelerator, model, output_dir, state, keep_checkpoints, origin)
    bar.close()
    batches.close()
    _save_checkpoint(accelerator, model, output_dir, state, keep_checkpoints, origin)
    if tracker:
        accelerator.end_training()
    return TrainResult(
        stage=stage.name,
        steps=state.step,
        tokens=state.tokens,
        seconds=time.perf_counter() - started,
        trainable=rows,
        history=read_log(output_dir),
        resumed_from_step=resumed_from,
        backend=f"{accelerator.distributed_type.value} on {accelerator.device}",
        done_early=state.done_early,
    )


def _micro_batches(
    stage: Stage, order: _EpochOrder, epoch: int, position: int, workers: int, first: dict | None
) -> Iterator[tuple[dict, tuple[int, int]]]:
    """Collated micro-batches from (`epoch`, `position`) on, each with the position after it.

    A DataLoader with `workers` processes collates (decodes and tokenises) ahead of the training
    loop; its batches are the seeded order's, so a resumed run sees exactly what it would have.
    `first`, already collated to plan the schedule, is not collated twice.
    """
    while True:
        sampler = [order.indices(epoch, b) for b in range(position, order.batches_per_epoch)]
        if first is not None:
            sampler, first_batch = sampler[1:], first
            position, first = position + 1, None
            yield first_batch, _after(order, epoch, position)
        # Its own generator: a loader otherwise draws its workers' seed from the global stream, and
        # whatever the caller builds after training (a fresh projector) would come out different.
        loader = DataLoader(
            stage.data,
            batch_sampler=sampler,
            collate_fn=stage.collate,
            num_workers=workers,
            generator=torch.Generator().manual_seed(stage.seed * 100_003 + epoch),
        )
        for batch in loader:
            position += 1
            yield batch, _after(order, epoch, position)
        epoch, position = epoch + 1, 0


def _after(order: _EpochOrder, epoch: int, position: int) -> tuple[int, int]:
    """(epoch, batch) of the next micro-batch, rolling over at the end of an epoch."""
    return (epoch + 1, 0) if position == order.batches_per_epoch else (epoch, position)


def _token_weights(accelerator: Accelerator, window: list[dict]) -> list[float]:
    """Each micro-batch's share of the step's supervised tokens, over all processes.

    A micro-batch's loss is its own token mean; weighting it by tokens / (all tokens / processes)
    makes the sum over micro-batches, averaged over processes as DDP averages gradients, the mean
    over every supervised token of the step (labels are shifted by one, as the model's loss does).
    A batch without `labels` (a probe whose loss is a mean over rows) is weighted by its rows.
    """
    supervised = [_supervised(batch) for batch in window]
    total = int(accelerator.reduce(torch.tensor(sum(supervised), device=accelerator.device), reduction="sum"))
    if total == 0:
        raise ValueError("an optimiser step has no supervised token: every label is masked")
    return [n * accelerator.num_processes / total for n in supervised]


def _supervised(batch: dict) -> int:
    if "labels" in batch:
        return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    return len(next(v for v in batch.values() if torch.is_tensor(v)))


class _EpochOrder:
    """A fresh seeded permutation per epoch; each process takes its slice of every global batch."""

    def __init__(self, size: int, batch_size: int, seed: int, processes: int, rank: int):
        self.size, self.batch_size, self.seed, self.processes, self.rank = size, batch_size, seed, processes, rank
        self.batches_per_epoch = max(1, size // (batch_size * processes))

    def indices(self, epoch: int, batch: int) -> list[int]:
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
        global_batch = self.batch_size * self.processes
        if self.size < global_batch:  # fewer rows than one global batch: cycle through them
            order = order.repeat(math.ceil(global_batch / self.size))
        chosen = order[batch * global_batch : (batch + 1) * global_batch]
        return chosen[self.rank * self.batch_size : (self.rank + 1) * self.batch_size].tolist()


def _planned_steps(stage: Stage, tokens_per_step: int) -> int:
    """The schedule's length: `schedule_steps`, else the step budget or the token budget at the
    first batch's token rate."""
    if stage.schedule_steps is not None:
        return stage.schedule_steps
    by_tokens = math.ceil(stage.token_budget / max(1, tokens_per_step)) if stage.token_budget else None
    return min(s for s in (stage.max_steps, by_tokens) if s is not None)


def _spent(stage: Stage, state: TrainState) -> bool:
    return (
        state.done_early
        or (stage.max_steps is not None and state.step >= stage.max_steps)
        or (stage.token_budget is not None and state.tokens >= stage.token_budget)
    )


def _resume(accelerator: Accelerator, model: nn.Module, output_dir: Path) -> tuple[TrainState, Path | None]:
    """Load the newest checkpoint whose files load and whose weights are all finite.

    Newer broken ones (a truncated file, NaN weights) are renamed `<name>.bad` with a warning naming
    each and why: kept for inspection, out of the way of resuming and of rotation. If every checkpoint
    is broken this raises instead of starting afresh, which would silently throw the run's progress
    away and then rotate the broken checkpoints, the only evidence, out of existence. Under DeepSpeed
    the check sees what its loader raises and this process's weights (all of them below ZeRO-3).
    """
    broken: list[tuple[Path, str]] = []
    for checkpoint in reversed(checkpoints(output_dir)):
        try:
            state = TrainState(**json.loads((checkpoint / STATE_FILE).read_text()))
            accelerator.load_state(str(checkpoint))
            if (name := _first_nonfinite(accelerator.unwrap_model(model))) is not None:
                raise ValueError(f"non-finite values in {name}")
        except Exception as error:  # whatever makes it unloadable, the checkpoint before may still be good
            broken.append((checkpoint, f"{type(error).__name__}: {error}"))
            continue
        accelerator.wait_for_everyone()
        for path, reason in broken:
            warnings.warn(
                f"checkpoint {path} is unusable ({reason}); set aside as {path.name}.bad, resuming from {checkpoint}",
                stacklevel=3,
            )
            if accelerator.is_main_process:
                shutil.rmtree(path.with_name(path.name + ".bad"), ignore_errors=True)
                path.rename(path.with_name(path.name + ".bad"))
        accelerator.wait_for_everyone()
        return state, checkpoint
    if broken:
        raise CheckpointError(
            "no checkpoint can be resumed from; move them aside to restart the stage:\n"
            + "\n".join(f"  {path}: {reason}" for path, reason in broken)
        )
    return TrainState(), None


def _follow_schedule(schedule: AcceleratedScheduler, factor: Callable[[int], float]) -> None:
    """Give the restored optimiser the rate `factor` sets at the restored step, as if it had always followed it."""
    lambda_lr = schedule.scheduler
    for group, base in zip(lambda_lr.optimizer.param_groups, lambda_lr.base_lrs):
        group["lr"] = base * factor(lambda_lr.last_epoch)
    lambda_lr._last_lr = [group["lr"] for group in lambda_lr.optimizer.param_groups]


def _clip_gradients(accelerator: Accelerator, model: nn.Module, max_norm: float) -> float | None:
    """Clip to `max_norm`; return the gradient norm, or None where it cannot show divergence.

    DeepSpeed clipped inside `backward` (skipping a non-finite step), so its engine's norm is read.
    None with clipping off (no norm is computed; a NaN gradient then shows as a NaN loss one step
    later) and under fp16, where an infinite norm is a routine step skipped by the loss scaler.
    """
    if accelerator.state.deepspeed_plugin is not None:
        norm = model.get_global_grad_norm()
    elif max_norm:
        norm = accelerator.clip_grad_norm_(model.parameters(), max_norm)
    else:
        return None
    return None if norm is None or accelerator.mixed_precision == "fp16" else float(norm)


def _require_finite(origin: str, step: int, **values: float | None) -> None:
    """Stop at the first NaN or infinity: the optimiser would spread it into every weight."""
    bad = [
        f"{name.replace('_', ' ')} {value}"
        for name, value in values.items()
        if value is not None and not math.isfinite(value)
    ]
    if bad:
        raise NonFiniteError(f"{origin}: non-finite {' and '.join(bad)} at step {step}; stopped without saving it")


def _first_nonfinite(model: nn.Module) -> str | None:
    """The name of the first weight or buffer holding a NaN or infinity, if any."""
    return next(
        (
            name
            for name, tensor in model.state_dict().items()
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
        ),
        None,
    )


class _TiedHeadNotice(logging.Filter):
    """Drops accelerate's notice that a tied `lm_head` was saved once, with the embeddings, at any
    depth (`lm_head.weight`, or `language.lm_head.weight` inside the LM foundation's slot reader):
    loading ties it again (the resume tests compare the weights). Any other shared tensor still warns."""

    TIED_HEAD = re.compile(r"Removed shared tensor \{'(?:[\w.]+\.)?lm_head\.weight'\}")

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.TIED_HEAD.search(record.getMessage())


logging.getLogger("accelerate.utils.other").addFilter(_TiedHeadNotice())
# DeepSpeed (imported by accelerate) logs a warning whenever it has to guess the accelerator; on a
# machine without CUDA the answer is known.
if not torch.cuda.is_available():
    os.environ.setdefault("DS_ACCELERATOR", "cpu")


def _save_checkpoint(
    accelerator: Accelerator, model: nn.Module, output_dir: Path, state: TrainState, keep: int, origin: str
) -> None:
    """Write into a temporary folder and rename it, so a crash never leaves a half checkpoint; refuse NaN weights."""
    final = output_dir / "checkpoints" / f"step-{state.step:07d}"
    if final.exists():
        return
    if (name := _first_nonfinite(accelerator.unwrap_model(model))) is not None:
        raise NonFiniteError(f"{origin}: non-finite {name} at step {state.step}; not saving {final}")
    partial = final.with_name(final.name + ".partial")
    if accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial), safe_serialization=True)
    if accelerator.is_main_process:
        atomic_write_json(partial / STATE_FILE, asdict(state))
        partial.rename(final)
        for old in checkpoints(output_dir)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


@torch.no_grad()
def validation_loss(model, collate: Callable[[list], dict], rows: Sequence, batch_size: int = 32) -> float:
    """Mean loss per supervised (assistant) token over `rows`, in eval mode."""
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    try:
        for start in range(0, len(rows), batch_size):
            batch = collate(list(rows[start : start + batch_size]))
            batch.pop("num_tokens", None)
            batch = {k: v.to(model.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(model(**batch).loss) * n
            tokens += n
    finally:
        model.train(was_training)
    return total / tokens if tokens else math.nan
