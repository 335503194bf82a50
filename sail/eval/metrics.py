"""Benchmark scoring rules, reproduced from VLMEvalKit so numbers compare with its leaderboards.

Every function here mirrors one scoring path of VLMEvalKit (open-compass/VLMEvalKit, read at
commit e8e78f05, Aug 2026), including the quirks that change scores.  The quirks are kept on
purpose: a "fixed" rule would give numbers that no longer line up with published tables.  Each
docstring names the VLMEvalKit function it follows and lists the quirks that matter.

Where VLMEvalKit would crash or silently score garbage on input its own data files never carry
(an empty gold list, a yes/no gold that is neither yes nor no), these functions raise
`ValueError` instead; on every input VLMEvalKit's files do carry, they give its numbers.
"""

from __future__ import annotations

import ast
import math
import re
import string
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

__all__ = [
    "anls",
    "extract_choice",
    "gold_list",
    "hallusionbench_metrics",
    "normalize_answer",
    "ocrbench_score",
    "pope_metrics",
    "relaxed_accuracy",
    "vqa_accuracy",
    "yes_no",
]


# --------------------------------------------------------------------------------------------
# Answer normalisation (vlmeval/smp/misc.py: process_punctuation;
#                       vlmeval/dataset/utils/vqa_eval.py: _process_digit_article, process_answer)
# --------------------------------------------------------------------------------------------

# Characters that VLMEvalKit treats as punctuation (note: no apostrophe, colon or period here;
# periods have their own rule below).
_PUNCTUATION = ';/[]"{}()=+\\_-><@`,?!'
_DIGIT_COMMA_DIGIT = re.compile(r"\d,\d")
_LONE_PERIOD = re.compile(r"(?<!\d)\.(?!\d)")
# VLMEvalKit passes re.UNICODE (== 32) as the third positional argument of Pattern.sub, which
# is `count`: at most 32 periods are removed from one answer.
_MAX_PERIODS_REMOVED = int(re.UNICODE)

_NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = frozenset({"a", "an", "the"})

# VQA contraction repair, written as {repaired form: spellings that get rewritten to it}.
# Only spellings that can actually occur are listed: VLMEvalKit lower-cases the text before the
# lookup, so its entries with capitals ("Im", "Ive", "Id've", "I'dve") never fire, and entries
# that map a word to itself ("let's", "she's") do nothing.  "somebody'd" -> "somebodyd" is a
# backwards entry in the original VQA table; it is kept.
_CONTRACTION_SOURCES: dict[str, tuple[str, ...]] = {
    "ain't": ("aint",),
    "aren't": ("arent",),
    "can't": ("cant",),
    "could've": ("couldve",),
    "couldn't": ("couldnt",),
    "couldn't've": ("couldn'tve", "couldnt've"),
    "didn't": ("didnt",),
    "doesn't": ("doesnt",),
    "don't": ("dont",),
    "hadn't": ("hadnt",),
    "hadn't've": ("hadnt've", "hadn'tve"),
    "hasn't": ("hasnt",),
    "haven't": ("havent",),
    "he'd": ("hed",),
    "he'd've": ("hed've", "he'dve"),
    "he's": ("hes",),
    "how'd": ("howd",),
    "how'll": ("howll",),
    "how's": ("hows",),
    "isn't": ("isnt",),
    "it'd": ("itd",),
    "it'd've": ("itd've", "it'dve"),
    "it'll": ("itll",),
    "ma'am": ("maam",),
    "mightn't": ("mightnt",),
    "mightn't've": ("mightnt've", "mightn'tve"),
    "might've": ("mightve",),
    "mustn't": ("mustnt",),
    "must've": ("mustve",),
    "needn't": ("neednt",),
    "not've": ("notve",),
    "o'clock": ("oclock",),
    "oughtn't": ("oughtnt",),
    "'ow's'at": ("ow's'at", "'ows'at", "'ow'sat"),
    "shan't": ("shant",),
    "she'd've": ("shed've", "she'dve"),
    "should've": ("shouldve",),
    "shouldn't": ("shouldnt",),
    "shouldn't've": ("shouldnt've", "shouldn'tve"),
    "somebodyd": ("somebody'd",),
    "somebody'd've": ("somebodyd've", "somebody'dve"),
    "somebody'll": ("somebodyll",),
    "somebody's": ("somebodys",),
    "someone'd": ("someoned",),
    "someone'd've": ("someoned've", "someone'dve"),
    "someone'll": ("someonell",),
    "someone's": ("someones",),
    "something'd": ("somethingd",),
    "something'd've": ("somethingd've", "something'dve"),
    "something'll": ("somethingll",),
    "that's": ("thats",),
    "there'd": ("thered",),
    "there'd've": ("thered've", "there'dve"),
    "there're": ("therere",),
    "there's": ("theres",),
    "they'd": ("theyd",),
    "they'd've": ("theyd've", "they'dve"),
    "they'll": ("theyll",),
    "they're": ("theyre",),
    "they've": ("theyve",),
    "'twas": ("twas",),
    "wasn't": ("wasnt",),
    "we'd've": ("wed've", "we'dve"),
    "we've": ("weve",),
    "weren't": ("werent",),
    "what'll": ("whatll",),
    "what're": ("whatre",),
    "what's": ("whats",),
    "what've": ("whatve",),
    "when's": ("whens",),
    "where'd": ("whered",),
    "where's": ("wheres",),
    "where've": ("whereve",),
    "who'd": ("whod",),
    "who'd've": ("whod've", "who'dve"),
    "who'll": ("wholl",),
    "who's": ("whos",),
    "who've": ("whove",),
    "why'll": ("whyll",),
    "why're": ("whyre",),
    "why's": ("whys",),
    "won't": ("wont",),
    "would've": ("wouldve",),
    "wouldn't": ("wouldnt",),
    "wouldn't've": ("wouldnt've", "wouldn'tve"),
    "y'all": ("yall",),
    "y'all'll": ("yall'll", "y'allll"),
    "y'all'd've": ("yall'd've", "y'alld've", "y'all'dve"),
    "you'd": ("youd",),
    "you'd've": ("youd've", "you'dve"),
    "you'll": ("youll",),
    "you're": ("youre",),
    "you've": ("youve",),
}
_CONTRACTIONS = {src: fixed for fixed, sources in _CONTRACTION_SOURCES.items() for src in sources}


