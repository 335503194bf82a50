"""The paper in miniature: one verdict rule, each claim's difference and range from hand-made results."""

from __future__ import annotations

import json

import pytest

from sail.claims import (
    caption_sources,
    claims,
    log_linear,
    quick_ranking,
    ranking_holds,
    read_results,
    statistics_rise,
    verdict,
)


@pytest.mark.parametrize(
    "low, high, expected",
    [(0.1, 2.0, "agrees"), (-2.0, -0.1, "disagrees"), (-1.0, 1.0, "within noise"), (0.0, 1.0, "within noise")],
)
def test_a_range_above_zero_agrees_below_disagrees_across_is_noise(low, high, expected):
    assert verdict(low, high) == expected


def test_an_inverted_range_is_refused():
    with pytest.raises(ValueError, match=r"got \[1, 0\]"):
        verdict(1, 0)


def _alignment(alt_text: float) -> dict:
    overall = {"sail-caption-mini": 5.0, "teacher": 6.0, "weak": 1.0, "alt-text": alt_text, "wrong-facts": 4.0}
    return {
        "parameters": {"sizes": [8, 16, 32]},
        "table2": [{"mixture": f"{name} + ocr-hq", "Overall": value} for name, value in overall.items()],
        "runs": [{"run": "D=32", "Overall": 5.0}, {"run": "D=32 seed 1", "Overall": 4.0}],
    }


def test_caption_sources_compare_with_the_better_other_source_within_the_seed_spread():
    row = caption_sources(_alignment(alt_text=3.0))  # 5 - max(3, 1) = 2, spread |5 - 4| = 1
    assert (row["difference"], row["low"], row["high"], row["verdict"]) == (2.0, 1.0, 3.0, "agrees")
    row = caption_sources(_alignment(alt_text=4.5))  # 0.5 ± 1 holds zero
    assert (row["low"], row["high"], row["verdict"]) == (-0.5, 1.5, "within noise")
    assert "1.00 Overall" in row["why"]


@pytest.mark.parametrize(
    "b, r2, expected", [(1.5, 0.8, "agrees"), (1.5, 0.5, "within noise"), (-0.2, 0.9, "disagrees")]
)
def test_a_log_linear_fit_agrees_only_rising_and_explaining_most_of_the_variance(b, r2, expected):
    assert log_linear({"fits": {"Overall": {"a": 0.0, "b": b, "r2": r2}}}, "alignment")["verdict"] == expected


def _pairs(**differences: tuple[float, float]) -> dict:
    rows = [{"pair": name.replace("_", " − "), "low": low, "high": high} for name, (low, high) in differences.items()]
    quick = [{"tier": tier, "question score": 1.0} for tier in ("knowledge", "instruction", "preference")]
    return {"pairs": rows, "quick": quick, "parameters": {"quick_size": 16}}


def test_the_quick_ranking_needs_all_three_of_the_paper_s_orders():
    agree = dict(instruction_preference=(1, 2), instruction_knowledge=(1, 2), preference_knowledge=(1, 2))
    assert quick_ranking(_pairs(**agree))["verdict"] == "agrees"
    assert quick_ranking(_pairs(**{**agree, "preference_knowledge": (-1, 2)}))["verdict"] == "within noise"
    assert quick_ranking(_pairs(**{**agree, "instruction_knowledge": (-3, -1)}))["verdict"] == "disagrees"


def test_the_ranking_holds_only_at_a_rank_correlation_of_one():
    data = {"parameters": {"quick_size": 16, "larger_size": 32}}
    assert ranking_holds({**data, "headline": {"spearman": 1.0, "spearman answer loss": 1.0}})["verdict"] == "agrees"
    row = ranking_holds({**data, "headline": {"spearman": 0.5, "spearman answer loss": 1.0}})
    assert row["verdict"] == "disagrees" and "answer loss orders the tiers the same way" in row["why"]


def test_statistics_rise_only_when_every_criterion_rises_at_every_stage():
    rising = {"difficulty": 1.0, "complexity": 1.0, "relevance": 1.0}
    stats = {
        tier: {k: v + i for k, v in rising.items()} for i, tier in enumerate(("knowledge", "instruction", "preference"))
    }
    assert statistics_rise({"curriculum_statistics": stats})["verdict"] == "agrees"
    stats["preference"]["relevance"] = stats["instruction"]["relevance"]  # level, not rising
    assert statistics_rise({"curriculum_statistics": stats})["verdict"] == "disagrees"


def test_claims_name_the_notebooks_whose_results_are_missing(tmp_path):
    (tmp_path / "02_captioner.json").write_text(json.dumps({}))
    with pytest.raises(FileNotFoundError, match="no results of 03_production, 04_pretrain_alignment"):
        claims(read_results(tmp_path))
