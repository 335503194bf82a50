"""SFT in miniature (sail.sft): the world's three tiers, the judges, and the evaluation arithmetic."""

from __future__ import annotations

import ast
import json
import math
import random

import numpy as np
import pytest
from conftest import world_pool
from PIL import Image

from sail.data.mixture import read_mixture
from sail.eval.benchmarks import (
    WORLD_BENCHMARKS,
    build_benchmark,
    build_prompt,
    check_no_train_overlap,
    score_benchmark,
)
from sail.eval.report import question_scores
from sail.sft.data import TIERS, eval_prompt, reasoned_answer, short_answer, write_world_sft
from sail.sft.experiment import (
    against_blind,
    answer_profile,
    answer_quotes,
    answer_table,
    halved_mixture,
    incremental,
    overall_interval,
    rank_correlation,
    ranking,
    stage_shares,
    suite_samples,
)
from sail.sft.judge import ChatJudge, RulesJudge, parse_scores
from sail.world import sample_records, split_of
from sail.world.questions import general_questions, math_questions, ocr_questions, pope_questions, pope_statistics


@pytest.fixture(scope="module")
def tiers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sft")
    records = world_pool(folder / "pool", 45)
    metas = write_world_sft(folder / "pool", folder / "sft", seed=0)
    rows = {}
    for tier, meta in metas.items():
        rows[tier] = []
        for name, entry in json.loads(meta.read_text()).items():
            for line in (meta.parent / entry["annotation"]).read_text().splitlines():
                rows[tier].append({**json.loads(line), "source": name})
    return {"folder": folder, "records": records, "metas": metas, "rows": rows}


def _answers(row: dict) -> list[str]:
    return [turn["value"] for turn in row["conversations"] if turn["from"] == "gpt"]


def _image(row: dict) -> str | None:
    image = row.get("image")
    return image if isinstance(image, str) or image is None else image[0]


def test_tiers_use_disjoint_train_images_and_never_a_benchmark_record(tiers):
    images = {tier: {_image(r) for r in rows if _image(r)} for tier, rows in tiers["rows"].items()}
    assert all(images[t] for t in TIERS)
    assert not (images["knowledge"] & images["instruction"] or images["instruction"] & images["preference"])
    assert not images["knowledge"] & images["preference"]
    assert {split_of(r) for r in tiers["records"].values()} == {"train"}
    suite = {name: build_benchmark(name, 16) for name in WORLD_BENCHMARKS}
    assert check_no_train_overlap(suite, list(tiers["records"].values()))


def test_each_source_holds_its_format_group_and_the_tiers_differ_as_the_paper_says(tiers):
    for rows in tiers["rows"].values():
        assert all(r["source"].split("/", 1)[1] == r["format_group"] for r in rows)
    knowledge, instruction, preference = (tiers["rows"][t] for t in TIERS)
    # Knowledge: single turns, single-hop (difficulty 1), short answers, some text-only facts
    assert all(len(_answers(r)) == 1 and r["difficulty"] == [1] for r in knowledge)
    assert all(len(_answers(r)[0].split()) <= 3 for r in knowledge if r["format_group"] != "captioning")
    assert any("image" not in r and r["facts"] == [] for r in knowledge)
    # Instruction: multi-turn conversations and options to choose from
    assert any(len(_answers(r)) > 1 for r in instruction)
    assert any(r["format_group"] == "closed-form VQA" for r in instruction)
    # Preference: hard questions; half the answers reasoned in steps, ending on the short answer
    assert all(min(r["difficulty"]) >= 2 for r in preference)
    reasoned = [r for r in preference if _answers(r)[0].startswith("Step 1:")]
    assert 0.3 < len(reasoned) / len(preference) < 0.7  # the other half asked in the short form
    assert all(" Step 3: " in _answers(r)[0] and "Answer: " in _answers(r)[0] for r in reasoned)


