"""How far a benchmark score can be trusted: bootstrap intervals over the questions asked.

A world benchmark of a few dozen questions cannot rank two models whose scores differ by a few
points. Every score a comparison rests on gets a percentile bootstrap interval over its
per-question scores (scipy's `bootstrap`), and two models asked the same questions get a paired
interval of their difference: a difference whose interval holds 0 is within noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """A mean over questions and its bootstrap interval at `confidence`."""

    mean: float
    low: float
    high: float
    confidence: float
    n: int

    def holds(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.mean:.1f} [{self.low:.1f}, {self.high:.1f}]"


def _checked(scores: Sequence[float], confidence: float) -> np.ndarray:
    values = np.asarray(scores, dtype=float)
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(f"a bootstrap needs at least 2 per-question scores, got {len(values)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return values


def _interval(values: tuple[np.ndarray, ...], statistic, confidence: float, resamples: int, seed: int, paired: bool):
    result = stats.bootstrap(
        values,
        statistic,
        paired=paired,
        vectorized=True,
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def score_interval(scores: Sequence[float], confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> Interval:
    """The mean of per-question scores and its percentile bootstrap interval."""
    values = _checked(scores, confidence)
    low, high = _interval((values,), lambda x, axis=-1: np.mean(x, axis=axis), confidence, resamples, seed, False)
    return Interval(float(values.mean()), low, high, confidence, len(values))


def difference_interval(
    ours: Sequence[float], other: Sequence[float], confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> Interval:
    """Mean of `ours - other` over the same questions, with a paired bootstrap interval.

    Pairing resamples questions, not answers: what two models share (an easy question) cancels,
    so the interval is narrower than two separate intervals suggest.
    """
    a, b = _checked(ours, confidence), _checked(other, confidence)
    if len(a) != len(b):
        raise ValueError(f"paired scores need the same questions: {len(a)} against {len(b)}")

    def mean_difference(x, y, axis=-1):
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    low, high = _interval((a, b), mean_difference, confidence, resamples, seed, True)
    return Interval(float((a - b).mean()), low, high, confidence, len(a))
