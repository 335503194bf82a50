"""The trainer spread over processes on CPU: DeepSpeed ZeRO-3 in one process, DDP over two (gloo).

Each run is a subprocess, as a launched job would be: accelerate and DeepSpeed keep one process-wide
state (and a process group) that must not leak into the test process or into the next run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]

# A tiny captioning stage: the world's records, their tokenizer, the tiny InternVL (seeded, so every
# process builds the same weights).
TINY = """
import torch
from sail.caption import caption_collate, caption_examples
from sail.foundations.language import world_text
from sail.model import GEOMETRIES, build_vlm, make_processor, train_world_tokenizer
from sail.train import Stage, train
from sail.world import sample_records

records = sample_records("train", RECORDS)
tokenizer = train_world_tokenizer(world_text(records, 0), 400)
geometry = GEOMETRIES["tiny"]
processor = make_processor(tokenizer, geometry.tile_size, geometry.image_seq_length)
collate = caption_collate(processor)
torch.manual_seed(0)
model = build_vlm(geometry, tokenizer)
"""

ZERO3_SCRIPT = f"""
import json, sys
from pathlib import Path

import deepspeed
from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
{TINY.replace("RECORDS", "16")}
out, report = Path(sys.argv[1]), Path(sys.argv[2])
config = json.loads(Path({str(ROOT / "configs/deepspeed/zero3.json")!r}).read_text())
# ZeRO-3 keeps tensors under stage3_param_persistence_threshold (default 1e5 values) whole on every
# rank, and the tiny model's largest has 65,536: without this nothing would be partitioned at all.
config["zero_optimization"]["stage3_param_persistence_threshold"] = 0
initial = {{name: tensor.clone() for name, tensor in model.state_dict().items()}}
stage = Stage(name="zero3", data=caption_examples(records), collate=collate, trainable=("",),
              lr=1e-3, batch_size=4, max_steps=3)
result = train(model, stage, out, deepspeed_config=config, progress=False)

# Out of a step, each rank holds only its shard of a partitioned weight (param.ds_tensor).
partitioned = model.model.multi_modal_projector.linear_1.weight.numel() == 0
with deepspeed.zero.GatheredParameters(list(model.parameters())):
    trained = {{name: tensor.clone() for name, tensor in model.state_dict().items()}}
# accelerate saves the engine under the tag "pytorch_model"; this merges every rank's fp32 shards.
saved = get_fp32_state_dict_from_zero_checkpoint(str(out / "checkpoints" / "step-0000003"), tag="pytorch_model")
torch.save(
    {{
        "backend": result.backend, "steps": result.steps, "resumed_from": result.resumed_from_step,
        "partitioned": partitioned,
        "initial": initial, "trained": trained, "saved": saved,
    }},
    report,
)
"""

DDP_SCRIPT = f"""
import json, os, sys
from pathlib import Path

from safetensors.torch import save_file
{TINY.replace("RECORDS", "24")}
out = Path(sys.argv[1])
rank = int(os.environ["RANK"])


def logged_collate(rows):
    batch = collate(rows)
    with open(out / f"batches-{{rank}}.jsonl", "a") as log:
        log.write(json.dumps({{"ids": [record["id"] for record, _ in rows], "tokens": batch["num_tokens"]}}) + "\\n")
    return batch


def weights(model):
    return {{name: tensor.detach().clone().contiguous() for name, tensor in model.state_dict().items()}}


if rank == 0:
    save_file(weights(model), out / "initial.safetensors")
stage = Stage(name="ddp", data=caption_examples(records), collate=logged_collate, trainable=("",),
              lr=1e-3, batch_size=4, max_steps=3)
result = train(model, stage, out / "run", progress=False)
save_file(weights(model), out / f"trained-{{rank}}.safetensors")
(out / f"result-{{rank}}.json").write_text(
    json.dumps({{"backend": result.backend, "steps": result.steps, "tokens": result.tokens}})
)
"""


def _run(command: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    """Run with one thread per process, and none of this process's distributed or accelerate settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
        and not key.startswith("ACCELERATE_")
    }
    env["OMP_NUM_THREADS"] = "1"
    run = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    # torchrun prints each rank's traceback prefixed "[rankN]:", then a long summary of its own
    ranks = "\n".join([line for line in run.stderr.splitlines() if line.startswith("[rank")][-40:])
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout[-2000:]}\n{ranks}\n{run.stderr[-3000:]}"
    return run


