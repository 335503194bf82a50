"""Validation of notebook parameters, for the cell right after each notebook's `parameters` cell.

Papermill injects whatever it is given, typos and wrong types included, and a bad value usually
surfaces much later as an obscure error deep in training. Checking every parameter up front and
naming all bad ones in one message makes a batch run fail in its first second instead:

    p = check_parameters(profile, lm_steps=(lm_steps, positive_int), engine=(engine, one_of("hf", "lmdeploy")))

Relative paths are checked from the kernel's working directory, which the runner sets to the
notebook's folder (as JupyterLab does).
"""

import math
import numbers
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

PROFILES = ("tiny", "small", "full")


class ParameterError(ValueError):
    """One or more notebook parameters are invalid; the message lists every one of them."""


@dataclass(frozen=True)
class Rule:
    """A check on one parameter value and the words that say what it expects."""

    expected: str
    accepts: Callable[[object], bool]


def _integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _path(value: object) -> bool:
    return isinstance(value, (str, os.PathLike)) and str(value) != "" and os.path.exists(value)


positive_int = Rule("a positive integer", lambda v: _integer(v) and v > 0)
non_negative_int = Rule("an integer >= 0", lambda v: _integer(v) and v >= 0)
positive_float = Rule("a positive number", lambda v: _real(v) and v > 0)
fraction = Rule("a number between 0 and 1", lambda v: _real(v) and 0 <= v <= 1)
existing_path = Rule("an existing path", _path)
path_or_empty = Rule('an existing path, or "" for none', lambda v: v in ("", None) or _path(v))
string = Rule("a string", lambda v: isinstance(v, str))
boolean = Rule("True or False", lambda v: isinstance(v, bool))


def one_of(*choices: object) -> Rule:
    """A rule accepting exactly the given values."""
    return Rule("one of " + ", ".join(map(str, choices)), lambda v: v in choices)


def check_parameters(profile: str, **named: tuple[object, Rule]) -> SimpleNamespace:
    """Check `profile` and every `name=(value, rule)`; raise one ParameterError naming all bad values.

    Returns the values (and `profile`) as attributes, so later cells read `p.lm_steps`.
    """
    checks = {**named, "profile": (profile, one_of(*PROFILES))}
    bad = [
        f"{name}={value!r} (expected {rule.expected})"
        for name, (value, rule) in checks.items()
        if not rule.accepts(value)
    ]
    if bad:
        raise ParameterError("bad notebook parameters: " + "; ".join(bad))
    return SimpleNamespace(**{name: value for name, (value, _) in checks.items()})


def artifacts_root(artifacts_dir: str, profile: str) -> Path:
    """Where a notebook reads and writes: `artifacts_dir` as `sail run` sets it
    (`<output-dir>/<profile>/artifacts`), else `../outputs/<profile>/artifacts` for a notebook opened
    in JupyterLab. The profile names a folder, so only a plain name is accepted."""
    if not artifacts_dir and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", str(profile)):
        raise ParameterError(f"bad notebook parameters: profile={profile!r} (expected one of {', '.join(PROFILES)})")
    return Path(artifacts_dir or f"../outputs/{profile}/artifacts")
