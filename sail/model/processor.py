"""The InternVL processor: dynamic tiling with a thumbnail, image-token expansion, chat template."""

from __future__ import annotations

from transformers import GotOcr2ImageProcessorPil, InternVLProcessor, PreTrainedModel, PreTrainedTokenizerBase

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The tiling limit training uses. Training must tile an image as evaluation does, or a model meets
# its test images in a layout it never saw: a world card (2:1) is two tiles plus a thumbnail under
# any limit of 2 or more (every world benchmark's), one squashed tile under a limit of 1. 6 is
# VLMEvalKit's limit for most benchmarks (`sail.eval.benchmarks`).
TRAINING_MAX_TILES = 6


class ImageOnlyInternVLProcessor(InternVLProcessor):
    """`InternVLProcessor` without a video processor.

    Why: without torchvision (no CPU wheel pairs with our torch), the stock constructor fails while
    checking its video-processor slot. Images are all we use, so the slot is passed as None.
    Reload with `ImageOnlyInternVLProcessor.from_pretrained(dir)`.
    """

    def __init__(self, image_processor=None, tokenizer=None, image_seq_length: int = 256, chat_template=None, **kwargs):
        InternVLProcessor.__init__(
            self,
            image_processor,
            tokenizer,
            None,
            image_seq_length=image_seq_length,
            chat_template=chat_template,
            **kwargs,
        )


def image_processor(tile_size: int, max_tiles: int = 1) -> GotOcr2ImageProcessorPil:
    """InternVL's dynamic preprocessing: best aspect-ratio grid of up to `max_tiles` tiles, plus a
    thumbnail when there is more than one tile; ImageNet normalisation."""
    return GotOcr2ImageProcessorPil(
        size={"height": tile_size, "width": tile_size},
        crop_to_patches=max_tiles > 1,
        min_patches=1,
        max_patches=max_tiles,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    )


def make_processor(
    tokenizer: PreTrainedTokenizerBase, tile_size: int, image_seq_length: int, max_tiles: int = 1
) -> ImageOnlyInternVLProcessor:
    return ImageOnlyInternVLProcessor(
        image_processor=image_processor(tile_size, max_tiles),
        tokenizer=tokenizer,
        image_seq_length=image_seq_length,
        chat_template=tokenizer.chat_template,
    )


def processor_for(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, max_tiles: int = TRAINING_MAX_TILES
) -> ImageOnlyInternVLProcessor:
    """The processor a composed VLM trains with: tile size and image tokens per tile come from the
    model's own config, so a real checkpoint's geometry is never taken from a profile's table;
    images are tiled up to `TRAINING_MAX_TILES`, as evaluation tiles them."""
    size = model.config.vision_config.image_size
    tile = size[0] if isinstance(size, (list, tuple)) else size
    return make_processor(tokenizer, tile, model.config.image_seq_length, max_tiles)
