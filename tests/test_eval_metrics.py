"""Scoring rules of `sail.eval.metrics`, pinned to VLMEvalKit's behaviour.

Every expected value below was worked out by hand from VLMEvalKit's code (commit e8e78f05:
vqa_eval.py, smp/misc.py, matching_util.py, yorn.py, image_vqa.py) and cross-checked by running
its functions on the same inputs.
"""

import pytest

from sail.eval import (
    anls,
    extract_choice,
    hallusionbench_metrics,
    normalize_answer,
    ocrbench_score,
    pope_metrics,
    relaxed_accuracy,
    vqa_accuracy,
    yes_no,
)

# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Two dogs.", "2 dogs"),
        ("\tThe  Two\nDogs ", "2 dogs"),  # tabs/newlines -> spaces, articles dropped
        ("None", "0"),  # "none" is in the number-word map
        ("an apple", "apple"),
        ("dont", "don't"),  # contraction repaired
        ("Im", "im"),  # table key "Im" has a capital: never fires
        ("somebody'd", "somebodyd"),  # backwards entry of the VQA table, kept
        ("3.5 kg.", "3.5 kg"),  # a period next to a digit stays
        ("e.g.", "eg"),
        ("x-ray", "x ray"),  # '-' touching no space -> replaced by a space
        ("x - ray", "x ray"),  # '-' next to a space -> deleted
        ("x-ray 1,000", "xray 1000"),  # a digit-comma-digit anywhere deletes all marks
        ("red,blue", "red blue"),
        ("What's up?", "what's up"),  # apostrophes are not punctuation here
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_normalize_answer_removes_at_most_32_periods():
    # VLMEvalKit passes re.UNICODE (32) where Pattern.sub expects `count`.
    assert normalize_answer("." * 40) == "." * 8


# --------------------------------------------------------------------------- TextVQA / VQAv2

TEN = ["2 dogs", "two dogs", "dogs", "dogs", "dogs", "dogs", "dogs", "dogs", "dogs", "dogs"]


def test_vqa_accuracy_leave_one_out():
    # "Two dogs." -> "2 dogs", equal to 2 golds after normalisation.  Those two each see one other
    # match (1/3), the eight others see two (2/3): (2/3 + 16/3) / 10 = 0.6.
    assert vqa_accuracy("Two dogs.", TEN) == pytest.approx(0.6)
    three = ["cat"] * 3 + ["dog"] * 7  # 3 * 2/3 + 7 * 1 -> 0.9
    assert vqa_accuracy("Cat", three) == pytest.approx(0.9)
    assert vqa_accuracy("cat", ["cat"] * 4 + ["dog"] * 6) == pytest.approx(1.0)
    assert vqa_accuracy("bird", TEN) == 0.0


def test_vqa_accuracy_single_gold_is_always_zero():
    # No "other" answers to match: VLMEvalKit's vqa_score gives 0 even for an exact answer.
    assert vqa_accuracy("cat", ["cat"]) == 0.0


def test_vqa_accuracy_reads_list_literal_strings():
    # TSV files store several answers as a Python list literal.
    assert vqa_accuracy("cat", "['cat', 'cat', 'cat', 'cat']") == pytest.approx(1.0)


# --------------------------------------------------------------------------- ANLS


def test_anls_rules():
    assert anls("  Hello   WORLD ", ["hello world"]) == 1.0  # case and whitespace ignored
    assert anls("abcdefghix", ["abcdefghij"]) == pytest.approx(0.9)
    assert anls("abcxy", ["abcde"]) == pytest.approx(0.6)  # d = 2/5
    assert anls("abxyz", ["abcde"]) == 0.0  # 1 - 3/5 = 0.4 < 0.5
    assert anls("abxy", ["abcd"]) == 0.5  # exactly 0.5 is kept
    assert anls("abcd", ["zzzz", "abcd"]) == 1.0  # best gold


def test_anls_divides_by_raw_length():
    # Edit distance 1 on the stripped strings, but the length is that of the raw prediction (8).
    assert anls("abce\n\n\n\n", ["abcd"]) == pytest.approx(1 - 1 / 8)


# --------------------------------------------------------------------------- ChartQA


@pytest.mark.parametrize(
    "pred, golds, expected",
    [
        ("4.8", ["5"], 1.0),  # 4 % off
        ("4.7", ["5"], 0.0),  # 6 % off
        ("5.25", ["5"], 1.0),  # 5 % exactly
        ("50%", ["0.5"], 1.0),  # '%' divides by 100
        ("50%", ["50%"], 1.0),
        ("50", ["50%"], 0.0),  # 50 vs 0.5
        ("0", ["0"], 1.0),
        ("0.0", ["0"], 0.0),  # a gold of 0 is never numeric: string compare
        (" Yes ", ["yes"], 1.0),  # prediction stripped, case ignored
        ("yes", [" yes"], 0.0),  # gold not stripped
        ("12", ["x", "12.3"], 1.0),  # best gold
    ],
)
def test_relaxed_accuracy(pred, golds, expected):
    assert relaxed_accuracy(pred, golds) == expected


