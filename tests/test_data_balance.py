"""The distribution-balanced reference subset."""

import numpy as np
import pytest

from sail.data import build_pool, read_image_folder, run_funnel
from sail.data.balance import (
    balanced_subset,
    distribution,
    even_quota,
    image_features,
    plot_distribution,
    simple_features,
)


@pytest.fixture(scope="module")
def kept(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    build_pool(root, 160, seed=4, defects=False, mix={"laion_coco": 0.7, "textcaps": 0.15, "sa1b": 0.15})
    return run_funnel(read_image_folder(root)).kept


def test_even_quota():
    assert even_quota([100, 100, 100], 30) == [10, 10, 10]
    assert even_quota([2, 100, 100], 30) == [2, 14, 14]
    assert sum(even_quota([5, 1, 0, 7], 100)) == 13
    assert even_quota([3, 3], 0) == [0, 0]


def test_balanced_subset_evens_out_clusters(kept):
    features = image_features(kept)
    assert features.shape == (len(kept), 64 + 64) and np.isfinite(features).all()
    subset = balanced_subset(kept, features, k=6, n=36, seed=0)
    assert len(subset.indices) == len(set(subset.indices)) == 36
    assert subset.clusters["subset"].sum() == 36 and len(subset.labels) == len(kept)
    pool_spread = subset.clusters["pool"].max() / subset.clusters["pool"].min()
    chosen = subset.clusters["subset"]
    assert chosen.max() - chosen.min() <= max(1, pool_spread)  # never less even than the pool
    assert subset.indices == balanced_subset(kept, features, k=6, n=36, seed=0).indices

    frames = distribution(kept, subset.take(kept))
    assert set(frames) == {"source", "category"}
    for frame in frames.values():
        assert np.isclose(frame.groupby("set")["share"].sum(), 1).all()
    source = frames["source"].set_index(["source", "set"])["share"]
    assert source["laion_coco", "subset"] < source["laion_coco", "pool"]  # the dominant source shrinks


def test_custom_embedding_and_plot(kept):
    import matplotlib

    matplotlib.use("Agg")
    calls = []

    def embed(images):
        calls.append(len(images))
        return np.stack([simple_features(image, bins=2, thumb=4) for image in images])

    features = image_features(kept[:20], embed=embed, batch_size=8)
    assert features.shape == (20, 8 + 16) and calls == [8, 8, 4]
    subset = balanced_subset(kept[:20], features, k=3, n=9, seed=1)
    figure = plot_distribution(distribution(kept[:20], subset.take(kept[:20])))
    assert len(figure.axes) == 2
