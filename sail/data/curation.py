"""The curation funnel: every step counts what it keeps and drops, with a reason per dropped item.

Steps, in order (one streaming pass; an item stops at the first step that drops it):

0. `read`       — records the reader could not read (`Item.problem`: malformed or non-UTF-8
                  lines, no image, a path outside the data's root, truncated shards).
1. `decode`     — missing or unreadable file, zero bytes, unidentified bytes, failed `verify()`, truncated or
                  otherwise failing `load()`, too many pixels (checked before decoding, a
                  decompression-bomb guard), duplicate item id, unsupported mode.
2. `resolution` — shorter side below `min_side` or longer side above `max_side`.
3. `aspect`     — long/short side ratio above `max_aspect`: banners whose short side passes
                  `resolution` (300x40); thinner slivers (1x500) stop at `resolution` first.
4. `alt_text`   — empty, too short, too long, junk only (file names, "png hd wallpaper" ...).
                  Sources in `alt_text_optional` (SA-1B-like, shipped without text) may have
                  empty alt-text: they are captioned from the image alone instead of recaptioned.
5. `exact_dup`  — sha256 of the encoded bytes; the first occurrence is kept.
6. `near_dup`   — perceptual hash (imagehash.phash) within `phash_threshold` bits of a kept
                  image; the first occurrence is kept.

Dedup runs last so that the representative kept from a duplicate group is one that passed
every other check.

**Modes.**  Odd modes are normalised to RGB, not dropped: CMYK/YCbCr/LAB/HSV are converted;
images with alpha (RGBA, LA, PA, P with transparency) are composited on white; palette and
greyscale images are expanded; 16/32-bit integer images ('I;16', 'I') are rescaled to 8 bits.
Float images ('F': depth maps, scientific data) are dropped as `unsupported_mode`: they are
rarely photographs and have no canonical display range.  Each conversion is recorded in
`FunnelResult.converted`.

**Near-duplicate threshold.**  World images are flat-coloured with plain backgrounds, so the
usual 64-bit phash (hash_size=8) gives distance 0 for different scenes (measured on the tiny
pool: distinct cards collide).  The default is a 256-bit phash (hash_size=16) with a threshold
of 10 bits: injected re-encodes, small resizes and colour jitter land at 0-4 bits, the closest
distinct world images mostly at 12 or more.  phash sees only luminance: on a 2000-item tiny pool
(seed 0) it dropped 16 clean items (0.8%), 7 of them scenes with the same content as the kept one
(same objects in the same cells, another background shade — true semantic duplicates) and 9
single-object scenes differing only in the object's colour; one of 40 injected low-quality JPEG
re-encodes landed at 18 bits and was missed.  For photos, hash_size=8 with a threshold of 6-8 is common.
Candidates are found with a pigeonhole index (a hash within t bits shares at least one of t+1
bands exactly), so the search stays sub-quadratic on large pools.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import imagehash
import numpy as np
import pandas as pd
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from sail.data.readers import Item
from sail.data.sources import ALT_TEXT_OPTIONAL

STEPS = ("read", "decode", "resolution", "aspect", "alt_text", "exact_dup", "near_dup")

JUNK_WORDS = frozenset(
    "free download hd wallpaper wallpapers png jpg jpeg gif webp royalty transparent background 4k 8k high "
    "quality best ideas image images photo photos picture pic untitled img dsc stock vector icon clipart "
    "click here view more sale new the a an of and with".split()
)
FILE_NAME = re.compile(r"^\s*[\w\-. ]*\.(jpe?g|png|gif|webp|bmp|tiff?)\s*$", re.IGNORECASE)


@dataclass
class FunnelConfig:
    """Thresholds of every step (all recorded in the data card)."""

    max_pixels: int = 40_000_000
    min_side: int = 32
    max_side: int = 8192
    max_aspect: float = 3.0
    min_alt_chars: int = 3
    max_alt_chars: int = 300
    alt_text_optional: tuple[str, ...] = ALT_TEXT_OPTIONAL
    phash_size: int = 16
    phash_threshold: int = 10

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class StepCount:
    step: str
    seen: int = 0
    kept: int = 0
    reasons: Counter = field(default_factory=Counter)

    @property
    def dropped(self) -> int:
        return self.seen - self.kept


# --- decoding ----------------------------------------------------------------------------------


def _to_rgb(image: Image.Image) -> tuple[Image.Image | None, str | None]:
    """(RGB image, None) or (None, reason).  See the module docstring for the policy."""
    mode = image.mode
    if mode == "RGB":
        return image, None
    if mode == "F":
        return None, "unsupported_mode"
    if mode.startswith("I"):
        array = np.asarray(image).astype(np.float64)
        top = 65535.0 if array.max(initial=0) > 255 else 255.0
        grey = np.clip(array * (255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB"), None
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB"), None
    try:
        return image.convert("RGB"), None
    except (ValueError, OSError):
        return None, "unsupported_mode"


def decode(data: bytes, max_pixels: int = FunnelConfig.max_pixels) -> tuple[Image.Image | None, str | None, dict]:
    """Decode encoded image bytes to RGB: (image, None, info) or (None, reason, info); never raises.

    info holds `format`, `mode` (as stored), `size` and the EXIF `orientation` (1: upright) where
    they could be read.  Truncated files are caught only while PIL's global
    `ImageFile.LOAD_TRUNCATED_IMAGES` is False (its default); code that sets it True makes PIL fill
    truncated JPEGs with grey instead.
    """
    info: dict = {}
    if not data:
        return None, "zero_byte", info
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                info.update(format=probe.format, mode=probe.mode, size=probe.size)
                if probe.size[0] * probe.size[1] > max_pixels:
                    return None, "too_many_pixels", info
                probe.verify()
            image = Image.open(io.BytesIO(data))
            image.load()
            info["orientation"] = image.getexif().get(ExifTags.Base.Orientation, 1)
            image = ImageOps.exif_transpose(image) or image
    except UnidentifiedImageError:
        return None, "unidentified", info
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None, "too_many_pixels", info
    except Exception as error:  # noqa: BLE001 - any decoder failure is a drop reason, never a crash
        text = str(error).lower()
        return None, ("truncated" if "truncat" in text or "broken data stream" in text else "corrupt"), info
    try:
        rgb, reason = _to_rgb(image)
    except Exception:  # noqa: BLE001
        return None, "unsupported_mode", info
    return rgb, reason, info


def load_rgb(item: Item) -> Image.Image | None:
    """The item's image as RGB through the funnel's own decode path, None if it does not decode."""
    return load_rgb_png(item)[0]


def load_rgb_png(item: Item) -> tuple[Image.Image | None, bytes | None]:
    """(RGB image, its PNG bytes or None): the bytes only when the item's own bytes already are an
    upright RGB PNG of exactly that image, so an export can copy them instead of encoding again."""
    data, _ = _read_bytes(item)
    if data is None:
        return None, None
    image, _, info = decode(data)
    stored_as_is = info.get("format") == "PNG" and info.get("mode") == "RGB" and info.get("orientation") == 1
    return image, (data if image is not None and stored_as_is else None)


def _read_bytes(item: Item) -> tuple[bytes | None, str | None]:
    """(bytes, None) or (None, reason): a path may be missing, unreadable or not a path at all (NUL)."""
    try:
        return item.read_bytes(), None
    except FileNotFoundError:
        return None, "missing_file"
    except (OSError, ValueError):
        return None, "unreadable_file"


# --- alt-text ----------------------------------------------------------------------------------


def alt_text_reason(text: str, source: str, config: FunnelConfig) -> str | None:
    """Why this alt-text is unusable, or None."""
    stripped = (text or "").strip()
    if not stripped:
        return None if source in config.alt_text_optional else "empty"
    if len(stripped) < config.min_alt_chars:
        return "too_short"
    if len(stripped) > config.max_alt_chars:
        return "too_long"
    if FILE_NAME.match(stripped):
        return "junk_only"
    words = [w for w in re.findall(r"[a-z]+", stripped.lower()) if len(w) > 1]
    if not words or all(w in JUNK_WORDS for w in words) or re.fullmatch(r"[a-z]{1,4}\d+", stripped.lower()):
        return "junk_only"
    return None


# --- near-duplicate index ----------------------------------------------------------------------


class HashIndex:
    """Kept perceptual hashes with an exact Hamming-radius query (pigeonhole bands)."""

    def __init__(self, bits: int, threshold: int):
        self.threshold = threshold
        edges = np.linspace(0, bits, threshold + 2).astype(int)
        self.bands = list(zip(edges[:-1], edges[1:]))
        self.tables: list[dict[bytes, list[int]]] = [defaultdict(list) for _ in self.bands]
        self.hashes: list[np.ndarray] = []
        self.ids: list[str] = []

    def query(self, bits: np.ndarray) -> tuple[str, int] | None:
        """(id, distance) of the first kept hash within the threshold, else None."""
        candidates = sorted(
            {i for table, (a, b) in zip(self.tables, self.bands) for i in table.get(bits[a:b].tobytes(), ())}
        )
        for index in candidates:
            distance = int(np.count_nonzero(self.hashes[index] != bits))
            if distance <= self.threshold:
                return self.ids[index], distance
        return None

    def add(self, item_id: str, bits: np.ndarray) -> None:
        index = len(self.hashes)
        self.hashes.append(bits)
        self.ids.append(item_id)
        for table, (a, b) in zip(self.tables, self.bands):
            table[bits[a:b].tobytes()].append(index)


# --- the funnel --------------------------------------------------------------------------------


@dataclass
class FunnelResult:
    """What the funnel kept, what each step saw and dropped, and why."""

    kept: list[Item]
    steps: list[StepCount]
    dropped: dict[str, dict]  # id -> {"step", "reason", "detail"}
    converted: dict[str, str]  # id -> original mode
    config: FunnelConfig
    total: int

    def counts(self) -> pd.DataFrame:
        """One row per step: seen, kept, dropped."""
        return pd.DataFrame(
            [{"step": s.step, "seen": s.seen, "kept": s.kept, "dropped": s.dropped} for s in self.steps]
        )

    def reasons(self) -> pd.DataFrame:
        """One row per (step, reason) with the number of items dropped for it."""
        rows = [
            {"step": s.step, "reason": reason, "dropped": n}
            for s in self.steps
            for reason, n in sorted(s.reasons.items())
        ]
        return pd.DataFrame(rows, columns=["step", "reason", "dropped"])

    def summary(self) -> dict:
        """Plain numbers for manifests and data cards."""
        return {
            "input": self.total,
            "kept": len(self.kept),
            "converted_modes": dict(Counter(self.converted.values())),
            "steps": {
                s.step: {"seen": s.seen, "kept": s.kept, "dropped": s.dropped, "reasons": dict(s.reasons)}
                for s in self.steps
            },
            "thresholds": self.config.as_dict(),
        }

    def caught(self, defect: dict) -> tuple[bool, str | None]:
        """Whether one injected defect was handled as expected, and at which step."""
        item_id, kind = defect["id"], defect["kind"]
        if defect.get("expect") == "convert" or kind.startswith("mode_"):
            ok = item_id in self.converted and item_id not in self.dropped
            return ok, ("decode" if ok else self.dropped.get(item_id, {}).get("step"))
        drop = self.dropped.get(item_id)
        if "of" in defect:  # a duplicate pair: either member dropped as a duplicate of the other
            if drop and drop["step"] in ("exact_dup", "near_dup") and drop["detail"] == defect["of"]:
                return True, drop["step"]
            other = self.dropped.get(defect["of"])
            if other and other["step"] in ("exact_dup", "near_dup") and other["detail"] == item_id:
                return True, other["step"]
            return False, drop["step"] if drop else None
        return drop is not None, drop["step"] if drop else None

    def recall_against(self, defects: list[dict]) -> pd.DataFrame:
        """Per injected defect kind: how many were injected, caught, the recall and the catching steps."""
        rows: dict[str, dict] = {}
        for defect in defects:
            row = rows.setdefault(
                defect["kind"],
                {
                    "kind": defect["kind"],
                    "group": defect.get("group", ""),
                    "expect": defect.get("expect", "drop"),
                    "injected": 0,
                    "caught": 0,
                    "steps": Counter(),
                },
            )
            ok, step = self.caught(defect)
            row["injected"] += 1
            row["caught"] += ok
            if ok:
                row["steps"][step] += 1
        frame = pd.DataFrame(list(rows.values()), columns=["kind", "group", "expect", "injected", "caught", "steps"])
        frame["recall"] = frame["caught"] / frame["injected"].clip(lower=1)
        frame["steps"] = frame["steps"].map(lambda c: ", ".join(f"{k}:{v}" for k, v in c.most_common()))
        return frame

    def false_drops(self, defects: list[dict]) -> list[str]:
        """Dropped ids that carry no injected defect (originals dropped in favour of their copy excepted)."""
        expected = {d["id"] for d in defects}
        expected |= {d["of"] for d in defects if "of" in d}
        return sorted(i for i in self.dropped if i not in expected)


def run_funnel(items: Iterable[Item], config: FunnelConfig | None = None) -> FunnelResult:
    """Run every step over `items` (any iterable, read once); never raises on a bad item."""
    config = config or FunnelConfig()
    steps = {name: StepCount(name) for name in STEPS}
    kept: list[Item] = []
    dropped: dict[str, dict] = {}
    converted: dict[str, str] = {}
    seen_ids: set[str] = set()
    digests: dict[str, str] = {}
    index = HashIndex(config.phash_size**2, config.phash_threshold)
    total = 0

    for item in items:
        total += 1

        def drop(step: str, reason: str, detail: str | None = None, item: Item = item, total: int = total) -> None:
            steps[step].reasons[reason] += 1
            dropped[item.id if item.id not in dropped else f"{item.id}#{total}"] = {
                "step": step,
                "reason": reason,
                "detail": detail,
            }

        steps["read"].seen += 1
        if item.problem:
            drop("read", item.problem, item.extra.get("detail"))
            continue
        steps["read"].kept += 1

        steps["decode"].seen += 1
        if item.id in seen_ids:
            drop("decode", "duplicate_id")
            continue
        seen_ids.add(item.id)
        data, reason = _read_bytes(item)
        if data is None:
            drop("decode", reason)
            continue
        image, reason, info = decode(data, config.max_pixels)
        if image is None:
            drop("decode", reason or "corrupt")
            continue
        steps["decode"].kept += 1
        if info.get("mode") and info["mode"] != "RGB":
            converted[item.id] = info["mode"]
        width, height = image.size

        steps["resolution"].seen += 1
        if min(width, height) < config.min_side:
            drop("resolution", "too_small", f"{width}x{height}")
            continue
        if max(width, height) > config.max_side:
            drop("resolution", "too_large", f"{width}x{height}")
            continue
        steps["resolution"].kept += 1

        steps["aspect"].seen += 1
        aspect = max(width, height) / min(width, height)
        if aspect > config.max_aspect:
            drop("aspect", "extreme_aspect", f"{aspect:.1f}")
            continue
        steps["aspect"].kept += 1

        steps["alt_text"].seen += 1
        reason = alt_text_reason(item.text, item.source, config)
        if reason:
            drop("alt_text", reason)
            continue
        steps["alt_text"].kept += 1

        steps["exact_dup"].seen += 1
        digest = hashlib.sha256(data).hexdigest()
        if digest in digests:
            drop("exact_dup", "same_sha256", digests[digest])
            continue
        digests[digest] = item.id
        steps["exact_dup"].kept += 1

        steps["near_dup"].seen += 1
        bits = imagehash.phash(image, hash_size=config.phash_size).hash.flatten()
        match = index.query(bits)
        if match:
            drop("near_dup", "phash", match[0])
            continue
        index.add(item.id, bits)
        steps["near_dup"].kept += 1

        item.extra.update(
            width=width,
            height=height,
            sha256=digest,
            phash=str(imagehash.ImageHash(bits.reshape(config.phash_size, config.phash_size))),
            converted_from=converted.get(item.id),
        )
        kept.append(item)
    return FunnelResult(kept, [steps[name] for name in STEPS], dropped, converted, config, total)


def plot_funnel(result: FunnelResult):
    """Two panels: items remaining after each step, and items dropped per reason (bars labelled)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    counts = result.counts()
    remaining = pd.DataFrame({"step": ["input"] + list(counts["step"]), "items": [result.total] + list(counts["kept"])})
    reasons = result.reasons()
    reasons["label"] = reasons["step"] + ": " + reasons["reason"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 0.45 * max(len(remaining), len(reasons)) + 1.5))
    sns.barplot(remaining, y="step", x="items", ax=left, color="#4c72b0")
    left.set(
        title="items remaining after each step",
        xlabel="items",
        ylabel="funnel step",
        xlim=(0, 1.15 * max(result.total, 1)),
    )
    if len(reasons):  # the label names the step, so the colours need no legend
        sns.barplot(reasons, y="label", x="dropped", hue="step", dodge=False, legend=False, ax=right)
        right.set_xlim(0, 1.15 * reasons["dropped"].max())
    else:
        right.text(0.5, 0.5, "nothing dropped", ha="center", va="center", transform=right.transAxes)
    right.set(title="items dropped, by step: reason", xlabel="items dropped", ylabel="")
    for ax in (left, right):
        for container in ax.containers:
            ax.bar_label(container, fmt="%d", padding=2, fontsize=8)
    figure.tight_layout()
    return figure


