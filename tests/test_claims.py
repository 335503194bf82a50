"""The paper in miniature: the verdict rules, each pinned by a hand-made case that flips it."""

from __future__ import annotations

import json

import pytest

from sail.claims import (
    Arm,
    caption_sources,
    claims,
    counts,
    curriculum_scales,
    distilled_captions,
    log_linear,
    ocr_quality,
    quick_ranking,
    ranking_holds,
    read_results,
    statistics_rise,
    survives_sft,
    untestable,
    verdict,
)


@pytest.mark.parametrize(
    "low, high, expected",
    [(0.1, 2.0, "agrees"), (-2.0, -0.1, "disagrees"), (-1.0, 1.0, "within noise"), (0.0, 1.0, "within noise")],
)
def test_a_range_above_zero_agrees_below_disagrees_across_is_noise(low, high, expected):
    assert verdict(low, high) == expected


def test_untestable_overrides_any_range_and_a_tied_control_turns_agreement_into_noise():
    assert verdict(1.0, 2.0, not_testable="blind") == verdict(-2.0, -1.0, not_testable="blind") == "not testable"
    assert verdict(1.0, 2.0, control_ties="tie") == "within noise"
    assert verdict(-2.0, -1.0, control_ties="tie") == "disagrees"  # a tie cannot rescue a loss


def test_an_inverted_range_is_refused():
    with pytest.raises(ValueError, match=r"got \[1, 0\]"):
        verdict(1, 0)


def test_an_arm_sees_only_beyond_its_margin_above_the_blind_level():
    assert Arm("a", 5.0, 3.0, 1.9).sees and not Arm("a", 5.0, 3.0, 2.0).sees
    assert not Arm("a", 25.0, 25.0).sees  # exactly the constant-answer level
    assert Arm.from_interval("a", 30.0, 25.0, 0.5).sees and not Arm.from_interval("a", 30.0, 25.0, -0.5).sees
    reason = untestable([Arm("x", 4.0, 4.5), Arm("y", 2.0, 2.0)])
    assert reason.endswith(
        "x 4.0 at or below its blind level 4.5 (by -0.5); y 2.0 at or below its blind level 2.0 (by +0.0)"
    )
    assert untestable([Arm("x", 4.0, 4.5), Arm("y", 3.0, 2.0)]) == ""
    assert untestable([]) == ""  # a claim that compares no models is judged by its other reasons


def _alignment(alt_text: float, blind: float = 1.0, wrong_facts: float = 2.0, seed: int = 0) -> dict:
    caption = {"sail-caption-mini": 5.0, "teacher": 6.0, "weak": 1.0, "alt-text": alt_text, "wrong-facts": wrong_facts}
    return {
        "parameters": {"sizes": [8, 16, 32], "seed": seed},
        "table2": [
            {"mixture": f"{name} + ocr-hq", "Caption": value, "Caption blind": blind, "Overall": value / 2}
            for name, value in caption.items()
        ],
        "runs": [{"run": "D=32", "Caption": 5.0}, {"run": f"D=32 seed {seed + 1}", "Caption": 4.0}],
    }


def test_caption_sources_compare_the_caption_column_with_the_better_other_source_within_the_seed_spread():
    row = caption_sources(_alignment(alt_text=3.0))  # 5 - max(3, 1) = 2, spread |5 - 4| = 1
    assert (row["difference"], row["low"], row["high"], row["verdict"]) == (2.0, 1.0, 3.0, "agrees")
    row = caption_sources(_alignment(alt_text=4.5))  # 0.5 ± 1 holds zero
    assert (row["low"], row["high"], row["verdict"]) == (-0.5, 1.5, "within noise")
    assert "spread at D=32 (1.0)" in row["why"]


def test_the_second_seed_is_found_whatever_the_first_seed_is():
    row = caption_sources(_alignment(alt_text=3.0, seed=7))  # the second seed's run is "D=32 seed 8"
    assert (row["low"], row["high"]) == (1.0, 3.0)


