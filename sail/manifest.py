"""Provenance helpers shared by every stage: atomic writes, safe file names, file hashes, versions,
git state, the machine, manifests.

Writes are atomic (temp file in the same folder + os.replace) so a killed job never leaves a
half-written manifest or shard that a resumed run would trust. Names that come from data (item
ids from tar members, jsonl or parquet) become file names only through `safe_name`, and every
such write goes through `inside`, so a crafted id such as `../../x` cannot leave its folder.
"""

import hashlib
import json
import os
import platform
import re
import subprocess
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def safe_name(text: str) -> str:
    """A file name for an untrusted id: the id itself when it is a plain name (letters, digits and
    `._-`, at most 100 characters, no leading dot), else its plain characters plus a hash of the
    whole id, so that two different ids never share a file."""
    if SAFE_NAME.fullmatch(text) and ".." not in text:
        return text
    plain = re.sub(r"[^A-Za-z0-9._-]+", "_", text).replace("..", "_").strip("._-")[:64]
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{plain}-{digest}" if plain else digest


def inside(folder: str | os.PathLike, relative: str | os.PathLike) -> Path:
    """`folder / relative`, refusing (ValueError) any path that resolves outside `folder`."""
    root = Path(folder).resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"refusing to use {str(relative)!r}: it resolves outside {folder}")
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` so readers see either the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write `obj` as indented JSON; paths, dates and other objects are written as strings."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so checkpoints of any size fit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Installed version of each distribution, None where it is not installed."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(repo_dir: str | os.PathLike) -> dict[str, Any]:
    """HEAD commit of `repo_dir` and whether the work tree differs from it (untracked files count).

    Outside a git work tree (or before the first commit) the commit is "unknown" and dirty is None.
    """

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo_dir), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}


DEFAULT_PACKAGES = ("torch", "transformers", "accelerate", "deepspeed", "datasets", "papermill", "sail")


def cpu_model(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str | None:
    """The CPU's model name: Linux's `model name` line, else what the platform reports (None if nothing)."""
    try:
        with open(cpuinfo, encoding="utf-8") as lines:
            for line in lines:
                name, _, value = line.partition(":")
                if name.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:  # no /proc (macOS, Windows)
        pass
    return platform.processor() or None


def machine() -> dict[str, Any]:
    """The machine as the process writing the manifest sees it. Timings, and the last bits of CPU
    results, depend on the CPU, the vector instruction set torch's kernels dispatch to (which the
    ATEN_CPU_CAPABILITY variable can lower), torch's thread count and the GPU, so two runs' numbers
    are comparable only when these match."""
    import torch  # imported here: it costs seconds, and `sail --help` should not

    return {
        "cpu": cpu_model(),
        "isa": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "aten_cpu_capability_env": os.environ.get("ATEN_CPU_CAPABILITY"),
    }


def environment(repo_dir: str | os.PathLike, packages: Iterable[str] = DEFAULT_PACKAGES) -> dict[str, Any]:
    """What a result depends on besides its inputs: code version, interpreter, platform, packages,
    and the machine it ran on."""
    return {
        "git": git_commit(repo_dir),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(packages),
        "machine": machine(),
    }


def write_manifest(
    path: str | os.PathLike,
    repo_dir: str | os.PathLike | None = None,
    packages: Iterable[str] = DEFAULT_PACKAGES,
    **fields: Any,
) -> dict[str, Any]:
    """Atomically write `fields` plus the environment and a UTC timestamp as JSON; returns what was written.

    `repo_dir` is the git work tree to describe (default: the one holding this package). A field named
    like an environment entry wins, e.g. `git=` captured before the run wrote its own outputs.
    """
    manifest = dict(fields)
    for key, value in environment(repo_dir or Path(__file__).resolve().parents[1], packages).items():
        manifest.setdefault(key, value)
    manifest["written_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    atomic_write_json(path, manifest)
    return manifest
