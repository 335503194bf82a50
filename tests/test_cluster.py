"""The Slurm examples in configs/slurm and the cluster compute plan: what they name exists, what
they pass is accepted by the command that receives it.

Each sbatch file also runs for real under bash, with `sail`, `python`, `accelerate`, `srun` and
`scontrol` replaced by stubs that record their arguments (`srun` runs its command once per node
with that node's SLURM_NODEID, as Slurm would); the recorded command lines are then parsed by the
runner's, the caption command's and accelerate's own parsers.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from sail import run as runner
from sail.caption import production
from sail.train import recipe as recipes
from sail.train import trainer

ROOT = Path(__file__).resolve().parents[1]
SLURM = ROOT / "configs" / "slurm"
NOTEBOOKS = ROOT / "notebooks"
PROFILES = ROOT / "configs" / "profiles"
SCRIPTS = ("train_node.sbatch", "train_multinode.sbatch", "caption_array.sbatch")
STUBS = ("sail", "python", "accelerate", "srun", "scontrol")
RECORDED_ENV = (
    "DEEPSPEED_CONFIG",
    "SLURM_NODEID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_COUNT",
)
STUB = """#!{python}
import json, os, subprocess, sys, tempfile
name = os.path.basename(sys.argv[0])
record = {{"name": name, "argv": sys.argv[1:], "cwd": os.getcwd(),
          "env": {{k: os.environ[k] for k in {recorded!r} if k in os.environ}}}}
fd, path = tempfile.mkstemp(dir=os.environ["STUB_LOG"], suffix=".json")
with os.fdopen(fd, "w") as file:
    json.dump(record, file)
if name == "scontrol":
    print("\\n".join(f"gpu-node-{{i}}" for i in range(int(os.environ["SLURM_NNODES"]))))
elif name == "srun":
    command = sys.argv[1:]
    while command and command[0].startswith("-"):
        command.pop(0)
    for node in range(int(os.environ["SLURM_NNODES"])):
        subprocess.run(command, env={{**os.environ, "SLURM_NODEID": str(node)}}, check=True)
"""


def text(name: str) -> str:
    return (SLURM / name).read_text()


def comments(name: str) -> list[str]:
    return [line.lstrip("#").strip() for line in text(name).splitlines() if line.lstrip().startswith("#")]


def run_script(name: str, tmp_path: Path, env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess, list]:
    """Run one sbatch file under bash with stub commands; returns the process and the stubs' records."""
    stubs, log = tmp_path / "bin", tmp_path / "log"
    stubs.mkdir(parents=True, exist_ok=True)
    log.mkdir(parents=True, exist_ok=True)
    for stub in STUBS:
        path = stubs / stub
        path.write_text(STUB.format(python=sys.executable, recorded=RECORDED_ENV))
        path.chmod(0o755)
    base = {
        "PATH": f"{stubs}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(tmp_path),
        "STUB_LOG": str(log),
        "SLURM_SUBMIT_DIR": str(ROOT),
        "SLURM_JOB_NODELIST": "gpu-node-[0-1]",
        "SLURM_NNODES": "1",
    }
    done = subprocess.run(
        ["bash", str(SLURM / name), *args], env=base | env, capture_output=True, text=True, timeout=120
    )
    records = [json.loads(path.read_text()) for path in sorted(log.glob("*.json"))]
    return done, records


def calls(records: list, name: str) -> list[dict]:
    return [record for record in records if record["name"] == name]


def check_sail_run(argv: list[str]) -> tuple:
    """The runner's own checks on the arguments of `sail` (`run ...`): notebooks, profile, every parameter."""
    args = runner.build_parser().parse_intermixed_args(argv)
    assert (PROFILES / f"{args.profile}.yaml").is_file(), f"no profile {args.profile!r}"
    notebooks = runner.find_notebooks(args.notebooks, NOTEBOOKS)
    overrides = {name: runner.parse_value(value) for name, value in args.parameter}
    sections = runner.load_profile(PROFILES, args.profile)
    runner.check_parameter_names(notebooks, NOTEBOOKS, sections, overrides, args.profile)
    return args, notebooks