def test_a_range_of_no_width_cannot_exclude_noise():
    no_second_seed = _alignment(alt_text=3.0)
    no_second_seed["runs"] = no_second_seed["runs"][:1]
    row = caption_sources(no_second_seed)
    assert (row["low"], row["high"], row["verdict"]) == (2.0, 2.0, "within noise")
    assert "no spread is measured" in row["why"]


def test_caption_sources_are_not_testable_when_no_arm_clears_its_blind_level():
    row = caption_sources(_alignment(alt_text=3.0, blind=5.0))  # sail-caption-mini 5.0 sits at its blind level
    assert row["verdict"] == "not testable"
    assert "sail-caption-mini 5.0 at or below its blind level 5.0" in row["why"]


@pytest.mark.parametrize("wrong_facts", [4.5, 7.0])  # 5 - 4.5 ties within the spread of 1; 5 - 7 loses outright
def test_a_wrong_facts_control_that_ties_or_wins_makes_the_win_within_noise(wrong_facts):
    row = caption_sources(_alignment(alt_text=3.0, wrong_facts=wrong_facts))
    assert row["verdict"] == "within noise" and "wrong-facts control ties or wins" in row["why"]


def _advance(hq_rise: float, mixed_rise: float = 0.0) -> dict:
    rows = [
        {"mixture": "sail-caption-mini + ocr-hq", "OCR answer loss": 4.0, "OCR answer loss swapped": 4.0 + hq_rise},
        {"mixture": "sail-caption-mini + ocr-hq + ocr-lq", "OCR answer loss": 4.5},
    ]
    rows[1]["OCR answer loss swapped"] = 4.5 + mixed_rise
    runs = [{"run": "advance D=32", "OCR answer loss": 4.0}, {"run": "advance D=32 seed 1", "OCR answer loss": 4.1}]
    return {"parameters": {"sizes": [8, 32], "seed": 0}, "table2_ocr": rows, "runs": runs}


def test_the_ocr_claim_needs_a_loss_that_rises_when_the_images_are_swapped():
    assert ocr_quality(_advance(hq_rise=0.05))["verdict"] == "not testable"  # 0.05 is inside the 0.1 seed spread
    row = ocr_quality(_advance(hq_rise=0.3))  # 4.5 - 4.0 = 0.5 ± 0.1: high quality alone reads better
    assert (row["difference"], row["verdict"]) == (0.5, "agrees")


def _advance_control(control_blind: float) -> dict:
    runs = [
        {"run": "advance D=32", "Overall": 6.0, "Overall blind": 2.0},
        {"run": "advance D=32 seed 1", "Overall": 5.5, "Overall blind": 2.0},
        {"run": "control D=32", "Overall": 4.0, "Overall blind": control_blind},
        {"run": "control D=32 seed 1", "Overall": 3.0, "Overall blind": control_blind},
    ]
    return {"parameters": {"sizes": [8, 32], "seed": 0}, "runs": runs}


def test_advance_against_its_control_uses_the_larger_seed_spread_and_the_blind_levels():
    from sail.claims import advance_adds

    row = advance_adds(_advance_control(control_blind=1.0))  # 6 - 4 = 2 ± max(0.5, 1.0)
    assert (row["difference"], row["low"], row["high"], row["verdict"]) == (2.0, 1.0, 3.0, "agrees")
    unseeing = _advance_control(control_blind=5.0)
    for run in unseeing["runs"]:
        run["Overall blind"] = 7.0
    assert advance_adds(unseeing)["verdict"] == "not testable"


def _sweep(blind: float, b: float = 1.5, r2: float = 0.8) -> dict:
    runs = [{"run": f"D={d}", "Overall": float(i), "Overall blind": blind} for i, d in enumerate((8, 16, 32))]
    fits = {"Overall": {"a": 0.0, "b": b, "r2": r2}}
    return {"parameters": {"sizes": [8, 16, 32], "seed": 0}, "runs": runs, "fits": fits}


