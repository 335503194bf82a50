"""Linguistic diversity: hand-counted n-grams and word classes, and equal-size samples."""

from __future__ import annotations

import pytest

from sail.caption.diversity import diversity, diversity_comparison, diversity_table, world_tags


def test_counts_match_a_hand_count():
    # tokens: [a red circle] [a red square is here]
    found = diversity(["A red circle.", "a red square is here"])
    assert found == {
        "unique 1-grams": 6,  # a red circle square is here
        "unique 2-grams": 5,  # a-red red-circle red-square square-is is-here
        "unique 3-grams": 4,  # a-red-circle a-red-square red-square-is square-is-here
        "unique 4-grams": 2,  # a-red-square-is red-square-is-here
        "unique nouns": 2,  # circle square
        "unique verbs": 1,  # is
        "unique adjectives": 1,  # red
        "mean words": 4.0,
    }


def test_the_world_lexicon_tags_closed_classes_and_leaves_the_rest_untagged():
    assert world_tags(["large", "blue", "hexagons", "sits", "the", "zebra"]) == [
        "ADJ",
        "ADJ",
        "NOUN",
        "VERB",
        None,
        None,
    ]


def test_every_source_is_measured_on_a_sample_of_the_same_size():
    table = diversity_table(
        {
            "rich": ["a red circle", "a blue star", "two green squares"],
            "poor": ["a circle", "", "a star", "a star", "a star"],
        }
    )
    assert table["captions"].tolist() == [3, 3]  # the poorer source has 4 non-empty captions, the richer 3
    assert table.loc["rich", "unique adjectives"] == 3 and table.loc["poor", "unique adjectives"] == 0
    with pytest.raises(ValueError, match="every source needs at least 4 non-empty captions"):
        diversity_table({"rich": ["a red circle"] * 3, "poor": ["a star"] * 5}, n=4)


def test_the_comparison_names_every_measure_where_it_is_ahead_behind_or_level():
    table = diversity_table({"mini": ["a red circle", "two green squares"], "alt": ["a circle photo", "a red star"]})
    # mini: a red circle two green squares; alt: a circle photo red star (5 words; nouns circle photo star)
    assert diversity_comparison(table, "mini", "alt") == (
        "mini is ahead of alt on unique 1-grams (6 vs 5) and unique adjectives (2 vs 1); "
        "behind alt on unique nouns (2 vs 3); "
        "level with alt on unique 2-grams (4 vs 4), unique 3-grams (2 vs 2), unique 4-grams (0 vs 0), "
        "unique verbs (0 vs 0) and mean words (3.0 vs 3.0)"
    )
    assert diversity_comparison(table, "mini", "alt", "the alt-text").startswith("mini is ahead of the alt-text on")
