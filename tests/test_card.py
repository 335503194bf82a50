"""The final model's card: Hugging Face metadata that round-trips, and every number from the run."""

from __future__ import annotations

from huggingface_hub import ModelCard

from sail.eval.card import final_model_card, write_final_model_card

BENCHMARKS = {
    "WorldVQA": {"group": "General VQA", "metric": "vqa_accuracy", "stands_for": "VQAv2 / GQA", "n": 96},
    "WorldPOPE": {"group": "Hallucination", "metric": "pope_f1", "stands_for": "POPE", "n": 64},
}


def _card(image_gain=0.0123):
    return final_model_card(
        name="sail-vl-tiny",
        profile="tiny",
        stages=[{"stage": "sft-knowledge", "trains": "projector, language", "samples": 1184, "steps": 74}],
        table1_row={"General VQA / WorldVQA": 31.25, "Hallucination / WorldPOPE": 50.0, "Overall / average": 40.6},
        chance_row={"General VQA / WorldVQA": 25.0, "Hallucination / WorldPOPE": 66.7, "Overall / average": 45.8},
        benchmarks=BENCHMARKS,
        image_gain=image_gain,
    )


def test_the_card_s_results_round_trip_through_the_hub_s_own_reader(tmp_path):
    path = write_final_model_card(tmp_path, _card())
    loaded = ModelCard.load(path)
    results = {r.dataset_type: (r.metric_type, r.metric_value) for r in loaded.data.eval_results}
    assert results == {"sail-world/WorldVQA": ("vqa_accuracy", 31.25), "sail-world/WorldPOPE": ("pope_f1", 50.0)}
    assert loaded.data.pipeline_tag == "image-text-to-text" and "tiny" in loaded.data.tags


def test_the_card_counts_what_beats_chance_and_reports_image_reliance():
    text = _card().text
    assert "| WorldVQA | General VQA | 96 | 31.2 | 25.0 |" in text
    assert "Above chance on 1 of 2 benchmarks: WorldVQA." in text
    assert "falls by 0.012 nats per token" in text
    assert "| sft-knowledge | projector, language | 1,184 | 74 |" in text
    assert "Image reliance was not measured" in _card(image_gain=None).text
