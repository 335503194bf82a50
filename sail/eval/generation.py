"""One generation adapter for evaluation: greedy answers to chat messages, batched, with a
per-call dynamic-tiling limit, over two backends.

- `hf`: transformers' `AutoModelForImageTextToText` with our processor
  (`ImageOnlyInternVLProcessor`); batches are left-padded, as in `sail.model.chat.generate`,
  which answers one prompt over many images; here every item has its own prompt.  The image
  processor's tile limit (`max_patches`) is set for the duration of each call.
- `lmdeploy`: `lmdeploy.pipeline` (PyTorch or TurboMind engine) on a CUDA GPU, imported only
  when first used, with the tile limit passed per image as `max_dynamic_patch`.  Without
  lmdeploy or CUDA it raises `BackendUnavailableError` saying what is missing.

Messages are transformers-style chat messages whose image items carry the image itself::

    [{"role": "user", "content": [{"type": "image", "image": <PIL.Image>},
                                  {"type": "text", "text": "What colour ...?"}]}]

`image_messages(image, prompt)` builds one.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from sail.model.chat import Generation, conversation, generations

__all__ = ["BACKENDS", "BackendUnavailableError", "Generator", "image_messages"]

BACKENDS = ("hf", "lmdeploy")


class BackendUnavailableError(RuntimeError):
    """The requested generation backend cannot run here (missing package or device)."""


def image_messages(image: Image.Image | None, prompt: str) -> list[dict]:
    """A single-turn generation prompt (sail's `conversation`) with the image attached."""
    messages = conversation(prompt, image=image is not None)
    if image is not None:
        messages[0]["content"][0]["image"] = image
    return messages


def _split(messages: Sequence[dict]) -> tuple[list[dict], list[Image.Image]]:
    """Messages without the image objects (for the chat template), and the images in order."""
    bare, images = [], []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            bare.append(message)
            continue
        items = []
        for item in content:
            if item.get("type") == "image":
                if not isinstance(item.get("image"), Image.Image):
                    raise ValueError("an image item must carry the PIL image under 'image'")
                images.append(item["image"].convert("RGB"))
                items.append({"type": "image"})
            else:
                items.append(item)
        bare.append({**message, "content": items})
    return bare, images


class Generator:
    """Greedy generation for evaluation: `Generator("hf", model_dir).generate(batch, max_tiles)`.

    backend: "hf" or "lmdeploy"; model_dir: a model saved in Hugging Face format with its
    processor; max_new_tokens, batch_size: per call.  For hf, an in-memory `model` and
    `processor` may be given instead of `model_dir` (e.g. to score a model while it trains).
    device: "auto" (CUDA when available) or a torch device.  engine: lmdeploy's "pytorch" or
    "turbomind".
    """

    def __init__(
        self,
        backend: str = "hf",
        model_dir: str | Path | None = None,
        *,
        max_new_tokens: int = 32,
        batch_size: int = 16,
        device: str = "auto",
        engine: str = "pytorch",
        model=None,
        processor=None,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
        if model_dir is None and (backend != "hf" or model is None or processor is None):
            raise ValueError("give model_dir (or, for hf, both model and processor)")
        if model_dir is not None and not Path(model_dir).is_dir():
            raise FileNotFoundError(f"model_dir {str(model_dir)!r} is not a directory")
        if max_new_tokens < 1 or batch_size < 1:
            raise ValueError("max_new_tokens and batch_size must be positive")
        if engine not in ("pytorch", "turbomind"):
            raise ValueError(f"unknown lmdeploy engine {engine!r}; expected pytorch or turbomind")
        self.backend, self.model_dir = backend, None if model_dir is None else Path(model_dir)
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.device, self.engine = device, engine
        self.model, self.processor = model, processor
        self._pipe = None

    def __repr__(self) -> str:
        return (
            f"Generator(backend={self.backend!r}, model_dir={str(self.model_dir)!r}, "
            f"max_new_tokens={self.max_new_tokens}, batch_size={self.batch_size})"
        )

    def generate(self, messages_batch: Sequence[Sequence[dict]], max_tiles: int = 6) -> list[str]:
        """Greedy answers, one per conversation, in order; images tiled up to `max_tiles`."""
        return [found.text for found in self.generations(messages_batch, max_tiles)]

    def generations(self, messages_batch: Sequence[Sequence[dict]], max_tiles: int = 6) -> list[Generation]:
        """`generate`, saying of each answer whether it stopped at `max_new_tokens`."""
        if max_tiles < 1:
            raise ValueError(f"max_tiles must be positive, got {max_tiles}")
        if not messages_batch:
            return []
        if self.backend == "hf":
            return self._generate_hf(messages_batch, max_tiles)
        return self._generate_lmdeploy(messages_batch, max_tiles)

    # -- hf -------------------------------------------------------------------------------------

    def _load_hf(self) -> None:
        if self.model is not None:
            return
        from transformers import AutoModelForImageTextToText

        from sail.model import ImageOnlyInternVLProcessor

        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
        self.model = AutoModelForImageTextToText.from_pretrained(self.model_dir, dtype=dtype).to(device)
        self.processor = ImageOnlyInternVLProcessor.from_pretrained(self.model_dir)

    def _generate_hf(self, messages_batch, max_tiles: int) -> list[Generation]:
        self._load_hf()
        images_processor = self.processor.image_processor
        saved = (images_processor.crop_to_patches, images_processor.max_patches)
        images_processor.crop_to_patches, images_processor.max_patches = max_tiles > 1, max_tiles
        try:
            split = [_split(messages) for messages in messages_batch]
            return generations(
                self.model,
                self.processor,
                [bare for bare, _ in split],
                [found for _, found in split],
                max_new_tokens=self.max_new_tokens,
                batch_size=self.batch_size,
            )
        finally:
            images_processor.crop_to_patches, images_processor.max_patches = saved

    # -- lmdeploy -------------------------------------------------------------------------------

    def _load_lmdeploy(self):
        if self._pipe is not None:
            return self._pipe
        try:
            import lmdeploy
        except ImportError:
            raise BackendUnavailableError(
                "backend 'lmdeploy' needs the lmdeploy package and a CUDA GPU: lmdeploy is not "
                "installed here (pip install lmdeploy on a GPU machine), or use backend='hf'"
            ) from None
        if not torch.cuda.is_available():
            raise BackendUnavailableError(
                "backend 'lmdeploy' needs a CUDA GPU, and torch sees none here; use backend='hf'"
            )
        config = (lmdeploy.TurbomindEngineConfig if self.engine == "turbomind" else lmdeploy.PytorchEngineConfig)(
            max_batch_size=self.batch_size
        )
        self._pipe = lmdeploy.pipeline(str(self.model_dir), backend_config=config)
        return self._pipe

    def _generate_lmdeploy(self, messages_batch, max_tiles: int) -> list[Generation]:
        pipe = self._load_lmdeploy()
        from lmdeploy import GenerationConfig

        prompts = [_openai_messages(m, max_tiles) for m in messages_batch]
        config = GenerationConfig(max_new_tokens=self.max_new_tokens, do_sample=False)
        responses = pipe(prompts, gen_config=config)
        return [Generation(r.text.strip(), r.finish_reason == "length") for r in responses]


def _openai_messages(messages: Sequence[dict], max_tiles: int) -> list[dict]:
    """OpenAI-style messages as lmdeploy's pipeline takes them; images as PNG data URLs."""
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            out.append(dict(message))
            continue
        items = []
        for item in content:
            if item.get("type") == "image":
                buffer = io.BytesIO()
                item["image"].convert("RGB").save(buffer, format="PNG")
                url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
                items.append({"type": "image_url", "image_url": {"url": url, "max_dynamic_patch": max_tiles}})
            else:
                items.append({"type": "text", "text": item["text"]})
        out.append({"role": message["role"], "content": items})
    return out
