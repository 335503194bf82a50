"""`python -m sail.train.launch`: one recipe stage from a checkpoint and a meta file, in one process
and in two (torchrun, DDP on CPU), as a cluster job runs it."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import world_pool
from safetensors.torch import load_file

from sail.data.mixture import conversation_row, write_meta, write_source
from sail.model import build_vlm, make_processor
from sail.train.launch import Launch, build_parser, launch_stage
from sail.world import teacher_caption

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def job(tmp_path_factory, tokenizer, geometry):
    root = tmp_path_factory.mktemp("launch")
    torch.manual_seed(0)
    build_vlm(geometry, tokenizer).save_pretrained(root / "start")
    make_processor(tokenizer, geometry.tile_size, geometry.image_seq_length).save_pretrained(root / "start")
    records = world_pool(root / "pool", 16)
    rows = [
        conversation_row(
            i,
            f"images/{i}.png",
            [("Describe the image in detail.", teacher_caption(r, random.Random(0)))],
        )
        for i, r in records.items()
    ]
    length = write_source(rows, root / "captions.jsonl")
    meta = write_meta(
        root / "meta.json",
        {"captions": {"root": root / "pool", "annotation": root / "captions.jsonl", "length": length}},
    )
    return root, meta


def _launch(*command: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env["OMP_NUM_THREADS"] = "1"
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def _args(root, meta, out, *extra) -> list[str]:
    return ["-m", "sail.train.launch", "alignment", "--profile", "tiny", "--checkpoint", str(root / "start"),
            "--meta", str(meta), "--out", str(out), "--max-steps", "2", *extra]  # fmt: skip


def test_one_process_trains_what_the_recipe_says_and_saves_the_model(job, tmp_path):
    root, meta = job
    _launch(sys.executable, *_args(root, meta, tmp_path / "run"))
    start = load_file(root / "start" / "model.safetensors")
    trained = load_file(tmp_path / "run" / "model" / "model.safetensors")
    changed = {name for name in start if not torch.equal(start[name], trained[name])}
    assert changed and all(name.startswith("multi_modal_projector.") for name in changed)  # alignment: projector only
    steps = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps if "step" in s][-1] == 2


def test_two_processes_fill_the_global_batch_together(job, tmp_path):
    root, meta = job
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    run = _launch(*launcher, *_args(root, meta, tmp_path / "run", "--global-batch", "8", "--micro-batch", "2"))
    assert run.stdout.count("alignment: 2 steps") == 1  # one process saves and reports
    assert "on MULTI_CPU" in run.stdout  # one run over two processes, not two copies
    assert (tmp_path / "run" / "model" / "config.json").is_file()


def test_zero3_is_refused_before_anything_loads(job, tmp_path):
    root, meta = job
    zero3 = str(ROOT / "configs" / "deepspeed" / "zero3.json")
    command = [sys.executable, *_args(root, meta, tmp_path / "run", "--zero-config", zero3)]
    run = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode != 0 and "zero_to_fp32" in run.stderr


def test_the_launch_command_is_torchrun_with_this_command_s_own_options():
    command = Launch(2, "zero2.json", "bf16").command(
        "advance", profile="small", checkpoint=Path("start"), meta=Path("m.json"), out=Path("run"), seed=3,
        max_steps=4, global_batch=0, pack_length=256,
    )  # fmt: skip
    assert command == [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        "-m", "sail.train.launch", "advance", "--profile", "small", "--checkpoint", "start", "--meta", "m.json",
        "--out", "run", "--seed", "3", "--mixed-precision", "bf16", "--zero-config", "zero2.json",
        "--max-steps", "4", "--pack-length", "256",
    ]  # fmt: skip
    parsed = build_parser().parse_args(command[7:])  # every option is one the command declares
    assert (parsed.step, parsed.max_steps, parsed.global_batch, parsed.pack_length) == ("advance", 4, 0, 256)


def test_launch_stage_waits_for_the_run_and_returns_what_it_spent(job, tmp_path):
    root, meta = job
    spent = launch_stage(
        Launch(1), "alignment", profile="tiny", checkpoint=root / "start", meta=meta, out=tmp_path / "run",
        max_steps=2, global_batch=4, micro_batch=2,
    )  # fmt: skip
    assert (spent["steps"], spent["processes"], spent["backend"]) == (2, 1, "NO on cpu")
    assert spent["tokens"] > 0 and (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert "alignment: 2 steps" in (tmp_path / "run" / "launch.log").read_text()


def test_a_failed_launch_stops_with_the_tail_of_its_log(job, tmp_path):
    root, meta = job
    with pytest.raises(RuntimeError, match=r"(?s)alignment on 1 processes exited with 1 .*no-such-start"):
        launch_stage(Launch(1), "alignment", profile="tiny", checkpoint=tmp_path / "no-such-start", meta=meta,
                     out=tmp_path / "run")  # fmt: skip
