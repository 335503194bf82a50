"""Training data as mixtures: sources in InternVL's conversation jsonl, mixed by a meta file.

A meta file names each source with where it lives and how often to use it, as InternVL's does:

    {"sail-caption-mini": {"root": "pool/", "annotation": "captions.jsonl", "repeat_time": 1, "length": 5425},
     "ocr-hq": {"root": "pool/", "annotation": "ocr-hq.jsonl", "repeat_time": 2, "length": 3263}}

`repeat_time` above 1 repeats a source (its whole part, then a seeded share of the remainder),
below 1 keeps a seeded share of it. Each jsonl row is one conversation:
`{"id", "image": <path under root>, "conversations": [{"from": "human", "value": "<image>\\n..."},
{"from": "gpt", "value": "..."}, ...]}`, as LLaVA and InternVL store their SFT sets: a row may
instead name a list of images (multi-image; one `<image>` per image, in order, in human turns
only) or none (text-only). Rows are read and checked when the mixture is built; images are
decoded when a batch is collated.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from sail.manifest import atomic_write_json, atomic_write_text, inside

IMAGE_PLACEHOLDER = "<image>"
ROLES = {"human": "user", "gpt": "assistant"}
SPEAKERS = {role: speaker for speaker, role in ROLES.items()}


@dataclass(frozen=True)
class Sample:
    """One training conversation: its image files (none, one or several) and its turns.

    The turns' text keeps an `<image>` where each image goes, in order, as the jsonl has it.
    """

    id: str
    source: str
    image_paths: tuple[str, ...]
    messages: tuple[tuple[str, str], ...]  # (role, text) with role "user" / "assistant"

    @property
    def image_path(self) -> str:
        """The image of a one-image sample (pretraining's and captioning's kind)."""
        if len(self.image_paths) != 1:
            raise ValueError(f"sample {self.id!r} has {len(self.image_paths)} images, not one")
        return self.image_paths[0]

    def images(self) -> list[Image.Image]:
        """The sample's images, decoded as RGB, in their `<image>` order."""
        decoded = []
        for path in self.image_paths:
            with Image.open(path) as image:
                decoded.append(image.convert("RGB"))
        return decoded

    def image(self) -> Image.Image:
        """The image of a one-image sample, decoded as RGB."""
        with Image.open(self.image_path) as image:
            return image.convert("RGB")

    def chat(self) -> list[dict]:
        """The turns as transformers chat messages, each `<image>` an image item where it stood."""
        messages = []
        for role, text in self.messages:
            if role != "user" or IMAGE_PLACEHOLDER not in text:
                messages.append({"role": role, "content": text})
                continue
            content = []
            for index, part in enumerate(text.split(IMAGE_PLACEHOLDER)):
                if index:
                    content.append({"type": "image"})
                if part.strip():
                    content.append({"type": "text", "text": part.strip()})
            messages.append({"role": role, "content": content})
        return messages


def conversation_row(sample_id: str, image: str | Sequence[str], turns: Sequence[tuple[str, str]]) -> dict:
    """One jsonl row: alternating (prompt, answer) turns; the first prompt carries the image(s).

    Several images are labelled "Image-1: <image>" ... the way InternVL's multi-image data is;
    none (an empty list) makes a text-only row.
    """
    images = [image] if isinstance(image, str) else list(image)
    if len(images) == 1:
        lead = f"{IMAGE_PLACEHOLDER}\n"
    else:
        lead = "".join(f"Image-{i}: {IMAGE_PLACEHOLDER}\n" for i in range(1, len(images) + 1))
    conversations = []
    for index, (prompt, answer) in enumerate(turns):
        value = lead + prompt if index == 0 else prompt
        conversations += [{"from": "human", "value": value}, {"from": "gpt", "value": answer}]
    row = {"id": sample_id, "conversations": conversations}
    if images:
        row["image"] = images[0] if len(images) == 1 else images
    return row


def write_source(rows: Iterable[dict], path: str | os.PathLike) -> int:
    """Write conversation rows as jsonl (atomically); returns how many."""
    rows = list(rows)
    atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in rows))
    return len(rows)


def write_meta(path: str | os.PathLike, sources: Mapping[str, Mapping]) -> Path:
    """A meta file for `sources` (name -> root, annotation, repeat_time, length), paths relative to the file."""
    base = Path(path).parent.resolve()
    entries = {
        name: {
            "root": os.path.relpath(Path(entry["root"]).resolve(), base),
            "annotation": os.path.relpath(Path(entry["annotation"]).resolve(), base),
            "repeat_time": entry.get("repeat_time", 1),
            "length": entry["length"],
        }
        for name, entry in sources.items()
    }
    return atomic_write_json(path, entries)