def _strip_punctuation(text: str) -> str:
    """VLMEvalKit's `process_punctuation` (vlmeval/smp/misc.py).

    Each punctuation mark is deleted when it touches a space somewhere in the *original* text
    (or when the text contains a digit-comma-digit anywhere), and replaced by a space otherwise;
    then periods not next to a digit are deleted (at most 32 of them, see above).
    """
    has_digit_comma = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for mark in _PUNCTUATION:
        spaced = (mark + " ") in text or (" " + mark) in text
        out = out.replace(mark, "" if (spaced or has_digit_comma) else " ")
    return _LONE_PERIOD.sub("", out, count=_MAX_PERIODS_REMOVED)


def _words_digits_articles(text: str) -> str:
    """VLMEvalKit's `_process_digit_article`: lower-case, number words -> digits, drop articles,
    repair contractions, re-join on single spaces.  Number words are mapped before the article
    test, and contractions are repaired after it, in one pass."""
    words = [_NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in _ARTICLES]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words)


def normalize_answer(text) -> str:
    """VLMEvalKit's `process_answer` (vlmeval/dataset/utils/vqa_eval.py).

    Newlines and tabs become spaces, the ends are stripped, punctuation is handled as in
    `process_punctuation`, then words are lower-cased, number words ("none" included, which
    becomes "0") turned into digits, articles dropped and contractions repaired.

    Quirks kept: a digit-comma-digit anywhere ("1,000") makes *every* punctuation mark in the
    answer vanish instead of becoming a space; only the first 32 stray periods are removed.
    """
    return _normalized(str(text))


