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
