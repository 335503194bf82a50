"""Convert an original InternViT checkpoint (OpenGVLab's remote-code layout) to transformers' `InternVLVisionModel`.

InternViT-300M-448px(-V2_5) is published only in the remote-code layout, while this project runs transformers'
native InternVL without `trust_remote_code`. The conversion renames keys, splits the fused qkv projection and fails
loudly on any key it cannot place, so a silently half-initialised encoder can never reach training.

    python -m sail.model.convert SRC_DIR DST_DIR
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import InternVLVisionConfig, InternVLVisionModel

# InternVisionConfig's own defaults: a key absent from an original config.json means the remote code used these.
_ORIGINAL_DEFAULTS = {
    "num_channels": 3,
    "patch_size": 14,
    "image_size": 224,
    "qkv_bias": False,
    "hidden_size": 3200,
    "num_attention_heads": 25,
    "intermediate_size": 12800,
    "qk_normalization": True,
    "num_hidden_layers": 48,
    "hidden_act": "gelu",
    "norm_type": "rms_norm",
    "layer_norm_eps": 1e-6,
    "dropout": 0.0,
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "initializer_factor": 0.1,
}

# Fields both configs spell the same way.
_SAME_NAME = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "image_size",
    "patch_size",
    "num_channels",
    "hidden_act",
    "norm_type",
    "layer_norm_eps",
    "initializer_range",
    "attention_dropout",
)
_TOP_LEVEL = {
    "embeddings.class_embedding": "embeddings.cls_token",
    "embeddings.position_embedding": "embeddings.position_embeddings",
    "embeddings.patch_embedding.weight": "embeddings.patch_embeddings.projection.weight",
    "embeddings.patch_embedding.bias": "embeddings.patch_embeddings.projection.bias",
    "norm.weight": "layernorm.weight",
    "norm.bias": "layernorm.bias",
}
_LAYER_MODULES = {
    "attn.proj": "attention.projection_layer",
    "attn.q_norm": "attention.q_norm",
    "attn.k_norm": "attention.k_norm",
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_LAYER_SCALES = {"ls1": "lambda_1", "ls2": "lambda_2"}
_LAYER_KEY = re.compile(r"encoder\.layers\.(\d+)\.(.+)")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


def vision_config_from_original(original: dict) -> InternVLVisionConfig:
    """The native config equivalent to an original InternViT config.json, so the two forwards agree."""
    if original.get("model_type", "intern_vit_6b") != "intern_vit_6b":
        raise ValueError(f"not an InternViT config: model_type={original['model_type']!r}")
    if original.get("use_moe"):
        raise ValueError("mixture-of-experts InternViT has no InternVLVisionModel equivalent")
    cfg = {**_ORIGINAL_DEFAULTS, **original}
    return InternVLVisionConfig(
        **{name: cfg[name] for name in _SAME_NAME},
        attention_bias=cfg["qkv_bias"],
        use_qk_norm=cfg["qk_normalization"],
        layer_scale_init_value=cfg["initializer_factor"],
        projection_dropout=cfg["dropout"],  # the original applies `dropout` right after attn.proj
        hidden_dropout_prob=0.0,
        use_absolute_position_embeddings=True,
        use_mask_token=False,
        # The original encoder ends without a final norm; only a checkpoint that has one may turn it on.
        use_mean_pooling=cfg.get("use_mean_pooling", True),
    )


def _convert_key(key: str, tensor: torch.Tensor) -> dict[str, torch.Tensor] | None:
    """The native entries for one original entry; None when the key is not part of InternViT."""
    if key in _TOP_LEVEL:
        return {_TOP_LEVEL[key]: tensor}
    match = _LAYER_KEY.fullmatch(key)
    if match is None:
        return None
    prefix, rest = f"encoder.layer.{match[1]}.", match[2]
    if rest in _LAYER_SCALES:
        return {prefix + _LAYER_SCALES[rest]: tensor}
    module, _, param = rest.rpartition(".")
    if param not in ("weight", "bias"):
        return None
    if module == "attn.qkv":
        # Rows are laid out (3, heads, head_dim): the q, k and v projections are the three consecutive thirds.
        q, k, v = tensor.chunk(3, dim=0)
        return {f"{prefix}attention.{name}_proj.{param}": part for name, part in zip("qkv", (q, k, v))}
    if module in _LAYER_MODULES:
        return {f"{prefix}{_LAYER_MODULES[module]}.{param}": tensor}
    return None


def convert_state_dict(original: dict[str, torch.Tensor], config: InternVLVisionConfig) -> dict[str, torch.Tensor]:
    """Map an original InternViT state dict onto `InternVLVisionModel(config)`, exactly filling every key."""
    converted: dict[str, torch.Tensor] = {}
    unknown = []
    for key, tensor in original.items():
        entries = _convert_key(key, tensor)
        if entries is None:
            unknown.append(key)
        else:
            converted.update((name, value.contiguous()) for name, value in entries.items())
    if unknown:
        raise ValueError(f"unknown InternViT keys: {sorted(unknown)}")

    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in InternVLVisionModel(config).state_dict().items()}
    problems = []
    if missing := sorted(expected.keys() - converted.keys()):
        problems.append(f"target keys left unfilled: {missing}")
    if unexpected := sorted(converted.keys() - expected.keys()):
        problems.append(f"converted keys the target model does not have: {unexpected}")
    mismatched = [
        f"{name} {tuple(converted[name].shape)} != {shape}"
        for name, shape in expected.items()
        if name in converted and tuple(converted[name].shape) != shape
    ]
    if mismatched:
        problems.append(f"shape mismatches (converted != target): {mismatched}")
    if problems:
        raise ValueError("; ".join(problems))
    return converted


def load_original(src: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """config.json and the merged safetensors shards of an original checkpoint; pickles are never opened."""
    shards = sorted(src.glob("*.safetensors"))
    if not shards:
        pickles = sorted(p.name for p in src.iterdir() if p.name.endswith(_PICKLE_SUFFIXES))
        if pickles:
            raise ValueError(
                f"{src} holds only pickle checkpoints {pickles}; this project reads safetensors only "
                "(re-save the weights as safetensors first)"
            )
        raise FileNotFoundError(f"no *.safetensors in {src}")
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        tensors = load_file(shard)
        if duplicated := sorted(state.keys() & tensors.keys()):
            raise ValueError(f"keys present in more than one shard ({shard.name}): {duplicated}")
        state.update(tensors)
    return json.loads((src / "config.json").read_text()), state


def convert_checkpoint(src: Path, dst: Path) -> InternVLVisionModel:
    """Convert SRC to DST with save_pretrained, then reload DST and insist it round-trips key for key."""
    original_config, original_state = load_original(src)
    config = vision_config_from_original(original_config)
    converted = convert_state_dict(original_state, config)
    with torch.device("meta"):
        model = InternVLVisionModel(config)
    # assign=True keeps the checkpoint's dtype and skips a full random initialisation.
    model.load_state_dict(converted, strict=True, assign=True)
    model.save_pretrained(dst)

    reloaded, info = InternVLVisionModel.from_pretrained(dst, dtype="auto", output_loading_info=True)
    problems = {name: keys for name, keys in info.items() if keys}
    if problems:
        raise ValueError(f"{dst} does not load cleanly: {problems}")
    changed = [name for name, t in reloaded.state_dict().items() if not torch.equal(t, converted[name])]
    if changed:
        raise ValueError(f"{dst} reloads with different values for: {changed}")
    return reloaded


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: convert SRC_DIR into DST_DIR; any mismatch exits with the error instead of a half model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="original InternViT directory: config.json + *.safetensors")
    parser.add_argument("dst", type=Path, help="output directory for the InternVLVisionModel")
    args = parser.parse_args(argv)
    model = convert_checkpoint(args.src, args.dst)
    print(f"wrote {args.dst}: {sum(p.numel() for p in model.parameters()):,} parameters, {model.dtype}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
