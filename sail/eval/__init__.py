"""Benchmark evaluation: VLMEvalKit-compatible scoring rules and its TSV benchmark format."""

from sail.eval.metrics import (
    anls,
    extract_choice,
    hallusionbench_metrics,
    normalize_answer,
    ocrbench_score,
    pope_metrics,
    relaxed_accuracy,
    vqa_accuracy,
    yes_no,
)
from sail.eval.tsv import decode_image, encode_image, read_tsv, write_tsv

__all__ = [
    "anls",
    "decode_image",
    "encode_image",
    "extract_choice",
    "hallusionbench_metrics",
    "normalize_answer",
    "ocrbench_score",
    "pope_metrics",
    "read_tsv",
    "relaxed_accuracy",
    "vqa_accuracy",
    "write_tsv",
    "yes_no",
]

# World benchmarks (light: no torch).  The generation adapter and the report load torch and
# transformers, so they are imported from their modules: sail.eval.generation, sail.eval.report.
from sail.eval.benchmarks import (
    WORLD_BENCHMARKS,
    BenchmarkSpec,
    benchmark_spec,  # noqa: E402
    build_benchmark,
    build_prompt,
    check_no_train_overlap,
    score_benchmark,
)

__all__ += [
    "BenchmarkSpec",
    "WORLD_BENCHMARKS",
    "benchmark_spec",
    "build_benchmark",
    "build_prompt",
    "check_no_train_overlap",
    "score_benchmark",
]
