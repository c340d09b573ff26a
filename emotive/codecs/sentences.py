"""Text the user gives, checked and cut for sentence-wise synthesis.

    check_text("  Hello\n there ")              # "Hello there"; UserError if nothing to speak
    split_sentences(long_text, max_chars=100)   # pieces of at most ~100 characters
"""

from __future__ import annotations

import re
import unicodedata

from emotive.errors import UserError


def check_text(text, what: str = "text") -> str:
    """Returns `text` with whitespace runs collapsed; UserError if it is empty or has no
    letter or digit (punctuation or symbols only: nothing to speak)."""
    if not isinstance(text, str):
        raise UserError(f"{what} must be a string, got {type(text).__name__}")
    clean = " ".join(text.split())
    if not clean:
        raise UserError(f"{what} is empty; give the words to speak")
    if not any(unicodedata.category(c)[0] in "LN" for c in clean):
        raise UserError(f"{what} {clean[:40]!r} has only punctuation or symbols; give words "
                        "to speak")
    return clean


_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[.!?…][\"'”’)\]])\s+|(?<=[。！？])")
_CLAUSE_END = re.compile(r"(?<=[,;:，；：])\s*")


def split_sentences(text: str, max_chars: int = 100) -> list[str]:
    """Splits text into chunks of at most `max_chars` characters for sentence-wise synthesis.

    Cuts at sentence ends (. ! ? … and CJK 。！？), joining short sentences up to the limit;
    a longer sentence is cut at commas, semicolons and colons, then at spaces, and a word
    longer than the limit is cut inside. A piece with no letter or digit (a stray "...")
    joins its neighbour, so it may pass the limit by that much. UserError for empty text.
    """
    if max_chars < 1:
        raise UserError(f"max_chars must be at least 1, got {max_chars}")
    text = check_text(text)
    chunks: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentence = sentence.strip()
        if len(sentence) <= max_chars:
            pieces = [sentence]
        else:
            pieces = []
            for clause in _CLAUSE_END.split(sentence):
                pieces += [clause] if len(clause) <= max_chars else _words(clause, max_chars)
        chunks += _pack([p for p in pieces if p], max_chars)
    return _fold_unspeakable(_pack(chunks, max_chars))


def _words(clause: str, max_chars: int) -> list[str]:
    words = []
    for word in clause.split():
        words += [word[i:i + max_chars] for i in range(0, len(word), max_chars)]
    return words


def _pack(pieces: list[str], max_chars: int) -> list[str]:
    """Greedily joins consecutive pieces with spaces while they fit in max_chars."""
    out: list[str] = []
    for piece in pieces:
        if out and len(out[-1]) + 1 + len(piece) <= max_chars:
            out[-1] += " " + piece
        else:
            out.append(piece)
    return out


def _fold_unspeakable(chunks: list[str]) -> list[str]:
    out: list[str] = []
    for chunk in chunks:
        speakable = any(unicodedata.category(c)[0] in "LN" for c in chunk)
        if out and (not speakable or not any(unicodedata.category(c)[0] in "LN"
                                             for c in out[-1])):
            out[-1] += " " + chunk
        else:
            out.append(chunk)
    return out
