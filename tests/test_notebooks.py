"""Every notebook executed headless through `sail run`, on the tiny profile with small budgets."""

from __future__ import annotations

import json
import shutil
import uuid

import nbformat
import pytest
from notebook_runner import ROOT, sail_run

from sail import review

pytestmark = pytest.mark.notebook


@pytest.fixture
def scratch():
    """An output folder inside the repository (ignored by git), so a run there names only relative
    paths, as the reference run does."""
    folder = ROOT / "outputs" / "scratch" / uuid.uuid4().hex[:12]
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_tour_runs_end_to_end_and_reads_clean(scratch):
    small = "-p lm_drill_steps 10 -p lm_steps 30 -p vit_steps 30 -p captioner_steps 10 -p eval_images 8"
    run = sail_run("00_tour", "--output-dir", str(scratch), *small.split(), "-p", "gallery_images", "4")
    assert run.returncode == 0, run.stderr[-3000:]
    out = scratch / "tiny"
    artifacts = out / "artifacts"  # the run's own root, from --output-dir
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest["notebooks"]["00_tour"]
    assert entry["status"] == "ok" and entry["duration_s"] > 0 and entry["parameters"]["captioner_steps"] == 10
    results = json.loads((artifacts / "00_tour.json").read_text())
    assert results["captioner"]["steps"] == 10 and results["captioner"]["tokens"] > 0
    assert set(results["captioner"]["trained"]) >= {"pair_f1", "object_f1", "hallucination_rate"}
    assert results["foundations"]["vision"]["colour_accuracy"] >= 0
    assert results["headline"]["first captioner pair F1"] == round(results["captioner"]["trained"]["pair_f1"], 3)
    assert (artifacts / "captioner" / "model.safetensors").exists()
    assert (artifacts / "foundations" / "foundations.json").exists()
    executed = nbformat.read(out / "00_tour.ipynb", as_version=4)
    # 30 steps never reach a check, let alone the reading target: the notebook says so where it loads
    # them, on stderr; nothing else there, and no fragments or machine paths anywhere.
    assert "the LM foundation ended its 30 steps below its reading target" in json.dumps(executed)
    found = review.problems(executed)
    assert found and all("(stderr)" in problem for problem in found), found
    assert "What this run shows" in executed.cells[-1].outputs[0]["data"]["text/markdown"]
    assert (out / "00_tour.html").is_file() and (out / "results" / "00_tour.json").is_file()


def test_unknown_profile_fails_in_the_first_cell_with_a_clear_message(tmp_path):
    run = sail_run("00_tour", "--profile", "huge", "--output-dir", str(tmp_path), "-p", "lm_steps", "-3")
    assert run.returncode == 1
    assert "ParameterError" in run.stderr and "profile='huge'" in run.stderr and "lm_steps=-3" in run.stderr


@pytest.mark.parametrize(
    "notebook, message",
    [
        ("02_captioner", "a folder holding reference/annotations.jsonl (run notebook 01 first)"),
        ("06_sft_data", "notebook 01's output with a pool/ folder (run notebook 01 first)"),
        ("07_curriculum", "notebook 06's tiers: <tier>.meta.json files (run notebook 06 first)"),
        ("08_evaluation", "the pipeline's checkpoints: run 00_tour first at least"),
    ],
)
def test_a_notebook_whose_inputs_are_missing_names_the_notebook_to_run_first(tmp_path, notebook, message):
    run = sail_run(notebook, "--output-dir", str(tmp_path))  # a fresh run folder: nothing upstream ran
    assert run.returncode == 1
    assert f"sail: FAILED {notebook}, cell 3 (In [3]): ParameterError" in run.stderr and message in run.stderr
