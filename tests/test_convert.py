"""Original InternViT layout -> transformers' InternVLVisionModel: key placement, loud errors, the CLI end to end."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import InternVLVisionModel

from sail.model.convert import convert_state_dict, main, vision_config_from_original

HIDDEN, HEADS, LAYERS, MLP, IMAGE, PATCH = 32, 4, 2, 64, 28, 14


def original_config(qk_norm: bool = False, **extra) -> dict:
    """A config.json as OpenGVLab's remote code saves it, for the tiny shape."""
    return {
        "architectures": ["InternVisionModel"],
        "auto_map": {
            "AutoConfig": "configuration_intern_vit.InternVisionConfig",
            "AutoModel": "modeling_intern_vit.InternVisionModel",
        },
        "model_type": "intern_vit_6b",
        "attention_dropout": 0.0,
        "drop_path_rate": 0.1,
        "dropout": 0.0,
        "hidden_act": "gelu",
        "hidden_size": HIDDEN,
        "image_size": IMAGE,
        "initializer_factor": 0.1,
        "initializer_range": 1e-10,
        "intermediate_size": MLP,
        "layer_norm_eps": 1e-6,
        "norm_type": "layer_norm",
        "num_attention_heads": HEADS,
        "num_channels": 3,
        "num_hidden_layers": LAYERS,
        "patch_size": PATCH,
        "qk_normalization": qk_norm,
        "qkv_bias": True,
        "torch_dtype": "float32",
        "use_flash_attn": False,
        **extra,
    }


def qkv_thirds(layer: int) -> tuple[torch.Tensor, ...]:
    """Distinct q, k, v weights and biases (offsets 0.1 / 0.2 / 0.3 plus per-layer noise), fused row-wise."""
    g = torch.Generator().manual_seed(100 + layer)
    weights = [offset + 0.02 * torch.randn(HIDDEN, HIDDEN, generator=g) for offset in (0.1, 0.2, 0.3)]
    biases = [torch.full((HIDDEN,), offset) for offset in (0.01, 0.02, 0.03)]
    return (*weights, *biases)