@lru_cache(maxsize=1 << 16)
def _normalized(text: str) -> str:
    """`normalize_answer` of a string, remembered: scoring a benchmark normalises the same gold
    answers again for every prediction (and a blind level tries many predictions)."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return _words_digits_articles(_strip_punctuation(text))


# --------------------------------------------------------------------------------------------
# Open-ended VQA scores (vlmeval/dataset/utils/vqa_eval.py: process_line, hit_calculate)
# --------------------------------------------------------------------------------------------


def gold_list(answers) -> list[str]:
    """The gold answers as VLMEvalKit's `process_line` sees them.

    A string that reads as a Python list literal (how VLMEvalKit's TSV files store several
    answers) is unpacked; any other string is a single answer.  Items are turned into strings.
    """
    if isinstance(answers, str):
        golds = list(_parsed_golds(answers))
    elif isinstance(answers, Iterable):
        golds = list(answers)
    else:
        golds = [answers]
    if not golds:
        raise ValueError("no gold answers given")
    return [str(g) for g in golds]


@lru_cache(maxsize=1 << 14)
def _parsed_golds(answers: str) -> tuple:
    """A gold string unpacked as `gold_list` does, remembered (parsing a list literal is slow and
    every prediction scored against a row parses it again)."""
    try:
        parsed = ast.literal_eval(answers)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        parsed = None
    return tuple(parsed) if isinstance(parsed, list) else (answers,)


def vqa_accuracy(prediction, answers) -> float:
    """TextVQA / VQAv2 accuracy: VLMEvalKit's `process_line(method='vqa_score')` followed by
    `hit_calculate` for TextVQA (the mean of the per-gold matches).

    Prediction and golds go through `normalize_answer`.  For each gold answer, the number of
    *other* golds equal to the prediction is counted and capped: min(1, count / 3); the score is
    the mean over golds (leave-one-out).  With ten golds of which two equal the prediction:
    (2 * 1/3 + 8 * 2/3) / 10 = 0.6; three give 0.9 and four or more give 1.0.

    Quirk kept: with a single gold answer there are no "other" answers, so the score is always 0.
    """
    pred = normalize_answer(prediction)
    golds = [normalize_answer(g) for g in gold_list(answers)]
    total = 0.0
    for i in range(len(golds)):
        others_matching = sum(1 for j, g in enumerate(golds) if j != i and g == pred)
        total += min(1.0, others_matching / 3)
    return total / len(golds)


def _levenshtein(a: str, b: str) -> int:
    if len(a) > len(b):
        a, b = b, a
    previous = list(range(len(a) + 1))
    for j, cb in enumerate(b, start=1):
        current = [j]
        for i, ca in enumerate(a, start=1):
            if ca == cb:
                current.append(previous[i - 1])
            else:
                current.append(1 + min(previous[i - 1], previous[i], current[-1]))
        previous = current
    return previous[-1]


def _anls_distance(gold: str, prediction: str) -> float:
    """VLMEvalKit's `anls_compute`: normalised edit distance between the lower-cased,
    whitespace-collapsed strings, divided by the length of the longer *raw* string."""
    g = " ".join(gold.strip().lower().split())
    p = " ".join(prediction.strip().lower().split())
    length = max(len(gold.upper()), len(prediction.upper()))
    return 0.0 if length == 0 else _levenshtein(g, p) / length


def anls(prediction, answers, threshold: float = 0.5) -> float:
    """DocVQA / InfoVQA ANLS: VLMEvalKit's `process_line(method='anls')` (`anls_compute`) and
    the DocVQA/InfoVQA branch of `hit_calculate`.

    The best gold is the one with the smallest normalised edit distance d; the score is 1 - d,
    or 0 when 1 - d < threshold (so exactly 0.5 is kept).  Comparison is case-insensitive with
    runs of whitespace collapsed; the prediction is not otherwise normalised.

    Quirk kept: the distance is divided by the length of the *raw* strings (before stripping and
    collapsing whitespace), so trailing spaces or newlines in a prediction shrink d.
    """
    pred = str(prediction)
    best = min(_anls_distance(g, pred) for g in gold_list(answers))
    score = 1.0 - best
    return 0.0 if score < threshold else score


def _relaxed_float(text: str) -> float | None:
    try:
        if text.endswith("%"):
            return float(text.rstrip("%")) / 100.0
        return float(text)
    except ValueError:
        return None


def _relaxed_correct(target: str, prediction: str, tolerance: float = 0.05) -> bool:
    """VLMEvalKit's `relaxed_correctness` (from pix2struct)."""
    p, t = _relaxed_float(prediction), _relaxed_float(target)
    if p is not None and t:
        return abs(p - t) / abs(t) <= tolerance
    return prediction.lower() == target.lower()


