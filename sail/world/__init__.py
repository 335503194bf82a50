"""The SAIL world: procedural images with exact ground-truth records, caption sources of known
quality, and record-based caption scoring.  See `sail.world.scene` for the record schema."""

from sail.world.captions import CAPTION_SOURCES, alt_text, teacher_caption, weak_caption
from sail.world.dataset import world_dataset
from sail.world.render import render
from sail.world.scene import attribute_targets, make_record
from sail.world.score import parse_caption, score_caption, score_captions
from sail.world.splits import content_signature, sample_records, split_of
from sail.world.vocab import CELLS, COLOURS, SHAPES, SIZES

__all__ = [
    "CAPTION_SOURCES",
    "CELLS",
    "COLOURS",
    "SHAPES",
    "SIZES",
    "alt_text",
    "attribute_targets",
    "content_signature",
    "make_record",
    "parse_caption",
    "render",
    "sample_records",
    "score_caption",
    "score_captions",
    "split_of",
    "teacher_caption",
    "weak_caption",
    "world_dataset",
]

from sail.world.questions import (
    GROUPS,
    general_questions,
    hallusion_set,  # noqa: E402
    math_questions,
    ocr_questions,
    pope_questions,
    pope_statistics,
)

__all__ += [
    "GROUPS",
    "general_questions",
    "hallusion_set",
    "math_questions",
    "ocr_questions",
    "pope_questions",
    "pope_statistics",
]
