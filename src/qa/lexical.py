"""The lexical side: BM25 over chunks with bm25s, and the word statistics sentence choice uses."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

_WORD = re.compile(r"(?u)\b\w\w+\b")
SCHEME = "bm25s-lucene/en-plus-stopwords/snowball-english"  # recorded in the manifest


@lru_cache(maxsize=1)
def _stemmer():  # type: ignore[no-untyped-def]
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    # The longer list: the 33-word Lucene list keeps "what", "does" and "from", which then match
    # every sentence that uses them and drown the words that carry the question.
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    return frozenset(STOPWORDS_EN_PLUS)


def terms(text: str) -> list[str]:
    """Lower-cased, stemmed words of ``text`` without English stopwords."""
    stop = _stopwords()
    words = [w for w in _WORD.findall(text.lower()) if w not in stop]
    return _stemmer().stemWords(words) if words else []


class Lexical:
    """A BM25 index (bm25s, Lucene variant) over the chunk texts, saved beside the dense index."""

    def __init__(self, retriever) -> None:  # type: ignore[no-untyped-def]
        self._bm25 = retriever
        self.size = int(retriever.scores["num_docs"])
        indptr = np.asarray(retriever.scores["indptr"])
        self._df = np.diff(indptr)

    @classmethod
    def build(cls, texts: Sequence[str], k1: float = 1.2, b: float = 0.75) -> Lexical:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)
        retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        tokens = [terms(t) for t in texts]
        retriever.index(tokens, show_progress=False)
        return cls(retriever)

    def save(self, folder: Path) -> None:
        self._bm25.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> Lexical:
        import bm25s

        return cls(bm25s.BM25.load(str(folder), mmap=True, show_progress=False))

    def scores(self, query_terms: Sequence[str]) -> np.ndarray:
        """BM25 score of every chunk for the query (zeros where no word is known)."""
        known = self._bm25.get_tokens_ids(list(query_terms))
        if not known:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores_from_ids(known), dtype=np.float32)

    def idf(self, term: str, unknown: float = 0.0) -> float:
        """Inverse document frequency of a term over the chunks (``unknown`` for words never seen)."""
        tid = self._bm25.vocab_dict.get(term)
        if tid is None or tid >= len(self._df):
            return unknown
        df = float(self._df[tid])
        return math.log(1.0 + (self.size - df + 0.5) / (df + 0.5))

    @property
    def max_idf(self) -> float:
        """The idf of a word in no chunk: what an unknown word weighs."""
        return math.log(1.0 + (self.size + 0.5) / 0.5)
