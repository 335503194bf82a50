"""What a training stage costs: tokens, optimiser steps, FLOPs per part and GPU-hours.

The accounting is the dense-transformer one (Kaplan et al. 2020; PaLM's MFU convention): every
weight of a matrix multiply costs one multiply-add, 2 FLOPs, per token it sees; attention adds the
score and value products, which have no weights. Norms, activations, biases, embedding lookups and
softmax are left out: together they are a few percent, and MFU is quoted against the same count.

What trains decides the backward pass, and that is what the planner is for: SAIL-VL's alignment
trains only the projector, yet every token still runs backward through the frozen LLM to reach it.
The parts form a chain, vision -> projector -> language -> loss:

* a part whose weights train: backward = 2 x forward (gradients of weights and of inputs), 3x in all;
* a frozen part between the loss and a trained part: gradients of its inputs only, 2x in all;
* a frozen part upstream of everything that trains: forward only, 1x.

Recomputation under gradient checkpointing is not counted: it is hardware work, not model work,
and MFU (unlike HFU) leaves it out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Set
from dataclasses import dataclass
from functools import cache

import pandas as pd
from torch import nn

from sail.model.build import MODULES, Geometry, build_vlm

PARTS = ("vision", "projector", "language")  # the order data flows in; the loss comes after language
H100_BF16_DENSE = 989e12  # FLOP/s, H100 SXM datasheet, bf16 without sparsity
FLOP_UNITS = {"GFLOP": 1e9, "TFLOP": 1e12, "PFLOP": 1e15, "EFLOP": 1e18, "ZFLOP": 1e21}


@dataclass(frozen=True)
class MatmulWeights:
    """Weights that take part in matrix multiplies, per part, counted on transformers' own model.

    The patch embedding is kept apart from the rest of the vision tower because it runs on the
    patches only, while the encoder also runs on InternViT's class token. `language` includes the
    lm_head, tied or not: the embedding lookup is free but the projection onto the vocabulary is not.
    """

    patch_embedding: int
    vision_encoder: int
    projector: int
    language: int


@cache
def matmul_weights(geometry: Geometry) -> MatmulWeights:
    """Count the weights of every `nn.Linear` and `nn.Conv2d` of each part, on the meta device (free)."""
    model = build_vlm(geometry, meta=True)

    def weights(module: nn.Module, kinds: tuple[type[nn.Module], ...]) -> int:
        return sum(m.weight.numel() for m in module.modules() if isinstance(m, kinds))

    vision = model.get_submodule(MODULES["vision"])
    return MatmulWeights(
        patch_embedding=weights(vision, (nn.Conv2d,)),
        vision_encoder=weights(vision, (nn.Linear,)),
        projector=weights(model.get_submodule(MODULES["projector"]), (nn.Linear,)),
        language=weights(model.get_submodule(MODULES["language"]), (nn.Linear,)) + model.lm_head.weight.numel(),
    )


def matmul_flops(weights: int, tokens: float) -> float:
    """Forward FLOPs of matrix multiplies: 2 x weights x tokens (one multiply-add per weight per token)."""
    return 2 * weights * tokens


def attention_flops(layers: int, width: int, seq_len: float, sequences: float) -> float:
    """Forward FLOPs of attention's two weightless products: 4 x layers x seq_len^2 x width per sequence.

    Per layer and sequence, QK^T and AV are each seq_len x width x seq_len multiply-adds, 2 x seq x
    seq x width FLOPs each, where width = heads x head_dim (= hidden in both towers; grouped-query
    attention shares K and V but not this work). Causal masking is not halved, as in PaLM's MFU.
    """
    return 4 * layers * seq_len**2 * width * sequences


def vision_tokens_per_tile(geometry: Geometry) -> int:
    """Positions InternViT attends over per tile: (tile/patch)^2 patches plus its class token."""
    return (geometry.tile_size // geometry.patch_size) ** 2 + 1


def forward_flops(
    geometry: Geometry, *, samples: int, text_tokens_per_sample: float, tiles_per_sample: float
) -> dict[str, float]:
    """Forward FLOPs per part for `samples` samples of the given average size.

    The vision tower runs on every tile, the projector on the image_seq_length tokens the 0.5
    pixel shuffle leaves (each 4 x vision_hidden wide, which the projector's weights already
    carry), the LLM on text plus image tokens. Each sample is its own attention sequence
    (packing keeps samples apart), at the average length: spread in lengths makes real attention
    a little dearer, since it grows with the square.
    """
    weights = matmul_weights(geometry)
    tiles = samples * tiles_per_sample
    patches = vision_tokens_per_tile(geometry) - 1
    image_tokens = tiles * geometry.image_seq_length
    sample_length = text_tokens_per_sample + tiles_per_sample * geometry.image_seq_length
    return {
        "vision": matmul_flops(weights.patch_embedding, tiles * patches)
        + matmul_flops(weights.vision_encoder, tiles * (patches + 1))
        + attention_flops(geometry.vision_layers, geometry.vision_hidden, patches + 1, tiles),
        "projector": matmul_flops(weights.projector, image_tokens),
        "language": matmul_flops(weights.language, samples * sample_length)
        + attention_flops(geometry.text_layers, geometry.text_hidden, sample_length, samples),
    }


def pass_multipliers(trainable: Set[str]) -> dict[str, int]:
    """Training FLOPs per forward FLOP for each part: 3 trained, 2 frozen below a trained part, 1 otherwise."""
    _check_parts(trainable)
    multipliers: dict[str, int] = {}
    trained_upstream = False
    for part in PARTS:
        if part in trainable:
            multipliers[part] = 3
        else:
            multipliers[part] = 2 if trained_upstream else 1
        trained_upstream = trained_upstream or part in trainable
    return multipliers


def gpu_hours(flops: float, *, peak_flops: float, mfu: float) -> float:
    """Hours one GPU needs at `mfu` of its peak: flops / (peak_flops x mfu) / 3600."""
    _check_throughput(peak_flops, mfu)
    return flops / (peak_flops * mfu) / 3600


def samples_for_tokens(
    tokens: float, text_tokens_per_sample: float, tiles_per_sample: float, image_seq_length: int
) -> int:
    """Samples a token budget buys, counting text and image tokens as the LLM sees them (rounded up).

    The paper budgets pretraining in tokens (131B alignment, 524B advance) and SFT in samples.
    """
    per_sample = text_tokens_per_sample + tiles_per_sample * image_seq_length
    if tokens <= 0 or per_sample <= 0:
        raise ValueError(f"need a positive token budget and tokens per sample, got {tokens} and {per_sample}")
    return math.ceil(tokens / per_sample)


@dataclass(frozen=True)
class StageCompute:
    """One stage's size and cost, with the assumptions its GPU-hours rest on."""

    stage: str
    trainable: frozenset[str]
    samples: int
    global_batch: int
    steps: int
    text_tokens: float
    image_tiles: float
    image_tokens: float
    vision_flops: float
    projector_flops: float
    language_flops: float
    mfu: float
    peak_flops: float
    gpu: str

    @property
    def lm_tokens(self) -> float:
        """Tokens the language model sees: text plus image tokens."""
        return self.text_tokens + self.image_tokens

    @property
    def total_flops(self) -> float:
        return self.vision_flops + self.projector_flops + self.language_flops

    @property
    def gpu_hours(self) -> float:
        return gpu_hours(self.total_flops, peak_flops=self.peak_flops, mfu=self.mfu)