def relaxed_accuracy(prediction, answers) -> float:
    """ChartQA relaxed accuracy: VLMEvalKit's `process_line(method='relaxed_accuracy')`
    (`relaxed_correctness`) and the ChartQA branch of `hit_calculate` (best over golds).

    Numbers within 5 % relative error of the gold count as correct; anything else needs a
    case-insensitive exact match.  A trailing '%' divides by 100 ("50%" -> 0.5).

    Quirks kept: the prediction is stripped but the gold is not; "50" does not match a gold of
    "50%" (50 vs 0.5); a gold of 0 is never treated as a number (exact string match only);
    anything Python's float() accepts counts as a number ("1e3", "inf", "1_000").
    """
    pred = str(prediction).strip()
    return float(max(_relaxed_correct(g, pred) for g in gold_list(answers)))


# --------------------------------------------------------------------------------------------
# OCRBench (vlmeval/dataset/image_vqa.py: OCRBench.evaluate; vlmeval/dataset/utils/ocrbench.py)
# --------------------------------------------------------------------------------------------

HME_CATEGORY = "Handwritten Mathematical Expression Recognition"


def ocrbench_score(prediction, answers, category) -> float:
    """One OCRBench item, as in VLMEvalKit's `OCRBench.evaluate`: 1.0 when any gold occurs as a
    substring of the prediction, else 0.0.

    For the "Handwritten Mathematical Expression Recognition" category both strings are stripped
    and have newlines and spaces removed, and the match is case-sensitive.  For all other
    categories both are lower-cased and stripped, with newlines turned into spaces.

    Quirks kept: only ' ' and '\\n' are removed for HME (an inner tab stays); an empty gold
    matches every prediction.
    """
    pred = str(prediction)
    for gold in gold_list(answers):
        if category == HME_CATEGORY:
            g = gold.strip().replace("\n", " ").replace(" ", "")
            p = pred.strip().replace("\n", " ").replace(" ", "")
        else:
            g = gold.lower().strip().replace("\n", " ")
            p = pred.lower().strip().replace("\n", " ")
        if g in p:
            return 1.0
    return 0.0


# --------------------------------------------------------------------------------------------
# Multiple choice (vlmeval/utils/matching_util.py: can_infer, can_infer_option, can_infer_text)
# --------------------------------------------------------------------------------------------

_REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
_API_FAILURE = "Failed to obtain answer via API"
_OPTION_SEPARATORS = ".()[],:;!*#{}"
_ANSWER_IS = re.compile(r"(?:correct\s+)?answer\s+is\s+\**([ABCD])\**", re.IGNORECASE)
_NO_ANSWER = object()  # VLMEvalKit's 'Z': "the model gave no usable answer"


def _option_by_letter(answer: str, letters: list[str]):
    """VLMEvalKit's `can_infer_option`: returns a letter, `_NO_ANSWER`, or None (not found)."""
    if _API_FAILURE in answer:
        return None
    if any(refusal in answer for refusal in _REFUSALS):
        return _NO_ANSWER
    spaced = answer
    for sep in _OPTION_SEPARATORS:
        spaced = spaced.replace(sep, " ")
    tokens = spaced.split()
    named = [letter for letter in letters if letter in tokens]
    if len(named) == 1:
        # The letter must first appear among the last four tokens.
        if tokens.index(named[0]) > len(tokens) - 5:
            return named[0]
    elif not named and "Z" in tokens:
        return _NO_ANSWER
    found = _ANSWER_IS.search(answer)
    if found and found.group(1).upper() in letters:
        return found.group(1).upper()
    return None


def _option_by_text(answer: str, choices: Mapping[str, str]) -> str | None:
    """VLMEvalKit's `can_infer_text`: the only option whose text occurs in the answer."""
    answer = answer.lower()
    if len(answer) > 2 * sum(len(str(text)) for text in choices.values()):
        return None
    hits = [letter for letter, text in choices.items() if str(text).lower() in answer]
    return hits[0] if len(hits) == 1 else None


