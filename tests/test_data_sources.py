"""World pools standing for LAION-COCO / TextCaps / SA-1B, and the defect-injecting pool writer."""

import json

import pytest
from PIL import Image

from sail.data import DEFECT_KINDS, SOURCES, build_pool, load_defects, source_records


def test_sources_have_their_own_distributions():
    laion = source_records("laion_coco", 60, seed=0)
    textcaps = source_records("textcaps", 60, seed=0)
    sa1b = source_records("sa1b", 60, seed=0)
    assert all(r["kind"] == "card" or r["texts"] for r in textcaps)
    assert all(r["kind"] == "scene" and 3 <= len(r["objects"]) <= 4 for r in sa1b)
    text_share = lambda rs: sum(bool(r["texts"]) or r["kind"] == "card" for r in rs) / len(rs)  # noqa: E731
    assert text_share(textcaps) > text_share(laion)
    ids = [r["id"] for r in laion + textcaps + sa1b]
    assert len(set(ids)) == len(ids)
    assert source_records("sa1b", 20, seed=0) == sa1b[:20]


def test_alt_text_quality_differs_by_source():
    import random

    textcaps = source_records("textcaps", 80, seed=1)
    quoted = [SOURCES["textcaps"].alt(r, random.Random(i)) for i, r in enumerate(textcaps)]
    assert sum('"' in a for a in quoted) / len(quoted) > 0.6
    sa1b = [SOURCES["sa1b"].alt(r, random.Random(i)) for i, r in enumerate(source_records("sa1b", 80, seed=1))]
    assert sum(a == "" for a in sa1b) / len(sa1b) > 0.6


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    return root, build_pool(root, 200, seed=3)


def test_pool_layout_and_ground_truth(pool):
    root, summary = pool
    rows = [json.loads(line) for line in (root / "annotations.jsonl").read_text().splitlines()]
    defects = load_defects(root)
    assert (
        summary["n_items"]
        == len(rows)
        == 200
        + sum(
            d["kind"] in ("exact_duplicate", "near_duplicate_jpeg", "near_duplicate_resize", "near_duplicate_jitter")
            for d in defects
        )
    )
    assert {d["kind"] for d in defects} == set(DEFECT_KINDS)
    assert {r["source"] for r in rows} == set(SOURCES)
    assert all((root / r["file"]).exists() for r in rows)
    assert all(json.loads(r["record"])["id"] == r["id"] or "-dup" in r["id"] for r in rows)
    by_id = {r["id"]: r for r in rows}
    victims = [d["id"] for d in defects if "of" not in d]
    assert len(set(victims)) == len(victims)  # one defect per victim
    assert not set(victims) & {d["of"] for d in defects if "of" in d}
    for d in defects:
        path = root / by_id[d["id"]]["file"]
        if d["kind"] == "exact_duplicate":
            assert path.read_bytes() == (root / by_id[d["of"]]["file"]).read_bytes()
        elif d["kind"] == "zero_byte":
            assert path.stat().st_size == 0
        elif d["kind"] == "mode_cmyk":
            assert Image.open(path).mode == "CMYK"
        elif d["kind"] == "mode_i16":
            assert Image.open(path).mode.startswith("I")
        elif d["kind"] == "mode_palette":
            assert Image.open(path).mode == "P"
        elif d["kind"] == "mode_rgba":
            assert Image.open(path).mode == "RGBA"
        elif d["kind"] == "absurd_size":
            assert Image.open(path).size == tuple(map(int, d["variant"].split("x")))
        elif d["kind"] == "alt_empty":
            assert not by_id[d["id"]]["alt_text"].strip()
        elif d["kind"].startswith("alt_"):
            assert by_id[d["id"]]["source"] != "sa1b"


def test_pool_is_deterministic(tmp_path, pool):
    root, _ = pool
    build_pool(tmp_path, 200, seed=3)
    assert (tmp_path / "annotations.jsonl").read_text() == (root / "annotations.jsonl").read_text()
    assert load_defects(tmp_path) == load_defects(root)


def test_clean_pool_has_no_defects(tmp_path):
    summary = build_pool(tmp_path, 30, seed=0, defects=False)
    assert load_defects(tmp_path) == [] and summary["n_items"] == 30