def original_state(qk_norm: bool = False) -> dict[str, torch.Tensor]:
    """A tiny state dict with InternViT's own key names, deterministic."""
    g = torch.Generator().manual_seed(0)

    def rand(*shape: int, scale: float = 0.1) -> torch.Tensor:
        return scale * torch.randn(*shape, generator=g)

    state = {
        "embeddings.class_embedding": rand(1, 1, HIDDEN),
        "embeddings.patch_embedding.weight": rand(HIDDEN, 3, PATCH, PATCH, scale=0.02),
        "embeddings.patch_embedding.bias": rand(HIDDEN),
        "embeddings.position_embedding": rand(1, (IMAGE // PATCH) ** 2 + 1, HIDDEN),
    }
    for i in range(LAYERS):
        p = f"encoder.layers.{i}."
        q, k, v, qb, kb, vb = qkv_thirds(i)
        state |= {
            p + "attn.qkv.weight": torch.cat([q, k, v]),
            p + "attn.qkv.bias": torch.cat([qb, kb, vb]),
            p + "attn.proj.weight": rand(HIDDEN, HIDDEN),
            p + "attn.proj.bias": rand(HIDDEN),
            p + "ls1": torch.linspace(0.1, 0.2, HIDDEN) + i,
            p + "ls2": torch.linspace(0.3, 0.4, HIDDEN) + i,
            p + "norm1.weight": 1 + rand(HIDDEN),
            p + "norm1.bias": rand(HIDDEN),
            p + "norm2.weight": 1 + rand(HIDDEN),
            p + "norm2.bias": rand(HIDDEN),
            p + "mlp.fc1.weight": rand(MLP, HIDDEN),
            p + "mlp.fc1.bias": rand(MLP),
            p + "mlp.fc2.weight": rand(HIDDEN, MLP),
            p + "mlp.fc2.bias": rand(HIDDEN),
        }
        if qk_norm:
            state[p + "attn.q_norm.weight"] = 1 + rand(HIDDEN)
            state[p + "attn.k_norm.weight"] = 1 + rand(HIDDEN)
    return state


def original_forward(state: dict[str, torch.Tensor], pixels: torch.Tensor, qk_norm: bool) -> torch.Tensor:
    """InternViT's forward written out on the original keys: the ground truth the converted model must match."""
    eps, head_dim = 1e-6, HIDDEN // HEADS
    x = F.conv2d(pixels, state["embeddings.patch_embedding.weight"], state["embeddings.patch_embedding.bias"], PATCH)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([state["embeddings.class_embedding"].expand(len(x), -1, -1), x], dim=1)
    x = x + state["embeddings.position_embedding"]
    batch, seq = x.shape[:2]
    for i in range(LAYERS):
        s = {k.removeprefix(f"encoder.layers.{i}."): v for k, v in state.items()}
        h = F.layer_norm(x, (HIDDEN,), s["norm1.weight"], s["norm1.bias"], eps)
        q, k, v = F.linear(h, s["attn.qkv.weight"], s["attn.qkv.bias"]).reshape(batch, seq, 3, HIDDEN).unbind(2)
        if qk_norm:
            q = q * torch.rsqrt(q.pow(2).mean(-1, keepdim=True) + eps) * s["attn.q_norm.weight"]
            k = k * torch.rsqrt(k.pow(2).mean(-1, keepdim=True) + eps) * s["attn.k_norm.weight"]
        q, k, v = (t.reshape(batch, seq, HEADS, head_dim).transpose(1, 2) for t in (q, k, v))
        attn = ((q * head_dim**-0.5) @ k.transpose(-2, -1)).softmax(-1) @ v
        attn = F.linear(attn.transpose(1, 2).reshape(batch, seq, HIDDEN), s["attn.proj.weight"], s["attn.proj.bias"])
        x = x + attn * s["ls1"]
        h = F.layer_norm(x, (HIDDEN,), s["norm2.weight"], s["norm2.bias"], eps)
        h = F.linear(
            F.gelu(F.linear(h, s["mlp.fc1.weight"], s["mlp.fc1.bias"])), s["mlp.fc2.weight"], s["mlp.fc2.bias"]
        )
        x = x + h * s["ls2"]
    return x


def pixels() -> torch.Tensor:
    return torch.randn(2, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(7))


@pytest.mark.parametrize("qk_norm", [False, True])
def test_fused_qkv_and_layer_scale_land_in_place(qk_norm):
    state = original_state(qk_norm)
    config = vision_config_from_original(original_config(qk_norm))
    assert (config.use_qk_norm, config.attention_bias, config.layer_scale_init_value) == (qk_norm, True, 0.1)
    assert config.image_size == (IMAGE, IMAGE) and config.use_mean_pooling

    converted = convert_state_dict(state, config)
    model = InternVLVisionModel(config).eval()
    model.load_state_dict(converted, strict=True)

    for i in range(LAYERS):
        q, k, v, qb, kb, vb = qkv_thirds(i)
        fused = state[f"encoder.layers.{i}.attn.qkv.weight"]
        attention = model.encoder.layer[i].attention
        thirds = {"q": (slice(0, 32), q, qb), "k": (slice(32, 64), k, kb), "v": (slice(64, 96), v, vb)}
        for name, (rows, weight, bias) in thirds.items():
            proj = getattr(attention, f"{name}_proj")
            assert torch.equal(proj.weight, fused[rows]) and torch.equal(proj.weight, weight)
            assert torch.equal(proj.bias, bias)
        layer = model.encoder.layer[i]
        assert torch.equal(layer.lambda_1, torch.linspace(0.1, 0.2, HIDDEN) + i)
        assert torch.equal(layer.lambda_2, torch.linspace(0.3, 0.4, HIDDEN) + i)
        if qk_norm:
            assert torch.equal(attention.q_norm.weight, state[f"encoder.layers.{i}.attn.q_norm.weight"])
            assert torch.equal(attention.k_norm.weight, state[f"encoder.layers.{i}.attn.k_norm.weight"])

    with torch.no_grad():
        out = model(pixel_values=pixels()).last_hidden_state
        assert torch.allclose(out, original_forward(state, pixels(), qk_norm), atol=1e-5)


def test_unknown_key_is_named():
    config = vision_config_from_original(original_config())
    state = original_state() | {"encoder.layers.0.attn.rope.weight": torch.zeros(HIDDEN)}
    with pytest.raises(ValueError, match=r"unknown InternViT keys: \['encoder\.layers\.0\.attn\.rope\.weight'\]"):
        convert_state_dict(state, config)
    # qk-norm weights are only accepted when the config asks for qk-norm.
    with pytest.raises(ValueError, match=r"does not have: \['encoder\.layer\.0\.attention\.k_norm\.weight'"):
        convert_state_dict(original_state(qk_norm=True), config)


def test_missing_key_is_named():
    config = vision_config_from_original(original_config())
    state = original_state()
    del state["encoder.layers.1.ls2"]
    with pytest.raises(ValueError, match=r"left unfilled: \['encoder\.layer\.1\.lambda_2'\]"):
        convert_state_dict(state, config)


def test_final_norm_only_with_a_target_layernorm():
    state = original_state() | {"norm.weight": torch.ones(HIDDEN), "norm.bias": torch.zeros(HIDDEN)}
    with pytest.raises(ValueError, match=r"does not have: \['layernorm\.bias', 'layernorm\.weight'\]"):
        convert_state_dict(state, vision_config_from_original(original_config()))
    converted = convert_state_dict(state, vision_config_from_original(original_config(use_mean_pooling=False)))
    assert torch.equal(converted["layernorm.weight"], torch.ones(HIDDEN))


def test_cli_end_to_end(tmp_path, capsys):
    src, dst = tmp_path / "InternViT-tiny", tmp_path / "converted"
    src.mkdir()
    state, config_json = original_state(qk_norm=True), original_config(qk_norm=True)
    (src / "config.json").write_text(json.dumps(config_json))
    save_file(state, src / "model.safetensors")

    assert main([str(src), str(dst)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (dst / "model.safetensors").exists() and not list(dst.glob("*.bin"))

    loaded = InternVLVisionModel.from_pretrained(dst).eval()
    config = vision_config_from_original(config_json)
    direct = InternVLVisionModel(config).eval()
    direct.load_state_dict(convert_state_dict(state, config), strict=True)
    with torch.no_grad():
        out = loaded(pixel_values=pixels()).last_hidden_state
        assert torch.allclose(out, direct(pixel_values=pixels()).last_hidden_state)
        assert torch.allclose(out, original_forward(state, pixels(), qk_norm=True), atol=1e-5)


def test_pickle_only_source_is_refused(tmp_path):
    src = tmp_path / "InternViT-pickle"
    src.mkdir()
    (src / "config.json").write_text(json.dumps(original_config()))
    (src / "pytorch_model.bin").write_bytes(b"never unpickled")
    with pytest.raises(ValueError, match=r"pytorch_model\.bin.*safetensors only"):
        main([str(src), str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
