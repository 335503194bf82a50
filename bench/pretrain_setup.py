"""What the pretraining benches share: notebook 04's main mixture and the tiny VLM it trains.

Not a bench itself: `bench/packing.py` and `bench/trainer_overhead.py` import it (a script's own
folder is on `sys.path`). Each falls back to what it can make when an artifact is missing, and says
which it used, since the length of the samples decides what packing saves.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from transformers import AutoTokenizer

from sail.caption import CAPTION_PROMPT
from sail.data.mixture import Sample, read_mixture, write_meta
from sail.foundations import load_foundations
from sail.foundations.language import world_text
from sail.model import GEOMETRIES, build_vlm, compose_vlm, make_processor, train_world_tokenizer
from sail.pretrain.data import write_world_sources
from sail.world import render, sample_records, teacher_caption
from sail.world.dataset import caption_rng
from sail.world.ocr import ocr_pairs

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "outputs/tiny/artifacts"
MIXTURE = ARTIFACTS / "pretrain/sail-caption-mini+ocr-hq.meta.json"
MAIN_SOURCES = ("sail-caption-mini", "ocr-hq")


def pretrain_samples(mixture: Path, work_dir: Path, n: int, seed: int = 0) -> tuple[list[Sample], str]:
    """The first `n` samples of notebook 04's main mixture (SAIL-Caption-mini + OCR-HQ), and where they came from.

    In order of preference: its meta file; the same mixture written afresh into `work_dir` from the
    curated pool and SAIL-Caption-mini (notebook 04's own cell); world records rendered into
    `work_dir` with the teacher's captions and OCR-HQ conversations.
    """
    if mixture.is_file():
        return read_mixture(mixture, seed=seed)[:n], f"mixture {mixture.relative_to(ROOT)}"
    pool, captions = ARTIFACTS / "curation/pool", ARTIFACTS / "sail-caption-mini/dataset"
    if (pool / "annotations.jsonl").is_file() and (captions / "dataset_info.json").is_file():
        entries = write_world_sources(pool, captions, work_dir / "sources", seed=seed, lq_error_rate=0.5)
        meta = write_meta(work_dir / mixture.name, {name: {**entries[name], "repeat_time": 1} for name in MAIN_SOURCES})
        return read_mixture(meta, seed=seed)[:n], f"{' + '.join(MAIN_SOURCES)} rewritten from the curated pool"
    return world_samples(n, work_dir / "images", seed), "rendered world records (teacher captions + OCR-HQ)"


def world_samples(n: int, image_dir: Path, seed: int = 0) -> list[Sample]:
    """`n` samples over train records: each record's teacher caption, and its OCR conversation if it shows text."""
    image_dir.mkdir(parents=True, exist_ok=True)
    samples = []
    for record in sample_records("train", n, seed):
        path = image_dir / f"{record['id']}.png"
        render(record).save(path)
        caption = teacher_caption(record, caption_rng(seed, record["id"], "teacher"))
        samples.append(Sample(record["id"], "teacher", str(path), (("user", CAPTION_PROMPT), ("assistant", caption))))
        if pairs := ocr_pairs(record):
            turns = tuple(m for prompt, answer in pairs for m in (("user", prompt), ("assistant", answer)))
            samples.append(Sample(record["id"], "ocr-hq", str(path), turns))
    random.Random(seed).shuffle(samples)
    return samples[:n]


def tiny_vlm(profile: str = "tiny", seed: int = 0):
    """(model, processor, what it is): the foundations composed as notebook 04 does, else a random VLM.

    Seeded: the projector (and without foundations everything) starts random.
    """
    geometry = GEOMETRIES[profile]
    torch.manual_seed(seed)
    foundations = load_foundations(ARTIFACTS / "foundations")
    if foundations is not None:
        tokenizer = AutoTokenizer.from_pretrained(foundations.tokenizer_dir)
        model = compose_vlm(foundations.vision_dir, foundations.language_dir, tokenizer)
        what = "tiny foundations (compose_vlm)"
    else:
        records = sample_records("train", 2000)
        tokenizer = train_world_tokenizer(world_text(records, seed=0), vocab_size=geometry.vocab_size)
        model = build_vlm(geometry, tokenizer)
        what = "random tiny VLM (no foundations)"
    return model, make_processor(tokenizer, geometry.tile_size, geometry.image_seq_length), what
