"""World benchmarks (test split only, VLMEvalKit rows and scoring), the generation adapter and
the Table 1 report, end to end on a tiny saved model."""

from __future__ import annotations

import pytest
import torch

from sail.eval import read_tsv, write_tsv
from sail.eval.benchmarks import (
    GROUPS,
    MCQ_SUFFIX,
    WORLD_BENCHMARKS,
    benchmark_records,
    benchmark_spec,
    build_benchmark,
    build_prompt,
    check_no_train_overlap,
    score_benchmark,
)
from sail.eval.blind import BlindLevel
from sail.eval.generation import BackendUnavailableError, Generator, image_messages
from sail.eval.report import (
    blind_column,
    distinct_answers,
    evaluate,
    evaluate_checkpoints,
    load_benchmarks,
    pipeline_checkpoints,
    question_intervals,
    question_scores,
    table1,
)
from sail.world import sample_records, split_of

# At least the largest train sample the notebooks draw (00_tour: captioner_steps * batch_size = 6,400 at
# seed 0); a smaller draw is a prefix of this one (`sample_records`).
TRAIN_SAMPLE = 8000


def _perfect(row) -> str:
    answer = row["answer"]
    return answer.strip("[]").split(",")[0].strip(" '") if answer.startswith("[") else answer


@pytest.fixture(scope="module")
def suite():
    return {name: build_benchmark(name, 24, seed=0) for name in WORLD_BENCHMARKS}


def test_suite_has_two_benchmarks_per_group_each_with_a_metric_and_a_tile_limit():
    for group in GROUPS:
        assert sum(spec.group == group for spec in WORLD_BENCHMARKS.values()) >= 2
    for spec in WORLD_BENCHMARKS.values():
        assert spec.metric in {"vqa_accuracy", "anls", "relaxed_accuracy", "choice", "pope", "hallusion"}
        assert spec.max_tiles >= 1


def test_benchmarks_are_deterministic_and_use_only_test_records(suite):
    assert [r["question"] for r in build_benchmark("WorldVQA", 24, seed=0)] == [
        r["question"] for r in suite["WorldVQA"]
    ]
    train = sample_records("train", TRAIN_SAMPLE, seed=0)
    cards = sample_records("train", 2000, seed=0, card_fraction=1.0)
    checked = check_no_train_overlap(suite, train + cards)
    assert all(n > 0 for n in checked.values())
    for name, rows in suite.items():
        assert all(split_of(r) == "test" for r in benchmark_records(name, rows, seed=0))
        assert all(not str(r["record_id"]).startswith("train") for r in rows)
    leaked = {"WorldVQA": [{**suite["WorldVQA"][0], "record_id": train[5]["id"]}]}
    with pytest.raises(ValueError, match="train sample"):
        check_no_train_overlap(leaked, train)


def test_a_dev_suite_comes_from_the_validation_split_only():
    dev = load_benchmarks(n=8, seed=0, names=["WorldVQA", "WorldDocVQA"], split="validation")
    assert all(split_of(r) == "validation" for name, rows in dev.items() for r in benchmark_records(name, rows, seed=0))
    assert all(str(r["record_id"]).startswith("validation") for rows in dev.values() for r in rows)


def test_perfect_answers_score_100_and_blank_answers_less(suite):
    for name, rows in suite.items():
        assert score_benchmark(name, rows, [_perfect(r) for r in rows])["score"] == pytest.approx(100)
        assert score_benchmark(name, rows, [""] * len(rows))["score"] < 100


def test_prompts_follow_vlmevalkit_styles(suite):
    row = suite["WorldRelationMCQ"][0]
    prompt = build_prompt(row, WORLD_BENCHMARKS["WorldRelationMCQ"])
    lines = prompt.split("\n")
    assert lines[0] == row["question"] and lines[1:5] == [f"{k}. {v}" for k, v in row["choices"].items()]
    assert lines[5] == MCQ_SUFFIX
    assert build_prompt(suite["WorldPOPE"][0], WORLD_BENCHMARKS["WorldPOPE"]).endswith(
        "Please answer yes or no. Answer the question using a single word or phrase."
    )
    assert benchmark_spec("MMBench_DEV_EN_V11").metric == "choice"
    assert benchmark_spec("DocVQA_VAL").max_tiles == 18
    assert benchmark_spec("HallusionBench").metric == "hallusion"


