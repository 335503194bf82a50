"""The compute planner: FLOP formulas by hand, the backward rule, steps, GPU-hours, refusals."""

from __future__ import annotations

import pytest

from sail.model import GEOMETRIES, build_vlm, parameter_counts
from sail.model.build import Geometry
from sail.train.compute import (
    MatmulWeights,
    attention_flops,
    forward_flops,
    gpu_hours,
    matmul_flops,
    matmul_weights,
    pass_multipliers,
    plan_table,
    samples_for_tokens,
    stage_compute,
)

# Small enough to count by hand: 4 px tiles of 2 px patches -> 4 patches (+1 class token), 1 image
# token per tile after the pixel shuffle; one layer in each tower.
TOY = Geometry(
    tile_size=4,
    patch_size=2,
    vision_hidden=2,
    vision_layers=1,
    vision_heads=1,
    vision_intermediate=4,
    text_hidden=4,
    text_layers=1,
    text_heads=2,
    text_kv_heads=1,
    text_intermediate=8,
    vocab_size=10,
    max_positions=16,
    tie_word_embeddings=True,
)
# patch conv 3 channels x 2 x 2 -> 2: 24; encoder q, k, v, o 4 x (2 x 2) + fc1 2 x 4 + fc2 4 x 2: 32;
# projector (4 x 2 -> 4) 32 + (4 -> 4) 16: 48; decoder q 16 + k 8 + v 8 (one KV head of width 2)
# + o 16 + gate, up, down 3 x 32: 144, plus lm_head 4 x 10: 184.
TOY_WEIGHTS = MatmulWeights(patch_embedding=24, vision_encoder=32, projector=48, language=184)
# One sample, one tile, 3 text tokens:
# vision: conv 2 x 24 x 4 patches = 192, encoder 2 x 32 x 5 tokens = 320, attention 4 x 1 x 5^2 x 2 = 200;
# projector: 2 x 48 x 1 image token = 96;
# language: 4 tokens, 2 x 184 x 4 = 1472, attention 4 x 1 x 4^2 x 4 = 256.
TOY_FORWARD = {"vision": 712, "projector": 96, "language": 1728}
TOY_SAMPLE = dict(text_tokens_per_sample=3, tiles_per_sample=1)


def toy_stage(trainable: set[str], **overrides):
    settings = dict(samples=1, global_batch=1, trainable=trainable, **TOY_SAMPLE) | overrides
    return stage_compute("toy", TOY, **settings)


def test_formula_functions_by_hand():
    assert matmul_flops(weights=10, tokens=3) == 60
    # 2 layers, width 8, 5 positions, 3 sequences: 4 x 2 x 25 x 8 x 3
    assert attention_flops(layers=2, width=8, seq_len=5, sequences=3) == 4800


def test_toy_weights_and_forward_flops_by_hand():
    assert matmul_weights(TOY) == TOY_WEIGHTS
    assert forward_flops(TOY, samples=1, **TOY_SAMPLE) == TOY_FORWARD
    assert forward_flops(TOY, samples=2, **TOY_SAMPLE) == {part: 2 * f for part, f in TOY_FORWARD.items()}


