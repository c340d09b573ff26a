"""Recognition metrics: edit distance, CER and WER for speech recognition, EER for speakers.

Definitions (numpy, host side):

- Edit distance: Levenshtein distance, the fewest substitutions, deletions and insertions
  (each costing 1) that turn the reference sequence into the hypothesis.
- CER and WER are corpus-level, as jiwer and the ASR literature report them: the sum of the
  edit distances over all utterances divided by the total number of reference characters
  (words), not a mean of per-utterance rates (which would over-weight short utterances).
  They can exceed 1 when a hypothesis is much longer than its reference. Both texts are first
  normalised by `emotive.codecs.chars.normalize_text` (NFKD without accents, lower case,
  hyphens and slashes to spaces, other punctuation dropped, whitespace collapsed). Characters
  include the spaces between words; words are the normalised text split on spaces.
  Utterances whose normalised reference is empty add their hypothesis length as insertions
  and nothing to the denominator.
- EER (equal error rate) of a verification system from trial scores (higher = more likely the
  same speaker) and same/different labels. A trial is accepted when score >= threshold; FAR is
  the fraction of different-speaker trials accepted, FRR the fraction of same-speaker trials
  rejected. Sweeping the threshold down over the distinct scores gives a staircase of
  (FAR, FRR) points; the EER is where the straight line between the last point with
  FRR > FAR and the first with FRR <= FAR crosses FAR = FRR, and the threshold is
  interpolated along the same segment.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from emotive.codecs.chars import normalize_text


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance between two sequences (strings or lists of hashable tokens)."""
    return int(prefix_distances(ref, hyp)[-1])


def prefix_distances(ref: Sequence, hyp: Sequence) -> np.ndarray:
    """Levenshtein distances from all of `ref` to every prefix of `hyp`: int64 [len(hyp) + 1]
    (the last is edit_distance(ref, hyp))."""
    cols = np.arange(len(hyp) + 1)
    if len(ref) == 0 or len(hyp) == 0:
        return cols + len(ref)
    vocab: dict = {}
    r = np.array([vocab.setdefault(t, len(vocab)) for t in ref], np.int64)
    h = np.array([vocab.setdefault(t, len(vocab)) for t in hyp], np.int64)
    prev = cols.copy()  # distance from ref[:0] to every prefix of hyp
    for i, token in enumerate(r, start=1):
        row = np.empty_like(prev)
        row[0] = i
        # deletion of ref[i-1] or a (mis)match, then insertions as a running minimum:
        # row[j] = min_k<=j (row[k] + j - k)  =  j + cummin(row - cols)[j].
        row[1:] = np.minimum(prev[1:] + 1, prev[:-1] + (h != token))
        row = np.minimum.accumulate(row - cols) + cols
        prev = row
    return prev


def edit_operations(ref: Sequence, hyp: Sequence) -> dict:
    """One cheapest edit script of ref -> hyp, counted: substitutions, deletions (ref tokens
    the hypothesis lacks) and insertions (extra hypothesis tokens)."""
    n, m = len(ref), len(hyp)
    d = np.zeros((n + 1, m + 1), np.int64)
    d[:, 0], d[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1,
                          d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    counts = {"substitutions": 0, "deletions": 0, "insertions": 0}
    i, j = n, m
    while i or j:
        if i and j and d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            counts["substitutions"] += int(ref[i - 1] != hyp[j - 1])
            i, j = i - 1, j - 1
        elif i and d[i, j] == d[i - 1, j] + 1:
            counts["deletions"] += 1
            i -= 1
        else:
            counts["insertions"] += 1
            j -= 1
    return counts


def character_operations(refs: Sequence[str], hyps: Sequence[str]) -> dict:
    """edit_operations of normalised texts, summed over pairs, as rates of the reference
    characters (substitution + deletion + insertion rates add up to the CER)."""
    total = {"substitutions": 0, "deletions": 0, "insertions": 0}
    chars = 0
    for ref, hyp in zip(refs, hyps):
        ref, hyp = normalize_text(ref), normalize_text(hyp)
        for k, v in edit_operations(ref, hyp).items():
            total[k] += v
        chars += len(ref)
    return {f"{k}_rate": _rate(v, chars) for k, v in total.items()}


def prefix_cer(text: str, hyp: str) -> float:
    """The CER of a transcript of the first part of an utterance: edits against the best
    prefix of the normalised `text` at least as long as the transcript, over that prefix's
    length (the process reward of a partial candidate)."""
    text, hyp = normalize_text(text), normalize_text(hyp)
    if not text:
        return 0.0 if not hyp else float("inf")
    d = prefix_distances(hyp, text).astype(np.float64)
    lengths = np.arange(d.size, dtype=np.float64)
    ok = lengths >= min(len(hyp), len(text))
    ok[0] = ok[0] and len(text) == 0
    return float(np.min(d[ok] / np.maximum(lengths[ok], 1.0)))


def _totals(refs: Sequence[str], hyps: Sequence[str], split_words: bool) -> tuple[int, int]:
    if len(refs) != len(hyps):
        raise ValueError(f"got {len(refs)} references and {len(hyps)} hypotheses")
    edits = units = 0
    for ref, hyp in zip(refs, hyps):
        ref, hyp = normalize_text(ref), normalize_text(hyp)
        if split_words:
            ref, hyp = ref.split(), hyp.split()
        edits += edit_distance(ref, hyp)
        units += len(ref)
    return edits, units


def _rate(edits: int, units: int) -> float:
    if units == 0:
        return 0.0 if edits == 0 else float("inf")
    return edits / units


def error_counts(refs: Sequence[str], hyps: Sequence[str]) -> dict:
    """Character and word edit totals of paired texts, so subsets can be pooled later.

    Returns dict(char_edits, chars, word_edits, words) (ints).
    """
    char_edits, chars = _totals(refs, hyps, split_words=False)
    word_edits, words = _totals(refs, hyps, split_words=True)
    return {"char_edits": char_edits, "chars": chars, "word_edits": word_edits, "words": words}


def cer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus character error rate: total character edits / total reference characters."""
    return _rate(*_totals(refs, hyps, split_words=False))


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus word error rate: total word edits / total reference words."""
    return _rate(*_totals(refs, hyps, split_words=True))


def wrong_text_pairs(refs: Sequence[str], seed: int = 0) -> np.ndarray:
    """For every reference i the index of another reference with a different text: a
    random derangement of the texts (the chance level of a recogniser's scores is its error
    against these). Returns int [N]; a text shared by every reference has no wrong partner,
    so ValueError."""
    texts = list(refs)
    if len(set(texts)) < 2:
        raise ValueError("wrong-text pairs need at least two different texts")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(texts))
    partner = np.empty(len(texts), np.int64)
    for k, i in enumerate(order):
        # The next clip in a shuffled order whose text differs: a fixed-point-free pairing.
        step = 1
        while texts[order[(k + step) % len(order)]] == texts[i]:
            step += 1
        partner[i] = order[(k + step) % len(order)]
    return partner


