"""Tiny foundations: the pretrained InternViT and Qwen2 that the real recipe starts from, made in
minutes from the world and saved in the same HF layout as real checkpoints."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from sail.foundations.language import (build_language_model, context_caption_score, copy_drills, language_report,
                                       lm_collate, lm_examples, world_text)
from sail.foundations.vision import build_vision_probe, probe_collate, vision_report
from sail.manifest import atomic_write_json
from sail.model import Geometry, add_image_tokens, train_world_tokenizer
from sail.train import Stage, train
from sail.world import sample_records

REPORT = "foundations.json"


@dataclass(frozen=True)
class FoundationBudget:
    """How much pretraining each foundation gets (steps of `batch_size` sequences/images).

    The LM's context reading arrives suddenly, after a number of steps that varies from seed to
    seed, so its pretraining checks every `language_check_every` steps and ends once captions
    written from held-out contexts reach `language_reading_target` pair F1; `language_steps` is
    the cap. A check of 0 turns this off and trains exactly `language_steps`.
    """

    language_drill_steps: int = 100
    language_steps: int = 2500
    language_reading_target: float = 0.85
    language_check_every: int = 100
    vision_steps: int = 450
    batch_size: int = 32
    language_records: int = 48_000
    vision_records: int = 6_000
    language_lr: float = 3e-3
    vision_lr: float = 3e-3
    heldout_records: int = 256


@dataclass(frozen=True)
class Foundations:
    tokenizer_dir: Path
    language_dir: Path
    vision_dir: Path
    report: dict


def load_foundations(directory: str | Path) -> Foundations | None:
    """The foundations saved in `directory`, or None when they are missing or incomplete."""
    directory = Path(directory)
    if not (directory / REPORT).exists():
        return None
    return Foundations(directory / "tokenizer", directory / "language", directory / "vision",
                       json.loads((directory / REPORT).read_text()))


def build_foundations(directory: str | Path, geometry: Geometry, budget: FoundationBudget, *, seed: int = 0,
                      progress: bool = True) -> Foundations:
    """Train tokenizer, LM and ViT on the world's train split; report on its validation split.

    Reuses what is already saved: the report file is written last, so its presence means done.
    """
    directory = Path(directory)
    existing = load_foundations(directory)
    if existing is not None:
        if existing.report["budget"] != asdict(budget) or existing.report["seed"] != seed:
            raise ValueError(f"the foundations in {directory} were built with {existing.report['budget']} (seed "
                             f"{existing.report['seed']}); delete that folder or choose another to build with {asdict(budget)}")
        return existing
    train_records = sample_records("train", max(budget.language_records, budget.vision_records), seed=seed)
    heldout = sample_records("validation", budget.heldout_records, seed=seed)

    started = time.perf_counter()
    tokenizer = train_world_tokenizer(world_text(train_records[:4000], seed), vocab_size=geometry.vocab_size)
    tokenizer.save_pretrained(directory / "tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(directory / "tokenizer")

    language = build_language_model(geometry, tokenizer)
    drill_history = []
    if budget.language_drill_steps:
        drill_stage = Stage(
            name="foundation-language-drill",
            data=copy_drills(tokenizer, budget.language_drill_steps * budget.batch_size, seed),
            collate=lm_collate(tokenizer), trainable=("",), lr=budget.language_lr, batch_size=budget.batch_size,
            max_steps=budget.language_drill_steps, seed=seed)
        drill_history = train(language, drill_stage, directory / "runs" / "language-drill", progress=progress).history
    reading_checks: list[dict] = []

    # The checks score one half of the held-out records and the report the other, so stopping
    # once a check passes does not flatter the reported number.
    report_records, check_records = heldout[: len(heldout) // 2], heldout[len(heldout) // 2:]

    def reads_its_context(model, step: int) -> bool:
        score = context_caption_score(model, tokenizer, check_records)["pair_f1"]
        reading_checks.append({"step": step, "context_caption_pair_f1": score})
        return score >= budget.language_reading_target

    language_stage = Stage(
        name="foundation-language", data=lm_examples(train_records[: budget.language_records], tokenizer, seed=seed),
        collate=lm_collate(tokenizer), trainable=("",), lr=budget.language_lr, batch_size=budget.batch_size,
        max_steps=budget.language_steps, seed=seed, check_every=budget.language_check_every,
        done_when=reads_its_context if budget.language_check_every else None)
    language_run = train(language, language_stage, directory / "runs" / "language", progress=progress)
    language.save_pretrained(directory / "language")

    probe = build_vision_probe(geometry)
    vision_stage = Stage(
        name="foundation-vision", data=train_records[: budget.vision_records], collate=probe_collate(geometry),
        trainable=("",), lr=budget.vision_lr, batch_size=budget.batch_size, max_steps=budget.vision_steps, seed=seed)
    vision_run = train(probe, vision_stage, directory / "runs" / "vision", progress=progress)
    probe.encoder.save_pretrained(directory / "vision")

    report = {
        "seed": seed,
        "budget": asdict(budget),
        "vocab_size": len(tokenizer),
        "language": {"drill_steps": len(drill_history), "steps": language_run.steps,
                     "reached_reading_target": language_run.done_early, "reading_checks": reading_checks,
                     "tokens": (drill_history[-1]["tokens"] if drill_history else 0) + language_run.tokens,
                     "seconds": round((drill_history[-1]["seconds"] if drill_history else 0) + language_run.seconds, 1),
                     "final_train_loss": language_run.history[-1]["loss"],
                     **language_report(language, tokenizer, report_records, seed=seed)},
        "vision": {"steps": vision_run.steps, "tokens": vision_run.tokens, "seconds": round(vision_run.seconds, 1),
                   "final_train_loss": vision_run.history[-1]["loss"], **vision_report(probe, geometry, heldout)},
        "seconds": round(time.perf_counter() - started, 1),
        "loss_curves": {"language (copy drill)": [h["loss"] for h in drill_history],
                        "language": [h["loss"] for h in language_run.history],
                        "vision": [h["loss"] for h in vision_run.history]},
    }
    atomic_write_json(directory / REPORT, report)
    return Foundations(directory / "tokenizer", directory / "language", directory / "vision", report)


def foundation_parts(profile: str, geometry: Geometry, *, directory: str | Path, budget: FoundationBudget,
                     vision_checkpoint: str = "", language_checkpoint: str = "", seed: int = 0,
                     progress: bool = True) -> tuple[PreTrainedTokenizerBase, Path, Path, dict | None]:
    """Tokenizer, vision dir and language dir for a profile: the tiny profile builds (or reuses)
    its own foundations; small/full take real pretrained checkpoints from local paths."""
    if profile == "tiny":
        built = build_foundations(directory, geometry, budget, seed=seed, progress=progress)
        return AutoTokenizer.from_pretrained(built.tokenizer_dir), built.vision_dir, built.language_dir, built.report
    if not (vision_checkpoint and language_checkpoint):
        raise ValueError(f"profile {profile!r} starts from pretrained checkpoints: set vision_checkpoint and language_checkpoint")
    tokenizer = add_image_tokens(AutoTokenizer.from_pretrained(language_checkpoint))
    return tokenizer, Path(vision_checkpoint), Path(language_checkpoint), None


__all__ = ["foundation_parts", "FoundationBudget", "Foundations", "build_foundations", "load_foundations"]
