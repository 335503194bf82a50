"""The final model's card: Hugging Face metadata that round-trips, and every number from the run."""

from __future__ import annotations

from huggingface_hub import ModelCard

from sail.eval.card import averages, final_model_card, final_rows, write_final_model_card


def _row(score, blind, difference, low, high, swapped, above, exploiting=0, distinct=3) -> dict:
    return {
        "score": score,
        "blind": blind,
        "difference": difference,  # per question against the best constant: not score − blind
        "low": low,
        "high": high,
        "distinct answers": distinct,
        "exploiting answers": exploiting,
        "swapped score": swapped,
        "above chance": above,
    }


def _evaluation(with_reliance: bool = True) -> dict:
    return {
        "benchmarks": {
            "WorldVQA": {"group": "General VQA", "metric": "vqa_accuracy", "stands_for": "VQAv2 / GQA", "n": 96},
            "WorldDocVQA": {"group": "OCR VQA", "metric": "anls", "stands_for": "DocVQA", "n": 96},
        },
        "table1": {
            "sft-preference": {
                "General VQA / WorldVQA": 31.25,
                "OCR VQA / WorldDocVQA": 33.48,
                "General VQA / average": 31.25,
                "OCR VQA / average": 33.48,
                "Overall / average": 32.365,
            }
        },
        "blind": {
            "General VQA / WorldVQA": 25.0,
            "OCR VQA / WorldDocVQA": 79.0,
            "General VQA / average": 25.0,
            "OCR VQA / average": 79.0,
            "Overall / average": 52.0,
        },
        "final": {
            "checkpoint": "sft-preference",
            "rows": {
                "WorldVQA": _row(31.25, 25.0, 4.0, 1.04, 11.46, 20.0, True),
                "WorldDocVQA": _row(33.48, 79.0, -44.0, -50.0, -41.0, 33.48, False, exploiting=74, distinct=2),
            },
        },
        "image_reliance": {
            "sft-preference": {
                "image gain": 0.0123,
                "low": 0.004,
                "high": 0.021,
                "by benchmark": {"WorldVQA": {"image gain": 0.614, "low": 0.305, "high": 0.9}},
            }
        }
        if with_reliance
        else {},
    }


def _card(with_reliance: bool = True):
    stages = [{"stage": "sft-knowledge", "trains": "projector, language", "samples": 1184, "steps": 74}]
    return final_model_card(name="sail-vl-tiny", profile="tiny", stages=stages, evaluation=_evaluation(with_reliance))


def test_the_card_s_results_round_trip_through_the_hub_s_own_reader(tmp_path):
    path = write_final_model_card(tmp_path, _card())
    loaded = ModelCard.load(path)
    results = {r.dataset_type: (r.metric_type, r.metric_value) for r in loaded.data.eval_results}
    assert results == {"sail-world/WorldVQA": ("vqa_accuracy", 31.25), "sail-world/WorldDocVQA": ("anls", 33.48)}
    assert loaded.data.pipeline_tag == "image-text-to-text" and "tiny" in loaded.data.tags


def test_each_score_stands_beside_its_blind_level_interval_distinct_answers_and_swapped_score():
    text = _card().text
    assert (
        "| WorldVQA | General VQA | 96 | 31.2 | 25.0 | +4.0 [+1.0, +11.5] | 3 | 20.0 | +0.61 [+0.30, +0.90] | yes |"
        in text
    )
    assert "| WorldDocVQA | OCR VQA | 96 | 33.5 | 79.0 | -44.0 [-50.0, -41.0] | 2 | 33.5 | not measured | no |" in text
    assert "This is a miniature" in text
    assert "Above chance on 1 of 2 benchmarks: WorldVQA." in text
    assert "the metric's handling of padding: WorldDocVQA 74." in text
    assert "changes by 0.012 nats per token (95 % interval [0.004, 0.021]) when another image" in text
    assert "| sft-knowledge | projector, language | 1,184 | 74 |" in text
    assert "Image reliance was not measured" in _card(with_reliance=False).text


def test_the_overall_mean_over_benchmarks_and_the_mean_of_group_averages_are_labelled_apart():
    evaluation = _evaluation()
    evaluation["table1"]["sft-preference"]["General VQA / average"] = 10.0  # a group mean unlike its benchmarks'
    means = averages(evaluation)
    assert means == {
        "overall": 32.4,
        "blind overall": 52.0,
        "group mean": 21.7,  # (10.0 + 33.48) / 2
        "blind group mean": 52.0,
        "benchmarks": 2,
        "groups": 2,
    }
    text = final_model_card(name="m", profile="tiny", stages=[], evaluation=evaluation).text
    assert "Overall (mean over the 2 benchmarks, Table 1's Avg): 32.4, blind level\n52.0." in text
    assert "Mean of the 2 group averages: 21.7, blind level\n52.0." in text
    assert [row["above chance"] for row in final_rows(evaluation)] == ["yes", "no"]
