"""Data hygiene for what the loop trains on: near-copies and eval contamination.

- Near-duplicates: MinHash signatures of word shingles, looked up in an LSH index (datasketch)
  holding this round's kept completions so far and every earlier round's; a hit whose
  estimated Jaccard similarity reaches the threshold is a near-copy and is dropped. Each
  round's kept signatures are saved in its run dir, so a resumed run sees the same index.
- Contamination: an example sharing a word n-gram with a held-out eval prompt or answer is
  dropped (GPT-3's 13-gram check; an eval text shorter than n words must appear whole; texts
  under MIN_WORDS words are too generic to test). Words are lowercased `\\w+` runs and single
  symbols, so spacing and case do not hide a copy while "3+5" and "3-5" stay different.
"""

from __future__ import annotations

import functools
import io
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
# At import, not at first use: datasketch's import (scipy.integrate for the LSH's parameters)
# costs 0.1-0.2 s, which a lazy import put in round 1's filter phase.
from datasketch import LeanMinHash, MinHash, MinHashLSH
from datasketch.hashfunc import sha1_hash32
from datasketch.minhash import _fmix

from policies.atomic import write_bytes

MIN_WORDS = 3  # "Simplify." or a bare "42" matches everything; such eval texts are not tested
_WORD = re.compile(r"\w+|[^\w\s]")  # words and single symbols: "3+5" and "3-5" differ
_SCHEME = "affine32"  # datasketch's MinHash hashing scheme, pinned so saved signatures stay valid
_SHINGLES_AT_ONCE = 1 << 16  # rows of one shingles x permutations table: 16 MiB at 64 permutations


# --- near-duplicates -----------------------------------------------------------------------
def shingles(text: str, n: int) -> list[bytes]:
    tokens = text.split()
    if len(tokens) <= n:
        return [" ".join(tokens).encode()]
    return [" ".join(tokens[i : i + n]).encode() for i in range(len(tokens) - n + 1)]


def minhash_signatures(texts: Sequence[str], num_perm: int, shingle_words: int) -> np.ndarray:
    """One row of `num_perm` MinHash values per text (uint32): datasketch's "affine32" MinHash of
    its word shingles, computed for many texts at once (one table of shingles x permutations,
    reduced per text) instead of datasketch's few numpy calls per text, 3-4x fewer seconds."""
    if not texts:
        return np.zeros((0, num_perm), dtype=np.uint32)
    permute = _affine_permutations(num_perm)
    if permute is None:  # a datasketch whose scheme this does not reproduce: its own, text by text
        return _datasketch_signatures(texts, num_perm, shingle_words)
    return _signatures(texts, shingle_words, permute, num_perm)


def _signatures(texts: Sequence[str], shingle_words: int, permute, num_perm: int) -> np.ndarray:
    out = np.empty((len(texts), num_perm), dtype=np.uint32)
    start = 0
    while start < len(texts):  # texts in chunks of about _SHINGLES_AT_ONCE shingles: bounded memory
        hashes: list[int] = []
        starts, end = [], start
        while end < len(texts) and len(hashes) < _SHINGLES_AT_ONCE:
            starts.append(len(hashes))
            hashes += [sha1_hash32(shingle) for shingle in shingles(texts[end], shingle_words)]
            end += 1
        out[start:end] = np.minimum.reduceat(permute(np.array(hashes, dtype=np.uint32)), starts, axis=0)
        start = end
    return out


def _datasketch_signatures(texts: Sequence[str], num_perm: int, shingle_words: int) -> np.ndarray:
    hashes = MinHash.bulk((shingles(t, shingle_words) for t in texts), num_perm=num_perm, scheme=_SCHEME)
    return np.stack([m.hashvalues for m in hashes]).astype(np.uint32)


@functools.lru_cache(maxsize=None)
def _affine_permutations(num_perm: int):
    """datasketch's affine32 step for many shingle hashes at once: its MurmurHash3 pre-mix, then
    a*h + b per permutation, wrapping in uint32. None unless it gives datasketch's own values on
    a probe (its permutations are its own; the pre-mix is a private function of it)."""
    a, b = MinHash(num_perm=num_perm, scheme=_SCHEME).permutations

    def permute(hashes: np.ndarray) -> np.ndarray:
        return _fmix(hashes[:, None], 32) * a + b

    probe = ["a probe text of several words to hash", "x"]
    mine = _signatures(probe, 3, permute, num_perm)
    return permute if np.array_equal(mine, _datasketch_signatures(probe, num_perm, 3)) else None


class MinHasher:
    """`minhash_signatures` with each distinct text hashed once in the run's life (up to
    `capacity` texts, the oldest forgotten first): a policy repeats its earlier kept completions,
    which are the near-copies the index is for, and hashing is the hygiene check's largest cost."""

    def __init__(self, num_perm: int, shingle_words: int, capacity: int = 50_000):
        self.num_perm, self.shingle_words, self.capacity = num_perm, shingle_words, capacity
        self._known: dict[str, np.ndarray] = {}  # insertion order: the oldest first
        self.hashed = 0  # texts hashed so far (the rest were known)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.num_perm), dtype=np.uint32)
        new = [t for t in dict.fromkeys(texts) if t not in self._known]
        found = dict(zip(new, minhash_signatures(new, self.num_perm, self.shingle_words)))
        self.hashed += len(new)
        rows = np.stack([found[t] if t in found else self._known[t] for t in texts])
        self._known.update(found)
        for oldest in list(self._known)[: max(0, len(self._known) - self.capacity)]:
            del self._known[oldest]
        return rows