def stage_compute(
    name: str,
    geometry: Geometry,
    *,
    samples: int,
    text_tokens_per_sample: float,
    tiles_per_sample: float,
    global_batch: int,
    trainable: Set[str],
    mfu: float = 0.4,
    peak_flops: float = H100_BF16_DENSE,
    gpu: str = "H100 SXM (bf16 dense)",
) -> StageCompute:
    """Tokens, steps (ceil(samples / global_batch)), training FLOPs per part and their GPU-hours.

    `trainable` names parts ("vision", "projector", "language"). The default MFU of 0.4 is an
    assumption, typical of well-tuned dense training on H100s, not a measurement of this code.
    """
    multipliers = pass_multipliers(trainable)
    _check_throughput(peak_flops, mfu)
    if samples < 1 or global_batch < 1:
        raise ValueError(f"samples and global_batch must be at least 1, got {samples} and {global_batch}")
    if text_tokens_per_sample < 0 or tiles_per_sample < 0:
        raise ValueError(
            f"tokens and tiles per sample cannot be negative, got {text_tokens_per_sample} and {tiles_per_sample}"
        )
    sample_length = text_tokens_per_sample + tiles_per_sample * geometry.image_seq_length
    if not 0 < sample_length <= geometry.max_positions:
        raise ValueError(f"a sample of {sample_length} tokens does not fit (0, {geometry.max_positions}] positions")
    forward = forward_flops(
        geometry, samples=samples, text_tokens_per_sample=text_tokens_per_sample, tiles_per_sample=tiles_per_sample
    )
    tiles = samples * tiles_per_sample
    return StageCompute(
        stage=name,
        trainable=frozenset(trainable),
        samples=samples,
        global_batch=global_batch,
        steps=math.ceil(samples / global_batch),
        text_tokens=samples * text_tokens_per_sample,
        image_tiles=tiles,
        image_tokens=tiles * geometry.image_seq_length,
        vision_flops=multipliers["vision"] * forward["vision"],
        projector_flops=multipliers["projector"] * forward["projector"],
        language_flops=multipliers["language"] * forward["language"],
        mfu=mfu,
        peak_flops=peak_flops,
        gpu=gpu,
    )


