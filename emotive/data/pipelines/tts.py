"""TTS language-model data: pre-encoded clips -> Llasa documents -> packed fixed-length rows.

A clip of the pre-encoded table (`emotive codec encode-split`; a dict of arrays: codes,
offsets, text, emotion, intensity, speaker, speakers, codebook_size) becomes one document

    prompt_ids(text, emotion tag, speaker tag) + speech ids + [SPEECH_GENERATION_END]

and training predicts each next token, with the loss only where the target is a speech code
or the stop token (Llasa: loss only on the speech part). With `vocab.layout == "ella_v"` the
speech part interleaves the phonemes with their codes (`emotive.data.pipelines.ella`; the
table needs its `phones` timings) and the loss is on codes, end-of-phoneme and stop tokens. Documents are packed end to end into
rows of `seq_len` (input, target) pairs, so there is no padding between them; attention and
rotary positions restart at every document through `segment_ids` and `positions`. A row:

    inputs       int32   [L]  document tokens, 0 after the last document
    targets      int32   [L]  the next token of the same document
    loss_mask    float32 [L]  1 where the target is a speech code or SPEECH_GENERATION_END
                              (ella_v: or EOP)
    segment_ids  int32   [L]  1, 2, ... for the documents of the row, 0 for padding
    positions    int32   [L]  0, 1, ... restarting at each document

A document of n tokens uses n - 1 pairs. One longer than a row is truncated to the row
(`long_docs="truncate"`: its speech is cut and it has no stop token) or dropped
(`long_docs="drop"`); one whose prompt alone does not fit is always dropped. Both are counted
in `PackStats` and reported by the task, never silent.

Tags: a clip gets the emotion tag of (its emotion, its intensity) and its speaker's tag when
the vocabulary has them; otherwise none (counted). `tag_dropout` leaves a tag out of a
document with that probability, so the model also learns to speak without one, and
`text_dropout` leaves the text out (TEXT_UNDERSTANDING_START directly followed by _END):
the unconditional prompts that classifier-free guidance contrasts at decode time
(`drop_condition` makes the same prompts there).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np

from emotive.codecs.text import TTSVocab
from emotive.data.pipelines.ella import interleave, parse_phones, unit_frames
from emotive.data.speech.emotions import EMOTIONS
from emotive.data.speech.espeak import phonemize
from emotive.data.pipelines.input import IteratorWrapper
from emotive.errors import UserError

REQUIRED_KEYS = ("codes", "offsets", "text")
LONG_DOCS = ("truncate", "drop")


@dataclasses.dataclass(frozen=True)
class Documents:
    """All documents end to end: document d is tokens[offsets[d]:offsets[d + 1]], its first
    prompt_lens[d] tokens are the prompt, and loss[t] says whether token t is predicted with
    a loss (speech codes, stop; ella_v: end-of-phoneme)."""

    tokens: np.ndarray  # int32 [sum n]
    offsets: np.ndarray  # int64 [D + 1]
    prompt_lens: np.ndarray  # int32 [D]
    loss: np.ndarray  # bool [sum n]
    untagged_emotion: int = 0  # documents without an emotion tag (no label, or no such tag)
    untagged_speaker: int = 0  # documents without a speaker tag
    untimed: tuple[str, ...] = ()  # ella_v: ids of clips left out (no or mismatched timings)

    def __len__(self) -> int:
        return len(self.prompt_lens)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __getitem__(self, d: int) -> np.ndarray:
        return self.tokens[self.offsets[d]:self.offsets[d + 1]]


def check_table(table: dict, where: str, codebook_size: int) -> None:
    """UserError unless `table` is a pre-encoded table whose codes fit `codebook_size`."""
    missing = [k for k in REQUIRED_KEYS if k not in table]
    if missing:
        raise UserError(f"{where} lacks {missing}; make it with `emotive codec encode-split`")
    if len(table["offsets"]) != len(table["text"]) + 1 or len(table["text"]) == 0:
        raise UserError(f"{where} holds {len(table['text'])} clips with "
                        f"{len(table['offsets'])} offsets; it is empty or damaged, re-encode it")
    made_with = int(table.get("codebook_size", codebook_size))
    if made_with != codebook_size:
        raise UserError(f"{where} was encoded by a codec with {made_with} codes but the "
                        f"vocabulary has {codebook_size}; set vocab.codebook_size={made_with}")


def drop_condition(vocab: TTSVocab, prompt, what: str) -> list[int]:
    """`prompt` without its text (the ids between TEXT_UNDERSTANDING_START and _END) or
    without its emotion tag ("emotion"): the condition-dropped prompts of training and of
    classifier-free guidance."""
    prompt = [int(t) for t in prompt]
    if what == "emotion":
        return [t for t in prompt if not vocab.emotion_offset <= t < vocab.speaker_offset]
    if what != "text":
        raise ValueError(f"drop_condition: unknown condition {what!r}")
    start = prompt.index(vocab.special["TEXT_UNDERSTANDING_START"])
    end = prompt.index(vocab.special["TEXT_UNDERSTANDING_END"], start)
    return prompt[:start + 1] + prompt[end:]


def build_documents(table: dict, vocab: TTSVocab, *, tag_dropout: float = 0.0,
                    text_dropout: float = 0.0, seed: int = 0, where: str = "table",
                    advance: int = 0) -> Documents:
    """The Llasa document of every clip of a pre-encoded table (see the module docstring).

    A clip whose text is empty or punctuation only is a UserError naming its id: the
    table is the user's data and a silent skip would hide a broken transcript. With the
    ella_v layout (`advance`: its local advance in frames) a clip without usable phone
    timings is left out and named in `Documents.untimed`, which the task reports.
    """
    check_table(table, where, vocab.codebook_size)
    n = len(table["text"])
    emotions = np.asarray(table.get("emotion", np.full(n, -1)))
    intensities = np.asarray(table.get("intensity", np.zeros(n)))
    speakers = np.asarray(table.get("speaker", np.full(n, -1)))
    names = [str(s) for s in table.get("speakers", [])]
    ids = table.get("id", [str(i) for i in range(n)])
    ella = vocab.layout == "ella_v"
    if ella and "phones" not in table:
        raise UserError(f"{where} has no phone timings (`phones`), which the ella_v layout "
                        "needs; re-encode it with `emotive codec encode-split` from a corpus "
                        "with timings, or align it (--align-asr)")
    vocab.prefetch([str(t) for t in table["text"]])  # phonemes: one batch, not one per clip
    pieces, losses, prompt_lens, untimed = [], [], [], []
    untagged_emotion = untagged_speaker = 0
    for c in range(n):
        rng = np.random.default_rng([seed, c])
        emotion = _emotion_name(int(emotions[c]))
        level = int(intensities[c])
        if emotion is None or emotion not in vocab.emotions or level not in vocab.intensities \
                or rng.random() < tag_dropout:
            emotion = None
            untagged_emotion += 1
        s = int(speakers[c])
        speaker = names[s] if 0 <= s < len(names) and names[s] in vocab.speakers else None
        if speaker is None or rng.random() < tag_dropout:
            speaker = None
            untagged_speaker += 1
        try:
            prompt = vocab.prompt_ids(str(table["text"][c]), emotion=emotion, intensity=level,
                                      speaker=speaker)
        except UserError as exc:
            raise UserError(f"{where}, clip {ids[c]}: {exc}") from None
        if text_dropout and rng.random() < text_dropout:
            prompt = drop_condition(vocab, prompt, "text")
        codes = table["codes"][table["offsets"][c]:table["offsets"][c + 1]]
        if ella:
            units = vocab.phone_units(vocab.encode_text(str(table["text"][c])))
            frames = unit_frames(vocab, units, parse_phones(table["phones"][c]))
            if frames is None or frames.sum() != len(codes):
                untimed.append(str(ids[c]))
                continue
            speech = interleave(vocab, units, frames, codes, advance)
            body, loss = speech.tokens, speech.loss
        else:
            body = np.concatenate([vocab.codes_to_ids(codes), [vocab.speech_end]])
            loss = np.ones(len(body), bool)
        pieces.append(np.concatenate([np.asarray(prompt, np.int32), body]))
        losses.append(np.concatenate([np.zeros(len(prompt), bool), loss]))
        prompt_lens.append(len(prompt))
    if not pieces:
        raise UserError(f"{where}: none of its {n} clips has phone timings that match its "
                        f"text (e.g. {untimed[:3]}); check the table's `phones` column")
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in pieces])]).astype(np.int64)
    return Documents(np.concatenate(pieces).astype(np.int32), offsets,
                     np.asarray(prompt_lens, np.int32), np.concatenate(losses),
                     untagged_emotion, untagged_speaker, tuple(untimed))


def _emotion_name(index: int) -> str | None:
    return EMOTIONS[index] if 0 <= index < len(EMOTIONS) else None


@dataclasses.dataclass(frozen=True)
class PackStats:
    rows: int
    documents: int  # documents placed (whole or truncated)
    truncated: int
    dropped: int
    efficiency: float  # filled (input, target) pairs / all pairs of the rows
    loss_fraction: float  # pairs with loss / all pairs

    def describe(self) -> str:
        return (f"{self.documents} documents in {self.rows} rows, packing efficiency "
                f"{self.efficiency:.1%} (loss on {self.loss_fraction:.1%} of positions); "
                f"{self.truncated} truncated and {self.dropped} dropped as longer than a row")


def plan_rows(docs: Documents, seq_len: int, *, seed: int = 0, open_rows: int = 64,
              long_docs: str = "truncate", multiple_of: int = 1):
    """Packs documents into rows of `seq_len` pairs: first fit over `open_rows` open rows,
    documents in a seeded random order (the same plan in every process).

    Returns (rows: list of arrays of document indices, take: int32 [D] pairs used per
    document, stats). `multiple_of` appends empty rows up to a multiple (for eval batches).
    """
    if long_docs not in LONG_DOCS:
        raise UserError(f"long_docs must be one of {', '.join(LONG_DOCS)}, got {long_docs!r}")
    pairs = docs.lengths - 1
    take = np.minimum(pairs, seq_len).astype(np.int32)
    too_long = pairs > seq_len
    dropped = (docs.prompt_lens > seq_len) | (too_long if long_docs == "drop" else False)
    take[dropped] = 0
    rows: list[list[int]] = []
    open_ids: list[int] = []
    free = np.zeros(0, np.int64)  # free pairs of the open rows
    order = np.random.default_rng(seed).permutation(len(docs))
    for d in order[~dropped[order]]:
        need = int(take[d])
        fits = np.flatnonzero(free >= need)
        if fits.size:
            j = int(fits[0])
            rows[open_ids[j]].append(int(d))
            free[j] -= need
            if free[j] == 0:
                open_ids.pop(j)
                free = np.delete(free, j)
            continue
        rows.append([int(d)])
        open_ids.append(len(rows) - 1)
        free = np.append(free, seq_len - need)
        if len(open_ids) > open_rows:  # close the fullest open row
            j = int(np.argmin(free))
            open_ids.pop(j)
            free = np.delete(free, j)
    rows += [[] for _ in range(-len(rows) % multiple_of)]
    placed = ~dropped
    counted = np.concatenate([[0], np.cumsum(docs.loss)])  # loss tokens before each token
    loss_pairs = counted[docs.offsets[:-1] + 1 + take] - counted[docs.offsets[:-1] + 1]
    total = max(len(rows) * seq_len, 1)
    stats = PackStats(rows=len(rows), documents=int(placed.sum()),
                      truncated=int((too_long & placed).sum()), dropped=int(dropped.sum()),
                      efficiency=float(take[placed].sum() / total),
                      loss_fraction=float(loss_pairs[placed].sum() / total))
    return [np.asarray(r, np.int64) for r in rows], take, stats


class PackedRows:
    """Random-access packed rows (a grain source): row r is assembled when read."""

    def __init__(self, docs: Documents, seq_len: int, rows, take):
        self.docs, self.seq_len, self.rows, self.take = docs, seq_len, rows, take

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, r: int) -> dict:
        length = self.seq_len
        row = {"inputs": np.zeros(length, np.int32), "targets": np.zeros(length, np.int32),
               "loss_mask": np.zeros(length, np.float32),
               "segment_ids": np.zeros(length, np.int32), "positions": np.zeros(length, np.int32)}
        cursor = 0
        for k, d in enumerate(self.rows[int(r)]):
            tokens, n = self.docs[d], int(self.take[d])
            span = slice(cursor, cursor + n)
            row["inputs"][span] = tokens[:n]
            row["targets"][span] = tokens[1:n + 1]
            # Pair j predicts token j + 1.
            first = self.docs.offsets[d] + 1
            row["loss_mask"][span] = self.docs.loss[first:first + n]
            row["segment_ids"][span] = k + 1
            row["positions"][span] = np.arange(n)
            cursor += n
        return row


def pack(docs: Documents, seq_len: int, *, seed: int = 0, open_rows: int = 64,
         long_docs: str = "truncate", multiple_of: int = 1) -> tuple[PackedRows, PackStats]:
    """Documents -> (packed rows as a random-access source, packing statistics)."""
    rows, take, stats = plan_rows(docs, seq_len, seed=seed, open_rows=open_rows,
                                  long_docs=long_docs, multiple_of=multiple_of)
    if stats.documents == 0:
        raise UserError(f"no document fits in a row of {seq_len} tokens; raise data.seq_len")
    return PackedRows(docs, seq_len, rows, take), stats


# ----------------------------------------------------------------------------- the vocabulary
# travels in the train iterator's checkpoint state: every checkpoint of a run then holds the
# exact vocabulary its model was trained with, with no file beside it to lose or mismatch.
VOCAB_KEY = "tts_vocab"


class VocabCarryingIterator(IteratorWrapper):
    """Wraps the train iterator; its checkpoint state also holds the vocabulary (process 0).

    grain's checkpoint handler writes `get_state()` bytes to
    checkpoints/<step>/data/process_<p>-of-<P>.json. After a resume the first batch checks
    that the vocabulary rebuilt from the config and data is the one the run started with.
    """

    def __init__(self, inner, vocab_json: str | None, process_index: int = 0):
        super().__init__(inner)
        self.process_index = process_index
        self.vocab_json = vocab_json
        self.mismatch = False

    def __next__(self) -> dict:
        if self.mismatch:
            raise UserError("the vocabulary rebuilt from the config and data.train differs "
                            "from the one in the checkpoint; resume with the same train table "
                            "and vocab settings, or start a new --workdir")
        return next(self.inner)

    def get_state(self) -> bytes:
        carried = self.vocab_json if self.process_index == 0 else None
        return json.dumps({"iterator": self.inner.get_state(), VOCAB_KEY: carried}).encode()

    def set_state(self, state: bytes) -> None:
        saved = json.loads(state.decode())
        old = saved.get(VOCAB_KEY)
        # Reported by the next batch, not raised here: the checkpointer takes any error while
        # restoring for a damaged checkpoint and moves it aside.
        self.mismatch = old is not None and self.vocab_json is not None and \
            old != self.vocab_json
        self.inner.set_state(saved["iterator"])


def read_checkpoint_vocab(step_dir) -> TTSVocab:
    """The vocabulary saved in a TTS checkpoint step folder (see VocabCarryingIterator)."""
    step_dir = pathlib.Path(step_dir)
    files = sorted((step_dir / "data").glob("process_0-of-*.json"))
    if not files:
        raise UserError(f"checkpoint {step_dir} has no data/process_0-of-*.json, where a TTS "
                        "run keeps its vocabulary; pass a checkpoint of `emotive train tts`")
    try:
        carried = json.loads(files[0].read_text()).get(VOCAB_KEY)
    except (OSError, ValueError, AttributeError) as exc:
        raise UserError(f"{files[0]} is unreadable ({str(exc)[:120]}); the checkpoint is "
                        "damaged, use an earlier step") from None
    if carried is None:
        raise UserError(f"checkpoint {step_dir} holds no TTS vocabulary (trained on synthetic "
                        "data?); it cannot be used for synthesis")
    return TTSVocab.from_json(carried, str(files[0]), phonemizer=phonemize)