# --------------------------------------------------------------------------- OCRBench

HME = "Handwritten Mathematical Expression Recognition"


def test_ocrbench_score():
    assert ocrbench_score("The sign says HELLO there", ["hello"], "Scene Text-centric VQA") == 1.0
    assert ocrbench_score("hello world", ["hello\nworld"], "Regular Text Recognition") == 1.0
    assert ocrbench_score("goodbye", ["hello", "bye"], "Regular Text Recognition") == 1.0
    assert ocrbench_score("nothing", ["hello"], "Regular Text Recognition") == 0.0
    assert ocrbench_score("x", [""], "Regular Text Recognition") == 1.0  # empty gold matches


def test_ocrbench_hme_removes_spaces_and_keeps_case():
    assert ocrbench_score("Result: \\frac{a}{b}", ["\\frac { a } { b }"], HME) == 1.0
    assert ocrbench_score("x^{2}", ["X^{2}"], HME) == 0.0  # case-sensitive
    assert ocrbench_score("x^{2}", ["X^{2}"], "Digit String Recognition") == 1.0
    assert ocrbench_score("ab", ["a\tb"], HME) == 0.0  # tabs are not removed


# --------------------------------------------------------------------------- multiple choice

PETS = {"A": "dog", "B": "cat", "C": "fish", "D": "cow"}


@pytest.mark.parametrize(
    "pred, expected",
    [
        ("The answer is (B) cat", "B"),
        ("B", "B"),
        ("(C)", "C"),
        ("**D**.", "D"),
        ("cat", "B"),  # option text only
        ("It is a fish", "C"),  # 'a' is not a letter token (letters are case-sensitive)
        ("dog or cat", None),  # two option texts: ambiguous
        ("A or B", None),  # two letters, no text match
        ("(b)", None),  # lower-case letters are not option tokens
        # The letter must first appear among the last four tokens; the text rule then fails too,
        # because the answer is more than twice as long as all option texts together.
        ("B is what I would pick after some thought", None),
        ("Z", None),  # VLMEvalKit's 'Z'
        ("Z cat", None),  # 'Z' stops the search before the text rule
        ("Cannot determine the answer, maybe cat", None),  # refusal sentence
        ("The answer is bird", "B"),  # phrase regex without a word boundary
        ("A cow", "A"),  # the article "A" is read as option A
    ],
)
def test_extract_choice(pred, expected):
    assert extract_choice(pred, PETS) == expected


# A refusal offered as an option, as some multiple-choice sets add one.
WITH_REFUSALS = {"A": "dog", "B": "cat", "C": "Cannot determine the answer", "D": "None of the above"}


@pytest.mark.parametrize(
    "pred, expected",
    [
        ("C", "C"),  # the letter of the refusal option is an answer like any other
        # VLMEvalKit's refusal sentences end the search as 'Z' (unresolved, scored wrong) before any
        # letter or option text is looked at, even when the sentence is an option's own text.
        ("Cannot determine the answer", None),
        ("C. Cannot determine the answer", None),
        ("cannot determine the answer", "C"),  # the refusal check is case-sensitive; the text rule is not
        ("None of the above", "D"),  # not a refusal sentence: read by its option text
        ("D. None of the above", "D"),
        ("Z. None of the above", None),  # a 'Z' token without any option letter: unresolved
        ("the answer is b", "B"),  # the phrase regex ignores case; letter tokens do not
    ],
)
def test_extract_choice_reads_refusals_as_vlmevalkit_does(pred, expected):
    assert extract_choice(pred, WITH_REFUSALS) == expected


def test_an_api_failure_message_skips_the_letters_but_not_the_option_texts():
    shapes = {"A": "a red square shape", "B": "a blue circle shape"}
    # "A" would be a letter token; the failure message makes VLMEvalKit skip letters (False, not 'Z')
    assert extract_choice("Failed to obtain answer via API: A", shapes) is None
    assert extract_choice("Failed to obtain answer via API: a blue circle shape", shapes) == "B"


def test_extract_choice_validates_and_does_not_mutate():
    choices = {"A": "Red", "B": "Blue"}
    assert extract_choice("blue", choices) == "B"
    assert choices == {"A": "Red", "B": "Blue"}
    with pytest.raises(ValueError, match="capital letters"):
        extract_choice("a", {"a": "x"})


# --------------------------------------------------------------------------- yes / no


@pytest.mark.parametrize(
    "pred, expected",
    [
        ("Yes, there is.", "yes"),
        ("No.", "no"),
        ("NO", "no"),
        ("yes!", "yes"),
        ("Yes/No", None),  # '/' becomes a space: both words present
        ("There is no dog, yes", None),
        ("nope", None),
        ("I don't know", None),
    ],
)
def test_yes_no(pred, expected):
    assert yes_no(pred) == expected


# --------------------------------------------------------------------------- POPE


