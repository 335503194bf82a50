"""The production engine: plans, the ledger, ranks, bad input, a SIGKILL mid-run, and the merge."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sail.caption.production import (
    DATASET,
    EMPTY,
    LENGTH_LIMIT,
    NO_ALT_TEXT,
    OK,
    UNREADABLE,
    Settings,
    caption_pool,
    claim_plan,
    make_plan,
    merge,
    rank_share,
    read_shards,
    shard_path,
    task_of,
)


def _save_captioner(directory: Path, tokenizer, geometry, sequence_bias: list) -> Path:
    """A tiny random InternVL whose generation config steers what it writes (`sequence_bias`), as a
    stand-in for a trained captioner: these tests are about the engine, not about captions."""
    from sail.model import build_vlm, make_processor

    torch.manual_seed(0)
    model = build_vlm(geometry, tokenizer)
    model.generation_config.sequence_bias = sequence_bias
    model.save_pretrained(directory)
    make_processor(tokenizer, geometry.tile_size, geometry.image_seq_length).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def captioner_dir(tmp_path_factory, tokenizer, geometry):
    """Writes "red" and stops: a complete one-word caption for every image."""
    red, eos = tokenizer.encode("red", add_special_tokens=False)[0], tokenizer.eos_token_id
    bias = [[[red], 30.0], [[red, eos], 60.0]]
    return _save_captioner(tmp_path_factory.mktemp("captioner") / "sail-captioner", tokenizer, geometry, bias)


def _pool(directory: Path, n: int, *, corrupt: int | None = None, no_alt_text: int | None = None) -> list:
    from sail.data import Item
    from sail.data.pipeline import export_items, read_curated
    from sail.world import alt_text, render, sample_records

    rng = random.Random(0)
    items = []
    for i, record in enumerate(sample_records("train", n, seed=3)):
        buffer = io.BytesIO()
        render(record).save(buffer, format="PNG")
        text = "" if i == no_alt_text else alt_text(record, rng)
        items.append(
            Item(id=record["id"], text=text, source="laion_coco", image=buffer.getvalue(), extra={"record": record})
        )
    export_items(items, directory)
    curated = read_curated(directory)
    if corrupt is not None:
        Path(curated[corrupt].path).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return curated


def test_each_image_s_task_comes_from_its_id_and_the_fraction_is_kept():
    ids = [f"image-{i}" for i in range(4000)]
    tasks = [task_of(i, 0.3, seed=0) for i in ids]
    assert 0.27 < tasks.count("recaption") / len(ids) < 0.33
    assert tasks == [task_of(i, 0.3, seed=0) for i in ids]  # the same in every plan
    assert tasks != [task_of(i, 0.3, seed=1) for i in ids]
    assert {task_of(i, 0.0, 0) for i in ids} == {"caption"} and {task_of(i, 1.0, 0) for i in ids} == {"recaption"}


def test_ranks_come_from_a_slurm_array_then_slurm_tasks_then_torchrun(monkeypatch):
    names = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT", "SLURM_PROCID", "SLURM_NTASKS")
    for name in (*names, "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert rank_share() == (0, 1)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert rank_share() == (1, 4)
    monkeypatch.setenv("SLURM_PROCID", "2")
    monkeypatch.setenv("SLURM_NTASKS", "3")
    assert rank_share() == (2, 3)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "5")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "8")
    assert rank_share() == (2, 8)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "13")
    with pytest.raises(
        ValueError, match=r"SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN=8 is not in \[0, SLURM_ARRAY_TASK_COUNT=8\)"
    ):
        rank_share()
    for name in names[:3]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SLURM_PROCID", "3")
    with pytest.raises(ValueError, match=r"SLURM_PROCID=3 is not in \[0, SLURM_NTASKS=3\)"):
        rank_share()


def test_a_run_refuses_to_resume_over_another_plan(tmp_path, captioner_dir):
    items = _pool(tmp_path / "pool", 6)
    claim_plan(tmp_path / "out", make_plan(items, Settings(str(captioner_dir), shard_size=4)))
    claim_plan(tmp_path / "out", make_plan(items, Settings(str(captioner_dir), shard_size=4)))  # same: resumes
    with pytest.raises(ValueError, match=r"another plan \(changed: settings\)"):
        claim_plan(tmp_path / "out", make_plan(items, Settings(str(captioner_dir), shard_size=3)))
    with pytest.raises(ValueError, match="changed: ids_sha256, images, shards"):
        claim_plan(tmp_path / "out", make_plan(items[:4], Settings(str(captioner_dir), shard_size=4)))


def test_a_rank_removes_only_its_own_shards_half_written_files(tmp_path, captioner_dir):
    items = _pool(tmp_path / "pool", 6)
    shards = tmp_path / "out" / "shards"
    shards.mkdir(parents=True)
    ours, theirs = shards / ".shard-000002.jsonl.a1.tmp", shards / ".shard-000001.jsonl.b2.tmp"
    ours.write_text("killed mid-write")
    theirs.write_text("another rank is writing this now")
    settings = Settings(str(captioner_dir), shard_size=2)  # shards 0, 1, 2: rank 0 of 2 owns 0 and 2
    caption_pool(items, tmp_path / "out", settings, workers=0, rank=0, world_size=2, max_shards=0, show_progress=False)
    assert not ours.exists() and theirs.read_text() == "another rank is writing this now"


def test_bad_input_is_recorded_in_its_shard_and_the_run_goes_on(tmp_path, captioner_dir):
    items = _pool(tmp_path / "pool", 10, corrupt=1, no_alt_text=2)
    settings = Settings(str(captioner_dir), shard_size=4, batch_size=3, max_new_tokens=4, recaption_fraction=1.0)
    report = caption_pool(items, tmp_path / "out", settings, workers=0, show_progress=False)
    assert report["shards_captioned"] == 3 and report["images_captioned"] == 10

    rows = {row["id"]: row for row in read_shards(items, tmp_path / "out")}
    assert list(rows) == [item.id for item in items]
    assert rows[items[1].id]["status"] == UNREADABLE and rows[items[1].id]["detail"] == "OSError: Truncated File Read"
    assert rows[items[1].id]["caption"] == ""
    assert rows[items[2].id]["status"] == NO_ALT_TEXT and rows[items[2].id]["task"] == "caption"
    assert rows[items[2].id]["caption"] == "red"
    others = [row for i, row in enumerate(rows.values()) if i not in (1, 2)]
    assert {(row["task"], row["status"], row["caption"]) for row in others} == {("recaption", OK, "red")}
    assert {row["captioner"] for row in rows.values()} == {"sail-captioner"}

    summary = merge(items, tmp_path / "out")
    import datasets

    dataset = datasets.load_from_disk(str(tmp_path / "out" / "dataset"))
    assert summary["statuses"] == {OK: 8, UNREADABLE: 1, NO_ALT_TEXT: 1}
    assert summary["captions"] == len(dataset) == 9  # captioned without alt-text: kept
    assert summary["tasks"] == {"recaption": 8, "caption": 1}
    assert sorted(dataset["id"]) == sorted(item.id for i, item in enumerate(items) if i != 1)
    assert dataset[0]["image"].size == (96, 96) and dataset[0]["caption"] == "red"


@pytest.mark.parametrize(
    "bias, status, detail",
    [
        ("never stops", LENGTH_LIMIT, "stopped at max_new_tokens=3"),
        ("stops at once", EMPTY, "the captioner ended before writing anything"),
    ],
)
def test_a_caption_cut_at_the_limit_or_empty_is_recorded_and_left_out(
    tmp_path, tokenizer, geometry, bias, status, detail
):
    red, eos = tokenizer.encode("red", add_special_tokens=False)[0], tokenizer.eos_token_id
    biases = {"never stops": [[[red], 30.0]], "stops at once": [[[eos], 60.0]]}
    captioner = _save_captioner(tmp_path / "captioner", tokenizer, geometry, biases[bias])
    items = _pool(tmp_path / "pool", 4)
    settings = Settings(str(captioner), shard_size=4, max_new_tokens=3)
    caption_pool(items, tmp_path / "out", settings, workers=0, show_progress=False)
    rows = read_shards(items, tmp_path / "out")
    assert {(row["status"], row["detail"]) for row in rows} == {(status, detail)}
    assert {row["caption"] for row in rows} == (
        {"redredred"} if status == LENGTH_LIMIT else {""}
    )  # a word token without its space
    with pytest.raises(ValueError, match=rf"no caption of the 4 images is complete \({{'{status}': 4}}\)"):
        merge(items, tmp_path / "out")  # an empty dataset is an error, not a pretraining source
    assert not (tmp_path / "out" / DATASET).exists()


def test_two_ranks_in_two_processes_merge_into_one_dataset(tmp_path, captioner_dir):
    items = _pool(tmp_path / "pool", 9)
    command = [
        sys.executable,
        "-m",
        "sail.caption.production",
        "run",
        "--pool",
        str(tmp_path / "pool"),
        "--captioner",
        str(captioner_dir),
        "--out",
        str(tmp_path / "out"),
        "--workers",
        "0",
        "--threads-per-worker",
        "1",
        "--shard-size",
        "2",
        "--max-new-tokens",
        "4",
    ]
    ranks = [
        subprocess.Popen(command, env={**os.environ, "RANK": str(rank), "WORLD_SIZE": "2"}, stdout=subprocess.PIPE)
        for rank in range(2)
    ]
    reports = [json.loads(process.communicate(timeout=300)[0].decode().splitlines()[-1]) for process in ranks]
    assert all(process.returncode == 0 for process in ranks)
    assert sorted((r["rank"], r["shards_captioned"]) for r in reports) == [(0, 3), (1, 2)]  # shards 0,2,4 | 1,3

    rows = read_shards(items, tmp_path / "out")
    assert [row["id"] for row in rows] == [item.id for item in items]

    shard_path(tmp_path / "out", 3).unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 5 shards are missing \(e.g. shard-000003.jsonl\)"):
        merge(items, tmp_path / "out")


def _production(pool: Path, captioner: Path, out: Path, workers: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "sail.caption.production", "run", "--pool", str(pool), "--captioner"]
    command += [str(captioner), "--out", str(out), "--workers", str(workers), "--threads-per-worker", "1"]
    command += ["--shard-size", "2", "--batch-size", "2", "--max-new-tokens", "24"]
    return subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_killed_run_resumes_to_the_same_dataset_with_each_image_once(tmp_path, captioner_dir):
    items = _pool(tmp_path / "pool", 24)
    whole = _production(tmp_path / "pool", captioner_dir, tmp_path / "whole", workers=2)
    _, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err.decode()[-2000:]

    killed = _production(tmp_path / "pool", captioner_dir, tmp_path / "killed", workers=2)
    shards = tmp_path / "killed" / "shards"
    deadline = time.monotonic() + 300
    while not (shards.is_dir() and len(list(shards.glob("shard-*.jsonl"))) >= 2):
        assert killed.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)  # the driver and its workers, mid-run
    killed.wait(timeout=60)
    finished_before = len(list(shards.glob("shard-*.jsonl")))
    assert finished_before < 12

    resumed = _production(tmp_path / "pool", captioner_dir, tmp_path / "killed", workers=2)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()[-2000:]
    report = json.loads(out.decode().splitlines()[-1])
    assert report["shards_already_done"] == finished_before and report["shards_captioned"] == 12 - finished_before
    assert not list(shards.glob(".*.tmp"))

    assert read_shards(items, tmp_path / "killed") == read_shards(items, tmp_path / "whole")
    first, second = merge(items, tmp_path / "whole"), merge(items, tmp_path / "killed")
    assert first == second and first["images"] == 24
