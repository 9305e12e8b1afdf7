"""Text standardisation and tokenization: the one implementation training and serving share.

Tokenization lives here, not in the ONNX graph: Keras' TextVectorization converts to ONNX but
onnxruntime cannot load it, and any second implementation would drift from the first.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

PAD_ID = 0
OOV_ID = 1
FIRST_WORD_ID = 2

# any run of characters that is neither a word character nor whitespace: punctuation, symbols, emoji
_PUNCTUATION = re.compile(r"[^\w\s]+")


def standardize(text: str, lowercase: bool = True, strip_punctuation: bool = True) -> str:
    """NFKC-normalise (so 'ﬁ' == 'fi', full-width == ASCII, NBSP == space), then lowercase with full
    Unicode case folding and replace punctuation by spaces."""
    text = unicodedata.normalize("NFKC", text)
    if lowercase:
        text = text.casefold()
    if strip_punctuation:
        text = _PUNCTUATION.sub(" ", text)
    return text


def tokenize(text: str, lowercase: bool = True, strip_punctuation: bool = True) -> list[str]:
    return standardize(text, lowercase, strip_punctuation).split()


def fit_vocabulary(token_lists: Iterable[Sequence[str]], max_size: int, min_count: int = 1) -> list[str]:
    """Most frequent tokens first (ties alphabetical, so fitting is deterministic), at most max_size."""
    counts = Counter(t for tokens in token_lists for t in tokens)
    ranked = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    return ranked[:max_size]


def encode(token_lists: Sequence[Sequence[str]], vocabulary: dict[str, int], max_length: int,
           dtype: str, truncate: str = "post") -> np.ndarray:
    """Token lists -> (n, max_length) ids; 0 pads at the end, unknown words are OOV_ID.
    truncate="post" keeps the first max_length tokens, "pre" the last."""
    out = np.zeros((len(token_lists), max_length), dtype=dtype)
    for i, tokens in enumerate(token_lists):
        ids = [vocabulary.get(t, OOV_ID) for t in tokens]
        ids = ids[:max_length] if truncate == "post" else ids[-max_length:]
        out[i, : len(ids)] = ids
    return out