def test_tiny_matmul_weights_are_transformers_parameters_less_the_elementwise_ones(geometry):
    weights = matmul_weights(geometry)
    v, t, inter = geometry.vision_hidden, geometry.text_hidden, geometry.text_intermediate
    kv = geometry.text_kv_heads * t // geometry.text_heads
    assert weights.patch_embedding == 3 * geometry.patch_size**2 * v == 55_296
    assert weights.vision_encoder == geometry.vision_layers * (4 * v * v + 2 * v * geometry.vision_intermediate)
    assert weights.projector == 4 * v * t + t * t == 81_920
    decoder = geometry.text_layers * (2 * t * t + 2 * t * kv + 3 * t * inter)
    lm_head = geometry.vocab_size * t
    assert weights.language == decoder + lm_head == 917_504

    counts = parameter_counts(build_vlm(geometry, meta=True))
    positions = (geometry.tile_size // geometry.patch_size) ** 2 + 1
    vision_rest = (
        v  # conv bias
        + v  # class token
        + positions * v  # position embeddings
        + geometry.vision_layers * (v + geometry.vision_intermediate + v + 4 * v + 2 * v)  # biases, norms, scales
        + 2 * v  # final norm
    )
    assert counts["vision"] == weights.patch_embedding + weights.vision_encoder + vision_rest
    assert counts["projector"] == weights.projector + 2 * 4 * v + 2 * t  # input norm, two biases
    # Tied: the lm_head is the embedding table, counted once by transformers but a matmul for us.
    language_rest = geometry.text_layers * (t + 2 * kv + 2 * t) + t  # q/k/v biases, two norms; final norm
    assert counts["language"] == decoder + lm_head + language_rest


@pytest.mark.parametrize(
    ("trainable", "expected"),
    [
        ({"projector"}, {"vision": 1, "projector": 3, "language": 2}),  # alignment
        ({"vision", "projector"}, {"vision": 3, "projector": 3, "language": 2}),  # advance
        ({"vision", "projector", "language"}, {"vision": 3, "projector": 3, "language": 3}),  # SFT
        ({"vision"}, {"vision": 3, "projector": 2, "language": 2}),
        ({"language"}, {"vision": 1, "projector": 1, "language": 3}),
    ],
)
def test_backward_rule(trainable, expected):
    assert pass_multipliers(trainable) == expected
    stage = toy_stage(trainable)
    flops = {"vision": stage.vision_flops, "projector": stage.projector_flops, "language": stage.language_flops}
    assert flops == {part: expected[part] * TOY_FORWARD[part] for part in TOY_FORWARD}


def test_alignment_and_advance_on_the_full_geometry():
    full = GEOMETRIES["full"]
    sample = dict(samples=1000, text_tokens_per_sample=100, tiles_per_sample=1, global_batch=512)
    forward = forward_flops(full, samples=1000, text_tokens_per_sample=100, tiles_per_sample=1)
    alignment = stage_compute("alignment", full, trainable={"projector"}, **sample)
    advance = stage_compute("advance", full, trainable={"vision", "projector"}, **sample)
    assert alignment.vision_flops == forward["vision"]
    assert advance.vision_flops == 3 * forward["vision"]
    assert alignment.language_flops == advance.language_flops == 2 * forward["language"]


def test_sft_on_the_full_geometry_is_six_n_d_plus_attention():
    """Everything trains, so the LLM costs the textbook 6 x weights x tokens plus 3x its attention."""
    full = GEOMETRIES["full"]
    stage = stage_compute(
        "sft",
        full,
        samples=1000,
        text_tokens_per_sample=300,
        tiles_per_sample=3,
        global_batch=512,
        trainable={"vision", "projector", "language"},
    )
    six_n_d = 6 * matmul_weights(full).language * stage.lm_tokens
    sample_length = 300 + 3 * 256
    attention = 3 * 4 * full.text_layers * sample_length**2 * full.text_hidden * 1000
    assert stage.language_flops == six_n_d + attention
    assert 0.05 < attention / six_n_d < 0.06  # 4 x 28 x 1068 x 1536 / (2 x 1.78e9) per token


def test_tokens_and_steps():
    stage = toy_stage({"projector"}, samples=1025, global_batch=512, text_tokens_per_sample=3, tiles_per_sample=2)
    assert stage.steps == 3  # ceil(1025 / 512)
    assert stage.image_tiles == 2050
    assert stage.image_tokens == 2050 * TOY.image_seq_length == 2050
    assert stage.text_tokens == 3075
    assert stage.lm_tokens == 5125
    assert toy_stage({"projector"}, samples=1024, global_batch=512).steps == 2
    assert toy_stage({"projector"}, samples=1, global_batch=512).steps == 1


def test_gpu_hours():
    assert gpu_hours(3.6e15, peak_flops=1e12, mfu=0.5) == pytest.approx(2.0)  # 3.6e15 / 5e11 / 3600
    everything = {"vision", "projector", "language"}
    per_sample = 3 * sum(TOY_FORWARD.values())  # 7608 FLOPs: all parts train
    stage = toy_stage(everything, samples=1800, peak_flops=per_sample, mfu=0.5)
    assert stage.total_flops == 1800 * per_sample
    assert stage.gpu_hours == pytest.approx(1.0)  # 1800 x 7608 / (7608 x 0.5) / 3600


def test_samples_for_tokens():
    assert samples_for_tokens(712, text_tokens_per_sample=100, tiles_per_sample=1, image_seq_length=256) == 2
    assert samples_for_tokens(713, text_tokens_per_sample=100, tiles_per_sample=1, image_seq_length=256) == 3
    with pytest.raises(ValueError, match="positive token budget"):
        samples_for_tokens(1000, text_tokens_per_sample=0, tiles_per_sample=0, image_seq_length=256)


def test_plan_table():
    rows = [toy_stage({"projector"}), toy_stage({"vision", "projector", "language"})]
    table = plan_table(rows, flops_unit="GFLOP")
    assert list(table["stage"]) == ["toy", "toy"]
    assert list(table["trains"]) == ["projector", "vision + projector + language"]
    assert list(table["total (GFLOP)"]) == pytest.approx([row.total_flops / 1e9 for row in rows])
    assert table["assuming"][0] == "H100 SXM (bf16 dense), 989 TFLOP/s peak, MFU 40%"
    with pytest.raises(ValueError, match="unknown FLOP unit"):
        plan_table(rows, flops_unit="flops")


@pytest.mark.parametrize("mfu", [0, -0.1, 1.01])
def test_refuses_mfu_outside_zero_one(mfu):
    with pytest.raises(ValueError, match=r"mfu must be in \(0, 1\]"):
        toy_stage({"projector"}, mfu=mfu)
    with pytest.raises(ValueError, match=r"mfu must be in \(0, 1\]"):
        gpu_hours(1e18, peak_flops=1e15, mfu=mfu)


@pytest.mark.parametrize(
    ("trainable", "message"),
    [
        ({"projector", "llm"}, r"unknown part\(s\) \['llm'\]"),
        ("vision", "not the string 'vision'"),
        (set(), "must train at least one"),
    ],
)
def test_refuses_bad_trainable(trainable, message):
    with pytest.raises(ValueError, match=message):
        toy_stage(trainable)


def test_refuses_bad_sizes():
    with pytest.raises(ValueError, match="must be at least 1"):
        toy_stage({"projector"}, global_batch=0)
    with pytest.raises(ValueError, match="cannot be negative"):
        toy_stage({"projector"}, tiles_per_sample=-1)
    with pytest.raises(ValueError, match="does not fit"):  # 20 text tokens + 1 image token > 16 positions
        toy_stage({"projector"}, text_tokens_per_sample=20)
