"""What a model that never looks at the image scores (`sail.eval.blind`), and the verdict that a
model is above it only beyond noise and only with its own images."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from sail.eval.benchmarks import build_benchmark, score_benchmark
from sail.eval.blind import (
    GUESSING,
    MODEL_ANSWERS_TRIED,
    BlindLevel,
    above_chance,
    answer_losses,
    blind_levels,
    blind_overall,
    blind_question_score,
    exploiting_answers,
    image_reliance,
    swapped_images,
    versus_blind,
)
from sail.eval.report import findings, table1, verdict
from sail.eval.uncertainty import Interval

PADDED = "N" + " " * 14 + "a"  # the reference run's final model on WorldDocVQA: 16 characters


def _rows(golds, **extra) -> list[dict]:
    return [
        {"index": i, "question": "?", "choices": {}, "answer": str(gold), "category": "c", **extra}
        for i, gold in enumerate(golds)
    ]


def _counts(counts) -> list[dict]:
    """Counting rows, each with ten agreeing "human" answers, as WorldCountVQA stores them."""
    return _rows([[count] * 10 for count in counts])


def _results(name, rows, predictions) -> dict:
    return {**score_benchmark(name, rows, predictions), "predictions": list(predictions)}


DOC = _rows([["80"], ["86"], ["54"], ["Farm log"]])


def test_a_space_padded_string_beats_every_gold_answer_under_anls():
    # Without model answers the pad is as long as the longest gold (8): against "80" the collapsed
    # strings differ by 2 edits, divided by the raw length 8: 1 - 2/8 = 0.75 (three such rows);
    # against "Farm log" 1 - 8/8 = 0. Mean 56.25. The best gold, "80": 1 + 0.5 ("86": one edit
    # in two) + 0 + 0 = 37.5.
    level = blind_levels({"WorldDocVQA": DOC})["WorldDocVQA"]
    assert (level.answer, level.score) == (" " * 8, pytest.approx(56.25))
    assert level.question_items == (0.75, 0.75, 0.75, 0.0)
    # The model's own 16-character answers put a 16-space pad in play: 1 - 2/16 = 0.875 three
    # times and 1 - 8/16 = 0.5 (kept: the threshold keeps exactly 0.5), 78.125; the model's answer
    # itself scores 1 - 3/16 three times and 1 - 7/16 once, 75.0, second to the pad.
    level = blind_levels({"WorldDocVQA": DOC}, {"WorldDocVQA": [PADDED] * 4})["WorldDocVQA"]
    assert (level.answer, level.score) == (" " * 16, pytest.approx(78.125))
    assert (level.question_answer, level.question_score) == (" " * 16, pytest.approx(78.125))
    assert score_benchmark("WorldDocVQA", DOC, [PADDED] * 4)["score"] == pytest.approx(75.0)


def test_answers_that_score_only_through_padding_are_counted():
    # Collapsed, "N a" is 3 edits from "80" over 3 characters (0) and 7 from "farm log" over 8 (0.125 < 0.5).
    assert exploiting_answers("WorldDocVQA", DOC, [PADDED] * 4) == 4
    # "80" with trailing spaces still scores with them collapsed; "N" scores nothing either way.
    assert exploiting_answers("WorldDocVQA", DOC, ["80   ", "N", "N", "N"]) == 0
    # Option letters and yes/no are read token by token: whitespace earns nothing there.
    mcq = [dict(row, choices={"A": "x", "B": "y"}, answer="A") for row in _rows("AA")]
    assert exploiting_answers("WorldRelationMCQ", mcq, ["A      z", "A"]) == 0


def test_a_favourite_model_answer_is_a_blind_strategy_within_the_cap():
    # OCRBench credits any gold found inside the answer: one string holding three golds earns 75,
    # where a single gold earns 25.
    rows = _rows(["80", "86", "54", "93"])
    assert blind_levels({"OCRBench": rows})["OCRBench"].score == pytest.approx(25.0)
    level = blind_levels({"OCRBench": rows}, {"OCRBench": ["80 86 54", "no"]})["OCRBench"]
    assert (level.answer, level.score) == ("80 86 54", pytest.approx(75.0))
    # Only the commonest MODEL_ANSWERS_TRIED answers are tried: a string given once behind as
    # many more frequent ones is not.
    crowd = [f"word{i}" for i in range(MODEL_ANSWERS_TRIED) for _ in range(2)]
    level = blind_levels({"OCRBench": rows}, {"OCRBench": [*crowd, "80 86 54"]})["OCRBench"]
    assert level.score == pytest.approx(25.0)


def test_constants_and_guessing_by_the_benchmark_s_own_metric():
    suite = {name: build_benchmark(name, 24, seed=0) for name in ("WorldRelationMCQ", "WorldPOPE", "WorldHallusion")}
    # Four-option questions whose gold letters are A, A, A, B: a random letter gets 25, always "A" 75.
    mcq = [dict(row, answer=letter) for row, letter in zip(suite["WorldRelationMCQ"], "AAAB")]
    # Two "Yes" and two "No": always "Yes" has F1 2/3 (precision 1/2, recall 1), above a coin's;
    # per question either constant is right on half.
    pope = [dict(row, answer=answer) for row, answer in zip(suite["WorldPOPE"], ("Yes", "No", "Yes", "No"))]
    # Counts 3, 3, 0: always "3" is right on two of three.
    levels = blind_levels({"WorldRelationMCQ": mcq, "WorldPOPE": pope, "WorldCountVQA": _counts([3, 3, 0])})
    assert (levels["WorldRelationMCQ"].answer, levels["WorldRelationMCQ"].score) == ("A", pytest.approx(75.0))
    assert (levels["WorldPOPE"].answer, levels["WorldPOPE"].score) == ("Yes", pytest.approx(200 / 3))
    assert levels["WorldPOPE"].question_score == pytest.approx(50.0)
    assert levels["WorldPOPE"].question_items == (1.0, 0.0, 1.0, 0.0)
    assert (levels["WorldCountVQA"].answer, levels["WorldCountVQA"].score) == ("3", pytest.approx(200 / 3))
    # HallusionBench's figure and question groups are all-or-nothing: a constant fails every group
    # whose answers differ, where a coin sometimes gets a whole group right.
    hallusion = suite["WorldHallusion"]
    level = blind_levels({"WorldHallusion": hallusion})["WorldHallusion"]
    constants = [score_benchmark("WorldHallusion", hallusion, [a] * len(hallusion))["score"] for a in ("Yes", "No")]
    assert level.answer == GUESSING and level.score > max(constants)
    assert level.question_answer in ("Yes", "No") and level.question_score >= 50.0


def test_blind_question_score_pools_questions_and_overall_averages_benchmarks():
    levels = {
        "a": BlindLevel(10.0, "x", 25.0, "x", (1.0, 0.0, 0.0, 0.0)),
        "b": BlindLevel(40.0, "y", 100.0, "y", (1.0, 1.0)),
    }
    assert blind_question_score(levels) == pytest.approx(50.0)  # 3 right of 6, not (25 + 100) / 2
    assert blind_overall(levels) == pytest.approx(25.0)  # (10 + 40) / 2


# Counting answers as the reference run's sft-instruction gave them: '1' 73 times, '3' 23 times,
# over 32 questions each of counts 0, 1 and 3 (right on 28 + 9 = 37 of 96: 38.5 against 33.3).
COUNT_GOLDS = [0] * 32 + [1] * 32 + [3] * 32
COUNT_ANSWERS = ["1"] * 22 + ["3"] * 10 + ["1"] * 28 + ["3"] * 4 + ["1"] * 23 + ["3"] * 9


def test_a_few_points_over_the_blind_level_on_96_questions_is_within_noise():
    assert (COUNT_ANSWERS.count("1"), COUNT_ANSWERS.count("3")) == (73, 23)
    rows = _counts(COUNT_GOLDS)
    results = {"m": {"WorldCountVQA": _results("WorldCountVQA", rows, COUNT_ANSWERS)}}
    assert results["m"]["WorldCountVQA"]["score"] == pytest.approx(3700 / 96)
    levels = blind_levels({"WorldCountVQA": rows})
    assert (levels["WorldCountVQA"].answer, levels["WorldCountVQA"].score) == ("0", pytest.approx(100 / 3))
    interval = versus_blind(results, {"WorldCountVQA": rows}, levels)["m"]["WorldCountVQA"]
    assert interval.mean == pytest.approx(500 / 96)  # 37 right where "0" is wrong, 32 the reverse
    assert interval.low < 0 < interval.high
    needs_the_image = Interval(20.0, 10.0, 30.0, 0.95, 96)
    assert not above_chance(interval, needs_the_image)


def _colours(n: int) -> tuple[list[dict], list[str]]:
    golds = ["red", "blue", "green", "yellow"] * (n // 4)
    return _rows([[g] * 10 for g in golds]), golds


def test_swapped_images_decide_whether_a_score_above_the_blind_level_counts():
    rows, golds = _colours(20)
    benchmarks = {"WorldVQA": rows}
    results = {"m": {"WorldVQA": _results("WorldVQA", rows, golds)}}  # every answer right: 100 against 25
    levels = blind_levels(benchmarks)
    versus = versus_blind(results, benchmarks, levels)["m"]
    assert versus["WorldVQA"].mean == pytest.approx(75.0) and versus["WorldVQA"].low > 0
    # The same answers with every image swapped: they come from the questions alone.
    same = verdict(results["m"], {"WorldVQA": _results("WorldVQA", rows, golds)}, benchmarks, levels, versus)
    row = same.loc["WorldVQA"]
    assert (row["swapped difference"], row["swapped low"], row["swapped high"]) == (0.0, 0.0, 0.0)
    assert not row["above chance"]
    # Wrong once the images are swapped: the answers read them.
    wrong = {"WorldVQA": _results("WorldVQA", rows, golds[1:] + golds[:1])}
    flipped = verdict(results["m"], wrong, benchmarks, levels, versus)
    row = flipped.loc["WorldVQA"]
    assert row["swapped score"] == 0.0 and row["swapped difference"] == pytest.approx(100.0)
    assert row["above chance"] and row["distinct answers"] == 4 and row["exploiting answers"] == 0
    table = table1(results)
    said = findings(results, benchmarks, table, levels, 1.0, {"m": versus}, flipped, "m")
    assert "`m` is above its blind level beyond noise on 1 of 1 benchmarks (WorldVQA)" in said["final"]
    said = findings(results, benchmarks, table, levels, 1.0, {"m": versus}, same, "m")
    assert said["final"].startswith("`m` is above its blind level beyond noise on none of the 1 benchmarks")
    assert "beyond noise" not in findings(results, benchmarks, table, levels, 1.0)["blind"]


def _image(colour: str) -> Image.Image:
    return Image.new("RGB", (8, 8), colour)


def test_swapped_images_give_each_question_the_next_different_image_of_its_benchmark():
    a, b, c = _image("red"), _image("green"), _image("blue")
    rows = [dict(row, image=image) for row, image in zip(_rows("wxyz"), (a, a, b, c))]
    same = [dict(row, image=a) for row in _rows("wx")]
    several = [dict(row, image=images) for row, images in zip(_rows("wx"), ([a, b], [c, a]))]
    swapped = swapped_images({"one": rows, "single": same, "multi": several})
    # the second question shares the first's image, so both take the next different one
    assert [row["image"] for row in swapped["one"]] == [b, b, c, a]
    assert [row["answer"] for row in swapped["one"]] == ["w", "x", "y", "z"]
    assert [row["image"] for row in swapped["single"]] == [a, a]  # nothing else to show
    assert [row["image"] for row in swapped["multi"]] == [[c, a], [a, b]]  # whole image lists move
    assert rows[0]["image"] is a  # the rows themselves are untouched


def test_answer_losses_are_each_question_s_own_and_image_reliance_pairs_them(tokenizer, geometry, processor):
    from sail.model import build_vlm, conversation, encode_conversations

    torch.manual_seed(0)
    model = build_vlm(geometry, tokenizer)
    rows = build_benchmark("WorldVQA", 6, seed=0)[::2] + build_benchmark("WorldDocVQA", 2, seed=0)
    benchmarks = {"WorldVQA": rows[:3], "WorldDocVQA": rows[3:]}
    batched = answer_losses(model, processor, benchmarks, batch_size=2)  # padded batches, cut across benchmarks
    from sail.eval.benchmarks import benchmark_spec, build_prompt, gold_text

    alone = []
    for name, items in benchmarks.items():
        for row in items:
            messages = conversation(build_prompt(row, benchmark_spec(name, items)), gold_text(row["answer"]))
            batch = encode_conversations(processor, [row["image"]], [messages])
            batch.pop("num_tokens")
            with torch.no_grad():
                alone.append(float(model(**batch).loss))
    assert batched.tolist() == pytest.approx(alone, rel=1e-4)
    reliance = image_reliance(model, processor, benchmarks, batch_size=4)
    assert reliance["own images"] == pytest.approx(sum(alone) / len(alone), rel=1e-4)
    assert reliance["image gain"] == pytest.approx(reliance["swapped images"] - reliance["own images"])
    assert reliance["low"] <= reliance["image gain"] <= reliance["high"]
    by_benchmark = reliance["by benchmark"]
    assert list(by_benchmark) == ["WorldVQA", "WorldDocVQA"]
    assert by_benchmark["WorldVQA"]["own images"] == pytest.approx(sum(alone[:3]) / 3, rel=1e-4)
    assert by_benchmark["WorldDocVQA"]["own images"] == pytest.approx(sum(alone[3:]) / 2, rel=1e-4)
    swapped = answer_losses(model, processor, swapped_images(benchmarks), batch_size=2)
    assert by_benchmark["WorldDocVQA"]["image gain"] == pytest.approx(
        float(swapped[3:].mean()) - sum(alone[3:]) / 2, abs=1e-4
    )