@pytest.mark.parametrize(
    "b, r2, expected", [(1.5, 0.8, "agrees"), (1.5, 0.5, "within noise"), (-0.2, 0.9, "disagrees")]
)
def test_a_log_linear_fit_agrees_only_rising_and_explaining_most_of_the_variance(b, r2, expected):
    assert log_linear(_sweep(blind=0.5, b=b, r2=r2), "alignment")["verdict"] == expected


def test_a_sweep_whose_points_all_sit_at_the_blind_level_is_not_testable():
    row = log_linear(_sweep(blind=2.0), "alignment")  # points 0, 1, 2 against a blind level of 2
    assert row["verdict"] == "not testable" and "0 of 3 sweep points above their blind level" in row["why"]


def _probe(large_low: float) -> dict:
    probe = [
        {"checkpoint": "D=8", "VQA after SFT": 4.2, "VQA blind": 25.0, "VQA low": -25.0, "VQA high": -16.0},
        {"checkpoint": "D=32", "VQA after SFT": 25.0, "VQA blind": 25.0, "VQA low": large_low, "VQA high": 3.0},
    ]
    for row in probe:
        row["VQA distinct answers"] = 1
    return {"parameters": {"sizes": [8, 32], "sft_steps": 4}, "sft_probe": probe}


def test_after_sft_a_constant_answer_level_score_is_not_testable():
    row = survives_sft(_probe(large_low=-3.0))  # D=32 at 25.0, exactly what one answer to all scores
    assert row["verdict"] == "not testable" and "D=32 after SFT 25.0 at or below its blind level 25.0" in row["why"]
    row = survives_sft(_probe(large_low=0.5))  # 20.8 ± (1.25 + 4.5): the half-widths of [0.5, 3] and [-25, -16]
    assert (row["difference"], row["low"], row["high"], row["verdict"]) == (20.8, 15.05, 26.55, "agrees")
    no_probe = _probe(large_low=0.5)
    no_probe["sft_probe"] = []  # notebook 04 with sft_steps 0
    assert survives_sft(no_probe)["verdict"] == "not testable"


def _tier(tier: str, score: float, blind: float, overall: float | None = None, width: float = 1.0) -> dict:
    overall = score if overall is None else overall
    return {
        "run": f"{tier} @ 16",
        "tier": tier,
        "question score": score,
        "low": score - width,
        "high": score + width,
        "blind question score": blind,
        "Overall": overall,
        "Overall low": overall - width,
        "Overall high": overall + width,
        "blind Overall": blind,
        "stepwise answers %": 0.0,
        "answers": {"WorldPOPE": {"distinct": 1, "commonest": "Yes", "count": 16, "n": 16}},
    }


def _pairs(blind: float = 0.0, **differences: tuple[float, float]) -> dict:
    rows = [{"pair": name.replace("_", " − "), "low": low, "high": high} for name, (low, high) in differences.items()]
    quick = [_tier(tier, 10.0, blind) for tier in ("knowledge", "instruction", "preference")]
    return {"pairs": rows, "quick": quick, "parameters": {"quick_size": 16}}


def test_the_quick_ranking_needs_all_three_of_the_paper_s_orders():
    agree = dict(instruction_preference=(1, 2), instruction_knowledge=(1, 2), preference_knowledge=(1, 2))
    assert quick_ranking(_pairs(**agree))["verdict"] == "agrees"
    assert quick_ranking(_pairs(**{**agree, "preference_knowledge": (-1, 2)}))["verdict"] == "within noise"
    assert quick_ranking(_pairs(**{**agree, "instruction_knowledge": (-3, -1)}))["verdict"] == "disagrees"


def test_the_quick_ranking_of_tiers_below_their_blind_level_is_not_testable():
    agree = dict(instruction_preference=(1, 2), instruction_knowledge=(1, 2), preference_knowledge=(1, 2))
    row = quick_ranking(_pairs(blind=9.5, **agree))  # each tier's interval [9, 11] reaches below 9.5
    assert row["verdict"] == "not testable"
    assert "WorldPOPE 'Yes' ×16 of 16" in row["why"]


