"""The trainer: what it freezes, its budgets, exact resume, and DeepSpeed ZeRO-2 on CPU."""

from __future__ import annotations

import math
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from sail.caption import caption_collate, caption_examples, captioner_trainable
from sail.foundations.language import build_language_model
from sail.model import build_vlm, conversation
from sail.model.chat import encode_texts
from sail.train import Stage, set_trainable, train, warmup_cosine
from sail.world import teacher_caption

ROOT = Path(__file__).resolve().parents[1]


def caption_chats(tokenizer, records) -> list[tuple[str, list[str]]]:
    """One text-only chat per record: the caption prompt answered by its teacher caption."""
    rng = random.Random(0)
    captions = [teacher_caption(record, rng) for record in records]
    return [
        (tokenizer.apply_chat_template(conversation("Describe.", caption, image=False), tokenize=False), [caption])
        for caption in captions
    ]


def text_collate(tokenizer):
    return lambda rows: encode_texts(tokenizer, [text for text, _ in rows], [answers for _, answers in rows])


def lm_stage(tokenizer, records, **overrides) -> Stage:
    settings = dict(
        name="lm",
        data=caption_chats(tokenizer, records),
        collate=text_collate(tokenizer),
        trainable=("",),
        lr=3e-3,
        batch_size=8,
        max_steps=6,
        seed=0,
    )
    return Stage(**{**settings, **overrides})


def advance_stage(processor, records, **overrides) -> Stage:
    """Two steps of the vision tower and projector on eight captions."""
    settings = dict(
        name="advance",
        data=caption_examples(records[:8]),
        collate=caption_collate(processor),
        trainable=("model.vision_tower", "model.multi_modal_projector"),
        lr=1e-3,
        batch_size=4,
        max_steps=2,
    )
    return Stage(**{**settings, **overrides})


def test_projector_only_stage_leaves_vision_and_language_untouched(tmp_path, tokenizer, geometry, processor, records):
    model = build_vlm(geometry, tokenizer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stage = Stage(
        name="align",
        data=caption_examples(records[:16]),
        collate=caption_collate(processor),
        trainable=("model.multi_modal_projector",),
        lr=1e-3,
        batch_size=4,
        max_steps=2,
    )
    result = train(model, stage, tmp_path, progress=False)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("model.multi_modal_projector") for k in changed)
    rows = {r["module"]: r for r in result.trainable}
    assert rows["model.multi_modal_projector"]["trainable"] == rows["model.multi_modal_projector"]["parameters"] > 0
    assert rows["model.vision_tower"]["trainable"] == rows["model.language_model"]["trainable"] == 0


@pytest.mark.parametrize("train_vision", [False, True])
def test_captioner_trains_the_vision_tower_only_when_asked(train_vision, tokenizer, geometry):
    model = build_vlm(geometry, tokenizer)
    rows = {r["module"]: r for r in set_trainable(model, captioner_trainable(train_vision))}
    for module in ("model.multi_modal_projector", "model.language_model"):
        assert rows[module]["trainable"] == rows[module]["parameters"] > 0
    assert rows["model.vision_tower"]["trainable"] == (rows["model.vision_tower"]["parameters"] if train_vision else 0)


def test_token_budget_stops_the_stage(tmp_path, tokenizer, geometry, records):
    model = build_language_model(geometry, tokenizer)
    stage = lm_stage(tokenizer, records, max_steps=None, token_budget=2000)
    result = train(model, stage, tmp_path, progress=False)
    assert result.tokens >= 2000 and result.history[-2]["tokens"] < 2000


def test_stage_refuses_meaningless_settings(tokenizer, records):
    with pytest.raises(ValueError, match="token_budget or max_steps"):
        lm_stage(tokenizer, records, max_steps=None)
    with pytest.raises(ValueError, match="trains nothing"):
        lm_stage(tokenizer, records, trainable=())
    with pytest.raises(ValueError, match="go together"):
        lm_stage(tokenizer, records, done_when=lambda model, step: True)
    with pytest.raises(ValueError, match="schedule_steps must be >= 1"):
        lm_stage(tokenizer, records, schedule_steps=0)


def test_a_schedule_longer_than_the_cap_keeps_its_own_pace(tmp_path, tokenizer, geometry, records):
    model = build_language_model(geometry, tokenizer)
    result = train(model, lm_stage(tokenizer, records, max_steps=4, schedule_steps=10), tmp_path, progress=False)
    # warm-up is 1 step of 10; after step k the rate is the cosine over 10 steps at k, not over 4
    factor, peak = warmup_cosine(10, 0.1, 0.1), 3e-3
    assert [h["lr"] for h in result.history] == pytest.approx([peak * factor(step) for step in range(1, 5)])
    assert result.history[-1]["lr"] == pytest.approx(peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 3 / 9))))


