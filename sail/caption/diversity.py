"""Linguistic diversity of caption sets, on equal-size samples (the paper's diversity claim).

Unique 1- to 4-grams, unique nouns, verbs and adjectives, and mean length in words. Counts of
unique things grow with the number of captions, so every source is measured on a sample of the
same size.

Part-of-speech tags come from `WORLD_LEXICON`, a hand-tagged lexicon of the closed vocabulary
the world's captions are written in (shapes, colours, sizes, the templates' words), because no
well-kept English tagger installs offline here: NLTK's and spaCy's taggers download their models
at run time. On world captions the lexicon is exact; words outside it (quoted text, labels)
count for n-grams but get no tag. Real captions need a real tagger: pass `tag=` any callable
from a list of words to a list of "NOUN" / "VERB" / "ADJ" / None (spaCy's `token.pos_` fits).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence

import pandas as pd

from sail.prose import listing, number, relation
from sail.world.vocab import COLOURS, SHAPES

_NOUNS = {
    *SHAPES,
    *(shape + "s" for shape in SHAPES),
    *"background cell cells clipart corner drawing icon ideas illustration image item items number photo".split(),
    *"picture png quality royalty scene spot stock text things total vector wallpaper word note".split(),
    *"chart table title bar bars value values label labels row rows column columns".split(),
}
_VERBS = {*"appear appears are can holds is lies placed printed see sits split written shows show reads".split()}
_ADJECTIVES = {
    *COLOURS,
    *"big large little small light plain simple cute free transparent high few best upper lower".split(),
}
WORLD_LEXICON: dict[str, str] = (
    {word: "NOUN" for word in _NOUNS} | {word: "VERB" for word in _VERBS} | {word: "ADJ" for word in _ADJECTIVES}
)
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(caption: str) -> list[str]:
    return WORD.findall(caption.lower())


def world_tags(tokens: Sequence[str]) -> list[str | None]:
    """Tags from the world lexicon: "NOUN", "VERB", "ADJ", or None (other classes, unknown words)."""
    return [WORLD_LEXICON.get(token) for token in tokens]


def diversity(captions: Sequence[str], tag: Callable[[Sequence[str]], list[str | None]] = world_tags) -> dict:
    """Unique n-grams (n = 1..4), unique nouns / verbs / adjectives and mean words per caption."""
    grams: dict[int, set] = {n: set() for n in range(1, 5)}
    classes: dict[str, set] = {"NOUN": set(), "VERB": set(), "ADJ": set()}
    lengths = []
    for caption in captions:
        tokens = words(caption)
        lengths.append(len(tokens))
        for n in grams:
            grams[n].update(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
        for token, found in zip(tokens, tag(tokens)):
            if found in classes:
                classes[found].add(token)
    return {
        **{f"unique {n}-grams": len(grams[n]) for n in grams},
        "unique nouns": len(classes["NOUN"]),
        "unique verbs": len(classes["VERB"]),
        "unique adjectives": len(classes["ADJ"]),
        "mean words": sum(lengths) / len(lengths) if lengths else 0.0,
    }


def diversity_table(
    by_source: Mapping[str, Sequence[str]], n: int | None = None, seed: int = 0, **kwargs
) -> pd.DataFrame:
    """`diversity` of each source on a seeded sample of `n` captions (default: the smallest
    source's size), one row per source; empty captions are left out before sampling."""
    pools = {source: [c for c in captions if c.strip()] for source, captions in by_source.items()}
    size = min(len(captions) for captions in pools.values()) if n is None else n
    if size < 1 or any(len(captions) < size for captions in pools.values()):
        counts = {source: len(captions) for source, captions in pools.items()}
        raise ValueError(f"every source needs at least {max(size, 1)} non-empty captions: {counts}")
    rows = {
        source: diversity(random.Random(seed).sample(captions, size), **kwargs) for source, captions in pools.items()
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.insert(0, "captions", size)
    return table


def diversity_comparison(table: pd.DataFrame, source: str, other: str, other_name: str | None = None) -> str:
    """Every measure of `source` against `other`'s (named `other_name` in the sentence), grouped by
    where `source` is ahead, behind or level (judged on the digits shown): a summary that cannot
    pick only the measures it wins."""
    groups: dict[str, list[str]] = {"above": [], "below": [], "level with": []}
    for measure in (column for column in table.columns if column != "captions"):
        ours, theirs = table.loc[source, measure], table.loc[other, measure]
        digits = 1 if measure == "mean words" else 0
        groups[relation(ours, theirs, digits)].append(f"{measure} ({number(ours, digits)} vs {number(theirs, digits)})")
    words = {"above": "ahead of", "below": "behind", "level with": "level with"}
    parts = [f"{words[where]} {other_name or other} on {listing(found)}" for where, found in groups.items() if found]
    return f"{source} is " + "; ".join(parts)


def diversity_plot(table: pd.DataFrame, reference: str, ax=None):
    """Each measure relative to `reference`'s (1 = as diverse), sources side by side."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    measures = [column for column in table.columns if column != "captions"]
    relative = (table[measures] / table.loc[reference, measures]).rename_axis("source").reset_index()
    long = relative.melt(id_vars="source", var_name="measure", value_name=f"relative to {reference}")
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3.5))
    sns.barplot(long, x="measure", y=f"relative to {reference}", hue="source", ax=ax)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set(
        title=f"Linguistic diversity on {int(table['captions'].iloc[0])} captions per source",
        xlabel="",
        ylabel=f"measure / {reference}'s",
    )
    ax.tick_params(axis="x", rotation=30)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return ax