def write_samples(samples: Sequence[Sample], directory: str | os.PathLike) -> Path:
    """`samples` as a mixture on disk (one jsonl per source, images where they are), so another
    process, such as a launched training run, reads exactly these samples; returns its meta file."""
    directory = Path(directory)
    by_source: dict[str, list[dict]] = {}
    for sample in samples:
        row = {
            "id": sample.id,
            "image": [str(Path(path).resolve()) for path in sample.image_paths],
            "conversations": [{"from": SPEAKERS[role], "value": text} for role, text in sample.messages],
        }
        by_source.setdefault(sample.source, []).append(row)
    entries = {}
    for source, rows in by_source.items():
        annotation = directory / f"{source}.jsonl"
        entries[source] = {"root": "/", "annotation": annotation, "length": write_source(rows, annotation)}
    return write_meta(directory / "mixture.meta.json", entries)


def next_different(keys: Sequence[Hashable]) -> list[int]:
    """For each position, the next position (wrapping around) whose key differs from its own, or
    itself when every key is the same: where a swap finds another image, never its own back."""
    return [
        next((there for step in range(1, len(keys)) if keys[there := (here + step) % len(keys)] != key), here)
        for here, key in enumerate(keys)
    ]


def rotate_images(samples: Sequence[Sample]) -> list[Sample]:
    """`samples` with each one's images taken from the next sample of the same source that shows
    other images (the last wrapping to the first). The answers stay, the images no longer fit them:
    a model that answers from the image loses more on these, one that answers from the question
    alone loses the same. Rotating within a source keeps every question's kind of image (a card, a
    scene); skipping samples with the same images keeps a question from getting its own back."""
    by_source: dict[str, list[int]] = {}
    for index, sample in enumerate(samples):
        by_source.setdefault(sample.source, []).append(index)
    rotated = list(samples)
    for indices in by_source.values():
        others = next_different([samples[i].image_paths for i in indices])
        for here, there in zip(indices, others):
            rotated[here] = replace(samples[here], image_paths=samples[indices[there]].image_paths)
    return rotated


class MixtureError(ValueError):
    """A meta file or a source that cannot be trained on as it stands."""


def read_source(name: str, entry: Mapping, base: Path) -> list[Sample]:
    """A source's samples; a malformed row or an image outside its root is an error naming the line."""
    root = (base / entry["root"]).resolve()
    annotation = base / entry["annotation"]
    samples = []
    for number, line in enumerate(annotation.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{annotation}:{number}"
        try:
            row = json.loads(line)
            turns = row["conversations"]
            messages = tuple((ROLES[turn["from"]], turn["value"]) for turn in turns)
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise MixtureError(f"{where}: not a conversation row ({type(error).__name__}: {error})") from None
        roles = [role for role, _ in messages]
        if not roles or roles != ["user", "assistant"] * (len(roles) // 2):
            raise MixtureError(f"{where}: turns must alternate human, gpt and end with gpt; got {roles}")
        images = row.get("image", [])
        images = [images] if isinstance(images, str) else images
        if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
            raise MixtureError(f"{where}: 'image' must be a path or a list of paths, got {images!r}")
        paths = []
        for image in images:
            try:
                paths.append(str(inside(root, image)))
            except ValueError:
                raise MixtureError(f"{where}: image {image!r} lies outside the source's root {root}") from None
        placeholders = sum(text.count(IMAGE_PLACEHOLDER) for role, text in messages if role == "user")
        if placeholders != len(paths) or any(IMAGE_PLACEHOLDER in t for r, t in messages if r == "assistant"):
            raise MixtureError(
                f"{where}: {len(paths)} image(s) need as many {IMAGE_PLACEHOLDER} in human turns (found"
                f" {placeholders}) and none in gpt turns"
            )
        samples.append(Sample(str(row.get("id", f"{name}-{number}")), name, tuple(paths), messages))
    if len(samples) != entry.get("length", len(samples)):
        raise MixtureError(
            f"source {name!r}: the meta file says {entry['length']} rows, {annotation} has {len(samples)}"
        )
    return samples


def repeat(samples: Sequence[Sample], repeat_time: float, rng: random.Random) -> list[Sample]:
    """`repeat_time` whole copies of `samples` and a seeded share of the fraction left over."""
    if repeat_time <= 0:
        raise MixtureError(f"repeat_time must be > 0, got {repeat_time}")
    whole = math.floor(repeat_time)
    extra = round((repeat_time - whole) * len(samples))
    return list(samples) * whole + rng.sample(list(samples), extra)


def read_mixture(meta_path: str | os.PathLike, seed: int = 0) -> list[Sample]:
    """Every source of a meta file, repeated by its `repeat_time`, shuffled together (seeded)."""
    meta_path = Path(meta_path)
    meta = json.loads(meta_path.read_text())
    rng = random.Random(seed)
    mixed = []
    for name, entry in meta.items():
        missing = {"root", "annotation"} - set(entry)
        if missing:
            raise MixtureError(f"{meta_path}: source {name!r} lacks {sorted(missing)}")
        mixed += repeat(read_source(name, entry, meta_path.parent), float(entry.get("repeat_time", 1)), rng)
    rng.shuffle(mixed)
    return mixed
