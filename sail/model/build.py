"""InternVL models for the three profiles: InternViT -> pixel shuffle 0.5 -> MLP -> Qwen2.

Everything is transformers' own `InternVLForConditionalGeneration`; this module only chooses the
geometry, composes a VLM from a vision encoder and a language model saved on disk, and counts
parameters. The tiny foundations are saved in exactly the layout real checkpoints have, so the
same `compose_vlm` serves every profile.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    InternVLConfig,
    InternVLForConditionalGeneration,
    InternVLVisionConfig,
    InternVLVisionModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Qwen2Config,
)

from sail.model.tokenizer import IMAGE_CONTEXT


@dataclass(frozen=True)
class Geometry:
    """The shape of a VLM: what a profile changes, nothing else."""

    tile_size: int
    patch_size: int
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    vision_intermediate: int
    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_intermediate: int
    vocab_size: int
    max_positions: int
    tie_word_embeddings: bool
    norm_type: str = "layer_norm"
    layer_scale_init: float = 0.1  # InternViT's; a from-scratch tiny ViT learns faster at 1.0

    @property
    def image_seq_length(self) -> int:
        """Tokens per tile after the 0.5 pixel shuffle: (tile/patch)^2 / 4."""
        side = self.tile_size // self.patch_size
        if self.tile_size % self.patch_size or side % 2:
            raise ValueError(
                f"tile {self.tile_size} / patch {self.patch_size} must be an even integer for pixel shuffle 0.5"
            )
        return side * side // 4


GEOMETRIES: dict[str, Geometry] = {
    # ~2M parameters: 96 px tiles, 8x8 patches -> 16 image tokens per tile.
    "tiny": Geometry(
        tile_size=96,
        patch_size=12,
        vision_hidden=128,
        vision_layers=4,
        vision_heads=4,
        vision_intermediate=256,
        text_hidden=128,
        text_layers=4,
        text_heads=4,
        text_kv_heads=2,
        text_intermediate=384,
        vocab_size=1024,
        max_positions=512,
        tie_word_embeddings=True,
        layer_scale_init=1.0,
    ),
    # InternViT-300M-448px + Qwen2.5-0.5B.
    "small": Geometry(
        tile_size=448,
        patch_size=14,
        vision_hidden=1024,
        vision_layers=24,
        vision_heads=16,
        vision_intermediate=4096,
        text_hidden=896,
        text_layers=24,
        text_heads=14,
        text_kv_heads=2,
        text_intermediate=4864,
        vocab_size=151674,
        max_positions=32768,
        tie_word_embeddings=True,
    ),
    # InternViT-300M-448px + Qwen2.5-1.5B: the SAIL-VL-2B geometry.
    "full": Geometry(
        tile_size=448,
        patch_size=14,
        vision_hidden=1024,
        vision_layers=24,
        vision_heads=16,
        vision_intermediate=4096,
        text_hidden=1536,
        text_layers=28,
        text_heads=12,
        text_kv_heads=2,
        text_intermediate=8960,
        vocab_size=151674,
        max_positions=32768,
        tie_word_embeddings=True,
    ),
}


def vision_config(geometry: Geometry) -> InternVLVisionConfig:
    return InternVLVisionConfig(
        hidden_size=geometry.vision_hidden,
        num_hidden_layers=geometry.vision_layers,
        num_attention_heads=geometry.vision_heads,
        intermediate_size=geometry.vision_intermediate,
        image_size=geometry.tile_size,
        patch_size=geometry.patch_size,
        norm_type=geometry.norm_type,
        use_mean_pooling=False,
        layer_scale_init_value=geometry.layer_scale_init,
    )


def text_config(geometry: Geometry, tokenizer: PreTrainedTokenizerBase | None = None) -> Qwen2Config:
    vocab = len(tokenizer) if tokenizer is not None else geometry.vocab_size
    return Qwen2Config(
        vocab_size=vocab,
        hidden_size=geometry.text_hidden,
        intermediate_size=geometry.text_intermediate,
        num_hidden_layers=geometry.text_layers,
        num_attention_heads=geometry.text_heads,
        num_key_value_heads=geometry.text_kv_heads,
        max_position_embeddings=geometry.max_positions,
        tie_word_embeddings=geometry.tie_word_embeddings,
        eos_token_id=tokenizer.eos_token_id if tokenizer is not None else None,
        pad_token_id=tokenizer.pad_token_id if tokenizer is not None else None,
    )


def vlm_config(
    vision: InternVLVisionConfig, text: Qwen2Config, tokenizer: PreTrainedTokenizerBase | None
) -> InternVLConfig:
    """Compose the InternVL config; the image token id must be the tokenizer's `<IMG_CONTEXT>`."""
    tile, patch = vision.image_size[0], vision.patch_size[0]
    side = tile // patch
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_CONTEXT) if tokenizer is not None else 151667
    return InternVLConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        image_token_id=image_token_id,
        image_seq_length=side * side // 4,
        downsample_ratio=0.5,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        tie_word_embeddings=text.tie_word_embeddings,
    )