def test_pope_metrics_hand_computed():
    answers = ["Yes", "Yes", "No", "No", "Yes", "No", "Yes"]
    preds = ["Yes", "No", "Yes, it is.", "no", "maybe", "I cannot tell", "yes"]
    cats = ["adversarial"] * 4 + ["popular"] * 3
    got = pope_metrics(answers, preds, cats)
    assert set(got) == {"Overall", "adversarial", "popular"}
    # Overall: TP=2 (items 1, 7), FP=1 (item 3), FN=2 (item 2, and item 5 whose unparseable
    # answer counts as "no"); item 6 (unparseable, gold No) is wrong for accuracy only.
    o = got["Overall"]
    assert o["acc"] == pytest.approx(100 * 3 / 7)
    assert o["precision"] == pytest.approx(100 * 2 / 3)
    assert o["recall"] == pytest.approx(50.0)
    assert o["f1"] == pytest.approx(100 * 4 / 7)
    assert got["adversarial"] == pytest.approx({"acc": 50.0, "precision": 50.0, "recall": 50.0, "f1": 50.0})
    assert got["popular"] == pytest.approx({"acc": 100 / 3, "precision": 100.0, "recall": 50.0, "f1": 200 / 3})


def test_pope_comma_categories_count_twice_in_overall():
    # The first item belongs to two splits and is counted once per split in "Overall" too:
    # Overall rows are TP, TP, FP -> precision 2/3 and acc 2/3 (not 1/2).
    got = pope_metrics(["Yes", "No"], ["yes", "yes"], ["adversarial,popular", "random"])
    assert got["Overall"]["precision"] == pytest.approx(200 / 3)
    assert got["Overall"]["acc"] == pytest.approx(200 / 3)
    assert got["adversarial"]["acc"] == got["popular"]["acc"] == 100.0
    assert got["random"] == {"acc": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_pope_rejects_non_yes_no_gold():
    with pytest.raises(ValueError, match="yes/no gold"):
        pope_metrics(["maybe"], ["yes"], ["random"])


# --------------------------------------------------------------------------- HallusionBench


def _hb(index, answer, prediction):
    category, l2 = index.split("_")[0], "_".join(index.split("_")[:2])
    return {"index": index, "category": category, "l2-category": l2, "answer": answer, "prediction": prediction}


HB_ITEMS = [
    # index = <category>_<l2>_<x>_<set>_<figure>_<question>
    _hb("VD_illusion_0_0_0_0", "Yes", "Yes"),
    _hb("VD_illusion_0_0_0_1", "No", "No, it is not."),
    _hb("VD_illusion_0_0_1_0", "No", "Yes"),
    _hb("VD_illusion_0_0_1_1", "Yes", "Hard to say"),  # unparseable -> wrong
    _hb("VS_chart_0_0_0_0", "Yes", "yes"),
    _hb("VS_chart_0_0_1_0", "No", "no"),
    _hb("VD_figure_0_0_0_0", "Yes", "No"),  # same ids as the first, other l2
]


def test_hallusionbench_hand_computed():
    got = hallusionbench_metrics(HB_ITEMS)
    assert set(got) == {"Overall", "VD", "VS", "VD_illusion", "VS_chart", "VD_figure"}
    # Figures (l2, set, figure): illusion/0/0 ok, illusion/0/1 not, chart/0/0 ok, chart/0/1 ok,
    # figure/0/0 not -> 3/5.  Questions (l2, set, question): illusion q0 {1st, 3rd} not,
    # illusion q1 not, chart q0 {both} ok, figure q0 not -> 1/4.  Grouping by category instead
    # of l2-category would merge the VD_figure item into the illusion groups (fAcc 2/4).
    assert got["Overall"] == pytest.approx({"aAcc": 400 / 7, "fAcc": 60.0, "qAcc": 25.0})
    assert got["VD"] == pytest.approx({"aAcc": 40.0, "fAcc": 100 / 3, "qAcc": 0.0})
    assert got["VS"] == pytest.approx({"aAcc": 100.0, "fAcc": 100.0, "qAcc": 100.0})
    assert got["VD_illusion"] == pytest.approx({"aAcc": 50.0, "fAcc": 50.0, "qAcc": 0.0})
    assert got["VD_figure"] == pytest.approx({"aAcc": 0.0, "fAcc": 0.0, "qAcc": 0.0})


def test_hallusionbench_ids_and_errors():
    # Short indices fall back to explicit ids; VLMEvalKit's own indices always have six fields.
    items = [
        dict(_hb("VS_chart_0_0_0_0", "Yes", "yes"), index=7, set_id=0, figure_id=0, question_id=0),
        dict(_hb("VS_chart_0_0_0_0", "No", "yes"), index=8, set_id=0, figure_id=1, question_id=0),
    ]
    got = hallusionbench_metrics(items)["Overall"]
    assert got == pytest.approx({"aAcc": 50.0, "fAcc": 50.0, "qAcc": 0.0})
    with pytest.raises(ValueError, match="six"):
        hallusionbench_metrics([_hb("VS_chart_0_0_0_0", "Yes", "yes") | {"index": "VS_1"}])
    with pytest.raises(ValueError, match="l2-category"):
        hallusionbench_metrics([{"index": "VS_chart_0_0_0_0", "category": "VS", "answer": "Yes", "prediction": "yes"}])
