"""Caption quality: exact scores against world records, a human-evaluation sheet, an LLM judge.

- `caption_quality`: per caption source, precision / recall / F1 of every element type the
  record-based scorer knows (`sail.world.score_captions`, micro-averaged) and the hallucination
  rate. The headline element types (`HEADLINE`): objects = colour-shape pairs, attributes =
  size-colour-shape triples, positions = object + cell, relations, text (quoted texts and card
  facts). In the spirit of CAPTURE, which matches the objects, attributes and relations a caption
  mentions against those of a reference.
- `blind_pair_f1`: what the same captions score without their images (against another image's
  record, or the best single caption given to every image): the level a captioner that ignores
  its image reaches, which any claim about captions must clear.
- `quality_plot`: grouped bars of one metric per element type, one bar per source.
- `shortfall_text`, `weakest_elements`, `caption_examples`: where a source falls short, written
  from the table; examples of every source's captions in full, as a markdown table.
- `human_eval_sheet`: for real data, which has no records, a CSV for human raters (image path,
  source, caption, and blank rubric columns), optionally blind; `read_human_eval` summarises it
  once filled.
- `judge`: the same rubric asked of a chat teacher (`Teacher.ask`), its answers parsed robustly.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from sail.manifest import atomic_write_text
from sail.prose import number, versus
from sail.world import score_captions
from sail.world.score import ELEMENT_TYPES

HEADLINE = {"objects": "pair", "attributes": "object", "positions": "position", "relations": "relation", "text": "text"}
RUBRIC_COLUMNS = ("accuracy_1to5", "detail_1to5", "hallucination_yes_no", "notes")
RUBRIC = """Rate the caption of this image on three criteria.
accuracy (1-5): 5 = everything it says is true of the image, 1 = mostly false.
detail (1-5): 5 = every object, its colour, size and position, the relations and all visible text are described,
1 = almost nothing is described.
hallucination (yes/no): yes if the caption mentions anything that is not in the image."""
JUDGE_PROMPT = (
    RUBRIC
    + """

Caption: "{caption}"

