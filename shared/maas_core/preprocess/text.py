"""Text standardisation and tokenization: the one implementation training and serving share.

Tokenization lives here, not in the ONNX graph: Keras' TextVectorization converts to ONNX but
onnxruntime cannot load it, and any second implementation would drift from the first.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

PAD_ID = 0
OOV_ID = 1
FIRST_WORD_ID = 2

# any run of characters that is neither a word character nor whitespace: punctuation, symbols, emoji
_PUNCTUATION = re.compile(r"[^\w\s]+")


def _folded(text: str, lowercase: bool) -> str:
    """NFKC-normalised (so 'ﬁ' == 'fi', full-width == ASCII, NBSP == space), then lowercased with full
    Unicode case folding; _unpunctuated then replaces punctuation by spaces."""
    text = unicodedata.normalize("NFKC", text)
    return text.casefold() if lowercase else text


def _unpunctuated(text: str, strip_punctuation: bool) -> str:
    return _PUNCTUATION.sub(" ", text) if strip_punctuation else text


def tokenize(text: str, lowercase: bool = True, strip_punctuation: bool = True) -> list[str]:
    return tokenize_bounded(text, lowercase, strip_punctuation)[0]


# tokens of the texts seen in the current request (tokens_reused): predict and capture both need them, and
# standardising a long text is the costly part of either
_recent: ContextVar[dict[tuple[str, bool, bool], list[str]] | None] = ContextVar("maas_recent_tokens", default=None)


@contextmanager
def tokens_reused() -> Iterator[None]:
    """Within this block, a text tokenized once is not tokenized again; the memo goes with the block, so
    memory stays the request's own."""
    token = _recent.set({})
    try:
        yield
    finally:
        _recent.reset(token)


def tokenize_bounded(text: str, lowercase: bool = True, strip_punctuation: bool = True,
                     max_chars: int | None = None) -> tuple[list[str], int | None]:
    """(tokens, None), or ([], length) when the normalised text is longer than `max_chars`: NFKC and case
    folding expand some characters many times over (U+FDFA becomes 18), so the raw length alone is no bound
    on the work that follows."""
    recent = _recent.get()
    key = (text, lowercase, strip_punctuation)
    if recent is not None and key in recent:
        return recent[key], None
    normal = _folded(text, lowercase)
    if max_chars is not None and len(normal) > max_chars:
        return [], len(normal)
    tokens = _unpunctuated(normal, strip_punctuation).split()
    if recent is not None:
        recent[key] = tokens
    return tokens, None


def fit_vocabulary(token_lists: Iterable[Sequence[str]], max_size: int, min_count: int = 1) -> list[str]:
    """Most frequent tokens first (ties alphabetical, so fitting is deterministic), at most max_size."""
    counts = Counter(t for tokens in token_lists for t in tokens)
    ranked = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    return ranked[:max_size]


def encode(token_lists: Sequence[Sequence[str]], vocabulary: dict[str, int], max_length: int,
           dtype: str, truncate: str = "post") -> np.ndarray:
    """Token lists -> (n, max_length) ids; 0 pads at the end, unknown words are OOV_ID.
    truncate="post" keeps the first max_length tokens, "pre" the last."""
    import numpy as np  # here, not at the top: tokenizing (capture's text statistics) runs without numpy

    out = np.zeros((len(token_lists), max_length), dtype=dtype)
    for i, tokens in enumerate(token_lists):
        ids = [vocabulary.get(t, OOV_ID) for t in tokens]
        ids = ids[:max_length] if truncate == "post" else ids[-max_length:]
        out[i, : len(ids)] = ids
    return out
