"""Notebooks 01 (curation) to 08 (evaluation) executed headless, chained through files on disk."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import ModelCard
from notebook_runner import sail_run

from sail.claims import VERDICTS, claims, read_results
from sail.eval.report import PIPELINE_CHECKPOINTS

pytestmark = pytest.mark.notebook


def test_curation_then_captioner(tmp_path):
    from sail.data import read_front_matter
    from sail.foundations import FoundationBudget, build_foundations
    from sail.model import GEOMETRIES

    artifacts, cards = tmp_path / "outputs" / "tiny" / "artifacts", tmp_path / "outputs" / "tiny" / "data_cards"
    common = ("--profile", "tiny", "--output-dir", str(tmp_path / "outputs"))
    run = sail_run(
        "01_curation", *common, "-p", "pool_size", "200", "-p", "reference_size", "64", "-p", "clusters", "4"
    )
    assert run.returncode == 0, run.stderr[-3000:]

    curation = json.loads((artifacts / "curation" / "01_curation.json").read_text())
    assert curation["funnel"]["input"] > 200 and 0 < curation["funnel"]["kept"] < curation["funnel"]["input"]
    assert {row["kind"] for row in curation["recall"]} >= {
        "exact_duplicate",
        "truncated",
        "zero_byte",
        "mode_cmyk",
        "absurd_size",
        "alt_junk",
    }
    assert all(row["caught"] == row["injected"] for row in curation["recall"]), curation["recall"]
    assert curation["overall_recall"] == 1.0
    reference = artifacts / "curation" / "reference"
    assert curation["outputs"]["reference"]["items"] == 64
    assert sum(1 for _ in (reference / "annotations.jsonl").open()) == 64
    assert len(list((reference / "images").glob("*.png"))) == 64
    for name in ("sail-caption-pool-tiny", "sail-reference-tiny"):
        front = read_front_matter(cards / f"{name}.md")
        assert front["task_categories"] == ["image-to-text"] and front["size_categories"]
        assert json.loads((cards / f"{name}.json").read_text())["n_items"] > 0
    pool_card = json.loads((cards / "sail-caption-pool-tiny.json").read_text())
    assert pool_card["n_items"] == curation["funnel"]["kept"]

    # Notebook 00 builds the foundations 02 and 04 load (02 never builds them): a few steps of each here.
    budget = FoundationBudget(language_drill_steps=2, language_steps=3, vision_steps=3, batch_size=8)
    build_foundations(artifacts / "foundations", GEOMETRIES["tiny"], budget, progress=False)
    run = sail_run(
        "02_captioner",
        *common,
        "-p",
        "captioner_steps",
        "3",
        "-p",
        "batch_size",
        "8",
        "-p",
        "eval_images",
        "8",
        "-p",
        "max_new_tokens",
        "16",
        "-p",
        "human_eval_images",
        "2",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((artifacts / "02_captioner.json").read_text())
    assert results["reference"]["items"] == 64 and results["training"]["steps"] == 3
    assert results["split"]["train"] + results["split"]["validation"] == 64
    assert results["training"]["validation_loss_after"] > 0
    assert set(results["quality"]) == {"captioner (caption)", "captioner (recaption)", "teacher", "alt_text", "weak"}
    assert results["quality"]["teacher"]["pair_f1"] == pytest.approx(1.0)
    assert results["costs"]["paper_scale"][0]["usd"] > results["costs"]["paper_scale"][1]["usd"]

    import torch
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    captioner = artifacts / "sail-captioner"
    model = AutoModelForImageTextToText.from_pretrained(captioner)
    assert type(model).__name__ == "InternVLForConditionalGeneration"
    assert (captioner / "README.md").read_text().startswith("---\n")
    sheet = (artifacts / "captioner-eval" / "human_eval.csv").read_text().splitlines()
    assert len(sheet) == 1 + 2 * 5 and "accuracy_1to5" in sheet[0]
    assert results["split"]["tasks"]["recaption"]["train"] > 0  # distillation assigns both tasks

    # A 3-step captioner rarely ends a caption. The stand-in writes "red circle" and stops, so
    # notebook 03 has complete captions to keep, score and measure: this test is about the chain.
    tokenizer = AutoTokenizer.from_pretrained(captioner)
    said = [*tokenizer.encode("red circle", add_special_tokens=False), tokenizer.eos_token_id]
    model.generation_config.sequence_bias = [[said[:k], 30.0 * k] for k in range(1, len(said) + 1)]
    model.save_pretrained(captioner)
    run = sail_run(
        "03_production",
        *common,
        *("-p", "shard_size", "32", "-p", "interrupt_after_shards", "2", "-p", "max_new_tokens", "24"),
        *("-p", "quality_images", "24"),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    production = json.loads((artifacts / "03_production.json").read_text())
    shards = production["plan"]["shards"]
    assert production["plan"]["images"] == pool_card["n_items"] and shards == -(-pool_card["n_items"] // 32)
    first, second = production["passes"]
    assert (first["shards_captioned"], second["shards_already_done"], second["shards_captioned"]) == (2, 2, shards - 2)
    statuses = production["merge"]["statuses"]
    assert sum(statuses.values()) == pool_card["n_items"]
    assert production["merge"]["captions"] == statuses.get("ok", 0) + statuses.get("empty alt-text", 0) > 0
    card = json.loads((cards / "sail-caption-mini-tiny.json").read_text())
    assert card["n_items"] == production["merge"]["captions"]
    assert set(production["quality"]) >= {"SAIL-Caption-mini", "teacher", "alt_text", "weak"}
    assert production["quality"]["teacher"]["pair_f1"] == pytest.approx(1.0)
    diversity = production["diversity"]
    [equal_size] = {row["captions"] for row in diversity.values()}  # one sample size for every source
    assert 0 < equal_size <= production["quality"]["SAIL-Caption-mini"]["n"] <= 24
    assert diversity["teacher"]["unique 4-grams"] > diversity["weak"]["unique 4-grams"]

    # Pretraining on SAIL-Caption-mini: a few steps per point, every point and row present, the
    # stages freezing what they must.
    small = ("-p", "spread_seeds", "0", "-p", "eval_caption_images", "8", "-p", "eval_ocr_images", "4")
    run = sail_run(
        "04_pretrain_alignment",
        *common,
        *small,
        *("-p", "sizes", "[16, 32, 64]", "-p", "control_size", "16", "-p", "table2_size", "32"),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    alignment = json.loads((artifacts / "04_pretrain_alignment.json").read_text())
    runs = {row["run"]: row for row in alignment["runs"]}
    assert [runs[f"D={d}"]["steps"] for d in (16, 32, 64)] == [1, 2, 4]
    assert (runs["control D=16"]["size"], runs["control D=16"]["steps"], runs["control D=16"]["epochs"]) == (16, 4, 4.0)
    assert set(alignment["fits"]) == {"Overall", "Caption", "OCR"}
    table2 = {row["mixture"]: row for row in alignment["table2"]}
    sources = ("sail-caption-mini", "teacher", "weak", "alt-text", "wrong-facts")
    assert set(table2) == {f"{name} + ocr-hq" for name in sources}
    assert table2["sail-caption-mini + ocr-hq"]["run"] == "D=32"  # the sweep's point, not trained twice
    assert all(row["steps"] == 2 and row["seed"] == 0 for row in table2.values())
    packing = alignment["packing"]
    assert packing["packed_real"] > packing["padded_real"]
    assert packing["loss_packed"] == pytest.approx(packing["loss_padded"], abs=1e-5)
    written = artifacts / "pretrain" / "sources"
    assert sum(1 for _ in (written / "sail-caption-mini.jsonl").open()) == production["merge"]["captions"]
    assert sum(1 for _ in (written / "ocr-hq.jsonl").open()) == sum(1 for _ in (written / "ocr-lq.jsonl").open()) > 0

    run = sail_run("05_pretrain_advance", *common, *small, "-p", "sizes", "[16, 32, 64]")
    assert run.returncode == 0, run.stderr[-3000:]
    advance = json.loads((artifacts / "05_pretrain_advance.json").read_text())
    runs = {row["run"]: row for row in advance["runs"]}
    for d in (16, 32, 64):  # each point and its projector-only control: same data, same steps
        assert (runs[f"advance D={d}"]["step"], runs[f"control D={d}"]["step"]) == ("advance", "alignment")
        assert runs[f"advance D={d}"]["steps"] == runs[f"control D={d}"]["steps"] == d // 16
    assert {row["mixture"] for row in advance["table2_ocr"]} == {
        "sail-caption-mini + ocr-hq",
        "sail-caption-mini + ocr-hq + ocr-lq",
        "sail-caption-mini + ocr-hq ×2",
    }
    aligned = AutoModelForImageTextToText.from_pretrained(artifacts / "pretrain-alignment").model
    advanced = AutoModelForImageTextToText.from_pretrained(artifacts / "pretrain-advance").model
    language = zip(aligned.language_model.state_dict().values(), advanced.language_model.state_dict().values())
    assert all(torch.equal(a, b) for a, b in language)  # the LLM stays frozen in both stages
    vision = zip(aligned.vision_tower.state_dict().values(), advanced.vision_tower.state_dict().values())
    assert not all(torch.equal(a, b) for a, b in vision)  # Advance moved the vision encoder

    # SFT: three tiers from the pool and their three-tier evaluation, the curriculum against
    # mixed training, then notebook 08 scoring every checkpoint the chain made, by default.
    run = sail_run(
        "06_sft_data",
        *common,
        *("-p", "quick_size", "32", "-p", "larger_size", "48", "-p", "samples_per_benchmark", "4"),
        *("-p", "judge_samples", "300"),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    data = json.loads((artifacts / "06_sft_data.json").read_text())
    assert data["headline"]["judge rises"] == {"difficulty": True, "complexity": True, "relevance": True}
    assert [row["tier"] for row in data["quick"]] == ["knowledge", "instruction", "preference"]
    assert all((row["size"], row["steps"]) == (32, 2) for row in data["quick"])
    assert all((row["size"], row["steps"]) == (48, 3) for row in data["larger"])
    assert {row["variant"] for row in data["composition"]} >= {"all groups whole", "halve captioning", "halve yes/no"}
    assert [row["added"] for row in data["incremental"]][0] == "knowledge" and data["incremental"][0]["kept"]
    assert all(row["low"] <= row["question score"] <= row["high"] for row in data["quick"])

    run = sail_run("07_curriculum", *common, *("-p", "sizes", "[64, 96, 128]", "-p", "samples_per_benchmark", "4"))
    assert run.returncode == 0, run.stderr[-3000:]
    curriculum = json.loads((artifacts / "07_curriculum.json").read_text())
    steps = {(row["arm"], row["size"], row["seed"]): row["steps"] for row in curriculum["runs"]}
    assert len(steps) == 12  # two arms, three sizes, two seeds
    assert all(steps[("curriculum", d, s)] == steps[("mixed", d, s)] == d // 16 for d in (64, 96, 128) for s in (0, 1))
    assert set(curriculum["fits"]) == {
        f"{metric} {arm} {kind}"
        for metric in ("question score", "answer loss")
        for arm in ("curriculum", "mixed")
        for kind in ("linear", "log")
    }
    assert all(row["answer loss"] > 0 for row in curriculum["runs"])
    knowledge = AutoModelForImageTextToText.from_pretrained(artifacts / "sft-knowledge").model
    final = AutoModelForImageTextToText.from_pretrained(artifacts / "sft-preference").model
    stages = zip(knowledge.language_model.state_dict().values(), final.language_model.state_dict().values())
    assert not all(torch.equal(a, b) for a, b in stages)  # the later stages trained on
    vision = zip(advanced.vision_tower.state_dict().values(), final.vision_tower.state_dict().values())
    assert all(torch.equal(a, b) for a, b in vision)  # tiny SFT leaves the vision encoder as Advance left it

    run = sail_run(
        "08_evaluation",
        *common,
        *("-p", "samples_per_benchmark", "4", "-p", "train_check_records", "500", "-p", "look_samples", "3"),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    evaluation = json.loads((artifacts / "08_evaluation.json").read_text())
    assert list(evaluation["checkpoints"]) == list(PIPELINE_CHECKPOINTS)
    assert evaluation["final"]["checkpoint"] == "sft-preference"
    assert set(evaluation["question_intervals"]) == set(evaluation["checkpoints"])
    reliance = evaluation["image_reliance"]
    assert set(reliance) == set(evaluation["checkpoints"])
    for row in reliance.values():
        assert row["own images"] > 0 and row["image gain"] == pytest.approx(row["swapped images"] - row["own images"])

    # The paper in miniature: every claim judged from these results, and the final model's card.
    run = sail_run("09_paper", *common)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((artifacts.parent / "claims.json").read_text())
    assert [row["id"] for row in report["claims"]] == [row["id"] for row in claims(read_results(artifacts))]
    assert {row["verdict"] for row in report["claims"]} <= set(VERDICTS)
    assert sum(report["counts"].values()) == len(report["claims"])
    card = ModelCard.load(artifacts / "sft-preference" / "README.md")
    final = evaluation["table1"]["sft-preference"]
    assert {r.dataset_type.removeprefix("sail-world/"): r.metric_value for r in card.data.eval_results} == {
        column.split(" / ")[1]: round(score, 2) for column, score in final.items() if not column.endswith("average")
    }
    index = (artifacts.parent / "index.html").read_text()
    assert all(f"<td>{row['id']}</td><td>{row['verdict']}</td>" in index for row in report["claims"])


def test_curation_reads_a_crafted_shard_safely_and_its_card_counts_the_drops(tmp_path):
    import io
    import tarfile

    from sail.data import build_pool, read_image_folder, write_webdataset

    build_pool(tmp_path / "pool", 40, seed=3, defects=False)
    items = list(read_image_folder(tmp_path / "pool"))
    shards = tmp_path / "shards"
    write_webdataset(items[:30], shards, per_shard=15)
    with tarfile.open(shards / "shard-crafted.tar", "w") as tar:  # a member named to climb out of the export
        for extension, data in (("png", items[30].read_bytes()), ("txt", b"a crafted sample")):
            info = tarfile.TarInfo(f"../../../../../../escaped.{extension}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    whole = (shards / "shard-00001.tar").read_bytes()
    (shards / "shard-00001.tar").write_bytes(whole[: len(whole) // 2])  # cut short mid-shard

    outputs = tmp_path / "outputs"
    run = sail_run(
        "01_curation",
        "--profile",
        "tiny",
        "--output-dir",
        str(outputs),
        "-p",
        "data_format",
        "webdataset",
        "-p",
        "data_path",
        str(shards),
        "-p",
        "reference_size",
        "8",
        "-p",
        "clusters",
        "2",
    )
    assert run.returncode == 0, run.stderr[-3000:]

    card = json.loads((outputs / "tiny" / "data_cards" / "sail-caption-pool-tiny.json").read_text())
    read_drops = [row for row in card["curation"]["reasons"] if row["step"] == "read"]
    assert read_drops == [{"step": "read", "reason": "truncated_shard", "dropped": 1}]
    assert (
        "| read | truncated_shard | 1 |" in (outputs / "tiny" / "data_cards" / "sail-caption-pool-tiny.md").read_text()
    )
    escaped = {path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*escaped*")}
    assert escaped <= {
        f"outputs/tiny/artifacts/curation/{folder}/images/escaped-bfc2c9ba4032.png" for folder in ("pool", "reference")
    }
    assert "outputs/tiny/artifacts/curation/pool/images/escaped-bfc2c9ba4032.png" in escaped
    assert not (tmp_path.parent / "escaped.png").exists()
