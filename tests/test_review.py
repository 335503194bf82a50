"""What reviewers read: the scan for noise, the renders and index, and progress as plain lines."""

from __future__ import annotations

import io
import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from sail import review
from sail.console import LineProgress, progress


def notebook_with(*outputs) -> nbformat.NotebookNode:
    return new_notebook(cells=[new_markdown_cell("# t"), new_code_cell("x = 1", outputs=list(outputs))])


def test_a_clean_notebook_has_no_problems():
    nb = notebook_with(
        new_output("stream", name="stdout", text="artifacts in ../outputs/tiny/artifacts; 3/4 done\n"),
        new_output("execute_result", data={"text/plain": "see http://127.0.0.1:23333/v1/chat"}),
    )
    nb.metadata["papermill"] = {"input_path": "notebooks/00_tour.ipynb", "output_path": "outputs/tiny/00_tour.ipynb"}
    assert review.problems(nb) == []


@pytest.mark.parametrize(
    "output, expected",
    [
        (
            new_output("stream", name="stdout", text="saved to /home/ana/sail/outputs\n"),
            "cell 1 (stdout): absolute path '/home/ana/sail/outputs'",
        ),
        (
            new_output("display_data", data={"text/html": "<td>C:\\Users\\ana</td>"}),
            "cell 1 (text/html): absolute path 'C:\\\\U'",
        ),
        (
            new_output("stream", name="stdout", text="train:  40%|####      | 4/10\rtrain:  50%|#####     | 5/10"),
            "cell 1 (stdout): 3 progress-bar fragments",
        ),
        (
            new_output(
                "stream", name="stderr", text="\nUserWarning: the LM foundation stopped at its cap\n  warnings.warn("
            ),
            "cell 1 (stderr): stderr output 'UserWarning: the LM foundation stopped at its cap'",
        ),
        (
            new_output("error", ename="ValueError", evalue="bad", traceback=[]),
            "cell 1 (error): error output ValueError: bad",
        ),
    ],
)
def test_each_kind_of_noise_is_named_with_its_cell(output, expected):
    assert review.problems(notebook_with(output)) == [expected]


def test_absolute_papermill_paths_are_problems():
    nb = notebook_with()
    nb.metadata["papermill"] = {"input_path": "/work/main/notebooks/00_tour.ipynb", "output_path": "outputs/x.ipynb"}
    assert review.problems(nb) == ["metadata: papermill input_path is absolute: /work/main/notebooks/00_tour.ipynb"]


def test_code_sources_leave_out_the_injected_parameters():
    nb = new_notebook(
        cells=[
            new_code_cell("a = 1", metadata={"tags": ["parameters"]}),
            new_code_cell("a = 2", metadata={"tags": ["injected-parameters"]}),
            new_markdown_cell("text"),
            new_code_cell("print(a)"),
        ]
    )
    assert review.code_sources(nb) == ["a = 1", "print(a)"]


def test_line_progress_prints_each_quarter_and_where_an_early_stop_ended():
    out = io.StringIO()
    bar = LineProgress(8, desc="drill", file=out)
    for step in range(1, 6):
        bar.update(1)
        bar.set_postfix(loss=f"{1 / step:.2f}")
    bar.close()
    assert out.getvalue().splitlines() == [
        "drill: 2/8 (25%) loss=1.00",
        "drill: 4/8 (50%) loss=0.33",
        "drill: 5/8 (62%) loss=0.20",
    ]


def test_line_progress_resumed_at_a_mark_does_not_repeat_it():
    out = io.StringIO()
    bar = LineProgress(4, initial=2, desc="s", file=out)
    bar.update(2)
    bar.close()
    assert out.getvalue().splitlines() == ["s: 4/4 (100%)"]


def test_progress_is_plain_lines_only_when_headless(monkeypatch):
    monkeypatch.setenv("SAIL_HEADLESS", "1")
    assert isinstance(progress(10, desc="x"), LineProgress)
    assert not isinstance(progress(10, desc="x", disable=True), LineProgress)
    monkeypatch.delenv("SAIL_HEADLESS")
    assert not isinstance(progress(10, desc="x"), LineProgress)


