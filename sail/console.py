"""Progress that reads well both live and in a saved notebook.

A progress bar redraws itself in place; papermill stores every redraw, so an executed notebook
ends up holding hundreds of bar fragments. `sail run` sets `SAIL_HEADLESS=1` for its kernels (and
turns the Hugging Face libraries' bars off through their own variables); there, `progress` prints
a plain line at each quarter of a loop instead of a bar. Interactive sessions keep tqdm's bar.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from tqdm.auto import tqdm

HEADLESS = "SAIL_HEADLESS"
# What `sail run` adds to its kernels' environment: no bars from the libraries either.
HEADLESS_ENVIRONMENT = {HEADLESS: "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}


def headless() -> bool:
    """Whether this process runs under `sail run` (output is saved, not watched)."""
    return os.environ.get(HEADLESS) == "1"


class LineProgress:
    """The part of tqdm's interface the trainer uses, printing `desc: n/total (p%) k=v` once per
    quarter of the loop and once at the end."""

    def __init__(self, total: int, initial: int = 0, desc: str = "", marks: int = 4, file: TextIO | None = None):
        self.total, self.n, self.desc, self.marks = total, initial, desc, marks
        self.file = file or sys.stdout
        self.postfix: dict[str, str] = {}
        self.printed_mark, self.printed_n = self._mark(), initial

    def _mark(self) -> int:
        return self.n * self.marks // self.total if self.total else self.marks

    def _print(self) -> None:
        extra = "".join(f" {name}={value}" for name, value in self.postfix.items())
        percent = 100 * self.n // self.total if self.total else 100
        print(f"{self.desc}: {self.n}/{self.total} ({percent}%){extra}", file=self.file, flush=True)
        self.printed_n = self.n

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._mark() > self.printed_mark:
            self.printed_mark = self._mark()
            self._print()

    def set_postfix(self, **values: object) -> None:
        self.postfix = {name: str(value) for name, value in values.items()}

    def close(self) -> None:
        """Say where a loop that stopped between marks (early, say) ended."""
        if self.n != self.printed_n:
            self._print()


def progress(total: int, *, initial: int = 0, desc: str = "", disable: bool = False) -> tqdm | LineProgress:
    """A progress display for a loop of `total` steps: a bar when watched, lines when headless."""
    if headless() and not disable:
        return LineProgress(total, initial, desc)
    return tqdm(total=total, initial=initial, desc=desc, mininterval=3, disable=disable)
