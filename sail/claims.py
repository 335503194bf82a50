"""The paper in miniature: each SAIL-VL claim, the paper's figure, ours with its spread, a verdict.

Every row reads the results JSON a notebook wrote (`artifacts/<stem>.json`), never a number typed
here except the paper's own. A claim's direction is written as a difference that the paper says is
positive (e.g. SAIL-Caption's score minus the best other caption source's), with a range around
ours: the run-to-run spread a notebook measured (a second seed) or a bootstrap interval.

A difference between two models is a finding only if the models see. So before any direction is
read, each claim asks whether it can be tested at all (`RULES`, checked in this order):

- **not testable**: no compared arm scores above what a model that ignores the image can score
  on the same questions (its *blind level*: the best single answer given to every question, or
  its own answers scored against other images' records), or the compared models' answers do not
  depend on the image (notebook 08's swapped-image check), or the statistic is fixed by the
  data generator. The `why` says which arm sits where, by how much.
- **within noise**: the range around ours holds zero, or has no width (no spread was measured,
  so noise cannot be excluded), or a control that should lose ties or wins (a win a wrong-facts
  control shares is a win of the format, not of the facts);
- **agrees**: the whole range lies above zero;
- **disagrees**: the whole range lies below zero.

A claim about a shape (a fit, an ordering, a rank correlation) states its own rule in its row,
after the same testability check. Every `why` is built from the run's numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sail.eval.card import markdown_table
from sail.sft.experiment import against_blind, ranking

VERDICTS = ("agrees", "disagrees", "within noise", "not testable")
RULES = {
    "not testable": "no compared arm scores above its blind level (what a model that ignores the image "
    "scores on the same questions), or the compared models' answers do not depend on the image, or the "
    "statistic is fixed by the data generator",
    "within noise": "the range around ours holds 0, or has no width (no spread measured), or a control that "
    "should lose ties or wins",
    "agrees": "the claim is testable and the whole range is above 0",
    "disagrees": "the claim is testable and the whole range is below 0",
}
RULE = "; ".join(f"{name}: {text}" for name, text in RULES.items())
NOTEBOOKS = (
    "02_captioner",
    "03_production",
    "04_pretrain_alignment",
    "05_pretrain_advance",
    "06_sft_data",
    "07_curriculum",
    "08_evaluation",
)


@dataclass(frozen=True)
class Arm:
    """One compared model's score beside its blind level; it sees when it clears the blind level
    by more than `margin` (the run's spread of that score, 0 where none is measured)."""

    name: str
    score: float
    blind: float
    margin: float = 0.0
    digits: int = 1

    @classmethod
    def from_interval(cls, name: str, score: float, blind: float, low: float, digits: int = 1) -> Arm:
        """An arm that sees when `low`, the low end of an interval of (score − blind), is above 0."""
        return cls(name, score, blind, score - blind - low, digits)

    @property
    def sees(self) -> bool:
        return self.score - self.blind > self.margin

    def __str__(self) -> str:
        def shown(value: float) -> str:
            return f"{value:.{self.digits}f}"

        said = f"{self.name} {shown(self.score)}"
        gap = self.score - self.blind
        if self.sees:
            return f"{said} above its blind level {shown(self.blind)} by {shown(gap)}"
        if gap <= 0:
            return f"{said} at or below its blind level {shown(self.blind)} (by {gap:+.{self.digits}f})"
        noise = shown(self.margin)
        return f"{said} above its blind level {shown(self.blind)} by {shown(gap)}, not beyond its noise ({noise})"


def untestable(arms: Sequence[Arm]) -> str:
    """Why a comparison of `arms` tests nothing ("" when at least one arm sees, or no arms are given:
    a claim that compares no models, such as a judge's statistics)."""
    if not arms or any(arm.sees for arm in arms):
        return ""
    return "no compared arm clears what a model that ignores the image scores: " + "; ".join(map(str, arms))


def verdict(low: float, high: float, *, not_testable: str = "", control_ties: str = "") -> str:
    """The verdict on a difference the paper says is positive, from the range around ours.

    `not_testable` / `control_ties` are the reasons (empty: none) that override the range: a claim
    no arm of which sees is not testable, and a win a control shares is within noise."""
    if low > high:
        raise ValueError(f"a range runs from low to high, got [{low}, {high}]")
    if not_testable:
        return "not testable"
    if low == high:
        return "within noise"
    if low > 0:
        return "within noise" if control_ties else "agrees"
    return "disagrees" if high < 0 else "within noise"


def read_results(artifacts: str | Path) -> dict[str, dict]:
    """Each notebook's results JSON under `artifacts`, by notebook stem; a missing one is an error."""
    artifacts = Path(artifacts)
    missing = [stem for stem in NOTEBOOKS if not (artifacts / f"{stem}.json").is_file()]
    if missing:
        raise FileNotFoundError(f"no results of {', '.join(missing)} in {artifacts}: run those notebooks first")
    return {stem: json.loads((artifacts / f"{stem}.json").read_text()) for stem in NOTEBOOKS}


def _joined(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


def _row(
    claim_id, claim, paper, ours, difference, low, high, *, why, arms=(), not_testable="", control_ties=""
) -> dict:
    """One claim judged by `RULES`; `why` holds the run's numbers behind the verdict, then where each
    compared arm sits against its blind level (the reason itself when no arm sees)."""
    not_testable = _joined(untestable(arms), not_testable)
    return {
        "id": claim_id,
        "claim": claim,
        "paper": paper,
        "ours": ours,
        "difference": round(float(difference), 3),
        "low": round(float(low), 3),
        "high": round(float(high), 3),
        "verdict": verdict(low, high, not_testable=not_testable, control_ties=control_ties),
        "rule": RULE,
        "why": _joined(
            not_testable,
            control_ties,
            "no spread is measured" if low == high else "",
            why,
            "" if not_testable else "; ".join(map(str, arms)),
        ),
    }


def _shaped(claim_id, claim, paper, ours, verdict_, rule, *, difference=None, why="", arms=(), not_testable="") -> dict:
    """One claim about a shape (a fit, an ordering, a rank correlation), judged by its own `rule`
    once it is testable (as `_row` says where its arms sit)."""
    not_testable = _joined(untestable(arms), not_testable)
    return {
        "id": claim_id,
        "claim": claim,
        "paper": paper,
        "ours": ours,
        "difference": difference,
        "low": None,
        "high": None,
        "verdict": "not testable" if not_testable else verdict_,
        "rule": f"not testable when {RULES['not testable']}; otherwise {rule}",
        "why": _joined(not_testable, why, "" if not_testable else "; ".join(map(str, arms))),
    }


def _seed_spread(results: dict, run: str, score: str) -> float:
    """How far `run` and its second seed (named "<run> seed <seed + 1>", as notebooks 04 and 05 name
    it) lie apart in `score`; 0 when the run has no second seed."""
    by_name = {row["run"]: row[score] for row in results["runs"]}
    second = f"{run} seed {results['parameters']['seed'] + 1}"
    return abs(by_name[run] - by_name[second]) if second in by_name else 0.0


def caption_sources(alignment: dict) -> dict:
    """T2, captions: SAIL-Caption-mini against the other caption sources, same steps and seed.

    Judged on the Caption column, the one a caption source changes: every row trains on the same
    high-quality OCR data, so the OCR column's differences between rows are noise by construction."""
    rows = {row["mixture"].removesuffix(" + ocr-hq"): row for row in alignment["table2"]}
    largest = max(alignment["parameters"]["sizes"])
    spread = _seed_spread(alignment, f"D={largest}", "Caption")
    ours = rows["sail-caption-mini"]
    other = max(("alt-text", "weak"), key=lambda name: rows[name]["Caption"])
    difference = ours["Caption"] - rows[other]["Caption"]
    control = ours["Caption"] - rows["wrong-facts"]["Caption"]
    arms = [
        Arm(name, rows[name]["Caption"], rows[name]["Caption blind"], spread) for name in ("sail-caption-mini", other)
    ]
    return _row(
        "T2 captions",
        "Pretraining on the distilled captions beats other caption sources",
        "SAIL-Caption 54.36 Overall; the best open caption set (BLIP3-KALE) 53.06",
        "Caption column: "
        + ", ".join(f"{name} {rows[name]['Caption']:.1f}" for name in ("sail-caption-mini", "alt-text", "weak"))
        + f" (teacher {rows['teacher']['Caption']:.1f}, wrong-facts {rows['wrong-facts']['Caption']:.1f}); "
        f"Overall {ours['Overall']:.1f} against {rows[other]['Overall']:.1f}",
        difference,
        difference - spread,
        difference + spread,
        arms=arms,
        control_ties=(
            f"the wrong-facts control ties or wins: SAIL-Caption-mini − wrong-facts {control:+.1f}, not above the "
            f"two seeds' spread ({spread:.1f}), so what wins is the captions' format, not their facts"
            if control <= spread
            else ""
        ),
        why=f"Caption column (every row trains on the same OCR data); range: ± the two seeds' spread at "
        f"D={largest} ({spread:.1f})",
    )


def ocr_quality(advance: dict) -> dict:
    """T2, OCR: high-quality OCR data alone against it mixed with low-quality data (answer loss).

    A loss-based arm reads the image when swapping images raises its loss beyond the seed spread."""
    rows = {row["mixture"]: row for row in advance["table2_ocr"]}
    largest = max(advance["parameters"]["sizes"])
    spread = _seed_spread(advance, f"advance D={largest}", "OCR answer loss")
    hq, mixed = rows["sail-caption-mini + ocr-hq"], rows["sail-caption-mini + ocr-hq + ocr-lq"]
    difference = mixed["OCR answer loss"] - hq["OCR answer loss"]  # positive: high quality alone reads better
    # As arms: the loss rise that swapping images causes, against 0 (what a model that ignores the image shows).
    arms = [
        Arm(
            f"{name}: the loss rise with swapped images",
            row["OCR answer loss swapped"] - row["OCR answer loss"],
            0.0,
            spread,
            3,
        )
        for name, row in (("high quality alone", hq), ("mixed", mixed))
    ]
    return _row(
        "T2 OCR",
        "High-quality OCR data alone beats it mixed with low-quality data",
        "52.13 Overall with low-quality OCR mixed in against 54.36 without",
        f"OCR answer loss (nats) {hq['OCR answer loss']:.3f} high quality alone, "
        f"{mixed['OCR answer loss']:.3f} with low quality mixed in",
        difference,
        difference - spread,
        difference + spread,
        arms=arms,
        why=f"teacher-forced OCR answer loss, lower is better; range: ± the two seeds' spread ({spread:.3f})",
    )


def _sweep_arms(results: dict, prefix: str) -> list[Arm]:
    seed0 = [row for row in results["runs"] if row["run"] in {f"{prefix}D={d}" for d in results["parameters"]["sizes"]}]
    return [Arm(row["run"], row["Overall"], row["Overall blind"]) for row in seed0]


def log_linear(results: dict, stage: str) -> dict:
    """F-pt: the score grows linearly in ln D within a pretraining stage."""
    fit = results["fits"]["Overall"]
    arms = _sweep_arms(results, "advance " if stage == "advance" else "")
    seeing = [arm.name for arm in arms if arm.sees]
    return _shaped(
        f"F-pt {stage}",
        f"{stage.capitalize()}: performance grows linearly in log(data)",
        "approximately linear on a log data axis, for caption and OCR tasks (no coefficients published)",
        f"Overall = {fit['a']:.2f} + {fit['b']:.2f}·ln D, R² {fit['r2']:.2f}",
        "agrees" if fit["b"] > 0 and fit["r2"] >= 0.7 else "disagrees" if fit["b"] <= 0 else "within noise",
        "agrees when the slope b > 0 and the fit explains most of the variance (R² ≥ 0.7); "
        "disagrees when b ≤ 0; within noise otherwise",
        difference=round(fit["b"], 3),
        arms=arms,
        why=f"{len(seeing)} of {len(arms)} sweep points above their blind level"
        + (f" ({', '.join(seeing)})" if seeing else ""),
    )


def survives_sft(alignment: dict) -> dict:
    """F-pt after SFT: the larger pretraining point still leads after the same short SFT.

    One seed, so the range is the two arms' bootstrap half-widths added (their intervals are not
    paired with each other: a conservative range)."""
    claim = (
        "F-pt after SFT",
        "What pretraining data adds survives SFT",
        "the log-linear relation persists after SFT, with SAIL's and with LLaVA-NeXT's SFT data",
    )
    if not alignment["sft_probe"]:
        return _shaped(
            *claim,
            "no SFT probe ran",
            "not testable",
            "the larger pretraining point leads after the same SFT",
            not_testable="notebook 04 ran no SFT probe (sft_steps 0)",
        )
    probe = {row["checkpoint"]: row for row in alignment["sft_probe"]}
    sizes = alignment["parameters"]["sizes"]
    small, large = f"D={min(sizes)}", f"D={max(sizes)}"
    arms = [
        Arm.from_interval(
            f"{name} after SFT", probe[name]["VQA after SFT"], probe[name]["VQA blind"], probe[name]["VQA low"]
        )
        for name in (large, small)
    ]
    difference = probe[large]["VQA after SFT"] - probe[small]["VQA after SFT"]
    spread = sum((probe[name]["VQA high"] - probe[name]["VQA low"]) / 2 for name in (large, small))
    return _row(
        *claim,
        f"VQA after {alignment['parameters']['sft_steps']} SFT steps: {large} {probe[large]['VQA after SFT']:.1f}, "
        f"{small} {probe[small]['VQA after SFT']:.1f}",
        difference,
        difference - spread,
        difference + spread,
        arms=arms,
        why=f"range: ± the two arms' bootstrap half-widths added ({spread:.1f}); "
        + "; ".join(
            f"{name}: {probe[name]['VQA after SFT']:.1f} against a blind level of {probe[name]['VQA blind']:.1f} "
            f"(score − blind [{probe[name]['VQA low']:.1f}, {probe[name]['VQA high']:.1f}]), "
            f"{probe[name]['VQA distinct answers']} distinct answers"
            for name in (large, small)
        ),
    )


def advance_adds(advance: dict) -> dict:
    """F-adv: unlocking the vision encoder adds to what continuing Alignment gives, same data and steps."""
    largest = max(advance["parameters"]["sizes"])
    runs = {row["run"]: row for row in advance["runs"]}
    spread = max(_seed_spread(advance, f"{arm} D={largest}", "Overall") for arm in ("advance", "control"))
    ours, control = runs[f"advance D={largest}"], runs[f"control D={largest}"]
    difference = ours["Overall"] - control["Overall"]
    arms = [
        Arm(name, row["Overall"], row["Overall blind"], spread)
        for name, row in (("Advance", ours), ("control", control))
    ]
    return _row(
        "F-adv",
        "Pretrain-Advance (vision encoder unlocked) adds to Pretrain-Alignment",
        "a jump in caption and OCR scores after unlocking the ViT, then a similar log curve",
        f"Overall at D={largest}: Advance {ours['Overall']:.1f}, Alignment continued on the same "
        f"samples and steps {control['Overall']:.1f}",
        difference,
        difference - spread,
        difference + spread,
        arms=arms,
        why=f"range: ± the larger of the two arms' seed spreads ({spread:.1f})",
    )


def _captioner_seeds(seeds: Mapping | None, seed: int, ours: float) -> tuple[list[float], str]:
    """The captioner's pair F1 over the seed bench's seeds, with where they come from; none when the
    bench is missing or describes another recipe (its row for this run's seed is not this run's F1)."""
    rows = (seeds or {}).get("rows", [])
    same_seed = [row["pair_f1"] for row in rows if row["seed"] == seed]
    if len(rows) < 2:
        return [], "no seed spread is measured (no captioner seed bench)"
    if not same_seed or abs(same_seed[0] - ours) > 0.01:
        return [], (
            f"no seed spread is used: the captioner seed bench's seed {seed} scored "
            f"{same_seed[0] if same_seed else 'nothing'}, this run {ours:.3f}, so it measured another recipe"
        )
    values = [row["pair_f1"] for row in rows]
    commit = seeds.get("git", {}).get("commit", "unknown")[:7]
    return values, (
        f"range: the differences {len(values)} captioner seeds give ({min(values):.3f} to {max(values):.3f} pair F1; "
        f"bench/results/captioner_seeds.json, commit {commit})"
    )


def distilled_captions(captioner: dict, production: dict, captioner_seeds: Mapping | None = None) -> dict:
    """H1: distilled captions describe the image far better than alt-text and weak captions.

    Alt-text and weak captions are fixed text; only the captioner varies with its seed, so the
    range is the span of the differences the seed bench's captioners give."""
    pair = {source: scores["objects"] for source, scores in captioner["quality_headline"].items()}
    ours, other = pair["captioner (caption)"], max(pair["alt_text"], pair["weak"])
    blind = captioner["blind_pair_f1"]["captioner (caption)"]["blind"]
    values, source = _captioner_seeds(captioner_seeds, captioner["parameters"]["seed"], ours)
    low, high = min([*values, ours]), max([*values, ours])  # the bench's row for this seed, rounded, is ours
    arm = Arm("the captioner", 100 * ours, 100 * blind, 100 * (ours - low))
    return _row(
        "H1",
        "Distilled captions are far better than alt-text and weak captions",
        "human evaluation: SAIL-Caption 87.2 against DataComp-LLaVA-Caption 70.0 and BLIP3-KALE 73.2",
        f"colour–shape pair F1 on held-out test images: captioner {ours:.3f}, alt-text {pair['alt_text']:.3f}, "
        f"weak {pair['weak']:.3f}; on held-out pool images (notebook 03) "
        f"{production['headline']['pair F1']:.3f} against {production['headline']['alt-text pair F1']:.3f}",
        100 * (ours - other),
        100 * (low - other),
        100 * (high - other),
        arms=[arm],
        why=f"in F1 points against the better of alt-text and weak; {source}; its blind level is what its captions "
        "score against other images' records, or one caption given to every image",
    )


TIER_ORDER = ("instruction", "preference", "knowledge")  # the paper's Table 3, best first
AGGREGATES = {
    "Overall": ("Overall", "Overall low", "Overall high", "blind Overall"),
    "question score": ("question score", "low", "high", "blind question score"),
}


def _tier_arms(rows: Sequence[dict], aggregate: str) -> list[Arm]:
    """Each tier's run as an arm: it sees when its interval's low end clears its blind level."""
    score, low, _, blind = AGGREGATES[aggregate]
    return [Arm(row["tier"], row[score], row[blind], row[score] - row[low]) for row in rows]


def _blind_rows(rows: Sequence[dict]) -> str:
    """Each run's aggregates beside their blind levels, its commonest answers and its step-wise share."""
    return "; ".join(f"{against_blind(row)}; step-wise answers {row['stepwise answers %']:.0f} %" for row in rows)


def quick_ranking(sft_data: dict) -> dict:
    """T3: the quick evaluation ranks Instruction > Preference > Knowledge (paired question-score intervals)."""
    pairs = {row["pair"]: row for row in sft_data["pairs"]}
    orders = [
        f"{a} − {b}"
        for a, b in (("instruction", "preference"), ("instruction", "knowledge"), ("preference", "knowledge"))
    ]
    verdicts = [verdict(pairs[order]["low"], pairs[order]["high"]) for order in orders]
    overall = "disagrees" if "disagrees" in verdicts else "agrees" if set(verdicts) == {"agrees"} else "within noise"
    quick = {row["tier"]: row for row in sft_data["quick"]}
    arms = _tier_arms([quick[tier] for tier in TIER_ORDER], "question score")
    return _shaped(
        "T3",
        "A quick evaluation on small subsets ranks the SFT tiers Instruction > Preference > Knowledge",
        "2M-sample subsets: Instruction 61.9, Preference 61.3, Knowledge 57.8 Overall",
        f"{sft_data['parameters']['quick_size']}-sample subsets, question score (Overall): "
        + ", ".join(
            f"{tier.capitalize()} {quick[tier]['question score']:.1f} ({quick[tier]['Overall']:.1f})"
            for tier in TIER_ORDER
        ),
        overall,
        "each of the paper's three pairwise orders judged by its paired bootstrap interval of the question "
        "score (the aggregate that is a mean over the same questions, so it has a paired interval; the paper's "
        "Overall is shown beside it); agrees when all three agree, disagrees when any disagrees, within noise "
        "otherwise",
        arms=arms,
        why="pairs "
        + ", ".join(f"{order}: {v}" for order, v in zip(orders, verdicts, strict=True))
        + "; "
        + _blind_rows([quick[tier] for tier in TIER_ORDER]),
    )


def _separated(rows: Sequence[dict], aggregate: str) -> bool:
    """Whether every two tiers' intervals under `aggregate` are disjoint (the ranking is beyond noise)."""
    _, low, high, _ = AGGREGATES[aggregate]
    spans = sorted((row[low], row[high]) for row in rows)
    return all(a_high < b_low for (_, a_high), (b_low, _) in zip(spans, spans[1:]))


def _rho(value: float) -> str:
    """A Spearman rho as shown: "undefined" where a size's scores all tie (NaN)."""
    return "undefined" if math.isnan(value) else f"{value:.2f}"


def ranking_holds(sft_data: dict) -> dict:
    """R1: the quick ranking is the larger-scale ranking, by both aggregates, beyond their intervals."""
    quick, larger = sft_data["quick"], sft_data["larger"]
    sizes = sft_data["parameters"]["quick_size"], sft_data["parameters"]["larger_size"]
    rhos = {"Overall": sft_data["headline"]["spearman Overall"], "question score": sft_data["headline"]["spearman"]}
    orders = {aggregate: (ranking(quick, keys[0]), ranking(larger, keys[0])) for aggregate, keys in AGGREGATES.items()}
    apart = {aggregate: _separated(quick, aggregate) and _separated(larger, aggregate) for aggregate in AGGREGATES}
    same = all(at_quick == at_larger for at_quick, at_larger in orders.values())
    separated = all(apart.values())
    arms = _tier_arms(quick, "question score") + _tier_arms(larger, "question score")
    return _shaped(
        "R1",
        "The quick-evaluation ranking equals the ranking at a larger scale",
        "2M-subset rankings 'perfectly consistent with full-scale training' (Spearman 1)",
        ", ".join(f"Spearman {_rho(rho)} by {aggregate}" for aggregate, rho in rhos.items())
        + f" ({sizes[0]} against {sizes[1]} samples)",
        "agrees" if same and separated else "disagrees" if not same and separated else "within noise",
        "judged on both aggregates, Overall (the paper's Table 3 metric) and the question score (a mean over "
        "questions), because the ranking can flip with the aggregate: agrees when both rank the tiers the same at "
        "both sizes and every tier's interval is apart from the others; disagrees when a ranking differs and the "
        "intervals are apart; within noise when intervals overlap",
        difference=None if math.isnan(rhos["Overall"]) else round(rhos["Overall"], 3),
        arms=arms,
        why="; ".join(
            f"by {aggregate}: {' > '.join(at_quick)} at {sizes[0]}, {' > '.join(at_larger)} at {sizes[1]}, "
            f"intervals {'apart' if apart[aggregate] else 'overlapping'}"
            for aggregate, (at_quick, at_larger) in orders.items()
        ),
    )


PAPER_STATISTICS = {"difficulty": (1.90, 2.15, 2.20), "complexity": (2.44, 2.62, 2.74), "relevance": (3.94, 4.45, 4.55)}


def statistics_rise(sft_data: dict) -> dict:
    """Tc: difficulty, complexity and relevance rise across Knowledge, Instruction, Preference.

    Not testable when the judge scores the world generator's own metadata: the rise is then how the
    tiers were generated, not something a judge found in the data."""
    stats = sft_data["curriculum_statistics"]
    tiers = ("knowledge", "instruction", "preference")
    rises = {name: all(stats[a][name] < stats[b][name] for a, b in zip(tiers, tiers[1:])) for name in PAPER_STATISTICS}
    reads_metadata = sft_data["judge_reads_generator"]
    return _shaped(
        "Tc",
        "Task difficulty, data complexity and image-text relevance rise across the SFT stages",
        "; ".join(f"{n} " + " → ".join(f"{v:.2f}" for v in values) for n, values in PAPER_STATISTICS.items()),
        "; ".join(f"{n} " + " → ".join(f"{stats[t][n]:.2f}" for t in tiers) for n in PAPER_STATISTICS),
        "agrees" if all(rises.values()) else "disagrees",
        "agrees when all three criteria rise strictly from stage to stage",
        not_testable=f"the statistic is fixed by the data generator: the {sft_data['judge']} judge scored "
        f"{sft_data['judge_reads']}"
        if reads_metadata
        else "",
        why="rises: " + ", ".join(f"{name} {'yes' if rose else 'no'}" for name, rose in rises.items()),
    )


def curriculum_scales(curriculum: dict, evaluation: dict) -> dict:
    """F-c: the curriculum outscales one mixed stage at equal compute.

    The arms at the largest size are the checkpoints notebook 08 scored (sft-preference: the
    curriculum's end; sft-mixed), so their swapped-image check says whether their answers look."""
    largest = max(curriculum["paired"], key=lambda row: row["size"])
    head = curriculum["headline"]
    seed = curriculum["parameters"]["seed"]
    rows = {row["arm"]: row for row in curriculum["runs"] if row["size"] == largest["size"] and row["seed"] == seed}
    arms = _tier_arms([{**row, "tier": arm} for arm, row in rows.items()], "question score")
    reliance = {
        arm: evaluation["image_reliance"].get(name)
        for arm, name in (("curriculum", "sft-preference"), ("mixed", "sft-mixed"))
    }
    looks = {arm: r is not None and r["low"] > 0 for arm, r in reliance.items()}
    blind_answers = (
        "neither arm's answers depend on the image (notebook 08, swapped images: "
        + ", ".join(
            f"{arm} gain {r['image gain']:.3f} nats [{r['low']:.3f}, {r['high']:.3f}]"
            for arm, r in reliance.items()
            if r is not None
        )
        + ")"
        if not any(looks.values()) and all(r is not None for r in reliance.values())
        else ""
    )
    return _row(
        "F-c",
        "Curriculum SFT scales near-linearly, one mixed stage logarithmically, at equal compute",
        "curriculum ≈ linear in data, mixed ≈ logarithmic: the curriculum pulls ahead at larger sizes",
        f"question-score gain from the smallest to the largest size: curriculum "
        f"{head['gain question score curriculum']:.1f}, mixed {head['gain question score mixed']:.1f}; "
        f"curriculum − mixed at {largest['size']} samples {largest['difference']:.1f}",
        largest["difference"],
        largest["low"],
        largest["high"],
        arms=arms,
        not_testable=blind_answers,
        why=f"range: the paired bootstrap interval at the largest size; {_blind_rows(rows.values())}"
        + ("" if all(r is not None for r in reliance.values()) else "; image reliance not measured (notebook 08)"),
    )


def claims(results: Mapping[str, dict], captioner_seeds: Mapping | None = None) -> list[dict]:
    """Every claim's row, in the paper's order of the recipe. `captioner_seeds`: the captioner seed
    bench's results (bench/results/captioner_seeds.json), H1's spread, when present."""
    alignment, advance = results["04_pretrain_alignment"], results["05_pretrain_advance"]
    return [
        distilled_captions(results["02_captioner"], results["03_production"], captioner_seeds),
        caption_sources(alignment),
        ocr_quality(advance),
        log_linear(alignment, "alignment"),
        log_linear(advance, "advance"),
        survives_sft(alignment),
        advance_adds(advance),
        quick_ranking(results["06_sft_data"]),
        ranking_holds(results["06_sft_data"]),
        statistics_rise(results["06_sft_data"]),
        curriculum_scales(results["07_curriculum"], results["08_evaluation"]),
    ]


def counts(rows: Sequence[dict]) -> dict[str, int]:
    """How many claims got each verdict, every verdict listed."""
    return {name: sum(row["verdict"] == name for row in rows) for name in VERDICTS}


README_START = "<!-- claims: written by `python -m sail.claims` from the reference run; do not edit by hand -->"
README_END = "<!-- /claims -->"


def readme_section(report: Mapping, paper: Mapping) -> str:
    """The README's account of the reference run: the rules, the verdict counts, the claims table
    (from `claims.json`) and the final model's Table 1 row beside its blind level (from notebook
    09's results), between the markers `README_START` and `README_END`."""
    final = paper["final_model"]
    means = final["averages"]
    rules = "\n".join(f"- **{name}**: {text}." for name, text in report["rules"].items())
    tally = ", ".join(f"{count} {name}" for name, count in report["counts"].items())
    rows = [{**row, "verdict": f"**{row['verdict']}**"} for row in report["claims"]]
    return f"""{README_START}
The rules, checked in this order:

{rules}

In the reference run, of {len(rows)} claims: {tally}.

{markdown_table(rows, ["id", "claim", "paper", "ours", "verdict"])}

Why, from the run's numbers:

{markdown_table(rows, ["id", "verdict", "why"])}

The final model ({final["checkpoint"]}) on notebook 08's benchmarks, each score beside its blind level:

{markdown_table(final["rows"], final["columns"])}

Overall (mean over the {means["benchmarks"]} benchmarks): {means["overall"]}, blind level {means["blind overall"]};
mean of the {means["groups"]} group averages: {means["group mean"]}, blind level {means["blind group mean"]}.
{README_END}"""


def write_readme(readme: str | Path, run_dir: str | Path) -> Path:
    """Replace the README's claims section with the one `run_dir` (e.g. outputs/tiny) makes."""
    readme, run_dir = Path(readme), Path(run_dir)
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme} has no claims section: add the lines {README_START!r} and {README_END!r}")
    section = readme_section(
        json.loads((run_dir / "claims.json").read_text()),
        json.loads((run_dir / "results" / "09_paper.json").read_text()),
    )
    head, rest = text.split(README_START, 1)
    readme.write_text(head + section + rest.split(README_END, 1)[1])
    return readme


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python -m sail.claims README.md outputs/tiny")
    print(f"wrote {write_readme(sys.argv[1], sys.argv[2])}")