def wrong_text_cer(refs: Sequence[str], hyps: Sequence[str], seed: int = 0) -> float:
    """CER of each hypothesis against another clip's (different) reference text: what an
    error rate reaches when the hypotheses do not say the reference (chance)."""
    partner = wrong_text_pairs(refs, seed)
    return cer([refs[j] for j in partner], list(hyps))


def eer(scores_N, same_N) -> tuple[float, float]:
    """Equal error rate and its threshold from trial scores [N] and bool labels [N].

    Returns (eer in [0, 1], threshold); accept a trial when score >= threshold. Needs at
    least one same and one different trial (ValueError otherwise).
    """
    scores = np.asarray(scores_N, np.float64).reshape(-1)
    same = np.asarray(same_N, bool).reshape(-1)
    if scores.shape != same.shape:
        raise ValueError(f"got {scores.size} scores and {same.size} labels")
    n_same, n_diff = int(same.sum()), int((~same).sum())
    if n_same == 0 or n_diff == 0:
        raise ValueError("EER needs both same-speaker and different-speaker trials")
    # Distinct thresholds, highest first; counts of each label at each.
    values, inverse = np.unique(-scores, return_inverse=True)
    thresholds = -values
    same_at = np.bincount(inverse, weights=same, minlength=values.size)
    diff_at = np.bincount(inverse, weights=~same, minlength=values.size)
    # Point 0: threshold above every score (nothing accepted); point k: accept >= thresholds[k-1].
    far = np.concatenate([[0.0], np.cumsum(diff_at) / n_diff])
    frr = np.concatenate([[1.0], 1.0 - np.cumsum(same_at) / n_same])
    thr = np.concatenate([[thresholds[0]], thresholds])
    gap = frr - far  # starts at 1, ends at -1 (everything accepted), never increases
    k = int(np.argmax(gap <= 0))
    alpha = gap[k - 1] / (gap[k - 1] - gap[k])
    rate = far[k - 1] + alpha * (far[k] - far[k - 1])
    threshold = thr[k - 1] + alpha * (thr[k] - thr[k - 1])
    return float(rate), float(threshold)


def cosine_trials(emb_NxE, labels_N, subset_N=None) -> tuple[np.ndarray, np.ndarray]:
    """All unordered pairs i < j of L2-normalised embeddings: (cosine scores [P], same [P]).

    `subset_N` (bool [N]) restricts both sides of every pair to the marked utterances.
    """
    emb = np.asarray(emb_NxE, np.float64)
    labels = np.asarray(labels_N)
    if subset_N is not None:
        keep = np.asarray(subset_N, bool)
        emb, labels = emb[keep], labels[keep]
    emb = emb / np.maximum(np.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)
    i, j = np.triu_indices(len(labels), k=1)
    sim = emb @ emb.T
    return sim[i, j], labels[i] == labels[j]