def plan_table(rows: Iterable[StageCompute], *, flops_unit: str = "EFLOP") -> pd.DataFrame:
    """One readable row per stage: sizes in millions and billions, FLOPs in `flops_unit`."""
    if flops_unit not in FLOP_UNITS:
        raise ValueError(f"unknown FLOP unit {flops_unit!r}: expected one of {', '.join(FLOP_UNITS)}")
    scale = FLOP_UNITS[flops_unit]
    return pd.DataFrame(
        [
            {
                "stage": row.stage,
                "trains": " + ".join(part for part in PARTS if part in row.trainable),
                "samples (M)": row.samples / 1e6,
                "tokens (B)": row.lm_tokens / 1e9,
                "steps": row.steps,
                f"vision ({flops_unit})": row.vision_flops / scale,
                f"projector ({flops_unit})": row.projector_flops / scale,
                f"language ({flops_unit})": row.language_flops / scale,
                f"total ({flops_unit})": row.total_flops / scale,
                "GPU-hours": row.gpu_hours,
                "assuming": f"{row.gpu}, {row.peak_flops / 1e12:.0f} TFLOP/s peak, MFU {row.mfu:.0%}",
            }
            for row in rows
        ]
    )


def _check_parts(trainable: Set[str]) -> None:
    if isinstance(trainable, str):
        raise ValueError(f"trainable must be a set of part names, not the string {trainable!r}")
    unknown = set(trainable) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown part(s) {sorted(unknown)}: expected a subset of {', '.join(PARTS)}")
    if not trainable:
        raise ValueError(f"a training stage must train at least one of {', '.join(PARTS)}")


def _check_throughput(peak_flops: float, mfu: float) -> None:
    if not 0 < mfu <= 1:
        raise ValueError(f"mfu must be in (0, 1], got {mfu}")
    if peak_flops <= 0:
        raise ValueError(f"peak_flops must be positive, got {peak_flops}")