def test_stage_ends_once_done_and_stays_done_on_rerun(tmp_path, tokenizer, geometry, records):
    asked = []

    def done_when(model, step):
        asked.append((step, model.training))
        return step >= 4

    model = build_language_model(geometry, tokenizer)
    stage = lm_stage(tokenizer, records, max_steps=10, done_when=done_when, check_every=2)
    result = train(model, stage, tmp_path, progress=False)
    assert result.done_early and result.steps == 4 and asked == [(2, False), (4, False)]
    assert model.training
    again = train(build_language_model(geometry, tokenizer), stage, tmp_path, progress=False)
    assert again.resumed_from_step == 4 and again.steps == 4 and again.done_early and len(asked) == 2


class Interrupt(RuntimeError):
    pass


# The collate call that fails: after the step-3 checkpoint and one more step. With accumulation 2,
# each step collates two micro-batches (the first collated once, to plan the schedule).
@pytest.mark.parametrize("accumulation, failing_call", [(1, 5), (2, 9)])
def test_interrupted_run_resumes_exactly(accumulation, failing_call, tmp_path, tokenizer, geometry, records):
    torch.manual_seed(0)
    straight = build_language_model(geometry, tokenizer)
    resumed = build_language_model(geometry, tokenizer)
    resumed.load_state_dict(straight.state_dict())
    stage = lm_stage(tokenizer, records, batch_size=8 // accumulation, gradient_accumulation=accumulation)

    full = train(straight, stage, tmp_path / "straight", checkpoint_every=3, progress=False)
    calls = {"n": 0}

    def failing_collate(rows):
        calls["n"] += 1
        if calls["n"] == failing_call:
            raise Interrupt("power cut")
        return stage.collate(rows)

    with pytest.raises(Interrupt):
        train(
            resumed,
            Stage(**{**stage.__dict__, "collate": failing_collate}),
            tmp_path / "resumed",
            checkpoint_every=3,
            progress=False,
        )
    again = build_language_model(geometry, tokenizer)  # a fresh process would start from scratch weights
    second = train(again, stage, tmp_path / "resumed", checkpoint_every=3, progress=False)

    assert second.resumed_from_step == 3
    assert [h["loss"] for h in second.history] == [h["loss"] for h in full.history]
    assert second.tokens == full.tokens
    for (name, a), b in zip(straight.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name


def test_deepspeed_zero2_trains_on_cpu(tmp_path):
    script = textwrap.dedent(f"""
        import torch
        from sail.foundations.language import world_text
        from sail.caption import caption_collate, caption_examples, captioner_trainable
        from sail.model import GEOMETRIES, build_vlm, make_processor, train_world_tokenizer
        from sail.train import Stage, set_trainable, train, warmup_cosine
        from sail.world import sample_records
        records = sample_records("train", 32)
        tokenizer = train_world_tokenizer(world_text(records, 0), 400)
        geometry = GEOMETRIES["tiny"]
        model = build_vlm(geometry, tokenizer)
        processor = make_processor(tokenizer, geometry.tile_size, geometry.image_seq_length)
        before = model.model.multi_modal_projector.linear_1.weight.clone()
        stage = Stage(name="zero2", data=caption_examples(records), collate=caption_collate(processor),
                      trainable=("",), lr=1e-3, batch_size=4, max_steps=3)
        result = train(model, stage, {str(tmp_path)!r}, deepspeed_config={str(ROOT / "configs/deepspeed/zero2.json")!r},
                       progress=False)
        moved = not torch.equal(before, model.model.multi_modal_projector.linear_1.weight)
        finite = all(torch.isfinite(torch.tensor(h["loss"])) for h in result.history)
        print("RESULT", result.backend, result.steps, moved, finite)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    line = run.stdout.split("RESULT")[-1].split()
    assert line[:3] == ["DEEPSPEED", "on", "cpu"] and line[3:] == ["3", "True", "True"]
    assert (tmp_path / "checkpoints" / "step-0000003").is_dir()


def test_pack_batch_places_sequences_first_fit_longest_first():
    from sail.train import pack_batch

    ids = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, 0, 0], [9, 10, 0, 0, 0]])
    batch = {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": torch.where(ids > 3, ids, -100)}
    packed = pack_batch(batch, 6, pad_token_id=0)
    # lengths 5, 3, 2 into rows of 6: [5 + pad], [3 + 2 + pad]; positions restart at each sequence
    assert packed["input_ids"].tolist() == [[1, 2, 3, 4, 5, 0], [6, 7, 8, 9, 10, 0]]
    assert packed["position_ids"].tolist() == [[0, 1, 2, 3, 4, 0], [0, 1, 2, 0, 1, 0]]
    assert packed["labels"].tolist() == [[-100, -100, -100, 4, 5, -100], [6, 7, 8, 9, 10, -100]]
    assert packed["num_tokens"] == 10 and packed["use_cache"] is False
    assert pack_batch(batch, 2, pad_token_id=0)["input_ids"].shape == (2, 5)  # rows grow to the longest: [5], [3 + 2]


def test_accumulated_micro_batches_make_the_step_one_big_batch_makes(tmp_path, tokenizer, geometry, records):
    stage = lm_stage(tokenizer, records, batch_size=4, max_steps=2)
    torch.manual_seed(0)
    whole = build_language_model(geometry, tokenizer)
    split = build_language_model(geometry, tokenizer)
    split.load_state_dict(whole.state_dict())
    one = train(whole, stage, tmp_path / "one", progress=False)
    two = train(
        split,
        lm_stage(tokenizer, records, batch_size=2, gradient_accumulation=2, max_steps=2),
        tmp_path / "two",
        progress=False,
    )
    # the same four rows per step: the loss is their token mean and the gradient the same, not a mean of two means
    assert [h["loss"] for h in two.history] == pytest.approx([h["loss"] for h in one.history], rel=1e-5)
    assert [h["grad_norm"] for h in two.history] == pytest.approx([h["grad_norm"] for h in one.history], rel=1e-4)
    assert one.tokens == two.tokens
    # step 2's equal loss shows the weights after step 1 agree (Adam's first step is too sign-like to compare)


def test_the_step_loss_weights_micro_batches_by_their_supervised_tokens(tokenizer, geometry, records):
    """Micro-batches of unequal supervision: the token mean differs from the mean of their means."""
    stage = lm_stage(tokenizer, records, batch_size=2)
    model = build_language_model(geometry, tokenizer).eval()
    first, second = stage.collate(stage.data[0:2]), stage.collate(stage.data[2:4])
    both = stage.collate(stage.data[0:4])
    losses, counts = [], []
    with torch.no_grad():
        for batch in (first, second):
            batch.pop("num_tokens")
            losses.append(float(model(**batch).loss))
            counts.append(int((batch["labels"][:, 1:] != -100).sum()))
        both.pop("num_tokens")
        whole = float(model(**both).loss)
    assert counts[0] != counts[1] and abs(whole - sum(losses) / 2) > 1e-4  # the case tells the two apart
    assert whole == pytest.approx((losses[0] * counts[0] + losses[1] * counts[1]) / sum(counts), rel=1e-5)


def test_validation_loss_is_the_mean_over_every_supervised_token(tokenizer, geometry, records):
    from sail.train import validation_loss

    stage = lm_stage(tokenizer, records)
    rows = stage.data[:6]
    model = build_language_model(geometry, tokenizer)
    batch = stage.collate(list(rows))
    batch.pop("num_tokens")
    with torch.no_grad():
        expected = float(model(**batch).loss)
    # batches of 4 and 2 rows with different token counts: a sum, or a mean of batch means, differs
    assert validation_loss(model, stage.collate, rows, batch_size=4) == pytest.approx(expected, rel=1e-5)


def test_lr_scale_sets_its_modules_rate(tmp_path, tokenizer, geometry, processor, records):
    model = build_vlm(geometry, tokenizer)
    vision_before = {k: v.clone() for k, v in model.model.vision_tower.state_dict().items()}
    stage = advance_stage(processor, records, lr_scale={"model.vision_tower": 0.0})
    from sail.train.stage import parameter_groups

    set_trainable(model, stage.trainable)
    groups = sorted((g["lr"], len(g["params"])) for g in parameter_groups(model, stage))
    vision_tensors = sum(1 for p in model.model.vision_tower.parameters())
    assert groups == [(0.0, vision_tensors), (1e-3, sum(1 for p in model.model.multi_modal_projector.parameters()))]
    train(model, stage, tmp_path, progress=False)
    # a zero rate leaves the vision tower exactly where it was though it had gradients
    assert all(torch.equal(v, vision_before[k]) for k, v in model.model.vision_tower.state_dict().items())


def test_loader_workers_collate_the_same_batches(tmp_path, tokenizer, geometry, records):
    torch.manual_seed(0)
    here = build_language_model(geometry, tokenizer)
    there = build_language_model(geometry, tokenizer)
    there.load_state_dict(here.state_dict())
    stage = lm_stage(tokenizer, records, max_steps=10)  # 64 records / batch 8: crosses an epoch
    inline = train(here, stage, tmp_path / "inline", progress=False)
    workers = train(there, stage, tmp_path / "workers", loader_workers=2, progress=False)
    assert [h["loss"] for h in workers.history] == [h["loss"] for h in inline.history]


def test_each_step_is_logged_as_a_json_line_and_to_the_tracker(tmp_path, tokenizer, geometry, records):
    import json

    result = train(
        build_language_model(geometry, tokenizer),
        lm_stage(tokenizer, records),
        tmp_path,
        tracker="tensorboard",
        progress=False,
    )
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(1, 7)) and lines == result.history
    assert {"loss", "lr", "grad_norm", "tokens", "tokens_per_second"} <= set(lines[0])
    assert lines[-1]["tokens"] == result.tokens and all(r["tokens_per_second"] > 0 for r in lines)
    assert "history" not in (tmp_path / "checkpoints" / "step-0000006" / "trainer_state.json").read_text()
    assert list(tmp_path.rglob("events.out.tfevents.*")), "no TensorBoard event file"


def test_gradient_checkpointing_recomputes_the_same_step(tmp_path, tokenizer, geometry, processor, records):
    torch.manual_seed(0)
    plain = build_vlm(geometry, tokenizer)
    checkpointed = build_vlm(geometry, tokenizer)
    checkpointed.load_state_dict(plain.state_dict())
    stage = advance_stage(processor, records)
    one = train(plain, stage, tmp_path / "plain", progress=False)
    two = train(checkpointed, stage, tmp_path / "checkpointed", gradient_checkpointing=True, progress=False)
    assert checkpointed.model.vision_tower.encoder.gradient_checkpointing
    assert [h["loss"] for h in two.history] == pytest.approx([h["loss"] for h in one.history], rel=1e-5)
    assert [h["grad_norm"] for h in two.history] == pytest.approx([h["grad_norm"] for h in one.history], rel=1e-4)


def test_bf16_mixed_precision_trains_with_finite_losses_near_float32(tmp_path, tokenizer, geometry, records):
    torch.manual_seed(0)
    full = build_language_model(geometry, tokenizer)
    half = build_language_model(geometry, tokenizer)
    half.load_state_dict(full.state_dict())
    reference = train(full, lm_stage(tokenizer, records, max_steps=3), tmp_path / "fp32", progress=False)
    mixed = train(
        half, lm_stage(tokenizer, records, max_steps=3), tmp_path / "bf16", mixed_precision="bf16", progress=False
    )
    assert all(math.isfinite(h["loss"]) for h in mixed.history)
    assert mixed.history[0]["loss"] == pytest.approx(reference.history[0]["loss"], rel=2e-2)
    assert mixed.history[0]["loss"] != reference.history[0]["loss"]  # autocast really ran in bfloat16
    assert next(half.parameters()).dtype == torch.float32  # weights stay in float32


def test_training_leaves_the_callers_random_stream_as_a_plain_loop_would(tmp_path, tokenizer, geometry, records):
    """What a notebook builds after a stage (a fresh projector) must not depend on how the trainer
    loads data: the stage draws nothing from the global stream beyond what it seeds itself."""
    stage = lm_stage(tokenizer, records, max_steps=10)  # crosses an epoch: a new loader
    train(build_language_model(geometry, tokenizer), stage, tmp_path / "one", progress=False)
    after_one = torch.rand(3)
    train(build_language_model(geometry, tokenizer), stage, tmp_path / "two", progress=False)
    after_two = torch.rand(3)
    torch.manual_seed(stage.seed)
    assert torch.equal(after_one, after_two) and torch.equal(after_one, torch.rand(3))


def test_a_tied_head_saved_inside_a_wrapper_is_not_reported_as_a_shared_tensor(tmp_path, tokenizer, geometry, caplog):
    """The LM foundation trains inside its slot reader, so its tied head is `language.lm_head`: the
    notice that it was saved once with the embeddings is as harmless there, and stays out of 00."""
    import logging

    from sail.foundations.language import copy_drills, slot_reader
    from sail.foundations.slots import slot_collate

    reader = slot_reader(build_language_model(geometry, tokenizer), tokenizer)
    data = copy_drills(tokenizer, 4, 0, geometry.image_seq_length)
    stage = Stage(
        name="drill",
        data=data,
        collate=slot_collate(tokenizer),
        trainable=("language",),
        lr=1e-3,
        batch_size=4,
        max_steps=1,
    )
    with caplog.at_level(logging.WARNING):
        train(reader, stage, tmp_path, progress=False)
    assert (tmp_path / "checkpoints").is_dir()
    assert not [record for record in caplog.records if "Removed shared tensor" in record.getMessage()]
    notice = logging.LogRecord(
        "accelerate.utils.other", logging.WARNING, "", 0, "Removed shared tensor {'x.weight'}", (), None
    )
    assert logging.getLogger("accelerate.utils.other").filter(notice)  # any other shared tensor still warns