def test_tsv_round_trip_keeps_rows_and_scores(suite, tmp_path):
    for name, rows in suite.items():
        back = read_tsv(write_tsv(rows, tmp_path / f"{name}.tsv"))
        assert [r["question"] for r in back] == [r["question"] for r in rows]
        assert [r["choices"] for r in back] == [r["choices"] for r in rows]
        assert back[0]["image"].tobytes() == rows[0]["image"].tobytes()
        predictions = [_perfect(r) for r in rows[:-2]] + ["no idea", "no idea"]
        assert score_benchmark(name, back, predictions) == score_benchmark(name, rows, predictions)


# ----------------------------------------------------------------------------------------------
# Generation and the report, on a tiny saved model
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tokenizer, geometry):
    from sail.model import build_vlm, make_processor

    torch.manual_seed(0)
    model = build_vlm(geometry, tokenizer)
    with torch.no_grad():  # a random model that writes varied text, so comparisons mean something
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0, 0.2)
    path = tmp_path_factory.mktemp("tiny-vlm")
    model.save_pretrained(path)
    make_processor(tokenizer, geometry.tile_size, geometry.image_seq_length).save_pretrained(path)
    return path


@pytest.fixture
def one_thread():
    # Tiny matrices: one thread is fastest, and immune to a busy machine's oversubscription.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_hf_generator_matches_chat_generate_batched_and_restores_tiling(tiny_model_dir, one_thread, suite):
    from sail.model import generate

    generator = Generator("hf", tiny_model_dir, max_new_tokens=5, batch_size=3)
    images = [r["image"] for r in suite["WorldVQA"][:4]] + [r["image"] for r in suite["WorldDocVQA"][:2]]
    ours = generator.generate([image_messages(im, "Describe.") for im in images], max_tiles=1)
    reference = generate(generator.model, generator.processor, images, "Describe.", max_new_tokens=5)
    assert ours == reference and any(ours)
    prompts = [f"Question {i}?" for i in range(6)]
    batched = generator.generate([image_messages(im, p) for im, p in zip(images, prompts)], 6)
    single = Generator("hf", tiny_model_dir, max_new_tokens=5, batch_size=1)
    assert batched == single.generate([image_messages(im, p) for im, p in zip(images, prompts)], 6)
    assert generator.processor.image_processor.max_patches == 1  # the saved limit is back
    # the per-call tile limit reaches the model: a wide card is 2 tiles + a thumbnail at 6
    seen, original = [], generator.model.generate

    def recording(**inputs):
        seen.append(inputs["pixel_values"].shape[0])
        return original(**inputs)

    generator.model.generate = recording
    cards = [image_messages(im, "Describe.") for im in images[4:]]
    generator.generate(cards, max_tiles=1)
    generator.generate(cards, max_tiles=6)
    assert seen == [2, 6]


def test_lmdeploy_backend_says_clearly_what_is_missing(tiny_model_dir):
    generator = Generator("lmdeploy", tiny_model_dir)
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the real lmdeploy run belongs to a GPU check")
    with pytest.raises(BackendUnavailableError, match="lmdeploy"):
        generator.generate([image_messages(None, "hi")])
    with pytest.raises(ValueError, match="unknown backend"):
        Generator("vllm", tiny_model_dir)
    with pytest.raises(FileNotFoundError):
        Generator("hf", tiny_model_dir / "missing")


