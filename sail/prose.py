"""Sentences written from a run's numbers, so a notebook's prose cannot contradict its outputs.

Hand-written markdown explains and states expectations; whatever states this run's results (a
number, a comparison, a direction) is produced by code from the results, with these helpers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from numbers import Integral

from IPython.display import Markdown


def number(value: float, digits: int = 3) -> str:
    """A measured figure as prose shows it: counts (integers) plainly, any float to `digits`
    places, so an F1 of 1.0 reads "1.000" beside "0.917"."""
    if isinstance(value, Integral):
        return f"{int(value):,}"
    return f"{value:.{digits}f}"


def change(name: str, before: float, after: float, digits: int = 3) -> str:
    """ "<name> rose from a to b" / "fell from a to b" / "stayed at a", judged on the shown digits."""
    shown_before, shown_after = number(before, digits), number(after, digits)
    if shown_before == shown_after:
        return f"{name} stayed at {shown_before}"
    return f"{name} {'rose' if after > before else 'fell'} from {shown_before} to {shown_after}"


def relation(ours: float, other: float, digits: int = 3) -> str:
    """ "above", "below", or "level with" when the two are equal at the digits shown."""
    if number(ours, digits) == number(other, digits):
        return "level with"
    return "above" if ours > other else "below"


def possessive(name: str) -> str:
    """ "the teacher's", "the alt-text rows'", and a name already possessive ("the alt-text's") as it is."""
    if name.endswith(("'s", "s'")):
        return name
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def versus(name: str, ours: float, other: float, other_name: str, digits: int = 3) -> str:
    """ "<name> is a, above/below/level with <other_name>'s b"."""
    shown_ours, shown_other = number(ours, digits), number(other, digits)
    return f"{name} is {shown_ours}, {relation(ours, other, digits)} {possessive(other_name)} {shown_other}"


def listing(items: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def takeaways(points: Iterable[str], title: str = "What this run shows") -> Markdown:
    """A markdown block of bullet points, for a notebook's closing cell."""
    return Markdown(f"### {title}\n\n" + "\n".join(f"- {point}" for point in points))
