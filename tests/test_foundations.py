"""Tiny foundations: the LM corpus, the ViT probe, and building, saving and reusing both."""

from __future__ import annotations

import ast
import hashlib
import json
import random
import re
from pathlib import Path

import nbformat
import pytest
import torch
from transformers import AutoModelForCausalLM, InternVLVisionModel

from sail.foundations import (
    FoundationBudget,
    build_foundations,
    foundation_key,
    foundation_parts,
    load_foundations,
    saved_foundations,
    start_parts,
)
from sail.foundations.language import (
    build_language_model,
    copy_drills,
    find_turns,
    lm_examples,
    lookup_turns,
    reading_by_kind,
    record_questions,
    sample_by_benchmark,
    sample_questions,
    slot_reader,
)
from sail.foundations.slots import slot_collate, slot_text, slot_words, token_places
from sail.foundations.vision import build_vision_probe, patch_cells, probe_collate
from sail.model import IGNORE_INDEX, conversation
from sail.model.tokenizer import IMAGE_CONTEXT
from sail.world import CELLS, sample_records

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

TINY_BUDGET = FoundationBudget(
    language_drill_steps=3,
    language_steps=4,
    vision_steps=3,
    batch_size=8,
    language_records=64,
    vision_records=64,
    heldout_records=16,
    language_check_every=0,
    language_drill_check_every=0,
)


