"""Data cards: HF front matter that parses, datasheet sections, every number from the run."""

import json

import pytest
import yaml

from sail.data import build_pool, load_defects, read_image_folder, run_funnel
from sail.data.cards import funnel_fields, read_front_matter, size_category, write_data_card


def test_size_category():
    assert size_category(0) == "n<1K" and size_category(999) == "n<1K"
    assert size_category(1000) == "1K<n<10K" and size_category(12_000_000) == "10M<n<100M"


def test_card_from_a_funnel_run(tmp_path):
    pool = build_pool(tmp_path / "pool", 120, seed=9)
    result = run_funnel(read_image_folder(tmp_path / "pool"))
    defects = load_defects(tmp_path / "pool")
    sources = {}
    for item in result.kept:
        sources[item.source] = sources.get(item.source, 0) + 1
    fields = {
        "pretty_name": "SAIL world curated pool",
        "license": "cc-by-4.0",
        "task_categories": ["image-to-text"],
        "language": ["en"],
        "source_datasets": [s["stands_for"] for s in pool["sources"].values()],
        "n_items": len(result.kept),
        "motivation": "The pool the captioner labels.",
        "composition": {"sources": sources},
        "curation": funnel_fields(result, defects),
        "uses": "Teaching.",
        "limitations": ["Synthetic images."],
        "extra": {"seed": 9, "defect_rate": pool["defect_rate"]},
    }
    markdown, twin = write_data_card(tmp_path / "data_cards", "world_pool", fields)
    assert markdown == tmp_path / "data_cards" / "world_pool.md"
    front = read_front_matter(markdown)
    assert set(front) >= {"license", "task_categories", "size_categories", "source_datasets", "pretty_name"}
    assert front["size_categories"] == ["n<1K"] and front["source_datasets"] == ["LAION-COCO", "TextCaps", "SA-1B"]
    text = markdown.read_text()
    for section in ("## Motivation", "## Composition", "## Collection & curation", "## Uses", "## Limitations"):
        assert section in text
    counts = result.counts()
    for step, seen, kept in zip(counts["step"], counts["seen"], counts["kept"]):
        assert f"| {step} | {seen} | {kept} |" in text
    assert f"Input items: {result.total}; kept: {len(result.kept)}." in text
    assert f"| phash_threshold | {result.config.phash_threshold} |" in text
    assert f"| min_side | {result.config.min_side} |" in text
    for kind, n in pool["defects"].items():
        assert f"| {kind} | {n} | {n} | 1 |" in text
    data = json.loads(twin.read_text())
    assert data["front_matter"] == front and data["curation"]["kept"] == len(result.kept)
    assert yaml.safe_load(yaml.safe_dump(front)) == front


def test_missing_fields_are_named(tmp_path):
    with pytest.raises(ValueError, match="license"):
        write_data_card(tmp_path, "x", {"pretty_name": "x", "task_categories": [], "source_datasets": [], "n_items": 1})
