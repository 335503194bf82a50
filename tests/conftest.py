"""Shared tiny fixtures: a world tokenizer, the tiny geometry, a few world records."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def records():
    from sail.world import sample_records

    return sample_records("train", 64, seed=0)


@pytest.fixture(scope="session")
def tokenizer(records):
    from sail.foundations.language import world_text
    from sail.model import train_world_tokenizer

    return train_world_tokenizer(world_text(records, seed=0), vocab_size=400)


@pytest.fixture(scope="session")
def geometry():
    from sail.model import GEOMETRIES

    return GEOMETRIES["tiny"]


@pytest.fixture
def processor(tokenizer, geometry):
    from sail.model import make_processor

    return make_processor(tokenizer, geometry.tile_size, geometry.image_seq_length)
