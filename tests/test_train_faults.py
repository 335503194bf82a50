"""The trainer's faults: NaN stops it unsaved, broken checkpoints are set aside, a changed budget re-plans."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_train import lm_stage
from torch.optim.optimizer import register_optimizer_step_pre_hook

from sail.foundations.language import build_language_model
from sail.train import warmup_cosine
from sail.train.trainer import CheckpointError, NonFiniteError, train


def run(tmp_path, tokenizer, geometry, stage, model=None, **options):
    torch.manual_seed(0)
    model = model or build_language_model(geometry, tokenizer)
    return train(model, stage, tmp_path, progress=False, **options)


def stopped_after_step_3(tmp_path, tokenizer, geometry, records) -> Path:
    """A six-step run whose process died after its step-3 checkpoint."""
    run(tmp_path, tokenizer, geometry, lm_stage(tokenizer, records), checkpoint_every=3, keep_checkpoints=2)
    shutil.rmtree(tmp_path / "checkpoints" / "step-0000006")
    return tmp_path / "checkpoints" / "step-0000003"


def names(tmp_path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "checkpoints").iterdir())


def nan_weights(checkpoint: Path) -> None:
    tensors = load_file(checkpoint / "model.safetensors")
    name = next(iter(tensors))
    tensors[name][0] = float("nan")
    save_file(tensors, checkpoint / "model.safetensors", metadata={"format": "pt"})


def truncate_weights(checkpoint: Path) -> None:
    path = checkpoint / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("poisoned", ["loss", "gradient"])
def test_nan_during_training_stops_at_its_step_and_saves_nothing(poisoned, tmp_path, tokenizer, geometry, records):
    torch.manual_seed(0)
    model = build_language_model(geometry, tokenizer)
    forwards = {"n": 0}

    def count(module, args, output):
        forwards["n"] += 1
        if poisoned == "loss" and forwards["n"] == 3:
            output.loss = output.loss * float("nan")
        return output

    model.register_forward_hook(count)
    next(model.parameters()).register_hook(lambda grad: grad * float("nan") if forwards["n"] == 3 else grad)
    if poisoned == "loss":
        message = r"stage 'lm', fresh start: non-finite loss nan and gradient norm nan at step 3"
    else:
        message = r"stage 'lm', fresh start: non-finite gradient norm nan at step 3"
    with pytest.raises(NonFiniteError, match=message):
        run(tmp_path, tokenizer, geometry, lm_stage(tokenizer, records), model, checkpoint_every=2, keep_checkpoints=5)
    assert names(tmp_path) == ["step-0000002"]


def test_checkpoint_with_nan_weights_is_refused_not_trained_on(tmp_path, tokenizer, geometry, records):
    nan_weights(stopped_after_step_3(tmp_path, tokenizer, geometry, records))
    with pytest.raises(CheckpointError, match=r"step-0000003: ValueError: non-finite values in "):
        run(tmp_path, tokenizer, geometry, lm_stage(tokenizer, records))
    assert names(tmp_path) == ["step-0000003"]


@pytest.mark.parametrize(
    "checkpoint_every, message",
    [
        (None, r"resumed from \S+step-0000003: non-finite loss nan and gradient norm nan at step 5"),
        (1, r"resumed from \S+step-0000003: non-finite \S+ at step 4; not saving \S+step-0000004"),
    ],
)
def test_nan_optimiser_state_stops_the_resumed_run_naming_its_checkpoint(
    checkpoint_every, message, tmp_path, tokenizer, geometry, records
):
    path = stopped_after_step_3(tmp_path, tokenizer, geometry, records) / "optimizer.bin"
    optimiser = torch.load(path, weights_only=True)
    for state in optimiser["state"].values():
        state["exp_avg"].fill_(float("nan"))
    torch.save(optimiser, path)
    with pytest.raises(NonFiniteError, match=message):
        run(tmp_path, tokenizer, geometry, lm_stage(tokenizer, records), checkpoint_every=checkpoint_every)
    assert names(tmp_path) == ["step-0000003"]


def test_truncated_newest_checkpoint_falls_back_to_the_one_before(tmp_path, tokenizer, geometry, records):
    stage = lm_stage(tokenizer, records)
    first = run(tmp_path, tokenizer, geometry, stage, checkpoint_every=3, keep_checkpoints=2)
    truncate_weights(tmp_path / "checkpoints" / "step-0000006")
    with pytest.warns(
        UserWarning,
        match=r"step-0000006 is unusable \(SafetensorError: .*\); set aside as "
        r"step-0000006\.bad, resuming from \S+step-0000003",
    ):
        second = run(tmp_path, tokenizer, geometry, stage, checkpoint_every=3, keep_checkpoints=2)
    assert second.resumed_from_step == 3 and second.steps == 6
    assert [h["loss"] for h in second.history] == [h["loss"] for h in first.history]
    assert names(tmp_path) == ["step-0000003", "step-0000006", "step-0000006.bad"]
    assert all(
        torch.isfinite(t).all() for t in load_file(tmp_path / "checkpoints/step-0000006/model.safetensors").values()
    )


def test_no_good_checkpoint_is_an_error_not_a_fresh_start(tmp_path, tokenizer, geometry, records):
    stage = lm_stage(tokenizer, records)
    run(tmp_path, tokenizer, geometry, stage, checkpoint_every=3, keep_checkpoints=2)
    truncate_weights(tmp_path / "checkpoints" / "step-0000006")
    nan_weights(tmp_path / "checkpoints" / "step-0000003")
    with pytest.raises(
        CheckpointError,
        match=r"(?s)no checkpoint can be resumed from.*step-0000006: SafetensorError"
        r".*step-0000003: ValueError: non-finite values in ",
    ):
        run(tmp_path, tokenizer, geometry, stage, checkpoint_every=3, keep_checkpoints=2)
    assert names(tmp_path) == ["step-0000003", "step-0000006"]


def test_raised_max_steps_on_resume_replans_the_schedule(tmp_path, tokenizer, geometry, records):
    run(tmp_path, tokenizer, geometry, lm_stage(tokenizer, records, max_steps=6))
    used = []
    hook = register_optimizer_step_pre_hook(
        lambda optimiser, args, kwargs: used.append(optimiser.param_groups[0]["lr"])
    )
    try:
        with pytest.warns(UserWarning, match=r"re-planned from 6 to 10 steps, continuing at step 6"):
            result = run(tmp_path, tokenizer, geometry, lm_stage(tokenizer, records, max_steps=10))
    finally:
        hook.remove()
    factor, peak = warmup_cosine(10, 0.1, 0.1), 3e-3
    assert result.resumed_from_step == 6 and result.steps == 10
    assert used[0] == pytest.approx(
        peak * factor(6)
    )  # the first resumed step: 0.472 of the peak, not the old floor 0.1
    assert used == pytest.approx([peak * factor(step) for step in range(6, 10)])
    assert [h["lr"] for h in result.history[6:]] == pytest.approx([peak * factor(step) for step in range(7, 11)])
    assert names(tmp_path) == ["step-0000010"]
