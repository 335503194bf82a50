"""SAIL-VL's training steps as values: what each trains, how fast, on how big a batch, for how long.

The paper publishes its stages and their data budgets (Pretrain-Alignment 131B tokens, projector
only; Pretrain-Advance 524B tokens, vision encoder and projector, the LLM frozen; SFT-Knowledge
21M, SFT-Instruction 12M and SFT-Preference 3.5M samples) but not its optimiser settings. Where
SAIL's are unpublished, `full` takes InternVL2.5-2B's published scripts (stage 1: lr 2e-4, MLP
only; stage 2: lr 4e-5, everything; weight decay 0.01; global batch 512 packed sequences of
16,384 tokens) and every such value says so in `source`. `tiny` is ours: chosen so each stage
shows its effect on two CPU cores in seconds.

Nobody spells a trainable module path by hand: they come from `sail.model.build.MODULES`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sail.caption import captioner_trainable
from sail.model.build import MODULES
from sail.train.stage import Stage

VISION, PROJECTOR = MODULES["vision"], MODULES["projector"]
EVERYTHING = ("",)

STEPS = ("captioner", "alignment", "advance", "sft-knowledge", "sft-instruction", "sft-preference")
PROFILES = ("tiny", "small", "full")


@dataclass(frozen=True)
class StageRecipe:
    """A `Stage` without its data: the settings a profile fixes for one SAIL step.

    `global_batch` counts sequences per optimiser step over all processes; `micro_batch` is what
    one process holds at once, so gradient accumulation is global / (micro × processes). The
    budget is `token_budget` (pretraining: the paper counts tokens) or `samples` (SFT: the paper
    counts samples), or `max_steps` where a notebook sizes the run itself.
    """

    step: str
    trainable: tuple[str, ...]
    lr: float
    global_batch: int
    micro_batch: int
    warmup_fraction: float
    weight_decay: float
    token_budget: int | None = None
    samples: int | None = None
    max_steps: int | None = None
    lr_scale: tuple[tuple[str, float], ...] = ()
    source: str = ""

    def accumulation(self, processes: int = 1) -> int:
        """Micro-batches per optimiser step on each of `processes`; refuses a batch that does not divide."""
        per_step = self.micro_batch * processes
        if self.global_batch % per_step:
            raise ValueError(
                f"{self.step}: global batch {self.global_batch} is not a multiple of micro batch "
                f"{self.micro_batch} × {processes} processes"
            )
        return self.global_batch // per_step

    def steps(self) -> int | None:
        """Optimiser steps the sample budget buys (None when the budget is in tokens or steps)."""
        return math.ceil(self.samples / self.global_batch) if self.samples else self.max_steps


# SFT samples per stage in the paper (SFT-Knowledge 21M, SFT-Instruction 12M, SFT-Preference 3.5M):
# the `full` budgets, and the shares in which smaller runs split theirs over the curriculum.
PAPER_SFT_SAMPLES = {"knowledge": 21e6, "instruction": 12e6, "preference": 3.5e6}

_INTERNVL25_STAGE1 = "InternVL2.5-2B stage-1 script (SAIL's unpublished): lr 2e-4, wd 0.01, batch 512"
_INTERNVL25_STAGE2 = "InternVL2.5-2B stage-2 script (SAIL's unpublished): lr 4e-5, wd 0.01, warm-up 3%, batch 512"


def _full(micro_batch: int, scale: float) -> dict[str, StageRecipe]:
    """The paper's stages at `scale` of its budgets (1: `full`), InternVL2.5's optimiser settings."""
    pretrain = dict(global_batch=512, micro_batch=micro_batch, warmup_fraction=0.03, weight_decay=0.01)
    sft = dict(pretrain, trainable=EVERYTHING, lr=4e-5, source="budget: SAIL-VL paper; " + _INTERNVL25_STAGE2)
    return {
        "captioner": StageRecipe(
            "captioner",
            EVERYTHING,
            lr=4e-5,
            samples=round(1_000_000 * scale),
            source="SAIL-Captioner fine-tunes InternVL2-8B (budget unpublished, assumed 1M); " + _INTERNVL25_STAGE2,
            **pretrain,
        ),
        "alignment": StageRecipe(
            "alignment",
            (PROJECTOR,),
            lr=2e-4,
            token_budget=round(131e9 * scale),
            source="budget: SAIL-VL paper (131B tokens); " + _INTERNVL25_STAGE1,
            **pretrain,
        ),
        "advance": StageRecipe(
            "advance",
            (VISION, PROJECTOR),
            lr=4e-5,
            token_budget=round(524e9 * scale),
            source="budget: SAIL-VL paper (524B tokens); " + _INTERNVL25_STAGE2,
            **pretrain,
        ),
        **{
            f"sft-{tier}": StageRecipe(f"sft-{tier}", samples=round(samples * scale), **sft)
            for tier, samples in PAPER_SFT_SAMPLES.items()
        },
    }


def _tiny() -> dict[str, StageRecipe]:
    """Ours, for two CPU cores. Pretraining moves the projector alone at a high rate, in batches of
    16 (on the tiny model two steps of 16 teach more than one of 32, for the same compute); the
    unlocked tiny ViT takes a third of the projector's rate so its first large gradients do not
    erase what it already sees."""
    common = dict(global_batch=32, micro_batch=32, warmup_fraction=0.1, weight_decay=0.0, source="ours (tiny)")
    pretrain = dict(common, global_batch=16, micro_batch=16, lr=1e-2, max_steps=128)
    # Tiny SFT: projector + LM at 1e-4, chosen on the dev split by what the model keeps seeing
    # (bench/results/sft_recipe.json: notebook 07's largest curriculum from notebook 05's model,
    # scored on 96 validation questions per benchmark, seeds 0 and 1; image gain = gold-answer
    # loss with another image minus with its own). The rule: most benchmarks above chance on the
    # worse seed, then the best mean score. At 1e-4, 4 of 9 on both seeds, mean score 40.3, image
    # gain 0.31 (WorldVQA 0.64, CountVQA 0.68); at 3e-5 4 and 38.8 (gain 0.36); the projector
    # alone at 1e-3 4 and 37.0 (gain 0.37); at 3e-4, the recipe before, 2 on one seed, CountVQA 38.0
    # against 79.7 (gain 0.20); at 3e-3 none (0.03). Without SFT the start answers 2 or 3 above
    # chance: SFT teaches the answer formats (POPE 66.2 -> 85.3), and a high rate lowers the loss
    # sooner by answering from the question alone, erasing what pretraining taught.
    sft = dict(common, trainable=captioner_trainable(False), global_batch=16, micro_batch=16, lr=1e-4, max_steps=100)
    return {
        "captioner": StageRecipe("captioner", captioner_trainable(False), lr=1e-3, max_steps=400, **common),
        "alignment": StageRecipe("alignment", (PROJECTOR,), **pretrain),
        "advance": StageRecipe("advance", (VISION, PROJECTOR), lr_scale=((VISION, 0.3),), **pretrain),
        "sft-knowledge": StageRecipe("sft-knowledge", **sft),
        "sft-instruction": StageRecipe("sft-instruction", **sft),
        "sft-preference": StageRecipe("sft-preference", **sft),
    }


RECIPES: dict[str, dict[str, StageRecipe]] = {
    "tiny": _tiny(),
    # One node, ~1/500 of the paper's budgets: enough to see every stage move on real checkpoints.
    "small": _full(micro_batch=4, scale=1 / 500),
    "full": _full(micro_batch=1, scale=1.0),
}


def recipe(step: str, profile: str) -> StageRecipe:
    """The settings of one SAIL step for a profile; unknown names are a loud error."""
    if profile not in RECIPES:
        raise ValueError(f"unknown profile {profile!r}: expected one of {', '.join(PROFILES)}")
    if step not in RECIPES[profile]:
        raise ValueError(f"unknown SAIL step {step!r}: expected one of {', '.join(STEPS)}")
    return RECIPES[profile][step]


def batch_overrides(global_batch: int = 0, micro_batch: int = 0) -> dict[str, int]:
    """A notebook's batch parameters as `stage` overrides; 0 keeps the recipe's value."""
    return {name: value for name, value in (("global_batch", global_batch), ("micro_batch", micro_batch)) if value}


def stage(
    step: str,
    profile: str,
    *,
    data: Sequence[Any],
    collate: Callable[[list[Any]], dict[str, Any]],
    processes: int = 1,
    seed: int = 0,
    **overrides: Any,
) -> Stage:
    """The `Stage` that runs one SAIL step of a profile on `data`.

    `overrides` replace recipe fields first (a notebook's sweep sets `max_steps` or `lr`), so a
    changed setting is still checked (batch divisibility) and logged as the stage's own. A notebook
    that sets `max_steps` sizes the run itself: the recipe's sample or token budget then gives way.
    """
    if "max_steps" in overrides:
        overrides = {"samples": None, "token_budget": None, **overrides}
    settings = replace(recipe(step, profile), **overrides)
    return Stage(
        name=step,
        data=data,
        collate=collate,
        trainable=settings.trainable,
        lr=settings.lr,
        batch_size=settings.micro_batch,
        gradient_accumulation=settings.accumulation(processes),
        token_budget=settings.token_budget,
        max_steps=settings.steps(),
        warmup_fraction=settings.warmup_fraction,
        weight_decay=settings.weight_decay,
        lr_scale=dict(settings.lr_scale),
        seed=seed,
    )
