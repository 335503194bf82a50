"""The `sail` runner, end to end on small notebooks written here, and its manifest helpers.

Each papermill execution costs ~10 s (kernel start + imports), so the four executions are shared
out carefully: success, a failing notebook after a good one, an unknown profile.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch  # loaded before any test sets ATEN_CPU_CAPABILITY, which torch reads once, at import
import yaml

from sail.manifest import (
    atomic_write_json,
    atomic_write_text,
    cpu_model,
    git_commit,
    machine,
    package_versions,
    sha256_file,
    write_manifest,
)
from sail.run import (
    UsageError,
    artifacts_parameter,
    check_parameter_names,
    declared_parameters,
    find_notebooks,
    load_profile,
    main,
    notebook_parameters,
    parse_value,
)

# What `torch.backends.cpu.get_cpu_capability` can answer, as its docstring lists them.
TORCH_CPU_CAPABILITIES = {"DEFAULT", "VSX", "Z VECTOR", "NO AVX", "AVX2", "AVX512", "SVE256"}


def write_notebook(path: Path, parameters: str, *cells: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    first = nbformat.v4.new_code_cell(parameters)
    first.metadata["tags"] = ["parameters"]
    nb.cells = [first, *map(nbformat.v4.new_code_cell, cells)]
    nbformat.write(nb, path)


@pytest.fixture
def project(tmp_path: Path) -> dict[str, Path]:
    notebooks, configs, outputs = tmp_path / "notebooks", tmp_path / "configs", tmp_path / "outputs"
    notebooks.mkdir()
    configs.mkdir()
    write_notebook(
        notebooks / "00_ok.ipynb",
        'profile = "tiny"\nsteps = 1  # a comment papermill cannot parse\nname = "default"\nartifacts_dir = ""',
        "from sail.params import check_parameters, positive_int\n"
        "p = check_parameters(profile, steps=(steps, positive_int))",
        'import os, sys\nprint(f"{name}:{p.steps}:{sys.executable}:{os.getcwd()}")',
        "print(artifacts_dir)",
        "import json, pathlib\n"
        "model = pathlib.Path(artifacts_dir) / 'model'\n"
        "model.mkdir(parents=True)\n"
        "(model / 'README.md').write_text('a model card')\n"
        "(model.parent / '00_ok.json').write_text(json.dumps({'headline': {'steps': p.steps}}))\n"
        "print(os.environ.get('SAIL_HEADLESS'), os.environ.get('HF_HUB_DISABLE_PROGRESS_BARS'))",
    )
    write_notebook(notebooks / "01_fail.ipynb", 'profile = "tiny"', 'raise ValueError("boom")')
    write_notebook(notebooks / "02_never.ipynb", 'profile = "tiny"', "print('ran')")
    (configs / "tiny.yaml").write_text(
        yaml.safe_dump({"common": {"name": "from-common", "steps": 2}, "00_ok": {"steps": 3}})
    )
    return {"notebooks": notebooks, "configs": configs, "outputs": outputs}


def sail(project: dict[str, Path], *args: str) -> int:
    dirs = ["--notebooks-dir", project["notebooks"], "--configs-dir", project["configs"]]
    return main(["run", *args, *map(str, dirs), "--output-dir", str(project["outputs"])])


def failure_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("sail: FAILED")]


@pytest.mark.notebook
def test_success_writes_notebook_and_manifest(project, capsys):
    manifest_path = project["outputs"] / "tiny" / "manifest.json"
    atomic_write_json(manifest_path, {"profile": "tiny", "notebooks": {"99_old": {"status": "ok"}}})

    assert sail(project, "00", "--profile", "tiny", "-p", "steps", "5") == 0

    run = project["outputs"] / "tiny"
    executed = nbformat.read(run / "00_ok.ipynb", as_version=4)
    printed = executed.cells[-3].outputs[0].text.strip()
    assert printed == f"from-common:5:{sys.executable}:{project['notebooks']}"  # this interpreter, notebook cwd
    artifacts = project["outputs"].resolve() / "tiny" / "artifacts"  # outside the repository: absolute
    assert executed.cells[-2].outputs[0].text.strip() == str(artifacts)
    assert executed.cells[-1].outputs[0].text.strip() == "1 1"  # kernels run headless: lines, no library bars

    # What a reviewer reads without running anything: the render, the small results, the index.
    assert "from-common:5" in (run / "00_ok.html").read_text()
    assert json.loads((run / "results" / "00_ok.json").read_text()) == {"headline": {"steps": 5}}
    assert (run / "results" / "model.md").read_text() == "a model card"
    assert '<a href="00_ok.html">00_ok</a></td><td>ok</td>' in (run / "index.html").read_text()
    assert "steps: 5" in (run / "index.html").read_text()

    manifest = json.loads(manifest_path.read_text())
    entry = manifest["notebooks"]["00_ok"]
    assert entry["parameters"] == {
        "name": "from-common",
        "steps": 5,
        "profile": "tiny",
        "artifacts_dir": str(artifacts),
    }
    assert entry["status"] == "ok" and entry["error"] is None
    assert entry["duration_s"] > 0 and entry["start_time"] < entry["end_time"]
    assert entry["output"] == str(project["outputs"] / "tiny" / "00_ok.ipynb")
    assert manifest["notebooks"]["99_old"] == {"status": "ok"}  # other notebooks' entries survive
    assert manifest["profile"] == "tiny" and set(manifest["git"]) == {"commit", "dirty"}
    versions = manifest["packages"]
    assert set(versions) == {"torch", "transformers", "accelerate", "deepspeed", "datasets", "papermill", "sail"}
    assert versions["torch"] and versions["papermill"] and versions["sail"] == "0.1.0"
    assert manifest["python"] == ".".join(map(str, sys.version_info[:3]))
    assert manifest["machine"] == machine()  # this process is the runner: it sees the machine the run saw


def test_peak_memory_counts_processes_started_in_the_block_and_not_one_still_ending_from_before():
    from sail.run import PeakMemory

    hold = "block = bytearray(b'x') * (300 * 2**20); import time; print(flush=True); time.sleep({})"
    earlier = subprocess.Popen([sys.executable, "-c", hold.format(30)], stdout=subprocess.PIPE)
    try:
        earlier.stdout.readline()  # its 300 MB are resident: a previous notebook's kernel, still ending
        with PeakMemory(interval=0.05) as memory:
            started = subprocess.Popen([sys.executable, "-c", hold.format(0.5)], stdout=subprocess.PIPE)
            started.stdout.readline()
            started.wait()
    finally:
        earlier.kill()
        earlier.wait()
    import psutil

    own = psutil.Process().memory_info().rss
    assert 300 * 2**20 <= memory.peak_bytes - own < 500 * 2**20  # the one it started, not both


@pytest.mark.notebook
def test_the_manifest_records_the_peak_memory_of_each_notebook_s_processes(project):
    write_notebook(project["notebooks"] / "03_big.ipynb", 'profile = "tiny"', "import time\n"
                   "block = bytearray(b'x') * (400 * 2**20)  # written, so resident\ntime.sleep(1)")  # fmt: skip
    write_notebook(project["notebooks"] / "04_small.ipynb", 'profile = "tiny"', "import time\ntime.sleep(1)")
    assert sail(project, "03", "04") == 0
    entries = json.loads((project["outputs"] / "tiny" / "manifest.json").read_text())["notebooks"]
    big, small = entries["03_big"]["peak_memory_mb"], entries["04_small"]["peak_memory_mb"]
    assert big - small >= 380 and small > 0
    assert f"<td>{big:,} MB</td>" in (project["outputs"] / "tiny" / "index.html").read_text()


@pytest.mark.notebook
def test_failure_stops_the_run_and_names_notebook_cell_and_error(project, capsys):
    assert sail(project) == 1

    # cells after injection: parameters (In [1]), injected-parameters (In [2]), the raise (In [3])
    assert failure_lines(capsys) == [
        f"sail: FAILED 01_fail, cell 2 (In [3]): ValueError: boom (see {project['outputs'] / 'tiny' / '01_fail.ipynb'})"
    ]
    assert not (project["outputs"] / "tiny" / "02_never.ipynb").exists()
    notebooks = json.loads((project["outputs"] / "tiny" / "manifest.json").read_text())["notebooks"]
    assert notebooks["00_ok"]["status"] == "ok"
    assert notebooks["01_fail"]["status"] == "failed"
    assert notebooks["01_fail"]["error"] == "cell 2 (In [3]): ValueError: boom"
    assert notebooks["01_fail"]["duration_s"] > 0
    assert notebooks["01_fail"]["parameters"] == {
        "profile": "tiny"
    }  # common values reach only notebooks declaring them
    assert "02_never" not in notebooks
    assert (
        "<td>failed: cell 2 (In [3]): ValueError: boom</td>" in (project["outputs"] / "tiny" / "index.html").read_text()
    )


@pytest.mark.notebook
def test_unknown_profile_is_rejected_by_the_notebook(project, capsys):
    assert sail(project, "00_ok", "--profile", "huge") == 1

    [line] = failure_lines(capsys)
    assert "FAILED 00_ok, cell 2 (In [3]): ParameterError: bad notebook parameters: " in line
    assert "profile='huge' (expected one of tiny, small, full)" in line
    entry = json.loads((project["outputs"] / "huge" / "manifest.json").read_text())["notebooks"]["00_ok"]
    artifacts = str(project["outputs"].resolve() / "huge" / "artifacts")
    assert entry["parameters"] == {"profile": "huge", "artifacts_dir": artifacts} and entry["status"] == "failed"


def test_find_notebooks(project):
    nbdir = project["notebooks"]
    assert [nb.stem for nb in find_notebooks([], nbdir)] == ["00_ok", "01_fail", "02_never"]
    assert find_notebooks(["01"], nbdir) == [nbdir / "01_fail.ipynb"]
    assert find_notebooks(["02_never", "00"], nbdir) == [nbdir / "02_never.ipynb", nbdir / "00_ok.ipynb"]
    assert find_notebooks([str(nbdir / "00_ok.ipynb")], nbdir) == [nbdir / "00_ok.ipynb"]
    for bad in (["07"], ["0"], ["missing.ipynb"]):
        with pytest.raises(UsageError):
            find_notebooks(bad, nbdir)
    with pytest.raises(UsageError, match="no notebooks"):
        find_notebooks([], nbdir / "..")


def test_bad_command_lines_exit_with_usage_errors(project, capsys):
    for args in (["07"], ["-p", "profile", "full"]):
        with pytest.raises(SystemExit) as exit_:
            sail(project, *args)
        assert exit_.value.code == 2
    assert "--profile" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["00", "-p", "stepz", "1"],
            "unknown parameter 'stepz' (did you mean 'steps'?) given with -p (not a parameter of 00_ok)",
        ),
        (["01", "-p", "steps", "1"], "unknown parameter 'steps' given with -p (not a parameter of 01_fail)"),
        (
            ["-p", "zzz", "1", "-p", "nane", "x"],
            "unknown parameters 'nane' (did you mean 'name'?), 'zzz' given with -p",
        ),
        (["--profile", "../../x"], "--profile '../../x' must be a plain name"),
        (["--profile", "a/b"], "--profile 'a/b' must be a plain name"),
        (["-p", "artifacts_dir", "/elsewhere"], "set --output-dir, not -p artifacts_dir"),
    ],
)
def test_bad_parameters_stop_the_run_before_anything_executes(project, capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        sail(project, *args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not project["outputs"].exists()


@pytest.mark.parametrize(
    "profile_text,message",
    [
        (
            "common:\n  stepss: 2\n",
            "unknown parameter 'stepss' (did you mean 'steps'?) in the common section of tiny.yaml",
        ),
        ("'00_ok':\n  nam: x\n", "unknown parameter 'nam' (did you mean 'name'?) in the 00_ok section of tiny.yaml"),
        ("'00_okk':\n  name: x\n", "tiny.yaml has sections for no notebook: 00_okk"),
    ],
)
def test_profile_files_are_checked_against_the_notebooks(project, capsys, profile_text, message):
    (project["configs"] / "tiny.yaml").write_text(profile_text)
    with pytest.raises(SystemExit):
        sail(project, "00")
    assert message in capsys.readouterr().err


def test_declared_parameters_reads_lines_with_comments(project):
    assert declared_parameters(project["notebooks"] / "00_ok.ipynb") == ["profile", "steps", "name", "artifacts_dir"]


def test_artifacts_inside_the_repository_are_passed_relative_to_the_notebook():
    repo = Path(__file__).resolve().parents[1]
    assert (
        artifacts_parameter(repo / "outputs" / "tiny", repo / "notebooks" / "00_tour.ipynb")
        == "../outputs/tiny/artifacts"
    )
    assert (
        artifacts_parameter(Path("/srv/runs/tiny"), repo / "notebooks" / "00_tour.ipynb") == "/srv/runs/tiny/artifacts"
    )


def test_repository_notebooks_accept_the_repository_profiles():
    repo = Path(__file__).resolve().parents[1]
    notebooks = find_notebooks([], repo / "notebooks")
    for profile in ("tiny", "small", "full"):
        sections = load_profile(repo / "configs" / "profiles", profile)
        declared = check_parameter_names(notebooks, repo / "notebooks", sections, {}, profile)
        assert all("profile" in names and "artifacts_dir" in names for names in declared.values())


def test_parse_value():
    texts = ["3", "true", "1e-4", "0.5", "", "/path/x", "2026-01-01", "[1, 2]", "null"]
    assert [parse_value(t) for t in texts] == [3, True, 1e-4, 0.5, "", "/path/x", "2026-01-01", [1, 2], None]


def test_profiles_merge_common_then_notebook_then_overrides(tmp_path):
    (tmp_path / "p.yaml").write_text("common:\n  a: 1\n  b: 1\n'00_x':\n  b: 2\n  lr: 1e-4\n'01_y':\n")
    sections = load_profile(tmp_path, "p")
    assert notebook_parameters(sections, "00_x", "p", {"a": 9}) == {"a": 9, "b": 2, "lr": 1e-4, "profile": "p"}
    assert notebook_parameters(sections, "01_y", "p", {}) == {"a": 1, "b": 1, "profile": "p"}
    assert load_profile(tmp_path, "absent") == {}
    (tmp_path / "bad.yaml").write_text("- a list\n")
    with pytest.raises(UsageError):
        load_profile(tmp_path, "bad")


def test_repository_profiles_are_readable():
    configs = Path(__file__).resolve().parents[1] / "configs" / "profiles"
    for profile in ("tiny", "small", "full"):
        assert isinstance(load_profile(configs, profile).get("common", {}), dict)


def test_manifest_helpers(tmp_path):
    path = atomic_write_text(tmp_path / "deep" / "a.txt", "hello")
    assert path.read_text() == "hello" and sha256_file(path) == hashlib.sha256(b"hello").hexdigest()
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind
    versions = package_versions(["pytest", "no-such-package-xyz"])
    assert versions == {"pytest": pytest.__version__, "no-such-package-xyz": None}
    assert git_commit(tmp_path) == {"commit": "unknown", "dirty": None}

    written = write_manifest(tmp_path / "m.json", tmp_path, ["pytest"], profile="tiny", out=tmp_path)
    assert json.loads((tmp_path / "m.json").read_text()) == {**written, "out": str(tmp_path)}
    assert written["packages"] == {"pytest": pytest.__version__} and written["git"]["commit"] == "unknown"
    assert list(written)[0] == "profile" and "written_at" in written
    given = {"commit": "abc", "dirty": False}  # e.g. captured before the run wrote anything
    assert write_manifest(tmp_path / "m.json", repo_dir=tmp_path, git=given)["git"] == given


def test_the_manifest_records_the_machine_the_run_saw(tmp_path, monkeypatch):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    written = write_manifest(tmp_path / "m.json", tmp_path, [])
    seen = written["machine"]
    assert json.loads((tmp_path / "m.json").read_text())["machine"] == seen
    assert set(seen) == {"cpu", "isa", "threads", "cores", "gpu", "aten_cpu_capability_env"}
    assert seen["cpu"] == cpu_model() and seen["isa"] in TORCH_CPU_CAPABILITIES
    assert (seen["threads"], seen["cores"]) == (torch.get_num_threads(), os.cpu_count())
    assert seen["aten_cpu_capability_env"] == "avx2"
    assert seen["gpu"] == (torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"NVIDIA H100 80GB HBM3 (device {index})")
    monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    assert (machine()["gpu"], machine()["aten_cpu_capability_env"]) == ("NVIDIA H100 80GB HBM3 (device 0)", None)


def test_the_cpu_model_comes_from_cpuinfo_else_from_the_platform(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n")
    assert cpu_model(cpuinfo) == "AMD EPYC 7B13 64-Core Processor"
    monkeypatch.setattr("platform.processor", lambda: "arm")
    assert cpu_model(tmp_path / "absent") == "arm"  # macOS: no /proc
    cpuinfo.write_text("processor\t: 0\nCPU part\t: 0xd0c\n")  # Linux on Arm: no model name line
    assert cpu_model(cpuinfo) == "arm"
    monkeypatch.setattr("platform.processor", lambda: "")
    assert cpu_model(tmp_path / "absent") is None


def test_the_runner_starts_without_importing_torch():
    """`sail run --help` answers at once: the manifest imports torch only when it records the machine."""
    code = "import sys, sail.run, sail.manifest; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
