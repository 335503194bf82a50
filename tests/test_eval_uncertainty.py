"""Bootstrap intervals of benchmark scores: hand cases, pairing, determinism and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from sail.eval.uncertainty import difference_interval, score_interval


def test_constant_scores_have_no_spread():
    interval = score_interval([1.0, 1.0, 1.0, 1.0])
    assert (interval.mean, interval.low, interval.high, interval.n) == (1.0, 1.0, 1.0, 4)


def test_interval_of_a_mean_matches_the_binomial_spread():
    # 400 questions, 60 % right: the standard error is sqrt(0.6 * 0.4 / 400) = 0.0245, so a 95 %
    # interval reaches about 1.96 * 0.0245 = 0.048 either side of 0.6
    scores = np.array([1.0] * 240 + [0.0] * 160)
    interval = score_interval(scores, resamples=4000)
    assert interval.mean == pytest.approx(0.6)
    assert interval.low == pytest.approx(0.552, abs=0.01) and interval.high == pytest.approx(0.648, abs=0.01)
    narrower = score_interval(scores, confidence=0.5, resamples=4000)
    assert interval.low < narrower.low < narrower.high < interval.high


def test_a_paired_difference_cancels_what_both_models_share():
    rng = np.random.default_rng(0)
    shared = rng.random(200)  # question difficulty both models feel
    ours, other = shared + 0.05, shared
    paired = difference_interval(ours, other)
    # every question differs by exactly 0.05: the paired interval is that point, while separate
    # intervals of the two means overlap widely
    assert (
        paired.mean == pytest.approx(0.05) and paired.low == pytest.approx(0.05) and paired.high == pytest.approx(0.05)
    )
    assert score_interval(ours).low < score_interval(other).high
    assert not paired.holds(0.0)


def test_a_difference_within_noise_holds_zero():
    ours = [1.0, 0.0] * 20
    other = [0.0, 1.0] * 20  # the same accuracy, on different questions
    assert difference_interval(ours, other).holds(0.0)


def test_a_seed_fixes_the_interval():
    scores = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    assert score_interval(scores, seed=3) == score_interval(scores, seed=3)
    assert str(score_interval([1.0, 1.0])) == "1.0 [1.0, 1.0]"


def test_refusals_name_the_problem():
    with pytest.raises(ValueError, match="at least 2 per-question scores, got 1"):
        score_interval([1.0])
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\), got 1.5"):
        score_interval([1.0, 0.0], confidence=1.5)
    with pytest.raises(ValueError, match="the same questions: 3 against 2"):
        difference_interval([1.0, 0.0, 1.0], [1.0, 0.0])
