"""Run `sail run` in a subprocess, as a batch user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sail_run(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    # One thread: the matrices are tiny, and one thread is immune to oversubscription on a busy CPU.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "sail.run", "run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
