"""Serve a saved InternVL with `transformers serve`, an OpenAI-compatible chat-completions server.

    python -m sail.caption.serve <model_dir> --host 127.0.0.1 --port 8000

Why a launcher instead of the plain `transformers serve` command: the server loads its processor
with `AutoProcessor.from_pretrained`. Without torchvision (the CPU set-up of this repository) that
call cannot build the stock `InternVLProcessor` and quietly returns the tokenizer alone, so the
images in a request are dropped without an error. Registering `ImageOnlyInternVLProcessor` for
`InternVLConfig` in the server's own process, before the CLI starts, makes AutoProcessor return a
processor that expands every image into `<img>` + N x `<IMG_CONTEXT>` + `</img>`. On GPU machines
with torchvision installed the plain command works as well; lmdeploy's `api_server` and vLLM speak
the same protocol, and `sail.caption.teachers.OpenAIChatTeacher` talks to any of them.

`start_server` / `wait_healthy` / `stop_server` run the launcher as a subprocess (tests, notebooks).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def register_image_processor() -> None:
    """Make `AutoProcessor.from_pretrained(<InternVL dir>)` return the image-only processor."""
    from transformers import AutoProcessor, InternVLConfig

    from sail.model import ImageOnlyInternVLProcessor

    AutoProcessor.register(InternVLConfig, ImageOnlyInternVLProcessor, exist_ok=True)


def main(argv: list[str] | None = None) -> None:
    """`transformers serve` with the image-only processor registered first; arguments as the CLI's."""
    register_image_processor()
    from transformers.cli.transformers import main as transformers_cli

    sys.argv = ["transformers", "serve", *(sys.argv[1:] if argv is None else argv)]
    transformers_cli()


def default_device() -> str:
    """ "cuda" when torch sees a GPU, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start_server(
    model_dir: str | os.PathLike,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    device: str | None = None,
    log_path: str | os.PathLike | None = None,
    extra_args: tuple[str, ...] = (),
) -> tuple[subprocess.Popen, str]:
    """Launch the server in a subprocess (its own process group); returns (process, base_url ending in /v1).

    `device` is where the model runs: the first GPU when one is visible, else the CPU, unless given."""
    port = port or free_port(host)
    device = device or default_device()
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 - the child owns it
    command = [
        sys.executable,
        "-m",
        "sail.caption.serve",
        str(Path(model_dir)),
        "--host",
        host,
        "--port",
        str(port),
        "--device",
        device,
        *extra_args,
    ]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    if log_path:
        log.close()
    return process, f"http://{host}:{port}/v1"


def wait_healthy(base_url: str, process: subprocess.Popen | None = None, timeout: float = 120.0) -> float:
    """Poll `/health` until it answers 200; returns the seconds waited. Raises if the process dies or time runs out."""
    root = base_url.rstrip("/").removesuffix("/v1")
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(f"{root}/health", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{root}/health did not answer within {timeout:.0f} s")


def stop_server(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop the server started by `start_server` (its process group: the launcher and any children)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)


if __name__ == "__main__":
    main()
