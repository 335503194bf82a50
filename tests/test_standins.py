"""The cluster path on stand-ins: real-layout checkpoints and real-format data, tiny enough for CI.

A tiny InternVL saved by transformers (the layout of OpenGVLab/InternVL3-2B-hf), world data
written as parquet and as webdataset shards, and VLMEvalKit TSVs stand in for what a cluster
user points the `small` profile at. The profile file is the only thing edited: a copy of
`configs/profiles/small.yaml` with its paths replaced and its sizes shrunk. Notebooks 01 (real
data), 02 (fine-tuning a given InternVL) and 08 (VLMEvalKit TSVs) then run headless on `small`.
"""

from __future__ import annotations

import json

import pytest
import yaml
from notebook_runner import ROOT, sail_run

from sail.data import write_webdataset
from sail.data.pipeline import read_curated, read_items
from sail.eval import read_tsv, write_tsv
from sail.eval.benchmarks import WORLD_BENCHMARKS, build_benchmark
from sail.model import build_vlm, make_processor
from sail.world import world_dataset


@pytest.fixture(scope="module")
def standins(tmp_path_factory, tokenizer, geometry):
    root = tmp_path_factory.mktemp("standins")
    internvl = root / "InternVL3-2B-hf"
    build_vlm(geometry, tokenizer).save_pretrained(internvl)
    make_processor(tokenizer, geometry.tile_size, geometry.image_seq_length).save_pretrained(internvl)
    world = world_dataset("train", 160, seed=5)
    (root / "parquet").mkdir()
    world.select(range(80)).to_parquet(root / "parquet" / "part-0.parquet")
    world.select(range(80, 160)).to_parquet(root / "parquet" / "part-1.parquet")
    write_webdataset(read_items("hf", root / "parquet", text_field="alt_text"), root / "shards", per_shard=64)
    (root / "tsv").mkdir()
    for name in WORLD_BENCHMARKS:
        write_tsv(build_benchmark(name, 4, seed=0), root / "tsv" / f"{name}.tsv")
    return root


def small_shaped_profile(standins, configs):
    """configs/profiles/small.yaml with stand-in paths and CI-sized counts: nothing else changes."""
    profile = yaml.safe_load((ROOT / "configs" / "profiles" / "small.yaml").read_text())
    profile["01_curation"].update(
        data_path=str(standins / "parquet"), text_field="alt_text", reference_size=48, clusters=4
    )
    profile["02_captioner"].update(
        base_checkpoint=str(standins / "InternVL3-2B-hf"),
        teacher="world",  # the OpenAI-compatible teacher is tested against `transformers serve`
        captioner_steps=3,
        batch_size=8,
        pack_length=512,
        eval_images=8,
        human_eval_images=2,
        max_new_tokens=12,
    )
    profile["08_evaluation"].update(
        benchmark_dir=str(standins / "tsv"), backend="hf", max_new_tokens=6, batch_size=16, look_samples=2
    )
    configs.mkdir()
    (configs / "small.yaml").write_text(yaml.safe_dump(profile))
    return profile


def test_small_profile_runs_real_data_a_given_internvl_and_tsv_benchmarks(standins, tmp_path):
    configs, out = tmp_path / "configs", tmp_path / "out"
    profile = small_shaped_profile(standins, configs)
    run = sail_run("01", "02", "08", "--profile", "small", "--configs-dir", str(configs), "--output-dir", str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    artifacts = out / "small" / "artifacts"

    pool = read_curated(artifacts / "curation" / "pool")
    assert 100 <= len(pool) <= 160 and all(isinstance(item.extra["record"], dict) for item in pool)
    assert len(read_curated(artifacts / "curation" / "reference")) == 48

    captioner = json.loads((artifacts / "02_captioner.json").read_text())
    assert captioner["parameters"]["base_checkpoint"] == profile["02_captioner"]["base_checkpoint"]
    assert captioner["training"]["steps"] == 3
    assert (artifacts / "sail-captioner" / "model.safetensors").is_file()

    evaluation = json.loads((artifacts / "08_evaluation.json").read_text())
    assert evaluation["parameters"]["benchmark_dir"] == str(standins / "tsv")
    rows = {name: len(read_tsv(standins / "tsv" / f"{name}.tsv")) for name in WORLD_BENCHMARKS}
    assert {name: bench["n"] for name, bench in evaluation["benchmarks"].items()} == rows


def test_curation_reads_webdataset_shards_on_the_small_profile(standins, tmp_path):
    configs, out = tmp_path / "configs", tmp_path / "out"
    small_shaped_profile(standins, configs)
    shards = str(standins / "shards")
    run = sail_run(
        "01", "--profile", "small", "--configs-dir", str(configs), "--output-dir", str(out),
        *("-p", "data_format", "webdataset", "-p", "data_path", shards, "-p", "text_field", ""),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    ran = json.loads((out / "small" / "manifest.json").read_text())["notebooks"]["01_curation"]["parameters"]
    assert (ran["data_format"], ran["data_path"]) == ("webdataset", shards)
    pool = read_curated(out / "small" / "artifacts" / "curation" / "pool")
    assert 100 <= len(pool) <= 160 and all(isinstance(item.extra["record"], dict) for item in pool)
