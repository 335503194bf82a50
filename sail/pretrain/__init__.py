"""Pretraining in miniature: world sources as InternVL jsonl, the two stages' collate, and the
held-out scores (Caption: record-based pair F1; OCR: ANLS of transcriptions; Overall: their mean)."""

from sail.pretrain.data import CAPTION_SOURCE_NAMES, OCR_SOURCE_NAMES, sample_collate, write_world_sources
from sail.pretrain.scores import evaluate, fit_log_linear, test_records

__all__ = [
    "CAPTION_SOURCE_NAMES",
    "OCR_SOURCE_NAMES",
    "evaluate",
    "fit_log_linear",
    "sample_collate",
    "test_records",
    "write_world_sources",
]
