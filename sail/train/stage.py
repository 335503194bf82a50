"""A training stage is a value: its data, what it trains, its optimiser and schedule, its budget.

SAIL-VL's stages differ only in these fields (alignment: projector; advance: vision + projector;
SFT and the captioner: everything), so one trainer runs them all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Stage:
    """One stage of training.

    `trainable` names submodules by dotted path ("" = the whole model); everything else is frozen.
    `collate` turns a list of dataset rows into a batch dict whose `num_tokens` entry (text and
    image tokens) is counted against `token_budget`. `batch_size` rows go through the model at
    once on each process; `gradient_accumulation` such micro-batches make one optimiser step.
    The run stops at whichever of `token_budget` and `max_steps` comes first; at least one must be
    set. `done_when(model, step)`, if given, is asked every `check_every` steps whether the model
    has learned what the stage is for; yes ends it early.
    The learning rate warms up and decays by a cosine over the budget, or over `schedule_steps`
    when set: a stage that usually ends early by `done_when` can keep the pace of a longer schedule
    while its cap bounds what a slow run costs.
    """

    name: str
    data: Sequence[Any]
    collate: Callable[[list[Any]], dict[str, Any]]
    trainable: tuple[str, ...]
    lr: float
    batch_size: int
    gradient_accumulation: int = 1
    token_budget: int | None = None
    max_steps: int | None = None
    warmup_fraction: float = 0.1
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lr_scale: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    done_when: Callable[[nn.Module, int], bool] | None = None
    check_every: int = 0
    schedule_steps: int | None = None

    def __post_init__(self) -> None:
        if self.token_budget is None and self.max_steps is None:
            raise ValueError(f"stage {self.name!r}: set token_budget or max_steps")
        if self.batch_size < 1 or self.gradient_accumulation < 1 or self.lr <= 0 or len(self.data) == 0:
            raise ValueError(
                f"stage {self.name!r}: needs batch_size >= 1, gradient_accumulation >= 1, lr > 0 and some data"
            )
        if not self.trainable:
            raise ValueError(f"stage {self.name!r}: trains nothing")
        if self.schedule_steps is not None and self.schedule_steps < 1:
            raise ValueError(f"stage {self.name!r}: schedule_steps must be >= 1")
        if (self.done_when is None) != (self.check_every < 1):
            raise ValueError(f"stage {self.name!r}: done_when and check_every >= 1 go together")


def set_trainable(model: nn.Module, paths: Sequence[str]) -> list[dict[str, object]]:
    """Freeze everything, unfreeze `paths`, and return one row per top-level module saying what trains."""
    model.requires_grad_(False)
    for path in paths:
        model.get_submodule(path).requires_grad_(True)
    rows = []
    for name, module in _top_level_modules(model):
        params = list(module.parameters())
        rows.append(
            {
                "module": name,
                "parameters": sum(p.numel() for p in params),
                "trainable": sum(p.numel() for p in params if p.requires_grad),
            }
        )
    return rows


def _top_level_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """InternVL nests its parts one level down (model.model.vision_tower, ...): show that level."""
    modules = []
    for name, child in model.named_children():
        grandchildren = list(child.named_children())
        if name == "model" and grandchildren:
            modules.extend((f"model.{sub}", module) for sub, module in grandchildren)
        else:
            modules.append((name, child))
    return modules


def parameter_groups(model: nn.Module, stage: Stage) -> list[dict[str, object]]:
    """Trainable parameters, one optimiser group per `lr_scale` prefix (e.g. a slower vision tower)."""
    groups: dict[float, list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        scale = next((s for prefix, s in stage.lr_scale.items() if name.startswith(prefix)), 1.0)
        groups.setdefault(scale, []).append(param)
    return [{"params": params, "lr": stage.lr * scale} for scale, params in groups.items()]


def warmup_cosine(total_steps: int, warmup_fraction: float, min_lr_ratio: float) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to `min_lr_ratio` of the peak."""
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
