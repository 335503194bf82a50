"""The cluster profiles are configuration the runner accepts: every key is a parameter of the
notebook its section names, with a value of the type the notebook's default has."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from sail.run import check_parameter_names, load_profile

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PROFILES = ROOT / "configs" / "profiles"


def defaults(notebook: Path) -> dict[str, object]:
    """{name: default value} of a notebook's parameters cell."""
    cell = next(c for c in nbformat.read(notebook, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.parse(cell.source).body
        if isinstance(node, ast.Assign)
    }


def same_kind(value: object, default: object) -> bool:
    """A profile value fits a default of the same type; a float default also takes an int."""
    if isinstance(default, bool) or isinstance(value, bool):
        return type(value) is type(default)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return type(value) is type(default)


@pytest.mark.parametrize("profile", ["small", "full"])
def test_every_profile_key_is_a_parameter_of_its_notebook_with_the_default_s_type(profile):
    sections = load_profile(PROFILES, profile)
    notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    check_parameter_names(notebooks, NOTEBOOKS, sections, {}, profile)  # raises on an unknown name
    by_stem = {notebook.stem: defaults(notebook) for notebook in notebooks}
    wrong = []
    for section, values in sections.items():
        for name, value in values.items():
            targets = [d for d in by_stem.values() if name in d] if section == "common" else [by_stem[section]]
            wrong += [f"{section}.{name}={value!r}" for d in targets if not same_kind(value, d[name])]
    assert not wrong, f"{profile}.yaml: values of another type than the notebook's default: {wrong}"


@pytest.mark.parametrize(
    "value,default,fits",
    [
        (4e-5, 0.001, True),
        (1, 0.5, True),
        ([8, 16], [96], True),
        ("true", False, False),
        (1, True, False),
        ("500", 400, False),
    ],
)
def test_a_value_fits_only_a_default_of_its_kind(value, default, fits):
    assert same_kind(value, default) is fits
