"""Prose written from numbers: the direction word must follow the numbers as shown."""

import numpy as np

from sail.prose import change, listing, number, possessive, relation, takeaways, versus


def test_numbers_are_shown_as_counts_or_fractions():
    assert [number(6240), number(np.int64(5425)), number(1.0), number(0.0971), number(0.5, 1), number(0.0)] == [
        "6,240",
        "5,425",
        "1.000",
        "0.097",
        "0.5",
        "0.000",
    ]


def test_change_says_the_direction_the_numbers_show():
    assert change("the share of tables", 0.097, 0.093) == "the share of tables fell from 0.097 to 0.093"
    assert change("pair F1", 0.532, 0.713) == "pair F1 rose from 0.532 to 0.713"
    assert change("recall", 0.9941, 0.9939) == "recall stayed at 0.994"  # equal at the digits shown


def test_versus_compares_against_a_named_baseline():
    assert (
        versus("the captioner's pair F1", 0.713, 0.532, "alt-text")
        == "the captioner's pair F1 is 0.713, above alt-text's 0.532"
    )
    assert versus("its text F1", 0.0, 0.41, "the teacher") == "its text F1 is 0.000, below the teacher's 0.410"
    assert versus("x", 0.5001, 0.5004, "y") == "x is 0.500, level with y's 0.500"


def test_a_possessive_is_written_once():
    assert possessive("the teacher") == "the teacher's"
    assert possessive("the alt-text's") == "the alt-text's"  # no "'s's"
    assert possessive("the weak rows") == "the weak rows'"  # no "rows's"
    assert versus("x", 1.0, 2.0, "the alt-text's", 1) == "x is 1.0, below the alt-text's 2.0"


def test_takeaways_are_a_titled_bullet_list():
    assert takeaways(["a", "b"]).data == "### What this run shows\n\n- a\n- b"


def test_relation_and_listing():
    assert [relation(2.04, 2.0, 1), relation(1.96, 2.0, 1), relation(2.0, 2.9, 1)] == [
        "level with",
        "level with",
        "below",
    ]
    assert [listing(["a"]), listing(["a", "b"]), listing(["a", "b", "c"])] == ["a", "a and b", "a, b and c"]
