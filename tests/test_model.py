"""The tiny InternVL: tokenizer contract, processor, label masking, geometry, save and reload."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import save_chatml_tokenizer

from sail.model import (
    GEOMETRIES,
    IGNORE_INDEX,
    TemplateMismatchError,
    assistant_labels,
    build_vlm,
    compose_vlm,
    conversation,
    encode_conversations,
    parameter_counts,
)
from sail.model.tokenizer import IMAGE_CONTEXT, IMAGE_END, IMAGE_START, TURN_END, TURN_START
from sail.world import render


def test_tokenizer_carries_image_and_turn_tokens_as_single_ids(tokenizer):
    for token in (IMAGE_START, IMAGE_END, IMAGE_CONTEXT, TURN_START, TURN_END):
        ids = tokenizer.encode(token, add_special_tokens=False)
        assert len(ids) == 1 and tokenizer.convert_ids_to_tokens(ids) == [token]
    assert tokenizer.context_image_token_id == tokenizer.convert_tokens_to_ids(IMAGE_CONTEXT)
    assert tokenizer.eos_token == TURN_END


def test_processor_expands_one_image_into_its_tokens(processor, records, geometry):
    batch = encode_conversations(processor, [render(records[0])], [conversation("Describe.", "a red circle")])
    ids = batch["input_ids"][0].tolist()
    image_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_CONTEXT)
    assert ids.count(image_id) == geometry.image_seq_length == 16
    assert batch["pixel_values"].shape == (1, 3, geometry.tile_size, geometry.tile_size)


def test_labels_keep_only_the_assistant_answer_and_its_end(processor, records):
    batch = encode_conversations(
        processor,
        [render(r) for r in records[:2]],
        [conversation("Describe.", "a big red circle"), conversation("Describe.", "two stars")],
    )
    tokenizer = processor.tokenizer
    for row, answer in enumerate(["a big red circle", "two stars"]):
        kept = [t for t in batch["labels"][row].tolist() if t != IGNORE_INDEX]
        assert tokenizer.decode(kept) == answer + TURN_END
    assert batch["num_tokens"] == int(batch["attention_mask"].sum())


def test_wide_card_is_tiled_with_a_thumbnail(tokenizer, geometry):
    from PIL import Image

    from sail.model import make_processor

    tiled = make_processor(tokenizer, geometry.tile_size, geometry.image_seq_length, max_tiles=6)
    batch = tiled(
        images=[Image.new("RGB", (2 * geometry.tile_size, geometry.tile_size))],
        text=[f"{IMAGE_CONTEXT}"],
        return_tensors="pt",
    )
    assert batch["pixel_values"].shape[0] == 3  # 2 x 1 grid + thumbnail


def test_training_tiles_every_world_benchmark_image_as_its_evaluation_does(tokenizer, geometry):
    from sail.eval.benchmarks import WORLD_BENCHMARKS
    from sail.model import image_processor, processor_for
    from sail.world import sample_records

    training = processor_for(build_vlm(geometry, tokenizer, meta=True), tokenizer).image_processor
    for spec in WORLD_BENCHMARKS.values():
        evaluation = image_processor(geometry.tile_size, spec.max_tiles)
        images = [render(r) for r in sample_records("test", 4, seed=0, card_fraction=spec.card_fraction)]
        tiles = [len(evaluation(image, return_tensors="pt")["pixel_values"]) for image in images]
        assert [len(training(image, return_tensors="pt")["pixel_values"]) for image in images] == tiles, spec.name
        assert spec.card_fraction == 0 or 3 in tiles  # a card: two tiles and a thumbnail


def test_masking_raises_on_template_mismatch(tokenizer):
    text = tokenizer.apply_chat_template(conversation("Describe.", "a red circle", image=False), tokenize=False)
    ids = tokenizer.encode(text, add_special_tokens=False)
    with pytest.raises(TemplateMismatchError, match="differ"):
        assistant_labels(ids, tokenizer, ["a blue circle"])
    with pytest.raises(TemplateMismatchError, match="truncated"):
        assistant_labels(ids[:-3], tokenizer, ["a red circle"])
    no_answer = tokenizer.encode(
        tokenizer.apply_chat_template(conversation("Describe.", image=False), tokenize=False), add_special_tokens=False
    )
    with pytest.raises(TemplateMismatchError):
        assistant_labels(no_answer, tokenizer, [])


def test_a_foreign_template_is_refused(tokenizer):
    # An assistant header spelt differently (e.g. a Llama-style template) must never train silently.
    ids = tokenizer.encode(
        f"{TURN_START}user\nhi{TURN_END}\n{TURN_START}Assistant:\nhello{TURN_END}\n", add_special_tokens=False
    )
    with pytest.raises(TemplateMismatchError):
        assistant_labels(ids, tokenizer, ["hello"])


def test_full_geometry_matches_sail_vl_2b_on_the_meta_device():
    counts = parameter_counts(build_vlm(GEOMETRIES["full"], meta=True))
    assert 300e6 < counts["vision"] < 310e6  # InternViT-300M
    assert 1.5e9 < counts["language"] < 1.6e9  # Qwen2.5-1.5B, tied embeddings
    assert GEOMETRIES["full"].image_seq_length == 256


def test_tiny_model_trains_a_step(tokenizer, geometry, processor, records):
    model = build_vlm(geometry, tokenizer)
    batch = encode_conversations(
        processor, [render(r) for r in records[:4]], [conversation("Describe.", "a shape")] * 4
    )
    batch.pop("num_tokens")
    loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss) and model.model.multi_modal_projector.linear_1.weight.grad is not None


def test_a_real_llm_tokenizer_gains_the_image_tokens_and_keeps_their_names_when_saved(tmp_path, records):
    from transformers import AutoTokenizer

    from sail.model import load_language_tokenizer

    plain = AutoTokenizer.from_pretrained(save_chatml_tokenizer(tmp_path / "qwen", records))
    tokenizer = load_language_tokenizer(tmp_path / "qwen")
    assert len(tokenizer) == len(plain) + 4  # <img>, </img>, <IMG_CONTEXT>, <video>
    assert plain.convert_tokens_to_ids(IMAGE_CONTEXT) in (None, plain.unk_token_id)
    tokenizer.save_pretrained(tmp_path / "saved")
    for loaded in (tokenizer, AutoTokenizer.from_pretrained(tmp_path / "saved")):
        for token in (IMAGE_START, IMAGE_END, IMAGE_CONTEXT):
            ids = loaded.encode(f"a{token}b", add_special_tokens=False)
            assert ids.count(loaded.convert_tokens_to_ids(token)) == 1
        assert (loaded.start_image_token, loaded.end_image_token) == (IMAGE_START, IMAGE_END)
        assert loaded.context_image_token_id == loaded.convert_tokens_to_ids(IMAGE_CONTEXT)


def test_a_tokenizer_without_chatml_turns_is_refused(tmp_path, records):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from sail.model import load_language_tokenizer

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>").save_pretrained(tmp_path / "plain")
    with pytest.raises(ValueError, match="has no ChatML token '<\\|im_start\\|>'"):
        load_language_tokenizer(tmp_path / "plain")


def test_compose_from_saved_parts_loads_every_weight(tmp_path, tokenizer, geometry):
    from transformers import Qwen2ForCausalLM

    from sail.foundations.vision import build_vision_probe
    from sail.model import text_config

    language = Qwen2ForCausalLM(text_config(geometry, tokenizer))
    vision = build_vision_probe(geometry).encoder
    language.save_pretrained(tmp_path / "language")
    vision.save_pretrained(tmp_path / "vision")
    model = compose_vlm(tmp_path / "vision", tmp_path / "language", tokenizer)
    assert torch.equal(model.model.language_model.embed_tokens.weight, language.model.embed_tokens.weight)
    _assert_same_weights(model.model.vision_tower, vision)


def test_compose_takes_the_vision_tower_of_a_whole_internvl_checkpoint(tmp_path, tokenizer, geometry):
    # InternVL3-2B-hf's layout: the tower is read from inside the saved InternVLForConditionalGeneration.
    from transformers import Qwen2ForCausalLM

    from sail.model import text_config

    whole = build_vlm(geometry, tokenizer)
    whole.save_pretrained(tmp_path / "internvl")
    Qwen2ForCausalLM(text_config(geometry, tokenizer)).save_pretrained(tmp_path / "language")
    model = compose_vlm(tmp_path / "internvl", tmp_path / "language", tokenizer)
    _assert_same_weights(model.model.vision_tower, whole.model.vision_tower)


def _assert_same_weights(ours, theirs) -> None:
    ours, theirs = ours.state_dict(), theirs.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_saved_model_generates_with_plain_transformers_in_a_fresh_process(
    tmp_path, tokenizer, geometry, processor, records
):
    model = build_vlm(geometry, tokenizer)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    render(records[0]).save(tmp_path / "scene.png")
    text = processor.apply_chat_template(conversation("Describe."), add_generation_prompt=True, tokenize=False)
    inputs = processor(images=[render(records[0])], text=[text], return_tensors="pt")
    ours = model.generate(**inputs, max_new_tokens=6, min_new_tokens=6, do_sample=False)[
        0, inputs["input_ids"].shape[1] :
    ]
    script = textwrap.dedent(f"""
        import torch
        from PIL import Image
        from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer
        path = {str(tmp_path)!r}
        model = AutoModelForImageTextToText.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        images = AutoImageProcessor.from_pretrained(path)
        pixels = images(Image.open(path + "/scene.png").convert("RGB"), return_tensors="pt")["pixel_values"]
        image = "<img>" + "<IMG_CONTEXT>" * model.config.image_seq_length + "</img>"
        prompt = tokenizer.apply_chat_template(
            [{{"role": "user", "content": [{{"type": "image"}}, {{"type": "text", "text": "Describe."}}]}}],
            add_generation_prompt=True, tokenize=False).replace("<IMG_CONTEXT>", image)
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        out = model.generate(**ids, pixel_values=pixels, max_new_tokens=6, min_new_tokens=6, do_sample=False)
        print("TOKENS:" + ",".join(map(str, out[0, ids["input_ids"].shape[1]:].tolist())))
    """)
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    tokens = [int(t) for t in run.stdout.split("TOKENS:")[-1].strip().split(",")]
    assert tokens == ours.tolist() and len(tokens) == 6