def _rankings(quick_scores, larger_scores, rho_overall: float, rho_score: float, width: float = 1.0) -> dict:
    tiers = ("knowledge", "instruction", "preference")
    return {
        "quick": [_tier(t, s, 0.0, width=width) for t, s in zip(tiers, quick_scores)],
        "larger": [_tier(t, s, 0.0, width=width) for t, s in zip(tiers, larger_scores)],
        "headline": {"spearman Overall": rho_overall, "spearman": rho_score},
        "parameters": {"quick_size": 16, "larger_size": 32},
    }


def test_the_ranking_holds_on_both_aggregates_beyond_their_intervals():
    assert ranking_holds(_rankings((10, 20, 30), (11, 21, 31), 1.0, 1.0))["verdict"] == "agrees"
    assert ranking_holds(_rankings((10, 20, 30), (11, 21, 31), 1.0, 1.0, width=6.0))["verdict"] == "within noise"
    row = ranking_holds(_rankings((10, 20, 30), (31, 21, 11), -1.0, -1.0))
    assert row["verdict"] == "disagrees" and "intervals apart" in row["why"]
    reordered = _rankings((10, 20, 30), (11, 21, 31), 1.0, 0.5)
    for row in reordered["larger"]:  # by question score the larger size reverses the order
        row["question score"], row["low"], row["high"] = 40 - row["Overall"], 39 - row["Overall"], 41 - row["Overall"]
    assert ranking_holds(reordered)["verdict"] == "disagrees"


def test_a_ranking_with_all_scores_tied_has_an_undefined_correlation():
    row = ranking_holds(_rankings((10, 10, 10), (11, 11, 11), float("nan"), float("nan")))
    assert row["verdict"] == "within noise" and row["difference"] is None
    assert row["ours"].startswith("Spearman undefined by Overall, Spearman undefined by question score")


def _statistics(judge: str) -> dict:
    reads_generator = judge == "rules"
    stats = {
        tier: dict.fromkeys(("difficulty", "complexity", "relevance"), float(i))
        for i, tier in enumerate(("knowledge", "instruction", "preference"))
    }
    return {
        "curriculum_statistics": stats,
        "judge": judge,
        "judge_reads": "the generator's metadata",
        "judge_reads_generator": reads_generator,
    }


def test_statistics_a_rules_judge_reads_from_the_generator_are_not_testable():
    row = statistics_rise(_statistics("rules"))
    assert (
        row["verdict"] == "not testable"
        and "fixed by the data generator: the rules judge scored the generator's metadata" in row["why"]
    )
    assert statistics_rise(_statistics("a chat model"))["verdict"] == "agrees"
    level = _statistics("a chat model")
    level["curriculum_statistics"]["preference"]["relevance"] = 1.0  # level with instruction, not rising
    assert statistics_rise(level)["verdict"] == "disagrees"


def _curriculum(gain_low: float) -> tuple[dict, dict]:
    runs = [
        {**_tier(arm, score, 5.0), "arm": arm, "size": 32, "seed": 0}
        for arm, score in (("curriculum", 20.0), ("mixed", 12.0))
    ]
    curriculum = {
        "parameters": {"seed": 0},
        "runs": runs,
        "paired": [{"size": 32, "difference": 8.0, "low": 6.0, "high": 10.0}],
        "headline": {"gain question score curriculum": 9.0, "gain question score mixed": 2.0},
    }
    gain = {"image gain": gain_low + 0.1, "low": gain_low, "high": gain_low + 0.2}
    return curriculum, {"image_reliance": {"sft-preference": gain, "sft-mixed": gain}}


def test_the_curriculum_claim_needs_answers_that_change_with_the_image():
    row = curriculum_scales(*_curriculum(gain_low=-0.05))
    assert row["verdict"] == "not testable" and "neither arm's answers depend on the image" in row["why"]
    assert curriculum_scales(*_curriculum(gain_low=0.02))["verdict"] == "agrees"


def _captioner(ours: float, blind: float) -> tuple[dict, dict]:
    headline = {"captioner (caption)": {"objects": ours}, "alt_text": {"objects": 0.5}, "weak": {"objects": 0.0}}
    production = {"headline": {"pair F1": 0.6, "alt-text pair F1": 0.4}}
    blind_f1 = {"captioner (caption)": {"blind": blind}}
    return {"quality_headline": headline, "blind_pair_f1": blind_f1, "parameters": {"seed": 0}}, production


