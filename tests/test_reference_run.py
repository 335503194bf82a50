"""The committed reference run (`outputs/tiny/`) is exactly what the code makes, and reads clean.

`make pipeline` from a clean commit writes it; nothing edits it afterwards. These tests read the
committed files only: they run nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from sail import review

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "outputs" / "tiny"
MANIFEST = json.loads((RUN / "manifest.json").read_text())
EXECUTED = sorted(RUN.glob("[0-9][0-9]_*.ipynb"))


def test_every_numbered_notebook_has_a_reference_run():
    assert [path.stem for path in EXECUTED] == sorted(
        path.stem for path in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")
    )


def test_the_run_came_from_a_clean_commit_and_every_notebook_passed():
    assert MANIFEST["git"]["dirty"] is False, "run `make pipeline` from a clean tree"
    for stem, entry in MANIFEST["notebooks"].items():
        assert entry["status"] == "ok" and entry["commit"] == MANIFEST["git"]["commit"], stem


@pytest.mark.parametrize("executed", EXECUTED, ids=lambda path: path.stem)
def test_executed_code_is_the_source_notebooks_code(executed):
    source = nbformat.read(REPO / "notebooks" / executed.name, as_version=4)
    assert review.code_sources(nbformat.read(executed, as_version=4)) == review.code_sources(source), (
        "the source notebook changed after its reference run: run `make pipeline` again"
    )


@pytest.mark.parametrize("executed", EXECUTED, ids=lambda path: path.stem)
def test_executed_notebook_reads_clean(executed):
    assert review.problems(nbformat.read(executed, as_version=4)) == []


@pytest.mark.parametrize("executed", EXECUTED, ids=lambda path: path.stem)
def test_each_notebook_has_its_render_results_and_index_row(executed):
    assert executed.with_suffix(".html").is_file()
    assert json.loads((RUN / "results" / f"{executed.stem}.json").read_text())["headline"]
    assert f'<a href="{executed.stem}.html">' in (RUN / "index.html").read_text()


def _results(stem: str) -> dict:
    return json.loads((RUN / "results" / f"{stem}.json").read_text())


def test_the_reference_run_s_captioners_beat_the_alt_text():
    """The claim notebooks 02 and 03 make (paper H1), held by the committed run: a distillation
    that stopped working, or a pool captioned by a broken engine, fails here."""
    captioner = _results("02_captioner")["quality_headline"]
    assert captioner["captioner (caption)"]["objects"] > captioner["alt_text"]["objects"]
    assert captioner["captioner (caption)"]["hallucination_rate"] < captioner["alt_text"]["hallucination_rate"]
    mini = _results("03_production")["quality"]
    assert mini["SAIL-Caption-mini"]["pair_f1"] > mini["alt_text"]["pair_f1"]