Answer in exactly this form:
accuracy: <1-5>
detail: <1-5>
hallucination: <yes|no>"""
)


# --- exact scores against the records -------------------------------------------------------


def caption_quality(captions_by_source: Mapping[str, Sequence[str]], records: Sequence[dict]) -> pd.DataFrame:
    """One row per source: `<type>_precision/_recall/_f1` for every element type, `hallucination_rate`, `n`.

    Each source's captions are aligned with `records` (same length, same order).
    """
    rows = {}
    for source, captions in captions_by_source.items():
        if len(captions) != len(records):
            raise ValueError(f"source {source!r}: {len(captions)} captions for {len(records)} records")
        rows[source] = score_captions(list(captions), list(records))
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "source"
    frame["n"] = frame["n"].astype(int)
    return frame


BLIND_CANDIDATES = 16  # the commonest distinct captions tried as the one caption given to every image


def blind_pair_f1(
    captions: Sequence[str], records: Sequence[dict], candidates: int = BLIND_CANDIDATES
) -> dict[str, float]:
    """Colour–shape pair F1 of `captions` as their images deserve ("own") and as a captioner that
    ignores its image would earn it: each caption against the next image's record ("rotated
    records", the last against the first), and the best of the `candidates` commonest distinct
    captions written for every image ("best constant caption"). "blind" is the higher of the two.

    A captioner that writes one caption whatever it sees scores its own pair F1 at this level; a
    captioner that describes each image scores above it, by how much it looked."""
    captions, records = list(captions), list(records)
    if len(captions) != len(records) or not records:
        raise ValueError(f"{len(captions)} captions for {len(records)} records: need as many, at least one")
    rotated = score_captions(captions, records[1:] + records[:1])["pair_f1"]
    commonest = [caption for caption, _ in Counter(captions).most_common(candidates)]
    constant = max(score_captions([caption] * len(records), records)["pair_f1"] for caption in commonest)
    return {
        "own": score_captions(captions, records)["pair_f1"],
        "rotated records": rotated,
        "best constant caption": constant,
        "blind": max(rotated, constant),
    }


def headline_table(quality: pd.DataFrame, metric: str = "f1") -> pd.DataFrame:
    """The headline element types under readable names (objects, attributes, ...), plus hallucination."""
    table = pd.DataFrame({name: quality[f"{kind}_{metric}"] for name, kind in HEADLINE.items()})
    table["hallucination_rate"] = quality["hallucination_rate"]
    return table


def quality_long(quality: pd.DataFrame) -> pd.DataFrame:
    """Long form: source, element (headline name or scorer type), metric (precision/recall/f1), value."""
    names = {kind: name for name, kind in HEADLINE.items()}
    rows = [
        {"source": source, "element": names.get(kind, kind), "metric": metric, "value": row[f"{kind}_{metric}"]}
        for source, row in quality.iterrows()
        for kind in ELEMENT_TYPES
        for metric in ("precision", "recall", "f1")
    ]
    return pd.DataFrame(rows)


def quality_plot(quality: pd.DataFrame, metric: str = "f1", *, elements: Sequence[str] = tuple(HEADLINE), ax=None):
    """Grouped bars: one group per element type, one bar per source; hallucination rate as its own group.

    Both share the 0-1 axis; a dashed line sets the hallucination group apart, and the axis label
    says which bars are the metric (higher is better) and which are the rate (lower is better).
    """
    long = quality_long(quality)
    frame = long[(long["metric"] == metric) & long["element"].isin(elements)]
    extra = pd.DataFrame(
        {
            "source": quality.index,
            "element": "hallucination rate",
            "metric": metric,
            "value": quality["hallucination_rate"].to_numpy(),
        }
    )
    frame = pd.concat([frame, extra], ignore_index=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.4 * (len(elements) + 1) + 3, 3.4))
    sns.barplot(frame, x="element", y="value", hue="source", ax=ax)
    name = {"f1": "F1", "precision": "precision", "recall": "recall"}.get(metric, metric)
    ax.axvline(len(elements) - 0.5, color="0.4", linestyle="--", linewidth=1)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(
        f"{name} against the record (higher is better)\nlast group: hallucination rate (lower is better)", fontsize=8
    )
    ax.set_xlabel("element type")
    images = int(quality["n"].iloc[0]) if "n" in quality and len(quality) else None
    on = f" on {images} held-out images" if images else ""
    ax.set_title(f"Caption {name} per element type against the record, and hallucination rate{on}", fontsize=10)
    ax.legend(title="caption source", fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.figure.tight_layout()
    return ax


def weakest_elements(headline: pd.DataFrame, source: str, reference: str = "teacher", k: int = 3) -> pd.DataFrame:
    """The `k` headline element types where `source` scores lowest (ties in `HEADLINE` order), beside `reference`."""
    row = headline.loc[source, list(HEADLINE)].astype(float)
    weakest = row.sort_values(kind="stable").index[:k]
    return pd.DataFrame({source: row[weakest], reference: headline.loc[reference, weakest].astype(float)})


def shortfall_text(headline: pd.DataFrame, source: str, reference: str = "teacher", k: int = 3) -> str:
    """Where `source` falls short, written from the headline table: its weakest element types by
    F1, each against `reference`'s, and its hallucination rate against `reference`'s."""
    weakest = weakest_elements(headline, source, reference, k)
    parts = [
        versus(f"{element} F1", values[source], values[reference], f"the {reference}")
        for element, values in weakest.iterrows()
    ]
    text = f"The weakest element types of the {source}: " + "; ".join(parts) + "."
    if "relations" in weakest.index and headline.loc[reference, "relations"] < 1:
        text += (
            f" (The {reference}'s own relation F1 is {number(headline.loc[reference, 'relations'])}: it names at "
            "most two relations per caption, so its relation recall is below 1 by design.)"
        )
    rate = headline["hallucination_rate"]
    text += " " + versus("Its hallucination rate", rate[source], rate[reference], f"the {reference}") + "."
    return text


def caption_examples(
    captions_by_source: Mapping[str, Sequence[str]], n: int = 4, ids: Sequence[str] | None = None
) -> str:
    """A markdown table of the first `n` captions of every source, in full (one row per image)."""
    sources = list(captions_by_source)
    n = min(n, *(len(c) for c in captions_by_source.values())) if sources else 0

    def cell(text) -> str:  # one line, markdown's special characters escaped ("$" would start maths)
        text = re.sub(r"([\\`*_|$])", r"\\\1", " ".join(str(text).split())).replace("<", "&lt;")
        return text or "(none)"

    head = ["image", *sources] if ids is not None else sources
    lines = ["| " + " | ".join(map(cell, head)) + " |", "|" + "---|" * len(head)]
    for i in range(n):
        cells = ([cell(ids[i])] if ids is not None else []) + [cell(captions_by_source[s][i]) for s in sources]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- human evaluation -----------------------------------------------------------------------


def _image_path(images_dir: Path, image_id: str) -> Path:
    matches = sorted(images_dir.glob(f"{glob_escape(image_id)}.*"))
    if not matches:
        raise FileNotFoundError(f"no image for id {image_id!r} in {images_dir}")
    return matches[0]


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def human_eval_sheet(
    path: str | os.PathLike,
    images_dir: str | os.PathLike,
    ids: Sequence[str],
    captions_by_source: Mapping[str, Sequence[str]],
    *,
    blind: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """Write a CSV for human raters: one row per (image, source), rubric columns left blank.

    Columns: item, image_path (the file `<images_dir>/<id>.<ext>`), source, caption, then
    accuracy_1to5, detail_1to5, hallucination_yes_no, notes. Each source's captions align with
    `ids`. With `blind=True` rows are shuffled and the source column holds codes (S1, S2, ...);
    the key goes to `<path stem>.key.json` beside the sheet, to keep away from raters.
    """
    path, images_dir = Path(path), Path(images_dir)
    for source, captions in captions_by_source.items():
        if len(captions) != len(ids):
            raise ValueError(f"source {source!r}: {len(captions)} captions for {len(ids)} ids")
    codes = {source: f"S{i + 1}" for i, source in enumerate(captions_by_source)}
    rows = [
        {
            "item": image_id,
            "image_path": str(_image_path(images_dir, image_id)),
            "source": codes[source] if blind else source,
            "caption": captions[i],
            **{column: "" for column in RUBRIC_COLUMNS},
        }
        for i, image_id in enumerate(ids)
        for source, captions in captions_by_source.items()
    ]
    if blind:
        random.Random(seed).shuffle(rows)
        atomic_write_text(
            path.with_name(path.stem + ".key.json"), json.dumps({v: k for k, v in codes.items()}, indent=2)
        )
    sheet = pd.DataFrame(rows, columns=["item", "image_path", "source", "caption", *RUBRIC_COLUMNS])
    atomic_write_text(path, sheet.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC))
    return sheet


def read_human_eval(path: str | os.PathLike) -> pd.DataFrame:
    """Mean accuracy, mean detail and hallucination rate per source of a filled sheet (blind codes decoded).

    Rows without ratings are ignored; a rating outside its range raises, naming the row.
    """
    path = Path(path)
    sheet = pd.read_csv(path, keep_default_na=False, dtype=str)
    key_path = path.with_name(path.stem + ".key.json")
    if key_path.exists():
        sheet["source"] = sheet["source"].map(json.loads(key_path.read_text()))
    rated = sheet[sheet["accuracy_1to5"].str.strip() != ""].copy()
    for column in ("accuracy_1to5", "detail_1to5"):
        rated[column] = pd.to_numeric(rated[column])
        bad = rated[~rated[column].between(1, 5)]
        if len(bad):
            raise ValueError(f"{column} outside 1-5 in row(s) {list(bad.index + 2)} of {path}")
    flags = rated["hallucination_yes_no"].map(parse_yes_no)
    if flags.isna().any():
        raise ValueError(
            f"hallucination_yes_no is not yes/no in row(s) {list(rated.index[flags.isna()] + 2)} of {path}"
        )
    rated["hallucination"] = flags.astype(float)
    summary = rated.groupby("source").agg(
        accuracy=("accuracy_1to5", "mean"),
        detail=("detail_1to5", "mean"),
        hallucination_rate=("hallucination", "mean"),
        n=("item", "size"),
    )
    return summary


# --- an LLM judge ---------------------------------------------------------------------------

_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0", "none"}


def parse_yes_no(text) -> bool | None:
    word = str(text).strip().strip(".*\"'").lower()
    return True if word in _YES else False if word in _NO else None


_RUBRIC_ECHO = re.compile(r"\(\s*\d\s*-\s*\d+\s*\)|\(\s*yes\s*/\s*no\s*\)", re.IGNORECASE)
_CAPTION_CRITERIA = ("accuracy", "detail", "hallucinat")


def score_after(name: str, text: str, criteria: Sequence[str] = _CAPTION_CRITERIA) -> float | None:
    """The first number after `name` on its line ("accuracy: 4", "**Accuracy** - 4/5", '"accuracy": 4',
    "accuracy score is 8 out of 10"), not reading past another of the rubric's `criteria`; another
    scale 1..k is mapped linearly onto 1..5."""
    not_another = rf"(?:(?!{'|'.join(criteria)})[^\d\n])"
    match = re.search(rf"{name}{not_another}{{0,25}}?(\d+(?:\.\d+)?)(?:\s*(?:/|out of)\s*(\d+))?", text, re.IGNORECASE)
    if not match:
        return None
    value, scale = float(match[1]), float(match[2]) if match[2] else 5.0
    if scale != 5.0 and scale > 1:
        value = 1 + (value - 1) * 4 / (scale - 1)
    return value if 1 <= value <= 5 else None


def parse_judgement(text: str) -> dict:
    """Accuracy and detail (1-5, NaN if absent or out of range) and hallucination (True/False/None) from a reply."""
    text = _RUBRIC_ECHO.sub(" ", text)  # "accuracy (1-5): 4" echoes the rubric's ranges
    accuracy, detail = score_after("accuracy", text), score_after("detail", text)
    match = re.search(r"hallucinat\w*\W{0,12}?(yes|no|true|false|none)\b", text, re.IGNORECASE)
    hallucination = parse_yes_no(match[1]) if match else None
    return {
        "accuracy": float("nan") if accuracy is None else accuracy,
        "detail": float("nan") if detail is None else detail,
        "hallucination": hallucination,
    }


def judge(
    teacher, items: Sequence, captions_by_source: Mapping[str, Sequence[str]], *, prompt: str = JUDGE_PROMPT
) -> pd.DataFrame:
    """Ask a chat teacher (anything with `ask(prompt, image)`) to rate each caption on the rubric.

    `items` are `sail.caption.teachers.CaptionItem`s (an id and an image) aligned with every
    source's captions. Returns one row per (item, source): accuracy, detail, hallucination and the
    raw reply; `judge_summary` averages it per source. Replies that do not parse give NaN / None
    (and are kept in `raw` to inspect), never an exception.
    """
    for source, captions in captions_by_source.items():
        if len(captions) != len(items):
            raise ValueError(f"source {source!r}: {len(captions)} captions for {len(items)} items")
    rows = []
    for i, item in enumerate(items):
        image = item.load_image()
        for source, captions in captions_by_source.items():
            reply = teacher.ask(prompt.format(caption=captions[i].replace('"', "'")), image)
            rows.append({"item": item.id, "source": source, **parse_judgement(reply), "raw": reply})
    return pd.DataFrame(rows)


def judge_summary(judgements: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy and detail, hallucination rate and parse failures, per source."""
    frame = judgements.assign(
        hallucination=judgements["hallucination"].map(lambda h: float("nan") if h is None else float(h))
    )
    return frame.groupby("source").agg(
        accuracy=("accuracy", "mean"),
        detail=("detail", "mean"),
        hallucination_rate=("hallucination", "mean"),
        unparsed=("accuracy", lambda s: int(s.isna().sum())),
        n=("item", "size"),
    )


__all__ = [
    "score_after",
    "BLIND_CANDIDATES",
    "HEADLINE",
    "JUDGE_PROMPT",
    "RUBRIC",
    "RUBRIC_COLUMNS",
    "blind_pair_f1",
    "caption_examples",
    "caption_quality",
    "headline_table",
    "human_eval_sheet",
    "judge",
    "judge_summary",
    "parse_judgement",
    "quality_long",
    "quality_plot",
    "read_human_eval",
    "shortfall_text",
    "weakest_elements",
]
