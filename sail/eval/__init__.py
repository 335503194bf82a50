"""Benchmark evaluation: VLMEvalKit-compatible scoring rules and its TSV benchmark format."""

from sail.eval.metrics import (anls, extract_choice, hallusionbench_metrics, normalize_answer,
                               ocrbench_score, pope_metrics, relaxed_accuracy, vqa_accuracy,
                               yes_no)
from sail.eval.tsv import decode_image, encode_image, read_tsv, write_tsv

__all__ = [
    "anls", "decode_image", "encode_image", "extract_choice", "hallusionbench_metrics",
    "normalize_answer", "ocrbench_score", "pope_metrics", "read_tsv", "relaxed_accuracy",
    "vqa_accuracy", "write_tsv", "yes_no",
]