def test_deepspeed_zero3_trains_partitioned_weights_and_resumes_on_cpu(tmp_path):
    out = tmp_path / "zero3"
    _run([sys.executable, "-c", ZERO3_SCRIPT, str(out), str(tmp_path / "first.pt")])
    first = torch.load(tmp_path / "first.pt", weights_only=False)

    assert first["backend"].startswith("DEEPSPEED") and first["steps"] == 3 and first["resumed_from"] == 0
    assert first["partitioned"], "ZeRO-3 left the projector whole: the test would not exercise partitioning"
    assert (out / "checkpoints" / "step-0000003").is_dir()
    initial, trained, saved = first["initial"], first["trained"], first["saved"]
    assert trained.keys() == initial.keys() == saved.keys()
    for name, tensor in trained.items():
        assert tensor.shape == initial[name].shape, f"{name} not gathered whole: {tuple(tensor.shape)}"
        assert torch.isfinite(tensor).all(), name
        # the checkpoint holds the weights the run ended with, not an earlier step's or an empty shard
        assert torch.equal(saved[name], tensor), name
    for part in ("model.vision_tower", "model.multi_modal_projector", "model.language_model"):
        assert any(not torch.equal(trained[n], initial[n]) for n in trained if n.startswith(part)), f"{part} unchanged"

    # A second run of the same stage (a new process, as after a restart) resumes from the checkpoint
    # through DeepSpeed's loader: nothing left to train, and the weights are the saved ones.
    _run([sys.executable, "-c", ZERO3_SCRIPT, str(out), str(tmp_path / "again.pt")])
    again = torch.load(tmp_path / "again.pt", weights_only=False)
    assert again["resumed_from"] == 3 and again["steps"] == 3
    for name, tensor in saved.items():
        assert torch.equal(again["trained"][name], tensor), name


def test_ddp_over_two_cpu_processes(tmp_path):
    script = tmp_path / "ddp_rank.py"
    script.write_text(DDP_SCRIPT)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    _run([*launcher, str(script), str(tmp_path)])

    results = [json.loads((tmp_path / f"result-{rank}.json").read_text()) for rank in (0, 1)]
    # "NO" would mean each process trains its own copy: on CPU, accelerate sets up a process group
    # only when told it is on CPU (Accelerator(cpu=True), or ACCELERATE_USE_CPU as `accelerate launch --cpu` sets).
    assert [r["backend"] for r in results] == ["MULTI_CPU on cpu:0"] * 2
    assert [r["steps"] for r in results] == [3, 3]

    # Each rank's own batches (a batch collated twice, e.g. to plan the schedule, counted once).
    batches = []
    for rank in (0, 1):
        lines = (tmp_path / f"batches-{rank}.jsonl").read_text().splitlines()
        batches.append({tuple(b["ids"]): b["tokens"] for b in map(json.loads, lines)})
    assert [len(b) for b in batches] == [3, 3]
    ids = [{i for batch in b for i in batch} for b in batches]
    # 24 records, 4 per rank per step, 3 steps: one epoch, each record on exactly one rank.
    assert not ids[0] & ids[1] and len(ids[0] | ids[1]) == 24
    assert [r["tokens"] for r in results] == [sum(batches[0].values()) + sum(batches[1].values())] * 2

    # Different data on each rank; identical weights after every step only if gradients were averaged.
    initial = load_file(tmp_path / "initial.safetensors")
    trained = [load_file(tmp_path / f"trained-{rank}.safetensors") for rank in (0, 1)]
    assert trained[0].keys() == trained[1].keys() == initial.keys()
    for name in initial:
        assert torch.equal(trained[0][name], trained[1][name]), name
    projector = [n for n in initial if n.startswith("model.multi_modal_projector")]
    assert projector and all(not torch.equal(trained[0][n], initial[n]) for n in projector)

    # One checkpoint, written once (no half-written copy), with both ranks' RNG and the final weights.
    checkpoints = tmp_path / "run" / "checkpoints"
    assert [p.name for p in checkpoints.iterdir()] == ["step-0000003"]
    final = checkpoints / "step-0000003"
    assert (final / "random_states_0.pkl").is_file() and (final / "random_states_1.pkl").is_file()
    saved = load_file(final / "model.safetensors")
    assert set(projector) <= saved.keys() <= trained[0].keys()
    for name, tensor in saved.items():
        assert torch.equal(tensor, trained[0][name]), name