@pytest.mark.parametrize("name", SCRIPTS)
def test_sbatch_files_parse_and_keep_their_headers_before_any_command(name):
    assert subprocess.run(["bash", "-n", str(SLURM / name)], capture_output=True).returncode == 0
    lines = text(name).splitlines()
    assert lines[0] == "#!/bin/bash"
    first_command = next(i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#"))
    headers = [i for i, line in enumerate(lines) if line.startswith("#SBATCH")]
    assert headers and max(headers) < first_command, "Slurm ignores #SBATCH lines after the first command"
    assert lines[first_command] == "set -euo pipefail"
    assert not re.search(r"/(home|Users)/\w", text(name)), "a personal path"


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_profile_notebook_and_deepspeed_config_named_exists(name):
    body = text(name)
    for profile in re.findall(r"--profile[ =]([\w-]+)", body):
        assert (PROFILES / f"{profile}.yaml").is_file(), f"{name} names profile {profile!r}"
    for stem in re.findall(r"\b\d\d_[a-z][a-z_]*[a-z]\b", body):
        assert (NOTEBOOKS / f"{stem}.ipynb").is_file(), f"{name} names notebook {stem!r}"
    for config in set(re.findall(r"\bzero\d\.json\b", body)):
        path = ROOT / "configs" / "deepspeed" / config
        assert path.is_file(), f"{name} names {config}"
        assert json.loads(path.read_text())["zero_optimization"]["stage"] == int(config[4])
    for path in re.findall(r"configs/deepspeed/[\w.-]+", body):
        assert (ROOT / path).is_file(), f"{name} names {path}"


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_sail_run_in_the_comments_is_accepted(name):
    for line in comments(name):
        if not line.startswith("sail run "):
            continue
        words = shlex.split(line.removeprefix("sail run "))
        check_sail_run(["run", *(re.sub(r"\$\{?\w+\}?", "x", word) for word in words)])


@pytest.mark.parametrize("name", SCRIPTS)
def test_keywords_the_comments_give_sail_functions_exist(name):
    """`deepspeed_config=`, `processes=` and the like: keywords of sail.train.train or recipe.stage."""
    known = set(inspect.signature(trainer.train).parameters) | set(inspect.signature(recipes.stage).parameters)
    named = {word for line in comments(name) for word in re.findall(r"(?<![\w-])([a-z_]+)=(?!=)", line)}
    assert named <= known, f"{name} names {sorted(named - known)}, which neither train() nor stage() takes"


def test_train_node_runs_a_notebook_with_parameters_it_declares(tmp_path):
    line = next(line for line in text("train_node.sbatch").splitlines() if line.startswith("NOTEBOOK="))
    alternatives = re.findall(r"\b\d\d_[a-z_]+[a-z]\b", line)
    assert len(alternatives) >= 3  # the default and the others its comment offers
    for stem in alternatives:
        done, records = run_script("train_node.sbatch", tmp_path / stem, {"NOTEBOOK": stem})
        assert done.returncode == 0, done.stderr
        (sail,) = calls(records, "sail")
        assert sail["argv"][0] == "run" and sail["cwd"] == str(ROOT)
        args, notebooks = check_sail_run(sail["argv"])
        assert args.profile == "full"
        assert [nb.stem for nb in notebooks] == [stem]
        assert args.parameter, "the example shows a -p passed through"
        for parameter, _ in args.parameter:
            assert parameter in runner.declared_parameters(notebooks[0])


@pytest.mark.parametrize("profile", ["small", "full"])
def test_the_stage_notebooks_launch_8_processes_under_zero2_in_bf16_on_the_cluster_profiles(profile):
    """train_node.sbatch holds 8 GPUs and relies on the profile for processes and DeepSpeed."""
    sections = runner.load_profile(PROFILES, profile)
    for notebook in ("04_pretrain_alignment", "05_pretrain_advance"):
        section = sections[notebook]
        assert (section["processes"], section["mixed_precision"]) == (8, "bf16"), notebook
        config = json.loads((NOTEBOOKS / section["zero_config"]).read_text())  # notebooks run in notebooks/
        assert config["zero_optimization"]["stage"] == 2, notebook
    assert "#SBATCH --gpus-per-node=8" in (ROOT / "configs" / "slurm" / "train_node.sbatch").read_text()


@pytest.mark.parametrize("nodes", [2, 4])
def test_multinode_launches_one_accelerate_per_node_with_the_rendezvous(tmp_path, nodes):
    from accelerate.commands.launch import launch_command_parser

    env = {"SLURM_NNODES": str(nodes), "TRAIN_SCRIPT": "stage.py"}
    done, records = run_script("train_multinode.sbatch", tmp_path, env, "--max-steps", "10")
    assert done.returncode == 0, done.stderr
    (scontrol,) = calls(records, "scontrol")
    assert scontrol["argv"] == ["show", "hostnames", "gpu-node-[0-1]"]
    launches = calls(records, "accelerate")
    assert len(launches) == nodes
    parsed = []
    for launch in launches:
        assert launch["argv"][0] == "launch"
        args = launch_command_parser().parse_args(launch["argv"][1:])
        assert args.machine_rank == int(launch["env"]["SLURM_NODEID"])
        config = Path(launch["env"]["DEEPSPEED_CONFIG"])
        assert (
            config.parent == ROOT / "configs" / "deepspeed"
            and "stage" in json.loads(config.read_text())["zero_optimization"]
        )
        parsed.append(args)
    assert sorted(args.machine_rank for args in parsed) == list(range(nodes))
    for args in parsed:
        assert args.multi_gpu and args.num_machines == nodes and args.num_processes == nodes * 8
        assert args.main_process_ip == "gpu-node-0" and args.main_process_port == 29500
        assert args.training_script == "stage.py" and args.training_script_args == ["--max-steps", "10"]


def test_multinode_refuses_to_start_without_a_training_script(tmp_path):
    done, records = run_script("train_multinode.sbatch", tmp_path, {"SLURM_NNODES": "2"})
    assert done.returncode != 0 and "TRAIN_SCRIPT" in done.stderr
    assert not calls(records, "accelerate")


def test_caption_array_captions_each_task_s_share_with_the_ranks_production_reads(tmp_path, monkeypatch):
    array = re.search(r"^#SBATCH --array=(\d+)-(\d+)\s*$", text("caption_array.sbatch"), re.M)
    first, last = int(array[1]), int(array[2])
    env = {"SLURM_ARRAY_TASK_ID": str(first + 3), "SLURM_ARRAY_TASK_MIN": str(first)}
    env["SLURM_ARRAY_TASK_COUNT"] = str(last - first + 1)
    done, records = run_script("caption_array.sbatch", tmp_path, env)
    assert done.returncode == 0, done.stderr
    (python,) = calls(records, "python")
    assert python["argv"][:3] == ["-m", "sail.caption.production", "run"]
    args = production._arguments(python["argv"][2:])
    settings = {name: getattr(args, name) for name in ("shard_size", "batch_size", "max_new_tokens", "seed")}
    production.Settings(args.captioner, backend=args.backend, recaption_fraction=args.recaption_fraction, **settings)
    artifacts = ROOT / "outputs" / "full" / "artifacts"
    assert Path(args.pool) == artifacts / "curation" / "pool" and Path(args.captioner) == artifacts / "sail-captioner"
    assert Path(args.out).parent == artifacts and Path(args.out).name != "sail-caption-mini"  # 03 clears that one

    # The ranks reach the command in the variables rank_share reads, and the array covers every rank once.
    source = inspect.getsource(production.rank_share)
    array_names = re.findall(r"\b(SLURM_ARRAY_\w+)\b", source)
    assert set(array_names) == {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT"}
    assert all(name in text("caption_array.sbatch") for name in array_names)
    assert not re.search(r"^\s*(export\s+)?SLURM_\w+=", text("caption_array.sbatch"), re.M)
    assert python["env"] == env
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert production.rank_share() == (3, last - first + 1)
    ranks = []
    for task in range(first, last + 1):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(task))
        ranks.append(production.rank_share())
    assert ranks == [(rank, last - first + 1) for rank in range(last - first + 1)]


def test_caption_array_uses_notebook_03_s_caption_settings():
    nb = nbformat.read(NOTEBOOKS / "03_production.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assignments = [node for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)]
    declared = {node.targets[0].id: ast.literal_eval(node.value) for node in assignments}
    body = text("caption_array.sbatch")
    for name in ("max_new_tokens", "recaption_fraction"):
        default = re.search(rf'^{name.upper()}="\$\{{{name.upper()}:-([^}}]+)\}}"', body, re.M)[1]
        assert float(default) == declared[name], name


def test_cluster_plan_takes_notebook_04_s_sample_shapes_and_its_results_are_current():
    spec = importlib.util.spec_from_file_location("cluster_plan", ROOT / "bench" / "cluster_plan.py")
    cluster_plan = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cluster_plan)
    nb = nbformat.read(NOTEBOOKS / "04_pretrain_alignment.ipynb", as_version=4)
    source = next(c.source for c in nb.cells if c.cell_type == "code" and "stage_compute(" in c.source)
    pretrain = {(m[0], int(m[1]), int(m[2])) for m in re.findall(r'planned\("(\w[\w-]*)", (\d+), (\d+)\)', source)}
    sft = re.search(r"planned\(s, (\d+), (\d+)\) for s in \(([^)]*)\)", source)
    shapes = {step: (tiles, text) for step, tiles, text in pretrain}
    shapes |= {step: (int(sft[1]), int(sft[2])) for step in re.findall(r'"([\w-]+)"', sft[3])}
    assert shapes == cluster_plan.SAMPLE_SHAPES
    written = (ROOT / "bench" / "results" / "cluster_plan.md").read_text()
    assert written == cluster_plan.report(), "regenerate with .venv/bin/python bench/cluster_plan.py"
