"""Tiny foundations: the pretrained InternViT and Qwen2 that the real recipe starts from, made in
minutes from the world and saved in the same HF layout as real checkpoints."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase, Qwen2ForCausalLM

from sail.foundations.language import (
    answer_accuracy,
    build_language_model,
    context_caption_score,
    copy_drills,
    language_report,
    lm_examples,
    reading_by_kind,
    slot_reader,
    world_text,
)
from sail.foundations.slots import slot_collate
from sail.foundations.vision import CellAttributeProbe, build_vision_probe, probe_collate, vision_report
from sail.manifest import atomic_write_json
from sail.model import Geometry, load_language_tokenizer, train_world_tokenizer
from sail.train import Stage, train
from sail.world import sample_records

REPORT = "foundations.json"  # written last: a finished build
BUILD = "build.json"  # written first: the key a build in this folder is for


@dataclass(frozen=True)
class FoundationBudget:
    """How much pretraining each foundation gets (steps of `batch_size` sequences/images).

    The LM first drills copying its image slot (`language_drill_steps`; with
    `language_drill_check_every` > 0 it ends early once held-out drills are copied with
    teacher-forced accuracy `language_drill_target`), then pretrains on world text with its image
    slot filled (`sail.foundations.slots`) for `language_steps`, its sequences packed into rows of
    `language_pack_length` tokens. Every `language_check_every` steps (0: never) captions written
    from held-out slots are scored; the first check at `language_reading_target` pair F1 or above
    is when the LM reads its slot, and an LM that never gets there is flagged. Both phases decay
    their rate by a cosine to `language_min_lr_ratio` of the peak. `language_card_fraction` of its
    records are cards. With `language_questions_by_benchmark`, a sequence of questions asks each
    of up to four benchmarks once (`sail.foundations.language.lm_examples`).

    Why a drill: reading the slot needs attention circuits that find a named place and copy what
    follows it (induction heads), which form in a sudden transition. On world text alone, seed 0
    had not formed them after 400 steps (caption pair F1 from the slot 0.01 to 0.10, colour
    questions at chance); after a 225-step drill to 0.9 copy accuracy, the same 500 steps read
    the slot (pair F1 0.68, colour 0.69 against 0.11 with another image's slot).

    Why 1,200 steps, not the first that reads: captions read by step 500, but the answers that
    need more than a copy come later. On 96 held-out records (seed 0, cosine over 1,500 steps),
    own slot against another image's: count-all 0.57 / 0.24 at step 500, 0.86 / 0.22 at 1,000,
    1.00 / 0.22 at 1,250; card titles 0.50 / 0.25, 1.00 / 0.17, 1.00 / 0.17; POPE 0.51 / 0.51,
    0.62 / 0.53, 0.77 / 0.55; HallusionBench's figure questions 0.50 / 0.49, 0.56 / 0.51,
    0.68 / 0.49. Packing made the steps affordable: the same loss at 0.63 of the padded step's time.

    Why a peak rate of 1e-3, not 3e-3: a lookup by content (find the slot token that matches a
    word of the question) forms at 1e-3 and not at 3e-3. On bare sequences (eight numbered slot
    words, then "What is at 3?"), a fresh LM answered 0.99 by step 200 at 1e-3 and stayed at
    chance (0.07 against 0.09) for 600 steps at 3e-3. In the world, on 128 held-out records (seed
    0, one thread), own slot against another image's: POPE 0.86 / 0.47 at 1e-3 against 0.57 / 0.55
    at 3e-3, HallusionBench's figure questions 0.91 / 0.49 against 0.49 / 0.49, caption pair F1
    0.95 against 0.85; the copy drill also ended sooner (125 steps against 225).

    Why a find drill in the mixture (`sail.foundations.language.find_turns`, a tenth of the
    sequences, taken from the lookup drill's share): without it the comparison POPE and
    HallusionBench ask for formed for some seeds only. In `bench/results/foundations-slot-1e-3.json`
    (ATen's `default` kernels) POPE from the own slot against another image's was 0.86 / 0.47 for
    seed 0, 0.52 / 0.49 for seed 1, 0.55 / 0.45 for seed 2 and 0.48 / 0.48 for seed 3, while every
    run read its captions. With the drill, the same runs (one thread, `default` kernels, the bench's
    records) answer POPE 0.87 / 0.47, 0.86 / 0.46, 0.86 / 0.49 and 0.44 / 0.44, and HallusionBench's
    figure questions 0.91, 0.72, 0.96 and 0.51 against 0.49-0.50: three seeds of four compare.
    With the LM head on answer positions only (`SlotReader.forward`; the same loss, other bits),
    seeds 0-4 (`bench/results/foundations-answer-logits.json`) answer POPE 0.86 / 0.47, 0.85 / 0.46,
    0.86 / 0.49, 0.52 / 0.43 and 0.81 / 0.45, and the figure questions 0.90, 0.92, 0.97, 0.58 and
    0.85: every seed compares, seed 3 by a thin margin.

    Why questions are drawn alike, not benchmark by benchmark (`language_questions_by_benchmark`):
    drawing by benchmark doubles the rare kinds' share (TextVQA 1.8 to 3.4 % of question turns,
    RelationMCQ 2.7 to 5.0 %) but no kind was newly read from the slot (seed 0: relation 0.21 /
    0.21, scene text 0.07 / 0.04, as drawn alike) and existence in WorldVQA's wording was lost.
    """

    language_drill_steps: int = 400
    language_drill_target: float = 0.9
    language_drill_check_every: int = 25
    language_steps: int = 1200
    language_pack_length: int = 256
    language_reading_target: float = 0.65
    language_check_every: int = 100
    language_min_lr_ratio: float = 0.1
    language_card_fraction: float = 0.25
    language_questions_by_benchmark: bool = False
    vision_steps: int = 450
    batch_size: int = 32
    language_records: int = 24_000
    vision_records: int = 6_000
    language_lr: float = 1e-3
    vision_lr: float = 3e-3
    heldout_records: int = 256


@dataclass(frozen=True)
class Foundations:
    tokenizer_dir: Path
    language_dir: Path
    vision_dir: Path
    report: dict

    def load_tokenizer(self) -> PreTrainedTokenizerBase:
        """The world tokenizer the LM was trained with (a VLM must be composed with this one)."""
        return AutoTokenizer.from_pretrained(self.tokenizer_dir)

    @property
    def reads_its_context(self) -> bool:
        """Whether a reading check of the LM reached its target."""
        return bool(self.report["language"]["reached_reading_target"])


def code_version() -> str:
    """A hash of the code that decides what the foundations learn: this package, the world it
    learns from and the trainer that teaches it. Any change to them rebuilds the foundations
    rather than reusing stale ones."""
    digest = hashlib.sha256()
    package = Path(__file__).parents[1]
    for folder in (Path(__file__).parent, package / "world", package / "train"):
        for path in sorted(folder.glob("*.py")):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def foundation_key(geometry: Geometry, budget: FoundationBudget, seed: int) -> dict:
    """Everything that decides what a build makes: reuse needs all of it unchanged."""
    return {"seed": seed, "budget": asdict(budget), "geometry": asdict(geometry), "code": code_version()}


def load_foundations(directory: str | Path) -> Foundations | None:
    """The foundations saved in `directory`, or None when they are missing or incomplete."""
    directory = Path(directory)
    if not (directory / REPORT).exists():
        return None
    return Foundations(
        directory / "tokenizer",
        directory / "language",
        directory / "vision",
        json.loads((directory / REPORT).read_text()),
    )


def _changes(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted names of the entries that differ between two keys."""
    names = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if isinstance(a, dict) and isinstance(b, dict):
            names += _changes(a, b, f"{prefix}{name}.")
        elif a != b:
            names.append(f"{prefix}{name}")
    return names


def _claim(directory: Path, key: dict) -> None:
    """Make `directory` hold a build for `key`: keep a finished or interrupted build with the same
    key (the trainer resumes it), clear one made with another key, saying what changed."""
    started = directory / BUILD
    old = json.loads(started.read_text()) if started.exists() else None
    if old == key:
        return
    parts = [directory / part for part in ("tokenizer", "language", "vision", "runs", REPORT)]
    if old is not None or any(path.exists() for path in parts):
        changed = ", ".join(_changes(old, key)) if old is not None else "everything (no key recorded)"
        print(f"rebuilding the foundations in {directory}: changed {changed}")
        for path in parts:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    atomic_write_json(started, key)


def pretrain_language(
    runs: Path,
    geometry: Geometry,
    tokenizer: PreTrainedTokenizerBase,
    budget: FoundationBudget,
    train_records: Sequence[dict],
    heldout: Sequence[dict],
    *,
    seed: int = 0,
    progress: bool = True,
) -> tuple[Qwen2ForCausalLM, dict]:
    """The LM foundation: world text with its image slot filled, for its budget of steps.

    Returns the model and its report: every reading check, whether and at which check the target
    was reached ("reading_step"), steps,
    tokens, seconds, held-out losses, the reading F1 and every question kind's accuracy with its
    own slot and another image's, on records no check saw.
    """
    torch.manual_seed(seed)  # the initial weights too: a rebuild for the same key makes the same LM
    language = build_language_model(geometry, tokenizer)
    reader = slot_reader(language, tokenizer)
    tokens_per_tile = geometry.image_seq_length
    drill_checks: list[dict] = []
    heldout_drills = copy_drills(tokenizer, 128, seed + 1, tokens_per_tile)

    def copies(model, step: int) -> bool:
        drill_checks.append({"step": step, "copy_accuracy": answer_accuracy(model, tokenizer, heldout_drills)})
        return drill_checks[-1]["copy_accuracy"] >= budget.language_drill_target

    drill_run = None
    if budget.language_drill_steps:
        drill_stage = Stage(
            name="foundation-language-drill",
            data=copy_drills(tokenizer, budget.language_drill_steps * budget.batch_size, seed, tokens_per_tile),
            collate=slot_collate(tokenizer),
            trainable=("language",),
            lr=budget.language_lr,
            batch_size=budget.batch_size,
            max_steps=budget.language_drill_steps,
            seed=seed,
            check_every=budget.language_drill_check_every,
            done_when=copies if budget.language_drill_check_every else None,
            min_lr_ratio=budget.language_min_lr_ratio,
        )
        drill_run = train(reader, drill_stage, runs / "language-drill", progress=progress)
    drilled = drill_run.seconds if drill_run else 0.0
    reading_checks: list[dict] = []

    # The checks score one half of the held-out records and the report the other, so stopping
    # once a check passes does not flatter the reported number.
    report_records, check_records = heldout[: len(heldout) // 2], heldout[len(heldout) // 2 :]

    def check_reading(model, step: int) -> bool:
        """Record how well captions from held-out slots read; never ends the run (see the budget)."""
        score = context_caption_score(model, tokenizer, check_records[:64], tokens_per_tile)["pair_f1"]
        reading_checks.append(
            {"step": step, "context_caption_pair_f1": score, "seconds": round(drilled + time.perf_counter() - begun, 1)}
        )
        return False

    stage = Stage(
        name="foundation-language",
        data=lm_examples(
            train_records[: budget.language_records],
            tokenizer,
            tokens_per_tile,
            seed=seed,
            by_benchmark=budget.language_questions_by_benchmark,
        ),
        collate=slot_collate(tokenizer, budget.language_pack_length or None),
        trainable=("language",),
        lr=budget.language_lr,
        batch_size=budget.batch_size,
        max_steps=budget.language_steps,
        seed=seed,
        check_every=budget.language_check_every,
        done_when=check_reading if budget.language_check_every else None,
        min_lr_ratio=budget.language_min_lr_ratio,
    )
    begun = time.perf_counter()
    run = train(reader, stage, runs / "language", progress=progress)
    reading = next(
        (c["step"] for c in reading_checks if c["context_caption_pair_f1"] >= budget.language_reading_target), None
    )
    drill_history = drill_run.history if drill_run else []
    return language, {
        "drill_steps": len(drill_history),
        "drill_checks": drill_checks,
        "copies": bool(drill_run and drill_run.done_early),
        "steps": run.steps,
        "reached_reading_target": reading is not None,
        "reading_step": reading,
        "reading_checks": reading_checks,
        "tokens": (drill_run.tokens if drill_run else 0) + run.tokens,
        "seconds": round(drilled + run.seconds, 1),
        "final_train_loss": run.history[-1]["loss"],
        **language_report(reader, tokenizer, report_records, tokens_per_tile, seed=seed),
        "loss_curves": {
            "language (copy drill)": [h["loss"] for h in drill_history],
            "language": [h["loss"] for h in run.history],
        },
    }


def pretrain_vision(
    runs: Path,
    geometry: Geometry,
    budget: FoundationBudget,
    train_records: Sequence[dict],
    heldout: Sequence[dict],
    *,
    seed: int = 0,
    progress: bool = True,
) -> tuple[CellAttributeProbe, dict]:
    """The ViT foundation: an InternViT under per-cell attribute heads; the probe and its report."""
    torch.manual_seed(seed)
    probe = build_vision_probe(geometry)
    stage = Stage(
        name="foundation-vision",
        data=train_records[: budget.vision_records],
        collate=probe_collate(geometry),
        trainable=("",),
        lr=budget.vision_lr,
        batch_size=budget.batch_size,
        max_steps=budget.vision_steps,
        seed=seed,
    )
    run = train(probe, stage, runs / "vision", progress=progress)
    return probe, {
        "steps": run.steps,
        "tokens": run.tokens,
        "seconds": round(run.seconds, 1),
        "final_train_loss": run.history[-1]["loss"],
        **vision_report(probe, geometry, heldout),
        "loss_curve": [h["loss"] for h in run.history],
    }


def build_foundations(
    directory: str | Path, geometry: Geometry, budget: FoundationBudget, *, seed: int = 0, progress: bool = True
) -> Foundations:
    """Train tokenizer, LM and ViT on the world's train split; report on its validation split.

    Reuses a finished build whose key (budget, geometry, seed, code version) matches, resumes an
    interrupted one, and rebuilds over one made with another key. The report is written last, so
    its presence means done.
    """
    directory = Path(directory)
    key = foundation_key(geometry, budget, seed)
    existing = load_foundations(directory)
    if existing is not None and existing.report.get("key") == key:
        return existing
    directory.mkdir(parents=True, exist_ok=True)
    _claim(directory, key)
    # A build seeds and draws from torch's global generator; forking it leaves the caller's state as
    # a reuse does, so what a notebook draws next (a fresh projector) cannot tell the two apart.
    with torch.random.fork_rng():
        language_records = sample_records(
            "train", budget.language_records, seed=seed, card_fraction=budget.language_card_fraction
        )
        vision_records = sample_records("train", budget.vision_records, seed=seed)
        heldout = sample_records(
            "validation", budget.heldout_records, seed=seed, card_fraction=budget.language_card_fraction
        )

        started = time.perf_counter()
        tokenizer = train_world_tokenizer(world_text(language_records[:4000], seed), vocab_size=geometry.vocab_size)
        tokenizer.save_pretrained(directory / "tokenizer")
        tokenizer = AutoTokenizer.from_pretrained(directory / "tokenizer")

        language, language_part = pretrain_language(
            directory / "runs", geometry, tokenizer, budget, language_records, heldout, seed=seed, progress=progress
        )
        language.save_pretrained(directory / "language")

        probe, vision_part = pretrain_vision(
            directory / "runs",
            geometry,
            budget,
            vision_records,
            [r for r in heldout if r["kind"] == "scene"],
            seed=seed,
            progress=progress,
        )
        probe.encoder.save_pretrained(directory / "vision")

        report = {
            "key": key,
            "seed": seed,
            "budget": asdict(budget),
            "vocab_size": len(tokenizer),
            "language": {name: value for name, value in language_part.items() if name != "loss_curves"},
            "vision": {name: value for name, value in vision_part.items() if name != "loss_curve"},
            "seconds": round(time.perf_counter() - started, 1),
            "loss_curves": {**language_part["loss_curves"], "vision": vision_part["loss_curve"]},
        }
        atomic_write_json(directory / REPORT, report)
    return Foundations(directory / "tokenizer", directory / "language", directory / "vision", report)


def capped_warning(foundations: Foundations) -> str | None:
    """What a stage starting from these foundations should say when no reading check of the LM
    reached its target."""
    if foundations.reads_its_context:
        return None
    language, target = foundations.report["language"], foundations.report["budget"]["language_reading_target"]
    checks = language["reading_checks"]
    measured = (
        f"best held-out context-caption pair F1 {max(c['context_caption_pair_f1'] for c in checks):.3f} < {target}"
        if checks
        else "no reading check ran"
    )
    return (
        f"the LM foundation ended its {language['steps']} steps below its reading target "
        f"({measured}): every stage built on it starts from an LM that may not read its context; "
        f"rebuild them in notebook 00 with a larger lm_steps or another seed"
    )


def foundation_parts(
    profile: str,
    geometry: Geometry,
    *,
    directory: str | Path,
    budget: FoundationBudget,
    vision_checkpoint: str = "",
    language_checkpoint: str = "",
    seed: int = 0,
    progress: bool = True,
) -> tuple[PreTrainedTokenizerBase, Path, Path, dict | None]:
    """Tokenizer, vision dir and language dir for a profile: the tiny profile builds (or reuses)
    its own foundations; small/full take real pretrained checkpoints from local paths.

    Only notebook 00 calls this: it is the one place that may (re)build the shared foundations.
    Every later notebook loads them with `saved_foundations` or `start_parts`, so changing its
    seed or batch size cannot silently rebuild the foundations other notebooks read."""
    if profile == "tiny":
        built = build_foundations(directory, geometry, budget, seed=seed, progress=progress)
        if (warning := capped_warning(built)) is not None:
            warnings.warn(warning, stacklevel=2)
        return built.load_tokenizer(), built.vision_dir, built.language_dir, built.report
    return (*start_parts(profile, "", vision_checkpoint, language_checkpoint), None)


def saved_foundations(directory: str | Path) -> Foundations:
    """The tiny foundations notebook 00 built in `directory`, as they are: never built, rebuilt or
    written here, whatever budget or seed they were built with, so every notebook after 00 starts
    from the same foundations 00 reported on. Missing ones are an error naming notebook 00; ones
    whose LM stopped below its reading target load with a warning."""
    built = load_foundations(directory)
    if built is None:
        raise FileNotFoundError(f"no tiny foundations in {directory}: run notebook 00 first")
    if (warning := capped_warning(built)) is not None:
        warnings.warn(warning, stacklevel=2)
    return built


def start_parts(
    profile: str, foundations_dir: str | Path, vision_checkpoint: str = "", language_checkpoint: str = ""
) -> tuple[PreTrainedTokenizerBase, Path, Path]:
    """Tokenizer, vision dir and language dir a VLM is composed from: on tiny, the foundations
    notebook 00 built (`saved_foundations`: loaded, never rebuilt); on small/full, pretrained
    checkpoints."""
    if profile == "tiny":
        built = saved_foundations(foundations_dir)
        return built.load_tokenizer(), built.vision_dir, built.language_dir
    if not (vision_checkpoint and language_checkpoint):
        raise ValueError(
            f"profile {profile!r} starts from pretrained checkpoints: set vision_checkpoint and language_checkpoint"
        )
    tokenizer = load_language_tokenizer(language_checkpoint)
    return tokenizer, Path(vision_checkpoint), Path(language_checkpoint)


__all__ = [
    "foundation_parts",
    "start_parts",
    "FoundationBudget",
    "Foundations",
    "build_foundations",
    "capped_warning",
    "code_version",
    "foundation_key",
    "load_foundations",
    "pretrain_language",
    "reading_by_kind",
    "pretrain_vision",
    "saved_foundations",
]
