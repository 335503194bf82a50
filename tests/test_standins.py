"""The cluster path on stand-ins: real-layout checkpoints and real-format data, tiny enough for CI.

A tiny InternVL saved by transformers (the layout of OpenGVLab/InternVL3-2B-hf), a tiny
InternViT (`InternVLVisionModel`) and a tiny Qwen2 with its tokenizer saved apart, world data
written as parquet and as webdataset shards, and VLMEvalKit TSVs stand in for what a cluster user
points the `small` profile at. The profile file is the only thing edited: a copy of
`configs/profiles/small.yaml` with its paths replaced and its sizes shrunk. The whole pipeline,
00 to 08, then runs headless on `small`, 04's stage run as two processes under torchrun.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from conftest import save_chatml_tokenizer
from datasets import load_from_disk
from notebook_runner import ROOT, sail_run
from safetensors.torch import load_file
from transformers import AutoTokenizer, Qwen2ForCausalLM

from sail.data import write_webdataset
from sail.data.pipeline import read_curated, read_items
from sail.eval import read_tsv, write_tsv
from sail.eval.benchmarks import WORLD_BENCHMARKS, build_benchmark
from sail.model import build_vlm, make_processor
from sail.model.build import text_config
from sail.world import world_dataset


@pytest.fixture(scope="module")
def standins(tmp_path_factory, tokenizer, geometry, records):
    root = tmp_path_factory.mktemp("standins")
    internvl = root / "InternVL3-2B-hf"
    torch.manual_seed(0)
    vlm = build_vlm(geometry, tokenizer)
    # Random weights never end a caption, and production keeps only complete ones. A trained
    # captioner does end them: this one writes "red" and stops (its generation config travels
    # with the model through notebook 02's fine-tuning into 03).
    red, eos = tokenizer.encode("red", add_special_tokens=False)[0], tokenizer.eos_token_id
    vlm.generation_config.sequence_bias = [[[red], 30.0], [[red, eos], 60.0]]
    vlm.save_pretrained(internvl)
    make_processor(tokenizer, geometry.tile_size, geometry.image_seq_length).save_pretrained(internvl)
    vlm.model.vision_tower.save_pretrained(root / "InternViT-300M-448px-V2_5-hf")
    qwen = save_chatml_tokenizer(root / "Qwen2.5-0.5B-Instruct", records)  # no image tokens, as Qwen2.5's
    Qwen2ForCausalLM(text_config(geometry, AutoTokenizer.from_pretrained(qwen))).save_pretrained(qwen)
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
    batches = dict(global_batch=8, micro_batch=4)  # the recipe's 512 / 4, shrunk: two micro-batches a step
    profile["common"].update(
        vision_checkpoint=str(standins / "InternViT-300M-448px-V2_5-hf"),
        language_checkpoint=str(standins / "Qwen2.5-0.5B-Instruct"),
    )
    profile["00_tour"].update(captioner_steps=2, batch_size=8, eval_images=4, gallery_images=2)
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
    profile["03_production"].update(
        backend="hf", workers=0, shard_size=64, batch_size=16, max_new_tokens=12, quality_images=8
    )
    profile["04_pretrain_alignment"].update(
        sizes=[8, 16, 32], control_size=8, table2_size=16, sft_steps=1, pack_length=512,
        eval_caption_images=4, eval_ocr_images=4, mixed_precision="no", processes=2, zero_config="", **batches,
    )  # fmt: skip
    profile["05_pretrain_advance"].update(
        sizes=[8, 16, 32], spread_seeds=0, pack_length=512, eval_caption_images=4, eval_ocr_images=4,
        mixed_precision="no", processes=0, zero_config="", **batches,
    )  # fmt: skip
    profile["06_sft_data"].update(
        quick_size=16, larger_size=24, samples_per_benchmark=2, judge_samples=8, pack_length=512,
        mixed_precision="no", global_batch=4, micro_batch=4,
    )  # fmt: skip
    profile["07_curriculum"].update(
        sizes=[16, 32, 48], samples_per_benchmark=2, pack_length=512, mixed_precision="no",
        global_batch=4, micro_batch=4,
    )  # fmt: skip
    profile["08_evaluation"].update(
        benchmark_dir=str(standins / "tsv"), backend="hf", max_new_tokens=6, batch_size=16, look_samples=2
    )
    configs.mkdir()
    (configs / "small.yaml").write_text(yaml.safe_dump(profile))
    return profile


def test_small_profile_runs_the_pipeline_on_real_layout_checkpoints_data_and_benchmarks(standins, tmp_path):
    configs, out = tmp_path / "configs", tmp_path / "out"
    profile = small_shaped_profile(standins, configs)
    run = sail_run("--profile", "small", "--configs-dir", str(configs), "--output-dir", str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    artifacts = out / "small" / "artifacts"

    pool = read_curated(artifacts / "curation" / "pool")
    assert 100 <= len(pool) <= 160 and all(isinstance(item.extra["record"], dict) for item in pool)
    assert len(read_curated(artifacts / "curation" / "reference")) == 48

    captioner = json.loads((artifacts / "02_captioner.json").read_text())
    assert captioner["parameters"]["base_checkpoint"] == profile["02_captioner"]["base_checkpoint"]
    assert captioner["training"]["steps"] == 3
    assert (artifacts / "sail-captioner" / "model.safetensors").is_file()

    production = json.loads((artifacts / "03_production.json").read_text())
    assert production["merge"]["captions"] == production["merge"]["images"] == len(pool)
    assert set(load_from_disk(production["dataset_dir"])["caption"]) == {"red"}  # 02's captioner wrote them

    # 04 composed its model from the stand-in InternViT and Qwen2: alignment trains the projector
    # alone, so the saved stage model holds their weights unchanged (the embeddings gained rows for
    # the image tokens), and its stage run was launched.
    aligned = load_file(artifacts / "pretrain-alignment" / "model.safetensors")
    vision = load_file(standins / "InternViT-300M-448px-V2_5-hf" / "model.safetensors")
    language = load_file(standins / "Qwen2.5-0.5B-Instruct" / "model.safetensors")
    assert all(torch.equal(aligned[f"vision_tower.{k}"], v) for k, v in vision.items())
    lm = {k: v for k, v in language.items() if k.startswith("model.")}
    assert all(torch.equal(aligned[f"language_model.{k}"][: len(v)], v) for k, v in lm.items())
    assert aligned["language_model.model.embed_tokens.weight"].shape[0] == len(lm["model.embed_tokens.weight"]) + 4
    alignment = json.loads((artifacts / "04_pretrain_alignment.json").read_text())
    runs = {row["run"]: row for row in alignment["runs"]}
    assert runs["D=32"]["processes"] == 2 and runs["D=8"]["processes"] == 1
    assert runs["D=32"]["steps"] == 32 // 8  # one epoch at the profile's global batch

    advance = json.loads((artifacts / "05_pretrain_advance.json").read_text())
    assert {row["run"]: row["steps"] for row in advance["runs"]}["advance D=32"] == 32 // 8
    assert (artifacts / "pretrain-advance" / "config.json").is_file()
    for stage in ("sft-knowledge", "sft-instruction", "sft-preference", "sft-mixed"):
        assert (artifacts / stage / "model.safetensors").is_file(), stage

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
