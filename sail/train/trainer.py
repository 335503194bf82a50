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
import shutil
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator, DeepSpeedPlugin
from accelerate.scheduler import AcceleratedScheduler
from accelerate.utils import InitProcessGroupKwargs
from torch import nn

from sail import console
from sail.manifest import atomic_write_json
from sail.train.stage import Stage, parameter_groups, set_trainable, warmup_cosine

STATE_FILE = "trainer_state.json"


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
    history: list[dict] = field(default_factory=list)


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
    max_grad_norm: float = 1.0,
    mixed_precision: str = "no",
) -> Accelerator:
    """A plain Accelerator, or one driving DeepSpeed from a JSON config (which also runs on CPU)."""
    if deepspeed_config is None:
        return Accelerator(mixed_precision=mixed_precision)
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
        "gradient_accumulation_steps": 1,
        "gradient_clipping": max_grad_norm,
        "train_batch_size": batch_size * world,
    }
    config = {k: (filled.get(k, v) if v == "auto" else v) for k, v in config.items()}
    handlers = [InitProcessGroupKwargs(backend="gloo")] if on_cpu else []
    return Accelerator(
        deepspeed_plugin=DeepSpeedPlugin(hf_ds_config=config), kwargs_handlers=handlers, mixed_precision=mixed_precision
    )


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
    progress: bool = True,
    log_every: int = 10,
) -> TrainResult:
    """Train `model` in place for one stage; checkpoints go to `output_dir/checkpoints/`.

    It resumes from the newest good checkpoint (see `_resume`). If the stage's budget changed since
    then, the schedule is re-planned to the new length with a warning, rather than refused: whoever
    raises `max_steps` wants the longer run, not the old cosine ending early and idling at its floor.
    A non-finite loss or gradient norm raises `NonFiniteError` before that step is saved.
    """
    output_dir = Path(output_dir)
    accelerator = make_accelerator(
        deepspeed_config,
        batch_size=stage.batch_size,
        max_grad_norm=stage.max_grad_norm,
        mixed_precision=mixed_precision,
    )
    torch.manual_seed(stage.seed)
    rows = set_trainable(model, stage.trainable)
    accelerator.print(
        f"stage {stage.name!r} trains {', '.join(stage.trainable) or 'the whole model'}:\n{format_trainable(rows)}"
    )

    order = _EpochOrder(
        len(stage.data), stage.batch_size, stage.seed, accelerator.num_processes, accelerator.process_index
    )
    first_batch = stage.collate([stage.data[i] for i in order.indices(0, 0)])
    planned_steps = _planned_steps(stage, first_batch["num_tokens"] * accelerator.num_processes)
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

    model.train()
    bar = console.progress(
        state.planned_steps,
        initial=state.step,
        desc=stage.name,
        disable=not progress or not accelerator.is_main_process,
    )
    started = time.perf_counter()
    while not _spent(stage, state):
        batch = (
            first_batch
            if first_batch is not None
            else stage.collate([stage.data[i] for i in order.indices(state.epoch, state.batch_in_epoch)])
        )
        first_batch = None
        tokens = batch.pop("num_tokens")
        batch = {k: v.to(accelerator.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        loss = model(**batch).loss
        accelerator.backward(loss)  # under DeepSpeed this also clips and steps
        loss_value = float(loss.detach())
        _require_finite(
            origin,
            state.step + 1,
            loss=loss_value,
            gradient_norm=_clip_gradients(accelerator, model, stage.max_grad_norm),
        )
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()

        state.step += 1
        state.tokens += int(accelerator.reduce(torch.tensor(tokens, device=accelerator.device), reduction="sum"))
        state.batch_in_epoch += 1
        if state.batch_in_epoch == order.batches_per_epoch:
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
        state.history.append(
            {
                "step": state.step,
                "loss": loss_value,
                "tokens": state.tokens,
                "lr": schedule.get_last_lr()[0],
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
        bar.update(1)
        if state.step % log_every == 0:
            bar.set_postfix(loss=f"{state.history[-1]['loss']:.3f}")
        if stage.done_when and state.step % stage.check_every == 0:
            model.eval()
            state.done_early = bool(stage.done_when(accelerator.unwrap_model(model), state.step))
            model.train()
        if checkpoint_every and state.step % checkpoint_every == 0:
            _save_checkpoint(accelerator, model, output_dir, state, keep_checkpoints, origin)
    bar.close()
    _save_checkpoint(accelerator, model, output_dir, state, keep_checkpoints, origin)
    return TrainResult(
        stage=stage.name,
        steps=state.step,
        tokens=state.tokens,
        seconds=time.perf_counter() - started,
        trainable=rows,
        history=state.history,
        resumed_from_step=resumed_from,
        backend=f"{accelerator.distributed_type.value} on {accelerator.device}",
        done_early=state.done_early,
    )


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
    """Drops accelerate's notice that a tied `lm_head` was saved once, with the embeddings: loading
    ties it again (the resume tests compare the weights). Any other shared tensor still warns."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Removed shared tensor {'lm_head.weight'}" not in record.getMessage()


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