SEEDS = {"rows": [{"seed": 0, "pair_f1": 0.80}, {"seed": 1, "pair_f1": 0.90}], "git": {"commit": "abcdef123"}}


def test_distilled_captions_range_over_the_seed_bench_s_captioners():
    row = distilled_captions(*_captioner(0.8, 0.1), SEEDS)  # 80 - 50 and 90 - 50
    assert (row["difference"], row["low"], row["high"], row["verdict"]) == (30.0, 30.0, 40.0, "agrees")
    assert "the differences 2 captioner seeds give (0.800 to 0.900 pair F1" in row["why"]
    row = distilled_captions(*_captioner(0.7996, 0.1), SEEDS)  # the bench rounds this seed to 0.80
    assert row["low"] <= row["difference"] <= row["high"]
    row = distilled_captions(*_captioner(0.8, 0.1))  # no bench: no spread, so noise cannot be excluded
    assert (row["low"], row["high"], row["verdict"]) == (30.0, 30.0, "within noise")


def test_a_seed_bench_of_another_recipe_is_not_used():
    row = distilled_captions(*_captioner(0.7, 0.1), SEEDS)  # the bench's seed 0 scored 0.80, this run 0.70
    assert row["verdict"] == "within noise" and "so it measured another recipe" in row["why"]


def test_a_captioner_whose_worst_seed_does_not_clear_its_blind_level_is_not_testable():
    assert distilled_captions(*_captioner(0.8, 0.79), SEEDS)["verdict"] == "agrees"
    row = distilled_captions(*_captioner(0.8, 0.81), SEEDS)
    assert row["verdict"] == "not testable" and "the captioner 80.0 at or below its blind level 81.0" in row["why"]


def test_the_readme_section_is_written_between_its_markers_from_the_run(tmp_path):
    from sail.claims import README_END, README_START, write_readme

    run = tmp_path / "run"
    (run / "results").mkdir(parents=True)
    claim = {"id": "Tc", "claim": "c", "paper": "p", "ours": "o", "verdict": "not testable", "why": "w"}
    report = {"rules": {"agrees": "a"}, "counts": {"agrees": 0, "not testable": 1}, "claims": [claim]}
    (run / "claims.json").write_text(json.dumps(report))
    means = {"overall": 5.0, "blind overall": 30.1, "group mean": 4.2, "blind group mean": 29.0}
    final = {"checkpoint": "m", "columns": ["benchmark", "score"], "rows": [{"benchmark": "B", "score": 1.5}]}
    paper = {"final_model": {**final, "averages": {**means, "benchmarks": 9, "groups": 4}}}
    (run / "results" / "09_paper.json").write_text(json.dumps(paper))
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{README_START}\nstale\n{README_END}\nafter\n")
    text = write_readme(readme, run).read_text()
    assert text.startswith(f"before\n{README_START}\n") and text.endswith(f"{README_END}\nafter\n")
    assert "stale" not in text and "of 1 claims: 0 agrees, 1 not testable." in text
    assert "| Tc | c | p | o | **not testable** |" in text and "| B | 1.5 |" in text
    assert "Overall (mean over the 9 benchmarks): 5.0, blind level 30.1;" in text
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="has no claims section"):
        write_readme(readme, run)


def test_counts_list_every_verdict():
    assert counts([{"verdict": "agrees"}, {"verdict": "not testable"}, {"verdict": "agrees"}]) == {
        "agrees": 2,
        "disagrees": 0,
        "within noise": 0,
        "not testable": 1,
    }


def test_claims_name_the_notebooks_whose_results_are_missing(tmp_path):
    (tmp_path / "02_captioner.json").write_text(json.dumps({}))
    with pytest.raises(FileNotFoundError, match="no results of 03_production, 04_pretrain_alignment"):
        claims(read_results(tmp_path))