def test_a_reasoned_answer_ends_on_the_gold_and_names_the_option():
    record = {"kind": "card", "card": {"title": "Farm log", "table": [["moon", 4], ["cake", 11]]}}
    question = {
        "question": "In the table, what is the sum of the values of moon and cake?",
        "answer": "C",
        "choices": {"A": "12", "B": "14", "C": "15", "D": "9"},
        "record": record,
    }
    answer = reasoned_answer(question, random.Random(0))
    assert answer == (
        "Step 1: The card reads: title Farm log ; moon 4 ; cake 11. "
        "Step 2: The question asks: In the table, what is the sum of the values of moon and cake? "
        "Step 3: 15, which is option C. Answer: C"
    )
    assert short_answer({"answer": ["red"] * 10}) == "red"


def test_meta_files_read_back_as_mixtures_with_text_only_samples(tiers):
    for tier, meta in tiers["metas"].items():
        samples = read_mixture(meta, seed=0)
        assert len(samples) == len(tiers["rows"][tier])
    knowledge = read_mixture(tiers["metas"]["knowledge"], seed=0)
    assert any(s.image_paths == () for s in knowledge)


def test_halving_a_group_halves_its_sources_only(tiers, tmp_path):
    metas = {"instruction": tiers["metas"]["instruction"]}
    whole = halved_mixture(metas, None, tmp_path / "whole.meta.json", seed=0)
    half = halved_mixture(metas, "captioning", tmp_path / "half.meta.json", seed=0)
    count = lambda samples, group: sum(s.source == f"instruction/{group}" for s in samples)  # noqa: E731
    assert count(half, "captioning") == round(count(whole, "captioning") / 2)
    assert count(half, "yes/no") == count(whole, "yes/no") > 0
    assert json.loads((tmp_path / "half.meta.json").read_text())["instruction/captioning"]["repeat_time"] == 0.5


# --- judges -----------------------------------------------------------------------------


def test_rules_judge_hand_computed():
    row = {
        "image": "a.png",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat colour is the circle?"},
            {"from": "gpt", "value": "red"},
            {"from": "human", "value": "And the big one?"},
            {"from": "gpt", "value": "the big red circle"},
        ],
        "difficulty": [1, 3],
        "facts": ["red", "circle", "blue", "square"],
    }
    judged = RulesJudge().judge(row)
    assert judged.difficulty == 3  # mean generator difficulty 2 -> 1 + 2 x (2 - 1)
    assert judged.complexity == pytest.approx(1 + math.log2(1 + 2.5) / 2 + 1 / 2)  # 2.5 words a turn, 2 turns
    assert judged.relevance == 3  # 2 of 4 facts named -> 1 + 4 x 1/2
    text_only = {"conversations": row["conversations"][:2], "difficulty": [1], "facts": []}
    assert RulesJudge().judge(text_only).relevance == 1


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("difficulty: 4\ncomplexity: 2/5\nrelevance - 5", (4, 2, 5)),
        ("**Difficulty**: 3\n**Complexity**: 8/10\n**Relevance**: 9", (3, 1 + 7 * 4 / 9, None)),
        ("I cannot rate this.", (None, None, None)),
        ("difficulty complexity relevance: 2", (None, None, 2)),
    ],
)
def test_chat_replies_parse_per_criterion(reply, expected):
    scores = parse_scores(reply)
    for name, want in zip(("difficulty", "complexity", "relevance"), expected):
        assert math.isnan(scores[name]) if want is None else scores[name] == pytest.approx(want)


class ScriptedVLM:
    """Answers the rubric by a rule we can check, and records what it was shown."""

    def __init__(self):
        self.seen = []

    def ask(self, prompt, image=None):
        self.seen.append((prompt, image))
        if "Step 1" in prompt:
            return "difficulty: 5\ncomplexity: 5\nrelevance: 4"
        return "no idea"