def extract_choice(prediction, choices: Mapping[str, str]) -> str | None:
    """The option letter a free-form answer names: VLMEvalKit's `can_infer` (exact-matching
    policy, as used for MMBench, MMStar, AI2D and other multiple-choice sets).

    First by letter (`can_infer_option`): ".()[],:;!*#{}" become spaces and the answer is split
    on whitespace; if exactly one option letter appears as a token, and its first occurrence is
    among the last four tokens, that letter wins.  Otherwise a "(correct) answer is X" phrase
    (X in A-D, any case) is looked for.  Failing that, by text (`can_infer_text`): if the answer
    is at most twice as long as all option texts together and exactly one option text occurs
    in it (case-insensitive substring), that option wins.

    Returns None where VLMEvalKit returns 'Z' or False.  Quirks kept: a bare "Z" token, or one
    of VLMEvalKit's refusal sentences, ends the search with None even when an option text would
    match; "The answer is bird" names option B (the phrase regex has no word boundary, added to
    VLMEvalKit in PR #1552); a lone "A" used as an article can be taken for option A (the
    quantifier check only runs with VLMEvalKit's VERBOSE env var set, and is not reproduced).
    """
    for letter in choices:
        if not (isinstance(letter, str) and len(letter) == 1 and letter in string.ascii_uppercase):
            raise ValueError(f"choice keys must be single capital letters, got {letter!r}")
    answer = str(prediction)
    by_letter = _option_by_letter(answer, list(choices))
    if by_letter is _NO_ANSWER:
        return None
    if by_letter is not None:
        return by_letter
    return _option_by_text(answer, choices)


# --------------------------------------------------------------------------------------------
# Yes / no benchmarks (vlmeval/dataset/utils/yorn.py; vlmeval/dataset/image_yorn.py)
# --------------------------------------------------------------------------------------------


def yes_no(prediction) -> str | None:
    """VLMEvalKit's `YOrN_Extraction`: lower-case, `process_punctuation`, split on whitespace;
    "yes" when the word "yes" occurs and "no" does not, "no" for the reverse, else None
    (VLMEvalKit's 'Unknown').  "Yes/no" -> None; "Yes, there is." -> "yes"; "nope" -> None."""
    words = _strip_punctuation(str(prediction).lower()).split()
    has_yes, has_no = "yes" in words, "no" in words
    if has_yes and not has_no:
        return "yes"
    if has_no and not has_yes:
        return "no"
    return None


def _gold_yes_no(answer) -> str:
    """A yes/no gold as "yes"/"no".  VLMEvalKit's files store "Yes"/"No" and compare them with
    its extraction by plain equality; other spellings of yes/no are accepted here, anything
    else is refused rather than silently scored as never matched."""
    text = str(answer).strip().lower()
    if text not in ("yes", "no"):
        raise ValueError(f"yes/no gold answer expected, got {answer!r}")
    return text


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _yes_no_scores(golds: Sequence[str], preds: Sequence[str | None]) -> dict[str, float]:
    """Accuracy, precision, recall and F1 (x100) as VLMEvalKit's `POPE_rating` computes them:
    an unparseable prediction is wrong for accuracy and counts as "no" for the others; a zero
    denominator gives 0."""
    tp = sum(1 for g, p in zip(golds, preds) if g == "yes" and p == "yes")
    fp = sum(1 for g, p in zip(golds, preds) if g == "no" and p == "yes")
    fn = sum(1 for g, p in zip(golds, preds) if g == "yes" and p != "yes")
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    acc = sum(1 for g, p in zip(golds, preds) if g == p) / len(golds)
    return {"acc": acc * 100, "precision": precision * 100, "recall": recall * 100, "f1": f1 * 100}


def pope_metrics(
    answers: Sequence,
    predictions: Sequence,
    categories: Sequence | None = None,
) -> dict[str, dict[str, float]]:
    """POPE scores: VLMEvalKit's `ImageYORNDataset.evaluate` (exact matching) + `POPE_rating`.

    Returns {"Overall": {...}, <category>: {...}, ...}, each with acc, precision, recall and f1
    in percent ("yes" is the positive class).  Predictions are raw model outputs, read with
    `yes_no`.

    Quirks kept: an unparseable prediction counts as wrong for accuracy but as a "no" for
    precision/recall/F1 (so it can add a true negative there); a category string holding
    several names separated by commas ("adversarial,popular") puts the item in each of those
    splits *and* counts it once per name in "Overall" (no whitespace is stripped around the
    names); items without a category count only in "Overall".
    """
    if not (len(answers) == len(predictions) and (categories is None or len(categories) == len(answers))):
        raise ValueError("answers, predictions and categories must have the same length")
    if len(answers) == 0:
        raise ValueError("no items to score")
    rows: list[tuple[str, str | None, str | None]] = []
    for i, (gold, pred) in enumerate(zip(answers, predictions)):
        g, p = _gold_yes_no(gold), yes_no(pred)
        cat = None if categories is None else categories[i]
        names = cat.split(",") if isinstance(cat, str) else [None]
        rows.extend((g, p, name) for name in names)
    result = {"Overall": _yes_no_scores([r[0] for r in rows], [r[1] for r in rows])}
    for name in sorted({r[2] for r in rows if r[2] is not None}):
        sub = [r for r in rows if r[2] == name]
        result[name] = _yes_no_scores([r[0] for r in sub], [r[1] for r in sub])
    return result


