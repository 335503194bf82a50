"""The oracle ceiling beside Pretrain-Alignment: the projector fitted straight onto the image slot.

The tiny LM foundation learned to read, at each image token, the sum of the embeddings of the
words that token's patch of image shows (`sail.foundations.slots`). Alignment has to find the map
from the vision encoder's tokens to those vectors through the LM's loss on captions; this control
regresses the projector's outputs onto the vectors themselves, written from the world's ground
truth, which no real dataset has. Scored like any alignment run, it is the ceiling a projector on
these foundations can reach in the same steps: the distance from it to a caption-trained row is
what the captions did not teach. It is a control beside the stage, never the stage: caption
quality must be what drives alignment.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import InternVLForConditionalGeneration, PreTrainedTokenizerBase, ProcessorMixin
from transformers.utils import ModelOutput

from sail.foundations.slots import SlotReader, slot_ids, slot_words
from sail.model.tokenizer import IMAGE_CONTEXT
from sail.train import recipe as recipes
from sail.train import train
from sail.world import render


class SlotRegression(nn.Module):
    """A VLM's vision tower and projector with, as loss, the mean squared distance between each
    projected image token and the slot vector at the same place. It holds the VLM's own `model`,
    so the recipe's module paths (`model.multi_modal_projector`) name the same parameters."""

    def __init__(self, vlm: InternVLForConditionalGeneration):
        super().__init__()
        self.model = vlm.model

    def forward(self, pixel_values: torch.Tensor, targets: torch.Tensor) -> ModelOutput:
        config = self.model.config
        projected = self.model.get_image_features(
            pixel_values=pixel_values,
            vision_feature_layer=config.vision_feature_layer,
            vision_feature_select_strategy=config.vision_feature_select_strategy,
        ).pooler_output
        return ModelOutput(loss=nn.functional.mse_loss(projected.flatten(0, 1), targets))


def slot_target_collate(vlm: InternVLForConditionalGeneration, processor: ProcessorMixin):
    """Records → their rendered images as the processor tiles them, and the slot vector of every
    image token (the LM foundation's own input embeddings, summed per token as it was pretrained
    on). A record whose tiles do not hold as many tokens as its slot has words is an error."""
    tokenizer: PreTrainedTokenizerBase = processor.tokenizer
    reader = SlotReader(vlm, tokenizer.convert_tokens_to_ids(IMAGE_CONTEXT))  # only its `embed` is used
    per_tile = processor.image_seq_length

    def collate(records: list[dict]) -> dict:
        pixels = processor.image_processor([render(r) for r in records], return_tensors="pt")["pixel_values"]
        words = [word for r in records for word in slot_words(r, per_tile)]
        if len(words) != pixels.shape[0] * per_tile:
            raise ValueError(
                f"{pixels.shape[0]} tiles of {per_tile} image tokens, but the records' slots hold {len(words)} words"
            )
        image_tokens = torch.full((1, len(words)), reader.image_token_id)
        with torch.no_grad():
            targets = reader.embed(image_tokens, slot_ids(tokenizer, [words]))[0]
        return {"pixel_values": pixels, "targets": targets, "num_tokens": len(words)}

    return collate


def fit_oracle(
    vlm: InternVLForConditionalGeneration,
    processor: ProcessorMixin,
    records: Sequence[dict],
    *,
    profile: str,
    steps: int,
    runs_dir: str | Path,
    seed: int = 0,
    **overrides,
) -> dict:
    """Fit `vlm`'s projector in place onto the slot vectors of `records` for `steps` steps of the
    alignment recipe (what trains, rate, batch); the run's steps, seconds and first and last loss."""
    stage = recipes.stage(
        "alignment",
        profile,
        data=list(records),
        collate=slot_target_collate(vlm, processor),
        seed=seed,
        max_steps=steps,
        **overrides,
    )
    out = Path(runs_dir) / "oracle"
    shutil.rmtree(out, ignore_errors=True)  # a fresh fit, as every sweep run is
    result = train(SlotRegression(vlm), stage, out, progress=False)
    shutil.rmtree(out)
    return {
        "steps": result.steps,
        "train seconds": round(result.seconds, 1),
        "first loss": result.history[0]["loss"],
        "final loss": result.history[-1]["loss"],
    }
