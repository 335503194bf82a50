"""environment.yml (GPU clusters) and pyproject.toml (everywhere else) must describe one environment."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PYPI = {"pytorch": "torch"}


def conda_spec(spec: str) -> tuple[str, SpecifierSet]:
    """Read a conda match spec such as `python=3.11`, `pytorch>=2.4,<=2.12.1` or `pytorch=*=cuda*`."""
    name, constraint = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", spec.strip()).groups()
    if constraint.startswith("=") and not constraint.startswith("=="):
        version = constraint[1:].split("=")[0]  # drop a build string: `=2.5=cuda*`
        return name, SpecifierSet() if version == "*" else SpecifierSet(f"=={version.removesuffix('.*')}.*")
    return name, SpecifierSet(constraint.replace(" ", ""))


def overlap(a: SpecifierSet, b: SpecifierSet) -> bool:
    """Whether some version satisfies both ranges (tries every bound and a version just above it)."""
    bounds = {s.version.removesuffix(".*") for s in (*a, *b)}
    candidates = bounds | {f"{v}.1" for v in bounds} or {"0"}
    return any(a.contains(v, prereleases=True) and b.contains(v, prereleases=True) for v in candidates)


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="module")
def env() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def conda_deps(env: dict) -> list[str]:
    return [d for d in env["dependencies"] if isinstance(d, str)]


def pip_section(env: dict) -> list[str]:
    sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1, "environment.yml needs exactly one pip section"
    return sections[0]


def test_only_conda_forge(env):
    assert env["channels"] == ["conda-forge"]


def test_python_satisfies_requires_python(env, project):
    pythons = [conda_spec(d)[1] for d in conda_deps(env) if conda_spec(d)[0] == "python"]
    assert len(pythons) == 1, "environment.yml must name python once"
    assert overlap(pythons[0], SpecifierSet(project["requires-python"]))


def test_conda_packages_are_declared_and_compatible(env, project):
    declared = {canonicalize_name(r.name): r.specifier for r in map(Requirement, project["dependencies"])}
    for dep in conda_deps(env):
        name, spec = conda_spec(dep)
        if name in ("python", "pip"):
            continue
        pypi = canonicalize_name(CONDA_TO_PYPI.get(name, name))
        assert pypi in declared, f"conda installs {name} but pyproject.toml does not declare {pypi}"
        assert overlap(spec, declared[pypi]), f"{dep!r} contradicts pyproject's {pypi}{declared[pypi]}"


def test_pip_installs_this_package_with_known_extras(env, project):
    editable = [line for line in pip_section(env) if re.fullmatch(r"-e\s+\.(\[[^\]]*\])?", line.strip())]
    assert len(editable) == 1, "the pip section must install this package with `-e .[extras]`"
    extras = re.findall(r"[A-Za-z0-9_\-]+", editable[0].partition("[")[2])
    assert extras and set(extras) <= set(project["optional-dependencies"]), f"unknown extras in {editable[0]!r}"


@pytest.mark.parametrize(
    "spec, name, inside, outside",
    [
        ("python=3.11", "python", "3.11.7", "3.12"),
        ("pytorch>=2.4,<=2.12.1", "pytorch", "2.12.1", "2.13"),
        ("pytorch=*=cuda*", "pytorch", "2.13", None),
        ("pip", "pip", "25", None),
    ],
)
def test_conda_spec_reader(spec, name, inside, outside):
    got_name, got = conda_spec(spec)
    assert got_name == name and got.contains(inside)
    assert outside is None or not got.contains(outside)


def test_overlap():
    assert overlap(SpecifierSet(">=2.4,<=2.12.1"), SpecifierSet(">=2.4"))
    assert overlap(SpecifierSet(">2.4,<2.5"), SpecifierSet(">=2.4,<2.5"))
    assert not overlap(SpecifierSet(">=3"), SpecifierSet("<3"))
    assert overlap(SpecifierSet(), SpecifierSet())
