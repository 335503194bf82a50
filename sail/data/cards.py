"""Dataset cards: Hugging Face card YAML front matter + datasheet sections, plus a JSON twin.

Every number in a card comes from the `fields` a run passes in (counts per source, funnel
counts and thresholds, recall of injected defects); this module writes words, never numbers
of its own.  `funnel_fields` turns a `FunnelResult` into the `curation` field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from sail.manifest import atomic_write_json, atomic_write_text

SIZE_BINS = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
)
REQUIRED = ("pretty_name", "license", "task_categories", "source_datasets", "n_items")


def size_category(n: int) -> str:
    """The Hugging Face `size_categories` label for `n` examples."""
    return next((label for limit, label in SIZE_BINS if n < limit), "n>1B")


def funnel_fields(result, defects: list[dict] | None = None) -> dict[str, Any]:
    """The `curation` field of a card from a `FunnelResult` (and the injected ground truth, if any)."""
    fields: dict[str, Any] = {
        "funnel": result.counts().to_dict("records"),
        "reasons": result.reasons().to_dict("records"),
        "thresholds": result.config.as_dict(),
        "input": result.total,
        "kept": len(result.kept),
        "converted_modes": result.summary()["converted_modes"],
    }
    if defects is not None:
        recall = result.recall_against(defects)
        fields["recall"] = recall[["kind", "injected", "caught", "recall"]].to_dict("records")
        fields["false_drops"] = len(result.false_drops(defects))
    return fields


def _table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "_none_\n"
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value).replace("|", "\\|")


def _text(value: Any) -> str:
    if value is None:
        return "_not given_\n"
    if isinstance(value, (list, tuple)):
        return "\n".join(f"- {v}" for v in value) + "\n"
    return str(value).strip() + "\n"


def write_data_card(root: str | os.PathLike, name: str, fields: dict[str, Any]) -> tuple[Path, Path]:
    """Write `root/<name>.md` (HF front matter + datasheet) and `root/<name>.json`; returns both paths.

    Required fields: pretty_name, license, task_categories, source_datasets, n_items.  Optional:
    language, tags, motivation, composition ({"sources": {name: count}, "notes": ...}),
    curation (see `funnel_fields`), uses, limitations, extra (a dict written as a table).
    """
    missing = [key for key in REQUIRED if key not in fields]
    if missing:
        raise ValueError(f"data card {name!r} lacks fields: {', '.join(missing)}")
    front = {
        "pretty_name": fields["pretty_name"],
        "license": fields["license"],
        "task_categories": list(fields["task_categories"]),
        "size_categories": [size_category(int(fields["n_items"]))],
        "source_datasets": list(fields["source_datasets"]),
    }
    for key in ("language", "tags"):
        if key in fields:
            front[key] = fields[key]

    composition = fields.get("composition") or {}
    sources = composition.get("sources") or {}
    curation = fields.get("curation") or {}
    parts = [
        "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n",
        f"# {fields['pretty_name']}\n",
        "## Motivation\n",
        _text(fields.get("motivation")),
        "## Composition\n",
        f"Items: {fields['n_items']}\n\n",
        _table([{"source": k, "items": v} for k, v in sources.items()]) if sources else "",
        _text(composition.get("notes")) if composition.get("notes") else "",
        "## Collection & curation\n",
    ]
    if curation:
        parts += [
            f"Input items: {curation.get('input')}; kept: {curation.get('kept')}.\n\n",
            "### Funnel\n",
            _table(curation.get("funnel", [])),
            "### Drop reasons\n",
            _table(curation.get("reasons", [])),
            "### Thresholds\n",
            _table([{"threshold": k, "value": v} for k, v in curation.get("thresholds", {}).items()]),
        ]
        if curation.get("converted_modes"):
            parts += [
                "### Modes converted to RGB\n",
                _table([{"mode": k, "items": v} for k, v in curation["converted_modes"].items()]),
            ]
        if "recall" in curation:
            parts += [
                "### Recall of injected defects\n",
                _table(curation["recall"]),
                f"\nClean items dropped (false drops): {curation.get('false_drops')}\n",
            ]
    if fields.get("collection"):
        parts.append(_text(fields["collection"]))
    if fields.get("extra"):
        parts += ["### Further numbers\n", _table([{"quantity": k, "value": v} for k, v in fields["extra"].items()])]
    parts += ["## Uses\n", _text(fields.get("uses")), "## Limitations\n", _text(fields.get("limitations"))]

    root = Path(root)
    markdown = atomic_write_text(root / f"{name}.md", "\n".join(part.rstrip("\n") + "\n" for part in parts if part))
    twin = atomic_write_json(root / f"{name}.json", {"name": name, "front_matter": front, **fields})
    return markdown, twin


def read_front_matter(path: str | os.PathLike) -> dict:
    """The YAML front matter of a card, parsed."""
    text = Path(path).read_text()
    if not text.startswith("---\n"):
        raise ValueError(f"{path} has no front matter")
    return yaml.safe_load(text.split("---\n", 2)[1])