def build_vlm(
    geometry: Geometry, tokenizer: PreTrainedTokenizerBase | None = None, *, meta: bool = False
) -> InternVLForConditionalGeneration:
    """A randomly initialised VLM; on the meta device it costs no memory (for counting)."""
    config = vlm_config(vision_config(geometry), text_config(geometry, tokenizer), tokenizer)
    if meta:
        with torch.device("meta"):
            return InternVLForConditionalGeneration(config)
    return InternVLForConditionalGeneration(config)


def compose_vlm(
    vision_dir: str | Path, language_dir: str | Path, tokenizer: PreTrainedTokenizerBase
) -> InternVLForConditionalGeneration:
    """Join a pretrained InternViT and a pretrained causal LM (both HF format, local paths).

    `vision_dir` holds the InternViT alone or a whole InternVL (`load_vision_tower`). The projector
    starts random, as in SAIL-VL's alignment stage. The LM's embeddings are resized
    to the tokenizer when it gained the image tokens.
    """
    vision = load_vision_tower(vision_dir)
    language = AutoModelForCausalLM.from_pretrained(language_dir)
    if language.get_input_embeddings().num_embeddings < len(tokenizer):
        language.resize_token_embeddings(len(tokenizer))
    model = InternVLForConditionalGeneration(vlm_config(vision.config, language.config, tokenizer))
    missing = model.model.vision_tower.load_state_dict(vision.state_dict())
    _require_complete(missing, vision_dir)
    missing = model.model.language_model.load_state_dict(language.model.state_dict())
    _require_complete(missing, language_dir)
    model.lm_head.load_state_dict(language.lm_head.state_dict())
    if model.config.tie_word_embeddings:
        model.tie_weights()
    return model


def load_vision_tower(directory: str | Path) -> InternVLVisionModel:
    """The vision encoder of a vision-only checkpoint (`InternVLVisionModel`, e.g. an InternViT
    converted by `sail.model.convert`), or of a whole InternVL in transformers' layout, taken as it
    is: InternVL3-2B-hf is InternViT-300M-448px-V2.5 + Qwen2.5-1.5B, SAIL-VL-2B's geometry."""
    if AutoConfig.from_pretrained(directory).model_type != "internvl":
        return InternVLVisionModel.from_pretrained(directory)
    return InternVLForConditionalGeneration.from_pretrained(directory).model.vision_tower


def _require_complete(result, source: str | Path) -> None:
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"checkpoint {source} does not fit: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )


MODULES = {
    "vision": "model.vision_tower",
    "projector": "model.multi_modal_projector",
    "language": "model.language_model",
}


def parameter_counts(model: PreTrainedModel) -> dict[str, int]:
    """Parameters per InternVL module (the tied lm_head counts once, inside `language`)."""
    counts = {name: sum(p.numel() for p in model.get_submodule(path).parameters()) for name, path in MODULES.items()}
    counted = {id(p) for name, path in MODULES.items() for p in model.get_submodule(path).parameters()}
    counts["lm_head (untied)"] = sum(p.numel() for p in model.lm_head.parameters() if id(p) not in counted)
    counts["total"] = sum(counts.values())
    return counts


def geometry_table(geometry: Geometry) -> dict[str, object]:
    """The geometry as a flat dict, plus the derived image tokens per tile."""
    return {**asdict(geometry), "image_seq_length": geometry.image_seq_length}
