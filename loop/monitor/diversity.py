"""How alike a set of samples is: n-gram, BLEU, embedding and answer diversity.

Pure functions on plain lists. A "group" is one prompt's samples; the metrics that compare
samples within a prompt take groups, the others a flat list of texts. Every function returns
NaN when its input cannot define the number (no n-grams, one text), never a made-up 0.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Sequence

import numpy as np

NAN = float("nan")


def words(text: str) -> list[str]:
    """Whitespace tokens: model-independent, so runs with different tokenizers compare."""
    return text.split()


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique word n-grams / all word n-grams over `texts` (Li et al. 2016's distinct-n).

    >>> distinct_n(["a b a b", "a b"], 2)  # a-b, b-a, a-b, a-b: 2 unique of 4
    0.5
    """
    seen, total = set(), 0
    for text in texts:
        tokens = words(text)
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else NAN


def self_bleu(texts: Sequence[str], size: int, seed: int) -> float:
    """Mean sacreBLEU of each text against all the others (Zhu et al. 2018), on a seeded
    subsample of `size` texts so its cost does not grow with the round. 100 = all identical.

    The scores are sacreBLEU's `sentence_score(text, others)` (tested), computed in one pass:
    each text is tokenized and its n-grams counted once, and a text's clipping counts (the
    largest count of each n-gram among its references, the others) are read from the two
    largest counts over all texts. Calling `sentence_score` per text re-reads every other
    text each time: quadratic, and the larger part of a round's filter phase.
    """
    from sacrebleu.metrics import BLEU
    from sacrebleu.metrics.helpers import extract_all_word_ngrams

    if len(texts) < 2:
        return NAN
    picked = random.Random(seed).sample(list(texts), min(size, len(texts)))
    bleu = BLEU(effective_order=True)  # short texts: score the n-gram orders they have
    segments = [bleu._preprocess_segment(text) for text in picked]
    counted = [extract_all_word_ngrams(segment, 1, bleu.max_ngram_order) for segment in segments]
    top_two = _top_two_counts([grams for grams, _ in counted])
    lengths = [length for _, length in counted]
    scores = []
    for i, segment in enumerate(segments):
        references = {"ref_ngrams": _CountsOfOthers(top_two, i), "ref_lens": lengths[:i] + lengths[i + 1 :]}
        stats = bleu._compute_segment_statistics(segment, references)
        scores.append(bleu._aggregate_and_compute([stats]).score)
    return sum(scores) / len(scores)


def _top_two_counts(per_text: Sequence[Counter]) -> dict[tuple, list[int]]:
    """n-gram -> [largest count, the text holding it, second largest count (0 if none)]."""
    top: dict[tuple, list[int]] = {}
    for i, grams in enumerate(per_text):
        for gram, count in grams.items():
            entry = top.get(gram)
            if entry is None:
                top[gram] = [count, i, 0]
            elif count > entry[0]:
                entry[:] = [count, i, entry[0]]
            elif count > entry[2]:
                entry[2] = count
    return top


class _CountsOfOthers:
    """The largest count of each n-gram among all texts but text `i`, as sacreBLEU's merged
    reference counts (it asks `gram in refs` and `refs[gram]`)."""

    def __init__(self, top_two: dict[tuple, list[int]], i: int):
        self.top_two, self.i = top_two, i

    def __contains__(self, gram: tuple) -> bool:
        return gram in self.top_two

    def __getitem__(self, gram: tuple) -> int:
        largest, holder, second = self.top_two[gram]
        return second if holder == self.i else largest


def embedding_diversity(embeddings: np.ndarray, groups: Sequence[Sequence[int]]) -> dict[str, float]:
    """Mean pairwise cosine distance (1 - cosine similarity) of sentence embeddings.

    `groups` lists, per prompt, the rows of `embeddings` holding its samples. `within`: the
    mean over prompts (with >= 2 samples) of their samples' mean distance; `across`: the mean
    distance between prompts' first samples.
    """
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    within = [_mean_pairwise_distance(unit[list(g)]) for g in groups if len(g) >= 2]
    firsts = [g[0] for g in groups if len(g)]
    return {"embed_within": float(np.mean(within)) if within else NAN,
            "embed_across": _mean_pairwise_distance(unit[firsts]) if len(firsts) >= 2 else NAN}


def _mean_pairwise_distance(unit: np.ndarray) -> float:
    n = len(unit)
    sims = unit @ unit.T
    off_diagonal = (sims.sum() - np.trace(sims)) / (n * (n - 1))
    return float(1.0 - off_diagonal)


def answer_stats(answers: Sequence[Sequence[str | None]]) -> dict[str, float]:
    """Per prompt, over the samples that state an answer: distinct answers and the entropy
    (bits) of their distribution; both averaged over prompts.

    >>> answer_stats([["4", "4"], ["1", "2"]])
    {'answers_distinct': 1.5, 'answer_entropy': 0.5}
    """
    distinct, entropy = [], []
    for row in answers:
        counts = Counter(a for a in row if a is not None)
        total = sum(counts.values())
        distinct.append(float(len(counts)))
        entropy.append(-sum(c / total * math.log2(c / total) for c in counts.values()) if total else 0.0)
    if not answers:
        return {"answers_distinct": NAN, "answer_entropy": NAN}
    return {"answers_distinct": sum(distinct) / len(distinct), "answer_entropy": sum(entropy) / len(entropy)}


def identical_share(groups: Sequence[Sequence[str]]) -> float:
    """Share of prompts (with >= 2 samples) whose samples are all the same text."""
    multi = [g for g in groups if len(g) >= 2]
    return sum(len(set(g)) == 1 for g in multi) / len(multi) if multi else NAN


def nll_per_token(sum_logprobs: Sequence[float], token_counts: Sequence[int]) -> float:
    """Mean negative log-prob per generated token (nats): a cheap proxy for policy entropy."""
    tokens = sum(token_counts)
    return -sum(sum_logprobs) / tokens if tokens else NAN
