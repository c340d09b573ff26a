"""The sentences spoken in the synthetic emotional speech corpus.

Three kinds of text, so that a model cannot read the emotion from the words:

- 'sentence': everyday English of varied length and form (statements,
  questions, exclamations, commands), 3 to 25 words each;
- 'neutral': flat statements about objects, times, places and numbers that
  carry no feeling of their own;
- 'nonsense': pronounceable pseudo-words, so only the voice carries meaning.

Every text is spoken in every emotion by the speakers that use it, so the
words never predict the label. All texts were written for this project and
are plain ASCII, one per line in texts/KIND.txt beside this module.
"""

import pathlib

TEXT_KINDS = ('sentence', 'neutral', 'nonsense')
_FOLDER = pathlib.Path(__file__).with_name("texts")


def _read(kind: str) -> list[tuple[str, str]]:
    lines = (_FOLDER / f"{kind}.txt").read_text(encoding="ascii").splitlines()
    return [(line.strip(), kind) for line in lines if line.strip()]


# (text, kind) pairs in a fixed order; the corpus builder indexes into this.
TEXTS: tuple[tuple[str, str], ...] = tuple(pair for kind in TEXT_KINDS for pair in _read(kind))


def texts_of_kind(kind: str) -> list[str]:
    """Return every text of one kind ('sentence', 'neutral' or 'nonsense'), in order."""
    if kind not in TEXT_KINDS:
        from emotive.errors import UserError
        raise UserError(f"unknown text kind {kind!r}; use one of {', '.join(TEXT_KINDS)}")
    return [text for text, k in TEXTS if k == kind]