class NearDupIndex:
    """An LSH index over kept completions' signatures; `admit` keeps a text only if it is new."""

    def __init__(self, threshold: float, num_perm: int):
        self.threshold, self.num_perm = threshold, num_perm
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        # Keys grow in insertion order and are never reused, so "oldest" is the smallest key
        # whatever was removed in between.
        self._signatures: dict[int, np.ndarray] = {}
        self._key_of: dict[bytes, int] = {}  # an indexed signature's bytes -> its key
        self._next_key = 0
        self._admitted: dict[int, int] = {}  # the last `admit`'s inserts: position -> key

    def add(self, signatures: np.ndarray) -> None:
        for row in signatures:
            self._insert(row)

    def admit(self, signatures: np.ndarray) -> tuple[list[bool], int, int]:
        """Keep mask in order, and how many were near-copies of earlier rounds / of this round."""
        earlier = self._next_key
        keep, of_earlier, of_round = [], 0, 0
        self._admitted = {}
        for position, row in enumerate(signatures):
            # A policy repeats its earlier kept completions word for word (70% of the demo's
            # later candidates): such a copy is of an earlier round, whatever older signature
            # the LSH would also find, and needs no query.
            copy = self._key_of.get(row.tobytes())
            minhash = None if copy is not None and copy < earlier else self._minhash(row)
            match = copy if minhash is None else self._nearest_copy(row, minhash)
            keep.append(match is None)
            if match is None:
                self._admitted[position] = self._insert(row, minhash)
            elif match < earlier:
                of_earlier += 1
            else:
                of_round += 1
        return keep, of_earlier, of_round

    def keep_only(self, positions: Iterable[int]) -> None:
        """Forget what the last `admit` inserted but the round did not finally keep (`positions`
        of its signatures): the state a rebuild from the saved files has."""
        kept = set(positions)
        for position, key in self._admitted.items():
            if position not in kept:
                self._lsh.remove(key)
                signature = self._signatures.pop(key).tobytes()
                if self._key_of.get(signature) == key:
                    del self._key_of[signature]
        self._admitted = {}

    def __len__(self) -> int:
        return len(self._signatures)

    def _nearest_copy(self, row: np.ndarray, minhash) -> int | None:
        """The oldest indexed signature this one nearly copies (LSH candidates, confirmed by
        estimate). The oldest, not the first the LSH returns: its set order depends on the
        index's history, and a resumed run (index rebuilt from files) must count the same."""
        matches = [key for key in self._lsh.query(minhash)
                   if np.mean(self._signatures[key] == row) >= self.threshold]
        return min(matches, default=None)

    def _insert(self, row: np.ndarray, minhash=None) -> int:
        key, self._next_key = self._next_key, self._next_key + 1
        self._lsh.insert(key, self._minhash(row) if minhash is None else minhash, check_duplication=False)
        self._signatures[key] = row
        self._key_of.setdefault(row.tobytes(), key)
        return key

    @staticmethod
    def _minhash(row: np.ndarray):
        # The index reads only hash values: the lean wrapper skips MinHash's permutations.
        return LeanMinHash(seed=1, hashvalues=row, scheme=_SCHEME)


def save_signatures(path: Path, signatures: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, signatures, allow_pickle=False)
    write_bytes(path, buf.getvalue())


def load_signatures(paths: Iterable[Path]) -> np.ndarray | None:
    arrays = [np.load(p, allow_pickle=False) for p in paths]
    return np.concatenate(arrays) if arrays else None


# --- contamination -------------------------------------------------------------------------
def normalized_words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class EvalNgrams:
    """The word n-grams of the held-out texts, to test training texts against."""

    def __init__(self, eval_texts: Iterable[str], n: int):
        self.grams: set[tuple[str, ...]] = set()
        self.sizes: set[int] = set()
        for text in eval_texts:
            tokens = normalized_words(text or "")
            if len(tokens) < MIN_WORDS:
                continue
            size = min(n, len(tokens))
            self.sizes.add(size)
            self.grams.update(tuple(tokens[i : i + size]) for i in range(len(tokens) - size + 1))

    def overlaps(self, text: str) -> bool:
        tokens = normalized_words(text or "")
        return any(tuple(tokens[i : i + size]) in self.grams
                   for size in self.sizes for i in range(len(tokens) - size + 1))


def overlap_share(texts: Sequence[str], eval_ngrams: EvalNgrams) -> float:
    """Share of `texts` sharing an n-gram with the eval texts."""
    return sum(eval_ngrams.overlaps(t) for t in texts) / len(texts) if texts else float("nan")
