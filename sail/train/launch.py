"""One SAIL training stage as a command, for `accelerate launch` or `torchrun` on one node or many.

    accelerate launch --num_processes 8 sail/train/launch.py alignment --profile full \\
        --checkpoint /models/composed --meta /data/pretrain.meta.json --out /runs/alignment \\
        --zero-config configs/deepspeed/zero2.json --mixed-precision bf16

Every process reads the same start checkpoint (Hugging Face format) and InternVL meta file, builds
the recipe's stage for the number of processes it was launched with (gradient accumulation fills
the recipe's global batch), and trains through `sail.train.train`, which resumes from the newest
checkpoint under `--out`. The first process then saves the model to `<out>/model` and what the
run spent to `<out>/result.json`. A notebook never runs DDP inside its kernel: with `processes` set,
it starts this command through `launch_stage` and reads the model back.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sail.manifest import atomic_write_json
from sail.train import recipe as recipes

RESULT = "result.json"
LOG = "launch.log"
_DISTRIBUTED_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Launch:
    """How a notebook trains a stage outside its kernel: `processes` ranks on this node under
    torchrun, with a DeepSpeed config (`zero_config`, "" for none) and mixed precision."""

    processes: int
    zero_config: str = ""
    mixed_precision: str = "no"

    def command(
        self, step: str, *, profile: str, checkpoint: Path, meta: Path, out: Path, seed: int = 0, **sizes: int
    ) -> list[str]:
        """The torchrun command line; `sizes` are this command's --max-steps, --global-batch, ... (0: unset)."""
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={self.processes}"]
        command += ["-m", "sail.train.launch", step, "--profile", profile, "--checkpoint", str(checkpoint)]
        command += ["--meta", str(meta), "--out", str(out), "--seed", str(seed)]
        command += ["--mixed-precision", self.mixed_precision]
        if self.zero_config:
            command += ["--zero-config", self.zero_config]
        for name, value in sizes.items():
            if value:
                command += [f"--{name.replace('_', '-')}", str(value)]
        return command


def launch_stage(
    launch: Launch, step: str, *, profile: str, checkpoint: Path, meta: Path, out: Path, seed: int = 0, **sizes: int
) -> dict:
    """Train `step` as `launch.processes` processes and wait for them; returns `<out>/result.json`.

    Their output goes to `<out>/launch.log`; a failed run raises with the log's tail, so a
    notebook stops on the launched error rather than on a missing model.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    command = launch.command(step, profile=profile, checkpoint=checkpoint, meta=meta, out=out, seed=seed, **sizes)
    env = {name: value for name, value in os.environ.items() if name not in _DISTRIBUTED_ENV}
    with open(out / LOG, "w") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    if code:
        tail = (out / LOG).read_text()[-3000:]
        raise RuntimeError(f"{step} on {launch.processes} processes exited with {code} ({out / LOG}):\n{tail}")
    return json.loads((out / RESULT).read_text())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sail.train.launch", description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=recipes.STEPS, help="the SAIL step whose recipe trains")
    parser.add_argument("--profile", choices=recipes.PROFILES, required=True)
    # Names no launcher option begins with: torchrun and accelerate read an ambiguous prefix as theirs.
    parser.add_argument("--checkpoint", type=Path, required=True, help="model to start from (HF format)")
    parser.add_argument("--meta", type=Path, required=True, help="InternVL meta file of the stage's data")
    parser.add_argument("--out", type=Path, required=True, help="checkpoints, log.jsonl and model/")
    parser.add_argument("--max-steps", type=int, default=0, help="size the run in steps (0: the recipe's budget)")
    parser.add_argument("--global-batch", type=int, default=0, help="sequences per optimiser step (0: the recipe's)")
    parser.add_argument("--micro-batch", type=int, default=0, help="sequences per process at once (0: the recipe's)")
    parser.add_argument("--pack-length", type=int, default=0, help="tokens per packed sequence (0: padded)")
    parser.add_argument("--zero-config", type=Path, default=None, help="a DeepSpeed config (configs/deepspeed/)")
    parser.add_argument("--mixed-precision", choices=("no", "bf16", "fp16"), default="no")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--loader-workers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (
        args.zero_config is not None
        and json.loads(args.zero_config.read_text()).get("zero_optimization", {}).get("stage") == 3
    ):
        # ZeRO-3 leaves each process a shard of every weight: save_pretrained would write empty tensors.
        raise SystemExit(
            "ZeRO-3 runs keep sharded weights: merge <out>/checkpoints with DeepSpeed's zero_to_fp32 "
            "instead of asking this command to save the model"
        )
    from transformers import AutoModelForImageTextToText

    from sail.data.mixture import read_mixture
    from sail.model import ImageOnlyInternVLProcessor
    from sail.pretrain.data import sample_collate
    from sail.train import train

    model = AutoModelForImageTextToText.from_pretrained(args.checkpoint)
    processor = ImageOnlyInternVLProcessor.from_pretrained(args.checkpoint)
    given = {"max_steps": args.max_steps, "global_batch": args.global_batch, "micro_batch": args.micro_batch}
    sized = {name: value for name, value in given.items() if value}
    stage_processes = int(os.environ.get("WORLD_SIZE", "1"))
    stage = recipes.stage(
        args.step,
        args.profile,
        data=read_mixture(args.meta, args.seed),
        collate=sample_collate(processor, args.pack_length or None),
        processes=stage_processes,
        seed=args.seed,
        **sized,
    )
    result = train(
        model,
        stage,
        args.out,
        deepspeed_config=args.zero_config,
        mixed_precision=args.mixed_precision,
        gradient_checkpointing=args.gradient_checkpointing,
        loader_workers=args.loader_workers,
        progress=False,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        model.save_pretrained(args.out / "model")
        processor.save_pretrained(args.out / "model")
        spent = {"steps": result.steps, "tokens": result.tokens, "seconds": round(result.seconds, 1)}
        spent |= {"final_loss": result.history[-1]["loss"], "backend": result.backend, "processes": stage_processes}
        atomic_write_json(args.out / RESULT, spent)
        print(
            f"{args.step}: {result.steps} steps, {result.tokens:,} tokens on {result.backend}; "
            f"model in {args.out / 'model'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
