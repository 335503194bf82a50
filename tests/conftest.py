"""Shared tiny fixtures: a world tokenizer, the tiny geometry, a few world records, a curated pool."""

from __future__ import annotations

import io
import os
from pathlib import Path

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


def world_pool(directory: Path, n: int) -> dict[str, dict]:
    """A curated pool of `n` train records exported as notebook 01 exports one; {id: record}."""
    from sail.data import Item
    from sail.data.pipeline import export_items, read_curated
    from sail.world import render, sample_records

    items = []
    for record in sample_records("train", n, seed=3, card_fraction=0.4):
        buffer = io.BytesIO()
        render(record).save(buffer, format="PNG")
        items.append(
            Item(id=record["id"], text="alt", source="laion_coco", image=buffer.getvalue(), extra={"record": record})
        )
    export_items(items, directory)
    return {item.id: item.extra["record"] for item in read_curated(directory)}


def save_chatml_tokenizer(directory: Path, records) -> Path:
    """A ChatML byte-level BPE without InternVL's image tokens, saved as transformers saves Qwen2.5's:
    the tokenizer a real language checkpoint brings."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from sail.foundations.language import world_text
    from sail.model.tokenizer import END_OF_TEXT, TURN_END, TURN_START

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=[END_OF_TEXT, TURN_START, TURN_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(world_text(records, seed=0), trainer)
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=TURN_END).save_pretrained(directory)
    return directory