def plot_recall(recall: pd.DataFrame):
    """Per injected defect kind (a `recall_against` frame): the share handled as expected, each bar
    labelled caught/injected, coloured by defect group with the legend outside the bars."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.patches import Patch

    groups = list(dict.fromkeys(recall["group"]))
    colours = dict(zip(groups, sns.color_palette(n_colors=max(len(groups), 1))))
    figure, ax = plt.subplots(figsize=(8, 0.3 * len(recall) + 1.4))
    rows = range(len(recall))
    ax.barh(rows, recall["recall"], color=[colours[g] for g in recall["group"]])
    for row, item in zip(rows, recall.itertuples()):
        ax.text(item.recall, row, f" {item.caught}/{item.injected}", va="center", fontsize=8)
    ax.set_yticks(list(rows), list(recall["kind"]))
    ax.invert_yaxis()
    ax.set(
        xlim=(0, 1.15),
        xticks=[0, 0.25, 0.5, 0.75, 1.0],
        xlabel="recall (handled as expected / injected)",
        ylabel="injected defect kind",
        title="recall of injected defects, per kind",
    )
    ax.legend(
        handles=[Patch(color=colours[g], label=g) for g in groups],
        title="defect group",
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        frameon=False,
    )
    figure.tight_layout()
    return figure