def test_index_links_each_render_with_status_time_memory_and_headline(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "00_tour.json").write_text(json.dumps({"headline": {"first captioner pair F1": 0.7697}}))
    entries = {
        "00_tour": {"status": "ok", "duration_s": 201.4, "error": None, "peak_memory_mb": 1234},
        "02_captioner": {"status": "failed", "duration_s": 3.0, "error": "cell 4 (In [3]): ValueError: <bad>"},
    }
    page = review.write_index(tmp_path, "tiny", entries).read_text()
    assert (
        '<a href="00_tour.html">00_tour</a></td><td>ok</td><td>201 s</td><td>1,234 MB</td>'
        "<td>first captioner pair F1: 0.7697</td>" in page
    )
    assert "<td>failed: cell 4 (In [3]): ValueError: &lt;bad&gt;</td><td>3 s</td><td></td><td></td>" in page


def _dashboard_run(folder):
    (folder / "results").mkdir()
    machine = {"cpu": "AMD EPYC 7B13", "isa": "AVX2", "threads": 2, "cores": 2, "gpu": None}
    manifest = {"git": {"commit": "0123456789abcdef", "dirty": False}, "written_at": "2026-12-07T06:00:00+00:00"}
    (folder / "manifest.json").write_text(json.dumps({**manifest, "machine": machine}))
    claim = {"id": "T2 captions", "verdict": "not testable", "ours": "Caption 4.0", "paper": "54.36", "why": "at blind"}
    counts = {"agrees": 0, "disagrees": 0, "within noise": 0, "not testable": 1}
    (folder / "claims.json").write_text(json.dumps({"rule": "r", "counts": counts, "claims": [claim]}))
    final = {
        "checkpoint": "sft-preference",
        "columns": ["benchmark", "score", "blind level"],
        "rows": [{"benchmark": "WorldDocVQA", "score": 33.5, "blind level": 79.0}],
        "averages": {"overall": 5.0, "blind overall": 30.1, "group mean": 4.2, "blind group mean": 29.0},
    }
    means = {**final["averages"], "benchmarks": 9, "groups": 4}
    headline = {"final overall": 0.1, "seconds": 12345.6, "ranking": ["a", "b"], "rises": {"x": True}}
    paper = {"headline": headline, "final_model": {**final, "averages": means}}
    (folder / "results" / "09_paper.json").write_text(json.dumps(paper))


def test_the_index_is_a_reviewer_s_dashboard(tmp_path):
    _dashboard_run(tmp_path)
    entries = {stem: {"status": "ok", "duration_s": 1.0} for stem in ("09_paper", "03_production", "08_evaluation")}
    page = review.write_index(tmp_path, "tiny", entries).read_text()
    order = [page.index(f'href="{stem}.html"') for stem in ("03_production", "08_evaluation", "09_paper")]
    assert order == sorted(order)  # numeric order, whatever order the run made them in
    assert "commit <code>0123456789ab</code>; written 2026-12-07T06:00:00+00:00" in page
    assert "CPU AMD EPYC 7B13, ATen kernels AVX2, 2 threads on 2 cores, GPU none" in page
    assert "1 claims: 0 agrees, 0 disagrees, 0 within noise, 1 not testable" in page
    assert "<td>T2 captions</td><td>not testable</td><td>Caption 4.0</td><td>54.36</td><td>at blind</td>" in page
    assert "<td>WorldDocVQA</td><td>33.5</td><td>79.0</td>" in page
    assert "Overall (mean over the 9 benchmarks): 5.0, blind level 30.1" in page
    assert "mean of the 4 group averages: 4.2, blind level 29.0" in page
    assert "final overall: 0.1<" in page  # as the notebook rounded it, no zeros padded on
    assert "seconds: 12,346<" in page  # never in exponent form
    assert "ranking: a, b<" in page and "rises: x True<" in page  # no Python reprs
    for link in ("claims.json", "results/", "data_cards/", "manifest.json", "../../README.md"):
        assert f'href="{link}"' in page


def test_the_index_counts_the_verdicts_of_a_claims_file_that_does_not(tmp_path):
    claim = {"id": "H1", "verdict": "agrees", "ours": "o", "paper": "p", "why": "w"}
    (tmp_path / "claims.json").write_text(json.dumps({"rule": "r", "claims": [claim, {**claim, "id": "T3"}]}))
    page = review.write_index(tmp_path, "tiny", {}).read_text()
    assert "2 claims: 2 agrees." in page


def test_html_render_embeds_figures(tmp_path):
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    nb = notebook_with(new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}))
    path = tmp_path / "00_tour.ipynb"
    nbformat.write(nb, path)
    page = review.render_html(path).read_text()
    assert path.with_suffix(".html").is_file() and f"data:image/png;base64,{png}" in page
