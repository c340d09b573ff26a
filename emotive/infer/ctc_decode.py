"""CTC prefix beam search with an optional character n-gram language model.

Greedy decoding (`emotive.codecs.chars.ctc_greedy_texts`) takes the best class per slot. A
prefix beam search keeps the `beam` most probable label prefixes instead, summing over every
alignment of each (blank-ending and label-ending paths kept apart, as in Hannun et al., 2014),
and can add a language model's opinion of each character it appends:

    score(prefix) = log P_ctc(prefix | audio) + alpha * log P_lm(prefix) + beta * len(prefix)

    lm = CharNgramLM.fit(train_texts, order=6)
    text = prefix_beam_search(log_probs_SxV, lm, beam=16, alpha=0.5, beta=1.0)

The language model is a character n-gram model with interpolated Witten-Bell smoothing over
the recogniser's characters plus an end-of-text symbol, fitted on normalised training texts
(never the evaluated ones). It knows spelling ("hom" is rarely followed by a space) without a
word list, so it still spells unseen and made-up words.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable

import numpy as np

from emotive.codecs.chars import BLANK, CHARS, VOCAB_SIZE, normalize_text
from emotive.errors import UserError

_BOS = "\x02"  # pads the context before the first character
_EOS = "\x03"  # the end-of-text symbol the model predicts after the last character
_CHARS = ("",) + tuple(CHARS)  # by class id; the blank (id 0) adds no character
_NEG_INF = -math.inf


class CharNgramLM:
    """A character n-gram model, P(next | previous order-1 characters), Witten-Bell smoothed.

    P(c | h) = (N(h, c) + T(h) * P(c | h minus its first character)) / (N(h) + T(h)), where
    N counts what followed h in training and T(h) is how many different characters did; the
    recursion ends at the uniform distribution over the characters and the end symbol.
    """

    def __init__(self, order: int, counts: dict[str, dict[str, int]]):
        if order < 1:
            raise UserError(f"the language model order must be 1 or more, got {order}")
        self.order = order
        self.symbols = tuple(c for c in _CHARS if c) + (_EOS,)
        self._index = {c: i for i, c in enumerate(self.symbols)}
        self._counts = counts
        self._dists: dict[str, np.ndarray] = {}

    @classmethod
    def fit(cls, texts: Iterable[str], order: int = 6) -> "CharNgramLM":
        """Count every context of 0..order-1 characters in the normalised texts."""
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        n_texts = 0
        for text in texts:
            text = normalize_text(text)
            if not text:
                continue
            n_texts += 1
            padded = _BOS * (order - 1) + text + _EOS
            for i in range(order - 1, len(padded)):
                c = padded[i]
                for k in range(order):
                    counts[padded[i - k:i]][c] += 1
        if not n_texts:
            raise UserError("the language model needs at least one non-empty training text")
        return cls(order, {h: dict(f) for h, f in counts.items()})

    def distribution(self, context: str) -> np.ndarray:
        """log P(symbol | context) for every symbol of `self.symbols` (the end symbol last);
        only the last order-1 characters of the context matter."""
        h = (_BOS * (self.order - 1) + context)[len(context):] if self.order > 1 else ""
        return self._log_dist(h)

    def log_prob(self, context: str, char: str | None) -> float:
        """log P(char | context); char None is the end of the text."""
        return float(self.distribution(context)[self._index[_EOS if char is None else char]])

    def log_prob_text(self, text: str) -> float:
        """log P of a whole normalised text, its end included."""
        total = 0.0
        for i, c in enumerate(text):
            total += self.log_prob(text[:i], c)
        return total + self.log_prob(text, None)

    def _log_dist(self, h: str) -> np.ndarray:
        cached = self._dists.get(h)
        if cached is not None:
            return cached
        if h:
            lower = np.exp(self._log_dist(h[1:]))
        else:
            lower = np.full(len(self.symbols), 1.0 / len(self.symbols))
        follow = self._counts.get(h)
        if follow:
            counts = np.zeros(len(self.symbols))
            for c, n in follow.items():
                counts[self._index[c]] = n
            types = float(len(follow))
            probs = (counts + types * lower) / (counts.sum() + types)
        else:
            probs = lower
        out = np.log(probs)
        self._dists[h] = out
        return out


def _logaddexp(a: float, b: float) -> float:
    if a == _NEG_INF:
        return b
    if b == _NEG_INF:
        return a
    hi, lo = (a, b) if a > b else (b, a)
    return hi + math.log1p(math.exp(lo - hi))


def prefix_beam_search(log_probs_SxV, lm: CharNgramLM | None = None, *, beam: int = 16,
                       alpha: float = 0.5, beta: float = 0.0, prune: float = 10.0) -> str:
    """The best transcript of one utterance's CTC log-probabilities [S, V] (valid slots only).

    beam: prefixes kept per slot; alpha: language-model weight; beta: bonus per character
    (balances the model's cost of each character); prune: classes more than this many nats
    below a slot's best are not tried. With lm None and alpha 0 this is a plain CTC prefix
    beam search, which finds a labelling at least as probable as the greedy one.
    """
    if beam < 1:
        raise UserError(f"the beam width must be 1 or more, got {beam}")
    log_probs = np.asarray(log_probs_SxV, np.float64)
    if log_probs.ndim != 2 or log_probs.shape[1] != VOCAB_SIZE:
        raise UserError(f"CTC log-probabilities must be [slots, {VOCAB_SIZE}], got "
                        f"{log_probs.shape}")
    use_lm = lm is not None and alpha != 0.0
    # prefix -> [log P(paths ending in blank), log P(paths ending in its last character)]
    beams: dict[str, list[float]] = {"": [0.0, _NEG_INF]}
    # prefix -> alpha * log P_lm(prefix) + beta * len(prefix), kept outside the CTC sums
    bonus: dict[str, float] = {"": 0.0}
    for lp in log_probs:
        tried = np.nonzero(lp >= lp.max() - prune)[0]
        nxt: dict[str, list[float]] = defaultdict(lambda: [_NEG_INF, _NEG_INF])
        for prefix, (p_b, p_nb) in beams.items():
            p_all = _logaddexp(p_b, p_nb)
            dist = lm.distribution(prefix) if use_lm else None
            for v in tried:
                p = float(lp[v])
                if v == BLANK:
                    nxt[prefix][0] = _logaddexp(nxt[prefix][0], p_all + p)
                    continue
                c = _CHARS[v]
                new = prefix + c
                if new not in bonus:
                    step = alpha * float(dist[lm._index[c]]) if use_lm else 0.0
                    bonus[new] = bonus[prefix] + step + beta
                if prefix and prefix[-1] == c:
                    # the same character again: a new one only after a blank, else it merges
                    nxt[new][1] = _logaddexp(nxt[new][1], p_b + p)
                    nxt[prefix][1] = _logaddexp(nxt[prefix][1], p_nb + p)
                else:
                    nxt[new][1] = _logaddexp(nxt[new][1], p_all + p)
        ranked = sorted(nxt.items(), key=lambda kv: _logaddexp(*kv[1]) + bonus[kv[0]],
                        reverse=True)
        beams = dict(ranked[:beam])

    def final(item):
        prefix, (p_b, p_nb) = item
        end = alpha * lm.log_prob(prefix, None) if use_lm else 0.0
        return _logaddexp(p_b, p_nb) + bonus[prefix] + end

    best = max(beams.items(), key=final)[0]
    return " ".join(best.split())


class BeamDecoder:
    """Decodes a batch of CTC log-probabilities by prefix beam search, with an optional LM.

    `decode(log_probs_BxSxV, slots_B)` returns one normalised transcript per row, reading only
    each row's valid slots. Settings as in `prefix_beam_search`.
    """

    def __init__(self, beam: int = 16, lm: CharNgramLM | None = None, alpha: float = 0.5,
                 beta: float = 0.0):
        if beam < 1:
            raise UserError(f"the beam width must be 1 or more, got {beam}")
        self.beam, self.lm, self.alpha, self.beta = beam, lm, alpha, beta

    def decode(self, log_probs_BxSxV, slots_B) -> list[str]:
        log_probs = np.asarray(log_probs_BxSxV)
        return [prefix_beam_search(log_probs[b, :int(n)], self.lm, beam=self.beam,
                                   alpha=self.alpha, beta=self.beta)
                for b, n in enumerate(np.asarray(slots_B))]

    def describe(self) -> dict:
        """The settings, for reports."""
        return {"method": "prefix beam search", "beam": self.beam,
                "lm_order": self.lm.order if self.lm is not None else 0,
                "lm_weight": self.alpha if self.lm is not None else 0.0, "char_bonus": self.beta}
