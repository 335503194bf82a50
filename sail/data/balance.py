"""The distribution-balanced reference subset: embed, cluster, sample evenly across clusters.

The paper teacher-annotates a reference subset whose distribution is balanced rather than
dominated by the pool's most common kind of image.  Here: embed every kept image (on the tiny
profile, `simple_features`: a joint colour histogram plus a downsampled greyscale thumbnail; on
real profiles pass `embed=`, e.g. the vision encoder's pooled output), standardise, cluster
with scikit-learn's KMeans, and draw the same number of images from every cluster (clusters
too small for their share give all they have; the rest is spread over the others).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

from sail.data.curation import load_rgb
from sail.data.readers import Item


def simple_features(image: Image.Image, bins: int = 4, thumb: int = 8) -> np.ndarray:
    """Joint RGB histogram (bins**3, normalised) + a thumb x thumb greyscale thumbnail in [0, 1]."""
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3) // (256 // bins)
    codes = pixels[:, 0] * bins * bins + pixels[:, 1] * bins + pixels[:, 2]
    histogram = np.bincount(codes, minlength=bins**3).astype(np.float32)
    histogram /= max(histogram.sum(), 1.0)
    grey = np.asarray(image.convert("L").resize((thumb, thumb), Image.BILINEAR), np.float32) / 255.0
    return np.concatenate([histogram, grey.ravel()])


def image_features(
    items: Sequence[Item], embed: Callable[[list[Image.Image]], np.ndarray] | None = None, batch_size: int = 64
) -> np.ndarray:
    """One feature row per item.  `embed` maps a batch of RGB images to an (n, d) array.

    An item that no longer decodes gets a row of zeros (run the funnel first to avoid that).
    """
    rows: list[np.ndarray] = []
    for start in range(0, len(items), batch_size):
        batch = [load_rgb(item) for item in items[start : start + batch_size]]
        if embed is None:
            rows += [simple_features(image) if image is not None else None for image in batch]
        else:
            good = [image for image in batch if image is not None]
            vectors = iter(np.asarray(embed(good)) if good else [])
            rows += [next(vectors) if image is not None else None for image in batch]
    width = next((len(r) for r in rows if r is not None), 0)
    return np.stack([r if r is not None else np.zeros(width, np.float32) for r in rows]) if rows else np.zeros((0, 0))


def even_quota(sizes: Sequence[int], n: int) -> list[int]:
    """Split `n` as evenly as cluster sizes allow (water-filling); sums to min(n, sum(sizes))."""
    quota = [0] * len(sizes)
    remaining = min(n, sum(sizes))
    open_ = [i for i, s in enumerate(sizes) if s > 0]
    while remaining > 0 and open_:
        share = max(1, remaining // len(open_))
        for i in sorted(open_, key=lambda i: sizes[i] - quota[i]):
            give = min(share, sizes[i] - quota[i], remaining)
            quota[i] += give
            remaining -= give
        open_ = [i for i in open_ if quota[i] < sizes[i]]
    return quota


@dataclass
class BalancedSubset:
    """The chosen indices (into the pool), every pool item's cluster, and per-cluster counts."""

    indices: list[int]
    labels: np.ndarray
    clusters: pd.DataFrame  # cluster, pool, subset

    def take(self, items: Sequence[Item]) -> list[Item]:
        return [items[i] for i in self.indices]


def balanced_subset(items: Sequence[Item], features: np.ndarray, k: int, n: int, seed: int = 0) -> BalancedSubset:
    """Cluster `features` into `k` groups with KMeans and draw `n` items evenly across them."""
    if len(items) != len(features):
        raise ValueError(f"{len(items)} items but {len(features)} feature rows")
    k = max(1, min(k, len(items)))
    scaled = StandardScaler().fit_transform(np.asarray(features, np.float64))
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(scaled)
    members = [np.flatnonzero(labels == c).tolist() for c in range(k)]
    quota = even_quota([len(m) for m in members], n)
    rng = random.Random(seed)
    chosen = sorted(i for m, q in zip(members, quota) for i in rng.sample(m, q))
    clusters = pd.DataFrame({"cluster": range(k), "pool": [len(m) for m in members], "subset": quota})
    return BalancedSubset(chosen, labels, clusters)


def category_of(item: Item) -> str:
    """A coarse content category: from the world record where there is one, else `extra["category"]`."""
    record = item.extra.get("record")
    if isinstance(record, dict):
        if record.get("kind") == "card":
            return "card: table" if "table" in (record.get("card") or {}) else "card: chart"
        if record.get("texts"):
            return "scene with text"
        return f"scene, {len(record.get('objects', []))} objects"
    return str(item.extra.get("category", "unknown"))


def distribution(
    pool: Sequence[Item], subset: Sequence[Item], by: dict[str, Callable[[Item], str]] | None = None
) -> dict[str, pd.DataFrame]:
    """Per grouping (default: source and category) a frame of value, set (pool/subset), count, share."""
    by = by or {"source": lambda item: item.source, "category": category_of}
    frames = {}
    for name, key in by.items():
        rows = []
        for label, group in (("pool", pool), ("subset", subset)):
            counts = pd.Series([key(item) for item in group], dtype=object).value_counts()
            for value, count in counts.items():
                rows.append({name: value, "set": label, "count": int(count), "share": count / max(len(group), 1)})
        frames[name] = pd.DataFrame(rows, columns=[name, "set", "count", "share"]).sort_values(
            [name, "set"], ignore_index=True
        )
    return frames


def plot_distribution(frames: dict[str, pd.DataFrame]):
    """One panel per grouping: share of the pool vs share of the balanced subset (one legend, outside)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    figure, axes = plt.subplots(1, len(frames), figsize=(6 * len(frames) + 1, 3.8), squeeze=False)
    for index, (ax, (name, frame)) in enumerate(zip(axes.flat, frames.items())):
        sns.barplot(frame, y=name, x="share", hue="set", ax=ax, legend=index == len(frames) - 1)
        ax.set(title=f"{name}: pool vs balanced subset", xlabel="share of the set's images", ylabel=name)
    if axes.flat[-1].get_legend() is not None:
        sns.move_legend(axes.flat[-1], "upper left", bbox_to_anchor=(1.01, 1), title="set", frameon=False)
    figure.tight_layout()
    return figure