def _hallusion_ids(item: Mapping) -> tuple[str, str, str]:
    """(set_id, figure_id, question_id): VLMEvalKit takes fields 3, 4 and 5 of the `index`
    split on '_' (e.g. "VS_chart_0_1_0_1" -> set 1, figure 0, question 1), overwriting any
    such columns.  Explicit `set_id`/`figure_id`/`question_id` are used only when the index
    has fewer than six fields (VLMEvalKit would crash there)."""
    parts = str(item["index"]).split("_")
    if len(parts) >= 6:
        return parts[3], parts[4], parts[5]
    try:
        return str(item["set_id"]), str(item["figure_id"]), str(item["question_id"])
    except KeyError:
        raise ValueError(
            f"HallusionBench item {item['index']!r}: index needs six '_'-separated fields "
            "(..._<set>_<figure>_<question>) or explicit set_id/figure_id/question_id"
        ) from None


def _hallusion_split(rows: list[tuple[str, str, str, str, bool]]) -> dict[str, float]:
    """aAcc, fAcc, qAcc (x100) of one split, as the helpers inside `Hallusion_rating`."""
    by_figure: dict[str, list[bool]] = defaultdict(list)
    by_question: dict[str, list[bool]] = defaultdict(list)
    for l2, set_id, figure_id, question_id, ok in rows:
        by_figure[f"{l2}_{set_id}_{figure_id}"].append(ok)
        by_question[f"{l2}_{set_id}_{question_id}"].append(ok)

    def share(groups) -> float:
        return 100 * sum(all(v) for v in groups) / len(groups)

    return {
        "aAcc": share([[r[4]] for r in rows]),
        "fAcc": share(by_figure.values()),
        "qAcc": share(by_question.values()),
    }


def hallusionbench_metrics(items: Iterable[Mapping]) -> dict[str, dict[str, float]]:
    """HallusionBench scores: VLMEvalKit's `ImageYORNDataset.evaluate` (exact matching) +
    `Hallusion_rating`.

    `items` are dicts with `index`, `category` (VD/VS), `l2-category` (e.g. "VD_illusion"),
    `answer` ("Yes"/"No") and `prediction` (raw model output, read with `yes_no`).  The set,
    figure and question ids come from `index` (see `_hallusion_ids`).

    aAcc: share of questions answered right.  fAcc: share of (l2-category, set, figure) groups
    with every question right.  qAcc: share of (l2-category, set, question) groups — the same
    question asked of the figures of a set — with every answer right.  Splits: "Overall", each
    category and each l2-category (later names overwrite earlier ones if they collide, which
    VLMEvalKit's own data never does).

    Quirks kept: unparseable predictions are simply wrong; groups are keyed by l2-category, not
    category, so only the l2 name keeps VD and VS groups apart.  Items with a missing category
    are left out of that kind of split (VLMEvalKit would report an empty NaN row).
    """
    rows_by_item = []
    for item in items:
        try:
            category, l2 = item["category"], item["l2-category"]
            gold, pred = item["answer"], item["prediction"]
        except KeyError as err:
            raise ValueError(f"HallusionBench item {item.get('index')!r} lacks field {err}") from None
        set_id, figure_id, question_id = _hallusion_ids(item)
        ok = yes_no(pred) == _gold_yes_no(gold)
        rows_by_item.append((category, (str(l2), set_id, figure_id, question_id, ok)))
    if not rows_by_item:
        raise ValueError("no items to score")
    result = {"Overall": _hallusion_split([r for _, r in rows_by_item])}
    for pick in (lambda c, r: c, lambda c, r: r[0]):
        names = {pick(c, r) for c, r in rows_by_item}
        for name in sorted((n for n in names if not _is_missing(n)), key=str):
            sub = [r for c, r in rows_by_item if pick(c, r) == name]
            result[str(name)] = _hallusion_split(sub)
    return result
