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
from sail.eval.report import PIPELINE_CHECKPOINTS

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


def test_the_reference_run_s_pretraining_kept_its_own_checks():
    """What notebooks 04 and 05 measure about their machinery, held by the committed run: packing
    that let samples see each other, a sweep point lost, a Table 2 row missing, or a control that
    trained on other data or steps than its Advance point, fails here."""
    alignment = _results("04_pretrain_alignment")
    packing = alignment["packing"]
    assert packing["loss_packed"] == pytest.approx(packing["loss_padded"], abs=1e-5)
    assert packing["packed_real"] > packing["padded_real"]
    sizes = alignment["parameters"]["sizes"]
    assert len(sizes) >= 5 and {row["size"] for row in alignment["runs"] if row["run"] == f"D={row['size']}"} == set(
        sizes
    )
    assert set(alignment["fits"]) == {"Overall", "Caption", "OCR"}
    table2 = {row["mixture"]: row for row in alignment["table2"]}
    assert len(table2) == 5 and len({(row["size"], row["steps"], row["seed"]) for row in table2.values()}) == 1
    # captions that never name a colour teach nothing the pair F1 counts: the one ordering this
    # budget cannot get wrong
    assert table2["weak + ocr-hq"]["Caption"] < table2["sail-caption-mini + ocr-hq"]["Caption"]
    advance = _results("05_pretrain_advance")
    runs = {row["run"]: row for row in advance["runs"]}
    for size in advance["parameters"]["sizes"]:
        point, control = runs[f"advance D={size}"], runs[f"control D={size}"]
        assert (point["size"], point["steps"], point["seed"]) == (control["size"], control["steps"], control["seed"])


def test_the_reference_run_s_sft_kept_its_own_checks():
    """What notebooks 06 to 08 measure about their machinery, held by the committed run: a tier
    evaluated at another size, arms trained on unequal steps, a score without its interval, or an
    evaluation that skipped a checkpoint of the pipeline, fails here."""
    data = _results("06_sft_data")
    quick, larger = data["quick"], data["larger"]
    assert (
        [row["tier"] for row in quick] == [row["tier"] for row in larger] == ["knowledge", "instruction", "preference"]
    )
    assert {row["size"] for row in quick} == {data["parameters"]["quick_size"]}
    assert {row["size"] for row in larger} == {data["parameters"]["larger_size"]}
    assert all(row["low"] <= row["question score"] <= row["high"] for row in quick + larger + data["composition"])
    curriculum = _results("07_curriculum")
    steps = {(row["arm"], row["size"], row["seed"]): row["steps"] for row in curriculum["runs"]}
    assert len({seed for _, _, seed in steps}) >= 2 and len({size for _, size, _ in steps}) >= 3
    assert all(steps[("curriculum", size, seed)] == steps[("mixed", size, seed)] for _, size, seed in steps)
    evaluation = _results("08_evaluation")
    assert list(evaluation["checkpoints"]) == list(PIPELINE_CHECKPOINTS)
    assert set(evaluation["image_reliance"]) == set(PIPELINE_CHECKPOINTS)
    for reliance in evaluation["image_reliance"].values():
        assert list(reliance["by benchmark"]) == list(evaluation["benchmarks"])


def test_the_reference_run_s_final_model_answers_from_the_image():
    """The miniature sees, held by the committed run: its final model is above its blind level, by
    notebook 08's rule (the swapped-image score below its own too), on WorldVQA and on at least 4 of
    the 9 benchmarks (the level reached so far), and its gold answers cost less with their own
    images than with another record's beyond the interval, pooled and on each benchmark it is above
    chance on. A final model that answers by prior fails."""
    evaluation = _results("08_evaluation")
    final = evaluation["final"]
    assert final["checkpoint"] == PIPELINE_CHECKPOINTS[-2]  # the last stage of the curriculum, not the mixed arm
    assert "WorldVQA" in final["above chance"] and len(final["above chance"]) >= 4
    assert all(final["rows"][name]["swapped score"] < final["rows"][name]["score"] for name in final["above chance"])
    reliance = evaluation["image_reliance"][final["checkpoint"]]
    assert reliance["low"] > 0
    assert all(reliance["by benchmark"][name]["low"] > 0 for name in final["above chance"])


def test_the_reference_run_s_claims_are_what_its_results_say_and_fit_the_memory_budget():
    """claims.json is `sail.claims` applied to the committed results (a verdict edited by hand, or a
    claim whose inputs changed without a rerun, fails here), and no notebook's processes held more
    than the 4 GB the tiny pipeline is allowed."""
    from sail.claims import claims, read_results

    seeds = json.loads((REPO / "bench" / "results" / "captioner_seeds.json").read_text())
    assert json.loads((RUN / "claims.json").read_text())["claims"] == claims(read_results(RUN / "results"), seeds)
    peaks = {stem: entry["peak_memory_mb"] for stem, entry in MANIFEST["notebooks"].items()}
    assert 0 < max(peaks.values()) <= 4096, peaks


def test_readme_index_card_and_claims_json_say_the_same():
    """One account of the run in four places: the README's section is the one `python -m sail.claims`
    writes from claims.json and 09's results; the index shows every claim's verdict, ours and why and
    the final model's row; the card's table is that row, and its metadata 08's scores."""
    import html

    from huggingface_hub import ModelCard

    from sail.claims import README_END, README_START, readme_section
    from sail.eval.card import markdown_table

    report, paper = json.loads((RUN / "claims.json").read_text()), _results("09_paper")
    readme = (REPO / "README.md").read_text()
    section = README_START + readme.split(README_START, 1)[1].split(README_END, 1)[0] + README_END
    assert section == readme_section(report, paper), "regenerate it: python -m sail.claims README.md outputs/tiny"
    index = (RUN / "index.html").read_text()
    for row in report["claims"]:
        cells = (row["id"], row["verdict"], row["ours"], row["paper"], row["why"])
        assert "".join(f"<td>{html.escape(str(cell))}</td>" for cell in cells) in index, row["id"]
    final = paper["final_model"]
    for row in final["rows"]:
        assert "".join(f"<td>{html.escape(str(row[c]))}</td>" for c in final["columns"]) in index
    card = ModelCard.load(RUN / "results" / f"{final['checkpoint']}.md")
    assert markdown_table(final["rows"], final["columns"]) in card.text
    scores = _results("08_evaluation")["table1"][final["checkpoint"]]
    assert {r.dataset_type.removeprefix("sail-world/"): r.metric_value for r in card.data.eval_results} == {
        column.split(" / ")[1]: round(score, 2) for column, score in scores.items() if not column.endswith("average")
    }