def test_world_tsv_is_read_and_scored_end_to_end_in_table1_layout(tiny_model_dir, one_thread, tmp_path):
    benchmarks = load_benchmarks("", n=4, seed=0)
    for name, rows in benchmarks.items():
        write_tsv(rows, tmp_path / f"{name}.tsv")
    from_tsv = load_benchmarks(tmp_path, n=0)
    assert set(from_tsv) == set(WORLD_BENCHMARKS)
    results = evaluate_checkpoints({"tiny": tiny_model_dir}, from_tsv, max_new_tokens=4)
    direct = evaluate(Generator("hf", tiny_model_dir, max_new_tokens=4), benchmarks)
    assert {n: r["score"] for n, r in results["tiny"].items()} == {n: r["score"] for n, r in direct.items()}
    table = table1(results)
    groups = list(dict.fromkeys(table.index.get_level_values("group")))
    assert groups == [*GROUPS, "Overall"]
    assert table.loc[("Overall", "average"), "tiny"] == pytest.approx(
        sum(r["score"] for r in results["tiny"].values()) / len(WORLD_BENCHMARKS)
    )


def test_the_pipeline_checkpoints_in_the_order_made_or_the_captioner_before_any(tmp_path):
    assert pipeline_checkpoints(tmp_path) == [tmp_path / "captioner"]  # named, to be reported missing
    (tmp_path / "sail-captioner").mkdir()
    (tmp_path / "sail-captioner" / "config.json").write_text("{}")
    assert pipeline_checkpoints(tmp_path) == [tmp_path / "sail-captioner"]  # notebook 02's, without 00's
    for name in ("sft-mixed", "pretrain-alignment", "sft-preference"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    (tmp_path / "sft-knowledge").mkdir()  # no config.json: not a checkpoint
    assert pipeline_checkpoints(tmp_path) == [
        tmp_path / n for n in ("pretrain-alignment", "sft-preference", "sft-mixed")
    ]


def test_question_intervals_pool_item_scores_and_yes_no_correctness(suite):
    rows = {"WorldVQA": suite["WorldVQA"][:4], "WorldPOPE": suite["WorldPOPE"][:6]}
    answers = {"WorldVQA": [_perfect(r) for r in rows["WorldVQA"][:2]] + ["zebra", "zebra"]}
    answers["WorldPOPE"] = [r["answer"] for r in rows["WorldPOPE"][:3]] + ["maybe"] * 3
    results = {
        "m": {name: {**score_benchmark(name, rows[name], answers[name]), "predictions": answers[name]} for name in rows}
    }
    scores = question_scores(results["m"], rows)
    assert scores.tolist() == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    interval = question_intervals(results, rows).loc["m"]
    assert interval["question score"] == 50.0 and interval["low"] < 50 < interval["high"] and interval["n"] == 10
    # WorldVQA: two golds and "zebra"; WorldPOPE: the golds Yes, No, No and "maybe"
    assert distinct_answers(results).to_dict() == {"m": {"WorldVQA": 3, "WorldPOPE": 3}}


def test_the_blind_column_averages_its_benchmarks_as_table1_averages_scores(suite):
    names = ("WorldVQA", "WorldRelationMCQ", "WorldCountVQA")
    results = {
        "m": {
            name: {**score_benchmark(name, suite[name], ["x"] * len(suite[name])), "predictions": ["x"]}
            for name in names
        }
    }
    table = table1(results)
    levels = {name: BlindLevel(score, "a", score, "a", (0.0, 1.0)) for name, score in zip(names, (10.0, 30.0, 60.0))}
    column = blind_column(table, levels)
    assert column.to_dict() == {
        ("General VQA", "WorldVQA"): 10.0,
        ("General VQA", "WorldRelationMCQ"): 30.0,
        ("Math & Knowledge", "WorldCountVQA"): 60.0,
        ("General VQA", "average"): 20.0,
        ("Math & Knowledge", "average"): 60.0,
        ("Overall", "average"): pytest.approx(100 / 3),  # over benchmarks, not the groups' (20 + 60) / 2
    }
    without = blind_column(table, {name: levels[name] for name in names[1:]})
    assert without.isna().to_dict() == {
        ("General VQA", "WorldVQA"): True,
        ("General VQA", "WorldRelationMCQ"): False,
        ("Math & Knowledge", "WorldCountVQA"): False,
        ("General VQA", "average"): True,
        ("Math & Knowledge", "average"): False,
        ("Overall", "average"): True,
    }