def test_each_image_token_holds_the_cell_the_pixel_shuffle_puts_under_it(geometry):
    """The slot's layout must be where InternVL's pixel shuffle puts each cell: token k of a tile
    comes from the 2 x 2 patches at raster place k of the 4 x 4 merged grid."""
    from sail.model import build_vlm

    side = geometry.tile_size // geometry.patch_size  # 8 patches a side
    rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    patches = torch.stack([rows, cols], -1).float().reshape(1, side, side, 2)
    merged = build_vlm(geometry, meta=False).model.pixel_shuffle(patches, scale_factor=0.5).reshape(-1, 4, 2)
    cells = [int((patch[:, 0] >= side // 2).all()) * 2 + int((patch[:, 1] >= side // 2).all()) for patch in merged]
    assert [cell for cell, _ in token_places(geometry.image_seq_length)] == cells == [0, 0, 1, 1] * 2 + [2, 2, 3, 3] * 2
    assert [place for _, place in token_places(16)] == [True, False] * 8


def test_a_scene_slot_names_each_place_then_what_is_there():
    record = {
        "kind": "scene",
        "objects": [{"cell": "top right", "size": "large", "colour": "red", "shape": "circle"}],
        "texts": [{"cell": "bottom left", "text": "cat"}],
    }
    top = ["top left", "empty", "top right", "large red circle"]
    bottom = ["bottom left", "text cat", "bottom right", "empty"]
    assert slot_words(record, 16) == top + top + bottom + bottom
    with pytest.raises(ValueError, match="12 image tokens per tile do not make an even square raster"):
        slot_words(record, 12)


def test_the_reader_puts_the_sum_of_each_slot_s_word_embeddings_at_its_image_token(tokenizer, geometry):
    torch.manual_seed(0)
    reader = slot_reader(build_language_model(geometry, tokenizer), tokenizer)
    chat = tokenizer.apply_chat_template(conversation("Describe.", "red"), tokenize=False)
    batch = slot_collate(tokenizer)([(slot_text(chat, 2), ["red"], ["red", "large red circle"])])
    embeds = reader.embed(batch["input_ids"], batch["slot_ids"])
    table = reader.language.get_input_embeddings().weight
    ids = batch["input_ids"][0].tolist()
    first = ids.index(reader.image_token_id)
    for offset, words in enumerate(["red", "large red circle"]):
        expected = table[tokenizer.encode(" " + words, add_special_tokens=False)].sum(0)
        assert torch.allclose(embeds[0, first + offset], expected)
    assert torch.equal(embeds[0, first - 1], table[ids[first - 1]])  # text keeps its own embedding
    with pytest.raises(ValueError, match="2 image tokens but 1 filled slots"):
        reader.embed(batch["input_ids"], batch["slot_ids"][:, :1])


def test_a_packed_slot_batch_gives_the_padded_loss(tokenizer, geometry, scenes_and_cards):
    """Packing reorders the sequences (longest first); each one's slot words must move with it."""
    torch.manual_seed(0)
    reader = slot_reader(build_language_model(geometry, tokenizer), tokenizer)
    examples = lm_examples(scenes_and_cards[-12:], tokenizer, geometry.image_seq_length, seed=0)
    padded, packed = slot_collate(tokenizer)(examples), slot_collate(tokenizer, 256)(examples)
    assert packed["input_ids"].shape[0] < padded["input_ids"].shape[0]
    assert packed["num_tokens"] == padded["num_tokens"]
    with torch.no_grad():
        losses = [float(reader(**{k: v for k, v in b.items() if k != "num_tokens"}).loss) for b in (padded, packed)]
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)
    shuffled = {**packed, "slot_ids": packed["slot_ids"].flip(0)}  # slots that do not follow their sequences
    with torch.no_grad():
        assert abs(float(reader(**{k: v for k, v in shuffled.items() if k != "num_tokens"}).loss) - losses[0]) > 1e-3


def test_the_reader_s_loss_through_the_answer_positions_alone_is_the_lm_s_own(tokenizer, geometry, scenes_and_cards):
    """Only answer positions go through the LM head; loss and gradients must be what the LM's own
    loss over every position gives (a wrong shift, a sum for a mean or an unfiltered row differ)."""
    torch.manual_seed(0)
    reader = slot_reader(build_language_model(geometry, tokenizer), tokenizer)
    examples = lm_examples(scenes_and_cards[-12:], tokenizer, geometry.image_seq_length, seed=0)
    batch = {k: v for k, v in slot_collate(tokenizer, 256)(examples).items() if k != "num_tokens"}
    assert 0 < int((batch["labels"] != IGNORE_INDEX).sum()) < batch["labels"].numel() // 2  # mostly context

    def loss_and_gradient(loss_of) -> tuple[float, torch.Tensor]:
        reader.zero_grad()
        loss = loss_of()
        loss.backward()
        return float(loss.detach()), reader.language.model.layers[0].mlp.up_proj.weight.grad.clone()

    ours = loss_and_gradient(lambda: reader(**batch).loss)
    inputs = {k: v for k, v in batch.items() if k not in ("input_ids", "slot_ids")}
    own = loss_and_gradient(
        lambda: reader.language(inputs_embeds=reader.embed(batch["input_ids"], batch["slot_ids"]), **inputs).loss
    )
    assert ours[0] == pytest.approx(own[0], abs=1e-6)
    assert torch.allclose(ours[1], own[1], atol=1e-7)
    unlabelled = {k: v for k, v in batch.items() if k != "labels"}
    assert reader(**unlabelled).logits.shape == (*batch["input_ids"].shape, len(tokenizer))


def test_lookup_asks_every_cell_and_answers_what_the_record_holds(records):
    rng = random.Random(0)
    for record in [r for r in records if r["kind"] == "scene"][:20]:
        turns = lookup_turns(record, rng)
        cells = [re.search(r"at the (top left|top right|bottom left|bottom right)\?", q).group(1) for q, _ in turns]
        assert sorted(cells) == sorted(CELLS)
        for cell, (_, answer) in zip(cells, turns):
            objects = [o for o in record["objects"] if o["cell"] == cell]
            texts = [t["text"] for t in record["texts"] if t["cell"] == cell]
            expected = (
                f"a {objects[0]['size']} {objects[0]['colour']} {objects[0]['shape']}"
                if objects
                else f'the text "{texts[0]}"'
                if texts
                else "nothing"
            )
            assert answer == expected


def test_find_asks_where_two_objects_are_and_that_two_others_are_nowhere():
    def obj(colour, shape, cell):
        return {"colour": colour, "shape": shape, "size": "small", "cell": cell}

    scene = {
        "kind": "scene",
        "objects": [
            obj("red", "circle", "top left"),
            obj("blue", "square", "bottom right"),
            obj("green", "star", "top right"),
            obj("green", "star", "bottom left"),  # in two cells: no single answer, never asked
        ],
        "texts": [],
    }
    for seed in range(20):
        turns = find_turns(scene, random.Random(seed))
        assert turns[0][0].startswith("Where is the ") and all(q.startswith("And the ") for q, _ in turns[1:])
        asked = {re.fullmatch(r"(?:Where is|And) the (\w+ \w+)\?", q).group(1): answer for q, answer in turns}
        assert len(asked) == 4 and "green star" not in asked
        present = {name: cell for name, cell in asked.items() if cell != "nowhere"}
        assert present == {"red circle": "top left", "blue square": "bottom right"}


def test_find_lists_a_card_whole():
    card = sample_records("train", 1, seed=0, card_fraction=1.0)[0]
    assert find_turns(card, random.Random(0)) == lookup_turns(card, random.Random(0))


@pytest.fixture(scope="module")
def scenes_and_cards(records):
    return records + sample_records("train", 8, seed=0, card_fraction=1.0)


def test_questions_come_in_their_benchmark_s_prompt_about_the_record_they_ask(scenes_and_cards):
    from sail.eval.benchmarks import WORLD_BENCHMARKS, build_prompt
    from sail.world.questions import pope_statistics

    statistics = pope_statistics(scenes_and_cards)
    asked = [q for r in scenes_and_cards for q in record_questions(r, statistics, 0)]
    assert {q["benchmark"] for q in asked} == set(WORLD_BENCHMARKS)
    for q in asked:
        assert q["prompt"] == build_prompt(q, WORLD_BENCHMARKS[q["benchmark"]])
    edits = [q for q in asked if q["record"]["id"].endswith("-edit")]
    assert edits and all(q["benchmark"] == "WorldHallusion" for q in edits)


def test_questions_drawn_by_benchmark_ask_a_rare_benchmark_as_often_as_a_common_one():
    """Five POPE questions and one TextVQA: drawn alike, two of them hold the TextVQA question
    1/3 of the time; benchmark by benchmark, 3/4 (1/2 at the first draw, else 1/2 at the second)."""
    questions = [{"benchmark": "WorldPOPE", "n": n} for n in range(5)] + [{"benchmark": "WorldTextVQA", "n": 5}]
    for sample, expected in ((sample_questions, 1 / 3), (sample_by_benchmark, 3 / 4)):
        drawn = [sample(questions, 2, random.Random(seed)) for seed in range(4000)]
        assert all(len({q["n"] for q in pair}) == 2 for pair in drawn)
        share = sum(any(q["benchmark"] == "WorldTextVQA" for q in pair) for pair in drawn) / len(drawn)
        assert share == pytest.approx(expected, abs=0.025)
    assert sorted(q["n"] for q in sample_by_benchmark(questions, 6, random.Random(0))) == list(range(6))


def test_lm_examples_put_the_loss_on_the_answers_and_fill_one_slot_per_image_token(
    tokenizer, scenes_and_cards, geometry
):
    examples = lm_examples(scenes_and_cards[-32:], tokenizer, geometry.image_seq_length, seed=0)
    examples += copy_drills(tokenizer, 4, 0, geometry.image_seq_length)
    batch = slot_collate(tokenizer)(examples)
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_CONTEXT)
    for row, (_, answers, slots) in enumerate(examples):
        kept = [t for t in batch["labels"][row].tolist() if t != IGNORE_INDEX]
        assert tokenizer.decode(kept) == "".join(answer + tokenizer.eos_token for answer in answers)
        assert int((batch["input_ids"][row] == image_id).sum()) == len(slots) in (0, 16, 48)
    assert {len(slots) for _, _, slots in examples} == {0, 16, 48}  # plain captions, scenes, cards


def test_reading_by_kind_names_what_the_slot_is_worth_and_what_it_is_not():
    accuracy = {
        "own image": {"colour": 0.69, "pope": 0.5, "count": 0.2},
        "another image": {"colour": 0.11, "pope": 0.48, "count": 0.1},
    }
    assert reading_by_kind(accuracy) == (
        "From its own image slot rather than another image's, the LM answers 2 of 3 held-out question kinds"
        " better: colour 0.69 against 0.11, count 0.20 against 0.10; no better: pope."
    )


def test_probe_pools_each_cell_from_its_own_patches():
    cells = patch_cells(8).reshape(8, 8)
    assert cells[0, 0] == 0 and cells[0, 7] == 1 and cells[7, 0] == 2 and cells[7, 7] == 3
    assert torch.bincount(cells.flatten()).tolist() == [16, 16, 16, 16]


def test_probe_learns_from_a_batch(geometry, records):
    probe = build_vision_probe(geometry)
    batch = probe_collate(geometry)(records[:8])
    assert batch["num_tokens"] == 8 * 64
    batch.pop("num_tokens")
    out = probe(**batch)
    out.loss.backward()
    assert (
        out.logits["shape"].shape == (8, 4, 7)
        and probe.encoder.embeddings.patch_embeddings.projection.weight.grad is not None
    )


def test_foundations_are_built_saved_in_hf_layout_and_reused(tmp_path, geometry):
    built = build_foundations(tmp_path, geometry, TINY_BUDGET, progress=False)
    report = built.report
    assert report["language"]["drill_steps"] == 3 and report["language"]["steps"] == 4
    assert set(report["language"]) >= {"conditional_teacher_loss", "plain_teacher_loss", "context_caption_pair_f1"}
    accuracy = report["language"]["question_accuracy"]
    assert set(accuracy) == {"own image", "another image"} and "WorldVQA/colour" in accuracy["own image"]
    assert set(report["vision"]) >= {"shape_accuracy", "colour_accuracy", "size_accuracy", "is_text_accuracy"}
    assert AutoModelForCausalLM.from_pretrained(built.language_dir).config.model_type == "qwen2"
    assert InternVLVisionModel.from_pretrained(built.vision_dir).config.image_size[0] == geometry.tile_size
    assert report["key"] == foundation_key(geometry, TINY_BUDGET, 0)


def test_the_reuse_key_rebuilds_what_changed_and_reuses_the_rest(tmp_path, geometry, monkeypatch, capsys):
    weights = tmp_path / "language" / "model.safetensors"
    first = build_foundations(tmp_path, geometry, TINY_BUDGET, progress=False).report
    written = weights.stat().st_mtime_ns
    capsys.readouterr()

    assert build_foundations(tmp_path, geometry, TINY_BUDGET, progress=False).report == first
    assert weights.stat().st_mtime_ns == written  # reused, not retrained
    assert capsys.readouterr().out == ""

    longer = FoundationBudget(**{**TINY_BUDGET.__dict__, "language_steps": 5})
    rebuilt = build_foundations(tmp_path, geometry, longer, progress=False).report
    assert rebuilt["language"]["steps"] == 5 and load_foundations(tmp_path).report == rebuilt
    assert "rebuilding the foundations" in capsys.readouterr().out.replace("\n", " ")

    monkeypatch.setattr("sail.foundations.code_version", lambda: "changed-code")
    build_foundations(tmp_path, geometry, longer, progress=False)
    assert "changed code" in capsys.readouterr().out
    assert load_foundations(tmp_path).report["key"]["code"] == "changed-code"


def test_a_folder_built_without_a_key_is_rebuilt(tmp_path, geometry, capsys):
    build_foundations(tmp_path, geometry, TINY_BUDGET, progress=False)
    (tmp_path / "build.json").unlink()  # as an older build left it
    report = json.loads((tmp_path / "foundations.json").read_text())
    del report["key"]
    (tmp_path / "foundations.json").write_text(json.dumps(report))
    assert build_foundations(tmp_path, geometry, TINY_BUDGET, progress=False).report["key"]
    assert "changed everything (no key recorded)" in capsys.readouterr().out


def test_the_drill_ends_once_the_lm_copies(tmp_path, geometry):
    budget = FoundationBudget(
        **{
            **TINY_BUDGET.__dict__,
            "language_drill_steps": 6,
            "language_drill_check_every": 2,
            "language_drill_target": 0.0,
        }
    )
    report = build_foundations(tmp_path, geometry, budget, progress=False).report["language"]
    assert report["copies"] and report["drill_steps"] == 2
    assert [check["step"] for check in report["drill_checks"]] == [2]


def test_language_pretraining_trains_its_whole_budget_and_records_when_the_lm_first_read(tmp_path, geometry):
    budget = FoundationBudget(
        **{**TINY_BUDGET.__dict__, "language_steps": 6, "language_check_every": 2, "language_reading_target": 0.0}
    )
    report = build_foundations(tmp_path, geometry, budget, progress=False).report["language"]
    assert report["reached_reading_target"] and report["reading_step"] == 2 and report["steps"] == 6
    assert [check["step"] for check in report["reading_checks"]] == [2, 4, 6]


def test_language_pretraining_is_flagged_when_no_check_reaches_the_target(tmp_path, geometry):
    budget = FoundationBudget(
        **{**TINY_BUDGET.__dict__, "language_steps": 4, "language_check_every": 2, "language_reading_target": 1.1}
    )
    built = build_foundations(tmp_path, geometry, budget, progress=False)
    report = built.report["language"]
    assert not report["reached_reading_target"] and report["reading_step"] is None and report["steps"] == 4
    assert [check["step"] for check in report["reading_checks"]] == [2, 4]

    # Every stage that loads an LM that never read says so: notebook 00 building it, later notebooks loading it.
    best = f"{max(check['context_caption_pair_f1'] for check in report['reading_checks']):.3f}"
    capped = rf"ended its 4 steps below its reading target \(best held-out context-caption pair F1 {best} < 1.1\)"
    with pytest.warns(UserWarning, match=capped):
        foundation_parts("tiny", geometry, directory=tmp_path, budget=budget)
    with pytest.warns(UserWarning, match=capped):
        saved_foundations(tmp_path)
    with pytest.warns(UserWarning, match=capped):
        start_parts("tiny", tmp_path)


def test_foundations_that_read_load_without_a_warning(tmp_path, geometry, recwarn):
    budget = FoundationBudget(**{**TINY_BUDGET.__dict__, "language_check_every": 2, "language_reading_target": 0.0})
    foundation_parts("tiny", geometry, directory=tmp_path, budget=budget)
    assert not [w for w in recwarn if "reading target" in str(w.message)]


def test_a_build_depends_on_its_seed_not_on_what_ran_before(tmp_path, geometry):
    """The reuse key names the seed, so a rebuild elsewhere (notebook 00 in another run folder, a
    test, a bench worker that ran other seeds) must make the same weights."""
    weights = []
    for folder, noise in (("a", 1), ("b", 2)):
        torch.manual_seed(noise)  # whatever the caller did to the global generator before
        torch.rand(7)
        built = build_foundations(tmp_path / folder, geometry, TINY_BUDGET, seed=3, progress=False)
        weights.append(
            [
                AutoModelForCausalLM.from_pretrained(built.language_dir).state_dict(),
                InternVLVisionModel.from_pretrained(built.vision_dir).state_dict(),
            ]
        )
    for first, second in zip(*weights):
        assert all(torch.equal(first[name], second[name]) for name in first)


def test_building_leaves_the_callers_generator_as_reusing_does(tmp_path, geometry):
    """What a notebook draws after `build_foundations` (a fresh projector) must not depend on
    whether this run built the foundations or found them built."""
    draws = []
    for _ in ("build", "reuse"):
        torch.manual_seed(5)  # the notebook's own seed, not the build's (0)
        build_foundations(tmp_path, geometry, TINY_BUDGET, progress=False)
        draws.append(torch.rand(3))
    assert torch.equal(*draws)


def files_and_contents(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file under `folder` with its modification time and content hash: what a write changes."""
    return {
        str(path.relative_to(folder)): (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize("load", [saved_foundations, lambda folder: start_parts("tiny", folder)])
def test_a_later_notebook_without_foundations_is_told_to_run_notebook_00(tmp_path, load):
    for folder in (tmp_path / "absent", tmp_path):  # no folder at all, and an empty one
        message = f"no tiny foundations in {folder}: run notebook 00 first"
        with pytest.raises(FileNotFoundError, match=re.escape(message)):
            load(folder)
    assert not (tmp_path / "absent").exists() and not any(tmp_path.iterdir())  # nothing built or claimed


def test_an_interrupted_build_is_not_loaded_nor_resumed_by_a_later_notebook(tmp_path, geometry):
    build_foundations(tmp_path, geometry, TINY_BUDGET, progress=False)
    (tmp_path / "foundations.json").unlink()  # as a build killed before its report leaves it
    before = files_and_contents(tmp_path)
    with pytest.raises(FileNotFoundError, match="run notebook 00 first"):
        saved_foundations(tmp_path)
    assert files_and_contents(tmp_path) == before


@pytest.mark.filterwarnings("ignore:the LM foundation ended its")  # a 4-step LM: never reads, as meant
def test_a_later_notebook_loads_the_foundations_as_built_whatever_their_key(tmp_path, geometry):
    """Notebook 02 with another seed or batch size than 00's (so another key than a build for its
    own parameters) loads 00's foundations and never rebuilds or touches them."""
    built = build_foundations(tmp_path, geometry, TINY_BUDGET, seed=3, progress=False)
    before = files_and_contents(tmp_path)

    loaded = saved_foundations(tmp_path)
    tokenizer, vision_dir, language_dir = start_parts("tiny", tmp_path)

    assert files_and_contents(tmp_path) == before
    assert loaded == built and loaded.report["key"] == foundation_key(geometry, TINY_BUDGET, 3)
    assert (vision_dir, language_dir) == (built.vision_dir, built.language_dir)
    assert tokenizer.get_vocab() == loaded.load_tokenizer().get_vocab() and len(tokenizer) == built.report["vocab_size"]


def called_functions(notebook: Path) -> set[str]:
    """The names of every function a notebook's code cells call (`f(...)` or `module.f(...)`)."""
    cells = nbformat.read(notebook, as_version=4).cells
    calls = set()
    for cell in cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Call):
                function = node.func
                calls.add(function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", ""))
    return calls


def test_only_notebook_00_can_build_the_foundations():
    """A learner changing a later notebook's seed or batch size must not rebuild the foundations
    every notebook after 00 shares: only 00 calls the functions that build them."""
    building = {"foundation_parts", "build_foundations", "pretrain_language", "pretrain_vision"}
    notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    builders = {notebook.stem for notebook in notebooks if called_functions(notebook) & building}
    assert builders == {"00_tour"}
    assert "saved_foundations" in called_functions(NOTEBOOKS / "02_captioner.ipynb")
