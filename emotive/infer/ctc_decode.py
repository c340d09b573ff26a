"""CTC prefix beam search with optional character and word n-gram language models.

Greedy decoding (`emotive.codecs.chars.ctc_greedy_texts`) takes the best class per slot. A
prefix beam search keeps the `beam` most probable label prefixes instead, summing over every
alignment of each (blank-ending and label-ending paths kept apart, as in Hannun et al., 2014),
and can add a language model's opinion of each character it appends:

    score(prefix) = log P_ctc(prefix | audio) + alpha * log P_lm(prefix) + beta * len(prefix)
                    + the score of each whole word of prefix (see WordScoring)

    lm = CharNgramLM.fit(train_texts, order=6)
    words = WordScoring(WordNgramLM.fit(train_texts, order=3), weight=0.2, bonus=1.5)
    text = prefix_beam_search(log_probs_SxV, lm, beam=32, alpha=0.4, beta=1.5, words=words)

The character model is an n-gram model with interpolated Witten-Bell smoothing over the
recogniser's characters plus an end-of-text symbol, fitted on normalised training texts (never
the evaluated ones). It knows spelling ("hom" is rarely followed by a space) without a word
list, so it still spells unseen and made-up words. The optional word model, smoothed the same
way, scores each word as the search completes it (at the space after it, or at the end), given
the words before it: it prefers "the tea has gone" to "the the has gon". Words rare in training
share one unknown-word class, and a word outside the vocabulary pays a fixed penalty on top, so
a made-up word can still win where the audio is clear.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, defaultdict
from typing import Iterable

import numpy as np

from emotive.codecs.chars import BLANK, CHARS, VOCAB_SIZE, normalize_text
from emotive.errors import UserError

_BOS = "\x02"  # pads the context before the first character
_EOS = "\x03"  # the end-of-text symbol the model predicts after the last character
_CHARS = ("",) + tuple(CHARS)  # by class id; the blank (id 0) adds no character
_NEG_INF = -math.inf


def _count_ngrams(padded_sequences, order: int) -> dict:
    """How often each symbol followed each context of 0..order-1 symbols, over sequences
    (strings, or tuples of words) already padded with order-1 start symbols and an end one;
    a context is a slice of its sequence, so it is a string or a tuple in turn."""
    counts: dict = defaultdict(lambda: defaultdict(int))
    for padded in padded_sequences:
        for i in range(order - 1, len(padded)):
            for k in range(order):
                counts[padded[i - k:i]][padded[i]] += 1
    return {h: dict(f) for h, f in counts.items()}


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
        self.index = {c: i for i, c in enumerate(self.symbols)}
        self._counts = counts
        self._dists: dict[str, np.ndarray] = {}

    @classmethod
    def fit(cls, texts: Iterable[str], order: int = 6) -> "CharNgramLM":
        """Count every context of 0..order-1 characters in the normalised texts."""
        texts = _normalized(texts)
        return cls(order, _count_ngrams((_BOS * (order - 1) + t + _EOS for t in texts), order))

    def distribution(self, context: str) -> np.ndarray:
        """log P(symbol | context) for every symbol of `self.symbols` (the end symbol last);
        only the last order-1 characters of the context matter."""
        h = (_BOS * (self.order - 1) + context)[len(context):] if self.order > 1 else ""
        return self._log_dist(h)

    def log_prob(self, context: str, char: str | None) -> float:
        """log P(char | context); char None is the end of the text."""
        return float(self.distribution(context)[self.index[_EOS if char is None else char]])

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
                counts[self.index[c]] = n
            types = float(len(follow))
            probs = (counts + types * lower) / (counts.sum() + types)
        else:
            probs = lower
        out = np.log(probs)
        self._dists[h] = out
        return out


def _normalized(texts: Iterable[str]) -> list[str]:
    texts = [t for t in (normalize_text(t) for t in texts) if t]
    if not texts:
        raise UserError("the language model needs at least one non-empty training text")
    return texts


class WordNgramLM:
    """A word n-gram model, P(word | previous order-1 words), Witten-Bell smoothed as
    `CharNgramLM` is (sparse here: it computes one word's probability at a time).

    Words seen fewer than `min_count` times in training are counted as one unknown-word class,
    and any word outside the vocabulary is scored as that class, so it learns how likely a rare
    or made-up word is in each context. The recursion ends at the uniform distribution over the
    vocabulary, the unknown class and the end of the text.
    """

    UNKNOWN = "<unk>"

    def __init__(self, order: int, counts: dict[tuple, dict[str, int]], vocabulary: set[str]):
        if order < 1:
            raise UserError(f"the word model order must be 1 or more, got {order}")
        self.order = order
        self.vocabulary = frozenset(vocabulary)
        self._counts = counts
        self._totals = {h: (sum(f.values()), len(f)) for h, f in counts.items()}
        self._uniform = 1.0 / (len(self.vocabulary) + 2)  # the words, unknown and the end
        self._probs: dict[tuple, float] = {}

    @classmethod
    def fit(cls, texts: Iterable[str], order: int = 3, min_count: int = 2) -> "WordNgramLM":
        """Count every context of 0..order-1 words in the normalised texts."""
        if min_count < 1:
            raise UserError(f"the word model's min_count must be 1 or more, got {min_count}")
        sentences = [t.split() for t in _normalized(texts)]
        seen = Counter(w for words in sentences for w in words)
        vocabulary = {w for w, n in seen.items() if n >= min_count}
        pad = (_BOS,) * (order - 1)
        padded = (pad + tuple(w if w in vocabulary else cls.UNKNOWN for w in words) + (_EOS,)
                  for words in sentences)
        return cls(order, _count_ngrams(padded, order), vocabulary)

    def log_prob(self, context: tuple[str, ...] | list[str], word: str | None) -> float:
        """log P(word | the words before it); word None is the end of the text."""
        h = ((_BOS,) * (self.order - 1) + tuple(context))[len(context):]
        w = _EOS if word is None else word if word in self.vocabulary else self.UNKNOWN
        return math.log(self._prob(h, w))

    def log_prob_text(self, text: str) -> float:
        """log P of a whole normalised text's words, its end included."""
        words = text.split()
        return sum(self.log_prob(words[:i], w) for i, w in enumerate(words + [None]))

    def _prob(self, h: tuple, w: str) -> float:
        key = (h, w)
        cached = self._probs.get(key)
        if cached is not None:
            return cached
        lower = self._prob(h[1:], w) if h else self._uniform
        follow = self._counts.get(h)
        if follow:
            n, types = self._totals[h]
            p = (follow.get(w, 0) + types * lower) / (n + types)
        else:
            p = lower
        self._probs[key] = p
        return p


@dataclasses.dataclass(frozen=True)
class WordScoring:
    """How the beam search scores each word it completes (at the space after it, or at the end):

        weight * (log P_words(word | the words before it) - unknown_penalty [outside the
        vocabulary]) + bonus

    The bonus per word balances the cost of each word, as `beta` does per character; without
    it the search runs words together. The penalty keeps a made-up spelling from being cheaper
    than a rare real word (the unknown class alone is likelier than most single words); it
    plays the part of pyctcdecode's unk_score_offset.
    """

    lm: WordNgramLM
    weight: float = 0.2
    bonus: float = 1.5
    unknown_penalty: float = 30.0

    def score(self, text: str, end: bool = False) -> float:
        """The score of text's last word (0 where text is empty or ends in a space), plus, if
        end, that of the end of the text after it."""
        words = text.split()
        log_p, n = 0.0, 0
        if text and not text.endswith(" "):
            log_p += self.lm.log_prob(words[:-1], words[-1])
            if words[-1] not in self.lm.vocabulary:
                log_p -= self.unknown_penalty
            n = 1
        if end:
            log_p += self.lm.log_prob(words, None)
        return self.weight * log_p + self.bonus * n


def _logaddexp(a: float, b: float) -> float:
    if a == _NEG_INF:
        return b
    if b == _NEG_INF:
        return a
    hi, lo = (a, b) if a > b else (b, a)
    return hi + math.log1p(math.exp(lo - hi))


def prefix_beam_search(log_probs_SxV, lm: CharNgramLM | None = None, *, beam: int = 16,
                       alpha: float = 0.5, beta: float = 0.0, prune: float = 10.0,
                       words: WordScoring | None = None) -> str:
    """The best transcript of one utterance's CTC log-probabilities [S, V] (valid slots only).

    beam: prefixes kept per slot; alpha: character-model weight; beta: bonus per character
    (balances the models' cost of each character); prune: classes more than this many nats
    below a slot's best are not tried; words: how to score whole words with a word model.
    With no models this is a plain CTC prefix beam search, which finds a labelling at least as
    probable as the greedy one.
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
                    step = alpha * float(dist[lm.index[c]]) if use_lm else 0.0
                    if words is not None and c == " ":
                        step += words.score(prefix)
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
        if words is not None:
            end += words.score(prefix, end=True)
        return _logaddexp(p_b, p_nb) + bonus[prefix] + end

    best = max(beams.items(), key=final)[0]
    return " ".join(best.split())


class BeamDecoder:
    """Decodes a batch of CTC log-probabilities by prefix beam search, with an optional LM.

    `decode(log_probs_BxSxV, slots_B)` returns one normalised transcript per row, reading only
    each row's valid slots. Settings as in `prefix_beam_search`.
    """

    def __init__(self, beam: int = 16, lm: CharNgramLM | None = None, alpha: float = 0.5,
                 beta: float = 0.0, words: WordScoring | None = None):
        if beam < 1:
            raise UserError(f"the beam width must be 1 or more, got {beam}")
        self.beam, self.lm, self.alpha, self.beta = beam, lm, alpha, beta
        self.words = words

    def decode(self, log_probs_BxSxV, slots_B) -> list[str]:
        log_probs = np.asarray(log_probs_BxSxV)
        return [prefix_beam_search(log_probs[b, :int(n)], self.lm, beam=self.beam,
                                   alpha=self.alpha, beta=self.beta, words=self.words)
                for b, n in enumerate(np.asarray(slots_B))]

    def describe(self) -> dict:
        """The settings, for reports."""
        return {"method": "prefix beam search", "beam": self.beam,
                "lm_order": self.lm.order if self.lm is not None else 0,
                "lm_weight": self.alpha if self.lm is not None else 0.0, "char_bonus": self.beta,
                **({"word_lm_order": self.words.lm.order, "word_lm_weight": self.words.weight,
                    "word_bonus": self.words.bonus,
                    "unknown_word_penalty": self.words.unknown_penalty}
                   if self.words is not None else {"word_lm_order": 0})}