def test_each_judge_names_itself_and_what_it_reads():
    rules = RulesJudge()
    assert (rules.name, rules.reads) == (
        "rules",
        "the world generator's metadata (question difficulty, the image's facts) and the answers' length and turns",
    )
    served = ScriptedVLM()
    served.model = "Qwen2-VL-72B-Instruct"
    assert ChatJudge(served).name == "Qwen2-VL-72B-Instruct"
    assert ChatJudge(ScriptedVLM()).name == "ScriptedVLM"  # a client without a served model: its kind
    assert ChatJudge(served).reads == "the samples' text and first image"
    assert RulesJudge.reads_generator and not ChatJudge(served).reads_generator  # what makes Tc testable


def test_chat_judge_sends_the_conversation_and_its_first_image(tmp_path):
    Image.new("RGB", (6, 4), "red").save(tmp_path / "a.png")
    rows = [
        {
            "image": ["a.png", "b.png"],
            "conversations": [{"from": "human", "value": "<image><image>\nq"}, {"from": "gpt", "value": "Step 1: x"}],
        },
        {"conversations": [{"from": "human", "value": "How many sides?"}, {"from": "gpt", "value": "4"}]},
    ]
    vlm = ScriptedVLM()
    first, second = ChatJudge(vlm).score(rows, tmp_path)
    assert (first.difficulty, first.complexity, first.relevance) == (5, 5, 4)
    assert all(math.isnan(v) for v in (second.difficulty, second.complexity, second.relevance))
    assert second.raw == "no idea"
    assert "human: <image><image>\nq\ngpt: Step 1: x" in vlm.seen[0][0]
    assert vlm.seen[0][1].size == (6, 4) and vlm.seen[1][1] is None


# --- evaluation arithmetic --------------------------------------------------------------


def test_question_scores_take_items_and_yes_no_correctness_in_order():
    benchmarks = {"WorldVQA": [{}, {}], "WorldPOPE": [{"answer": "yes"}, {"answer": "no"}, {"answer": "no"}]}
    results = {
        "WorldVQA": {"details": {"items": [1.0, 0.3]}, "predictions": ["red", "blue"]},
        "WorldPOPE": {"details": {"Overall": {}}, "predictions": ["Yes.", "yes", "No, there is not."]},
    }
    assert question_scores(results, benchmarks).tolist() == [1.0, 0.3, 1.0, 0.0, 1.0]


def test_incremental_keeps_what_helps_or_costs_at_most_the_tolerance():
    scores = {("a",): 50.0, ("a", "b"): 49.5, ("a", "b", "c"): 47.0, ("a", "b", "d"): 52.0}
    asked = []

    def scored(names):
        asked.append(tuple(names))
        return {"question score": scores[tuple(names)]}

    kept, rows = incremental(["a", "b", "c", "d"], scored, tolerance=1.0)
    assert kept == ["a", "b", "d"]  # b costs 0.5 <= 1 (kept); c costs 2.5 (dropped); d helps
    assert asked == [("a",), ("a", "b"), ("a", "b", "c"), ("a", "b", "d")]
    assert [r["kept"] for r in rows] == [True, True, False, True]


