"""The VLM: transformers' InternVL with our tokenizer, processor, chat template and label masking."""

from sail.model.build import (
    GEOMETRIES,
    Geometry,
    build_vlm,
    compose_vlm,
    geometry_table,
    parameter_counts,
    text_config,
    vision_config,
)
from sail.model.chat import (
    IGNORE_INDEX,
    Generation,
    TemplateMismatchError,
    assistant_labels,
    conversation,
    encode_conversations,
    generate,
    generate_answers,
    generations,
)
from sail.model.processor import (
    TRAINING_MAX_TILES,
    ImageOnlyInternVLProcessor,
    image_processor,
    make_processor,
    processor_for,
)
from sail.model.tokenizer import CHAT_TEMPLATE, load_language_tokenizer, train_world_tokenizer

__all__ = [
    "CHAT_TEMPLATE",
    "GEOMETRIES",
    "IGNORE_INDEX",
    "Generation",
    "Geometry",
    "ImageOnlyInternVLProcessor",
    "TemplateMismatchError",
    "load_language_tokenizer",
    "assistant_labels",
    "build_vlm",
    "compose_vlm",
    "conversation",
    "encode_conversations",
    "generate",
    "generate_answers",
    "generations",
    "geometry_table",
    "image_processor",
    "make_processor",
    "TRAINING_MAX_TILES",
    "processor_for",
    "parameter_counts",
    "text_config",
    "train_world_tokenizer",
    "vision_config",
]
