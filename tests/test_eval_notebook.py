"""Notebook 08 executed headless on a tiny saved model, and its clear failure on a missing one."""

from __future__ import annotations

import json

import pytest
import torch
from notebook_runner import sail_run

pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tokenizer, geometry):
    from sail.model import build_vlm, make_processor

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("checkpoint") / "tiny-vlm"
    build_vlm(geometry, tokenizer).save_pretrained(path)
    make_processor(tokenizer, geometry.tile_size, geometry.image_seq_length).save_pretrained(path)
    return path


def test_evaluation_notebook_writes_table1_json(tmp_path, tiny_model_dir):
    artifacts = tmp_path / "outputs" / "tiny" / "artifacts"  # the run's own root, from --output-dir
    run = sail_run(
        "08_evaluation",
        "--profile",
        "tiny",
        "--output-dir",
        str(tmp_path / "outputs"),
        "-p",
        "checkpoints",
        str(tiny_model_dir),
        "-p",
        "samples_per_benchmark",
        "4",
        "-p",
        "train_check_records",
        "500",
        "-p",
        "look_samples",
        "2",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((artifacts / "08_evaluation.json").read_text())
    assert results["checkpoints"] == {"tiny-vlm": str(tiny_model_dir)}
    assert len(results["benchmarks"]) >= 8
    scores = results["scores"]["tiny-vlm"]
    assert set(scores) == set(results["benchmarks"])
    assert all(0 <= s["score"] <= 100 and len(s["predictions"]) == s["n"] for s in scores.values())
    rows = results["table1"]["tiny-vlm"]
    assert [k for k in rows if k.endswith("/ average")] == [
        "General VQA / average",
        "OCR VQA / average",
        "Math & Knowledge / average",
        "Hallucination / average",
        "Overall / average",
    ]
    # The blind level: every benchmark's, its group's mean and Overall's, the mean over benchmarks.
    blind = results["blind"]
    names = [key for key in rows if not key.endswith("/ average")]
    assert set(blind) == set(rows) and set(results["blind_answers"]) == set(scores)
    assert blind["Overall / average"] == pytest.approx(sum(blind[k] for k in names) / len(names))
    assert "chance" not in results
    for key in ("distinct_answers", "exploiting_answers", "versus_blind"):
        assert set(results[key]) == {"tiny-vlm"} and set(results[key]["tiny-vlm"]) == set(scores)
    assert all(
        1 <= results["distinct_answers"]["tiny-vlm"][name] <= s["n"] == len(s["predictions"])
        for name, s in scores.items()
    )
    for interval in results["versus_blind"]["tiny-vlm"].values():
        assert interval["low"] <= interval["difference"] <= interval["high"]
    final = results["final"]
    assert final["checkpoint"] == "tiny-vlm"
    assert sorted(final["above chance"] + final["below chance"]) == sorted(scores)
    for name, row in final["rows"].items():
        assert row["score"] == scores[name]["score"] and 0 <= row["swapped score"] <= 100
        assert row["difference"] == results["versus_blind"]["tiny-vlm"][name]["difference"]
        assert row["above chance"] == (row["low"] > 0 and row["swapped low"] > 0) == (name in final["above chance"])
    assert results["headline"]["tiny-vlm benchmarks above chance"] == len(final["above chance"])
    reliance = results["image_reliance"]["tiny-vlm"]
    assert reliance["image gain"] == pytest.approx(reliance["swapped images"] - reliance["own images"])
    assert reliance["low"] <= reliance["image gain"] <= reliance["high"]
    assert list(reliance["by benchmark"]) == list(scores)
    own = [g["own images"] for g in reliance["by benchmark"].values()]  # equal questions per benchmark here
    assert reliance["own images"] == pytest.approx(sum(own) / len(own))


def test_a_missing_checkpoint_fails_in_the_validation_cell(tmp_path):
    run = sail_run(
        "08_evaluation",
        "--profile",
        "tiny",
        "--output-dir",
        str(tmp_path),
        "-p",
        "checkpoints",
        str(tmp_path / "no-such-model"),
    )
    assert run.returncode == 1
    assert (
        "ParameterError" in run.stderr and "no-such-model" in run.stderr and "cell 3" in run.stderr
    )  # cell 3: after papermill's injected parameters