def test_stage_shares_split_by_largest_remainder_and_never_empty_a_stage():
    shares = {"knowledge": 21.0, "instruction": 12.0, "preference": 3.5}
    assert stage_shares(256, shares) == {"knowledge": 147, "instruction": 84, "preference": 25}  # 147.3, 84.2, 24.5
    assert stage_shares(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    with pytest.raises(ValueError, match="2 samples leave a stage empty"):
        stage_shares(2, shares)
    # in whole batches of 16: 16 units -> 9.2, 5.3, 1.5 -> 9, 5, 2 (the largest remainder)
    assert stage_shares(256, shares, unit=16) == {"knowledge": 144, "instruction": 80, "preference": 32}
    with pytest.raises(ValueError, match="100 samples are not a whole number of units of 16"):
        stage_shares(100, shares, unit=16)


def test_sft_asks_each_question_kind_with_the_suffix_its_benchmark_asks_it_with():
    records = sample_records("train", 40, seed=0) + sample_records("train", 20, seed=0, card_fraction=1.0)
    statistics = pope_statistics(records)
    asked = [
        q
        for r in records
        for q in general_questions(r, 0) + ocr_questions(r, 0) + math_questions(r, 0) + pope_questions(r, statistics, 0)
    ]
    existence = [q for q in asked if q["category"] == "existence"]
    assert {short_answer(q) for q in existence} == {"yes", "no"}  # the kind that got POPE's suffix
    for q in asked:
        assert eval_prompt(q) == build_prompt(q, WORLD_BENCHMARKS[q["benchmark"]]), q["category"]


def test_suite_samples_ask_the_suite_s_prompts_and_answer_with_its_gold(tmp_path):
    benchmarks = {name: build_benchmark(name, 3) for name in ("WorldVQA", "WorldMathMCQ")}
    samples = suite_samples(benchmarks, tmp_path)
    assert [s.source for s in samples] == ["WorldVQA"] * 3 + ["WorldMathMCQ"] * 3
    vqa, mcq = benchmarks["WorldVQA"][0], benchmarks["WorldMathMCQ"][0]
    prompt = build_prompt(vqa, WORLD_BENCHMARKS["WorldVQA"])
    gold = ast.literal_eval(vqa["answer"])[0]  # ten identical "human" answers, stored as a list literal
    assert samples[0].messages == (("user", f"<image>\n{prompt}"), ("assistant", gold))
    assert samples[3].messages[1] == ("assistant", mcq["answer"]) and mcq["answer"] in "ABCD"
    assert Image.open(samples[3].image_path).size == mcq["image"].size


# --- what a run's answers are worth: Overall's interval, the answer profile, rankings -------


def _scored(benchmarks: dict, predictions: dict) -> dict:
    return {
        name: {**score_benchmark(name, rows, predictions[name]), "predictions": predictions[name]}
        for name, rows in benchmarks.items()
    }


@pytest.fixture(scope="module")
def vqa_and_pope():
    return {name: build_benchmark(name, 24) for name in ("WorldVQA", "WorldPOPE")}


def test_an_answer_wrong_everywhere_gives_overall_an_interval_of_width_zero(vqa_and_pope):
    results = _scored(vqa_and_pope, {name: ["zebra"] * len(rows) for name, rows in vqa_and_pope.items()})
    interval = overall_interval(results, vqa_and_pope)
    assert (interval.mean, interval.low, interval.high, interval.n) == (0.0, 0.0, 0.0, 48)


def test_overall_interval_resamples_headlines_that_are_not_means_and_holds_the_mean(vqa_and_pope):
    pope = vqa_and_pope["WorldPOPE"]
    assert {row["answer"] for row in pope} == {"Yes", "No"}
    # one answer everywhere, yet POPE's F1 moves with the share of "yes" questions drawn
    results = _scored(vqa_and_pope, {"WorldVQA": ["zebra"] * 24, "WorldPOPE": ["Yes"] * 24})
    interval = overall_interval(results, vqa_and_pope)
    assert results["WorldPOPE"]["score"] > 0
    assert interval.mean == pytest.approx(results["WorldPOPE"]["score"] / 2)  # VQA scores 0 in every draw
    assert interval.low < interval.mean < interval.high
    # half the VQA answers right: both headlines vary, the interval still holds Overall
    right = [ast.literal_eval(row["answer"])[0] if i % 2 else "zebra" for i, row in enumerate(vqa_and_pope["WorldVQA"])]
    results = _scored(vqa_and_pope, {"WorldVQA": right, "WorldPOPE": [row["answer"] for row in pope]})
    interval = overall_interval(results, vqa_and_pope)
    assert interval.mean == pytest.approx((50 + 100) / 2)
    assert interval.low < interval.mean < interval.high < 100
    assert overall_interval(results, vqa_and_pope, seed=1) != interval  # seeded: another seed, other draws
    assert overall_interval(results, vqa_and_pope) == interval


def test_a_mean_headline_resampled_from_its_items_is_the_re_scored_headline(vqa_and_pope):
    rows = vqa_and_pope["WorldVQA"]
    predictions = [ast.literal_eval(row["answer"])[0] if i % 3 else "zebra" for i, row in enumerate(rows)]
    results = _scored({"WorldVQA": rows}, {"WorldVQA": predictions})
    draws = np.random.default_rng(0).integers(0, len(rows), size=(200, len(rows)))
    rescored = [score_benchmark("WorldVQA", [rows[i] for i in d], [predictions[i] for i in d])["score"] for d in draws]
    interval = overall_interval(results, {"WorldVQA": rows})
    assert (interval.low, interval.high) == pytest.approx(tuple(np.percentile(rescored, [2.5, 97.5])))


def test_answer_profile_counts_stripped_answers_and_quotes_the_ones_given_by_prior():
    results = {
        "WorldPOPE": {"predictions": ["Yes", " Yes", "Yes\n", "No", "Yes."]},
        "WorldVQA": {"predictions": ["red", "blue", "green", "red"]},
    }
    profile = answer_profile(results)
    assert profile == {
        "WorldPOPE": {"distinct": 3, "commonest": "Yes", "count": 3, "n": 5},
        "WorldVQA": {"distinct": 3, "commonest": "red", "count": 2, "n": 4},
    }
    assert answer_quotes(profile) == ["WorldPOPE 'Yes' ×3 of 5", "WorldVQA 'red' ×2 of 4"]
    assert answer_quotes(profile, share=0.6) == ["WorldPOPE 'Yes' ×3 of 5"]
    assert answer_table([{"run": "mixed", "answers": profile}]) == {
        "mixed": {"WorldPOPE": "'Yes' ×3 of 5", "WorldVQA": "'red' ×2 of 4"}
    }


def test_rankings_and_their_spearman_by_either_aggregate():
    quick = [
        {"tier": "knowledge", "question score": 11.6, "Overall": 12.1},
        {"tier": "instruction", "question score": 9.4, "Overall": 14.0},
        {"tier": "preference", "question score": 0.0, "Overall": 16.0},
    ]
    larger = [
        {"tier": "knowledge", "question score": 12.2, "Overall": 20.0},
        {"tier": "instruction", "question score": 10.0, "Overall": 11.0},
        {"tier": "preference", "question score": 2.2, "Overall": 5.0},
    ]
    assert ranking(quick, "question score") == ["knowledge", "instruction", "preference"]
    assert ranking(quick, "Overall") == ["preference", "instruction", "knowledge"]
    assert rank_correlation(quick, larger, "question score") == pytest.approx(1.0)
    assert rank_correlation(quick, larger, "Overall") == pytest.approx(-1.0)
    level = [{**row, "Overall": 0.0} for row in quick]
    assert math.isnan(rank_correlation(level, larger, "Overall"))  # all tied: no ranking to compare


def test_a_row_against_its_blind_levels_reads_both_aggregates_and_its_one_sided_answers():
    row = {
        "run": "mixed D=8",
        "Overall": 14.66,
        "Overall low": 12.04,
        "Overall high": 17.35,
        "blind Overall": 31.2,
        "question score": 16.2,
        "low": 13.0,
        "high": 19.5,
        "blind question score": 31.5,
        "answers": {
            "WorldPOPE": {"distinct": 2, "commonest": "Yes", "count": 79, "n": 96},
            "WorldVQA": {"distinct": 9, "commonest": "red", "count": 20, "n": 96},  # under half: not quoted
        },
    }
    assert against_blind(row) == (
        "mixed D=8 Overall 14.7 [12.0, 17.4] (blind 31.2), question score 16.2 [13.0, 19.5] (blind 31.5); "
        "one answer to at least half the questions of 1 of 2 benchmarks (WorldPOPE 'Yes' ×79 of 96)"
    )
    assert against_blind(row, "mixed").startswith("mixed Overall 14.7")
