"""Text side of TTS: the tokenizer and the one vocabulary layout (Llasa's).

`TTSVocab` is the only place that knows an id. With T text ids, K speech codes, E emotions at
I intensity levels and S speaker slots, the layout is

    [0, T)                      text tokens (a byte-level BPE trained here, Llama 3's, or
                                phonemes: `emotive.codecs.phonemes.PhonemeTokenizer`)
    T + 0 .. T + 7              Llasa's specials, in Llasa's order: TEXT_GENERATION_START/END,
                                TEXT_UNDERSTANDING_START/END, SPEECH_GENERATION_START/END,
                                SPEECH_UNDERSTANDING_START/END
    T + 8 + k                   speech code k in [0, K)   (speech_offset = T + 8)
    speech_offset + K + e*I + i emotion tag <|emotion:NAME:LEVEL|>
    ... + E*I + s               speaker tag <|speaker:NAME|> (slots beyond the names: reserved)
    up to vocab_size            padding to a multiple of `pad_to` (for sharding); never produced

With Llama 3's tokenizer (T = 128,256) and X-codec2's K = 65,536 the first 193,800 ids are
exactly Llasa's, so a public Llasa checkpoint loads through `import_hf_llama` and is extended
by appending rows for the tags. SPEECH_GENERATION_END is the stop token.

Layout "ella_v" (ELLA-V, arXiv 2401.07333; phoneme front end only) keeps every id above and
makes the last text id, which the phoneme inventory leaves unused, the end-of-phoneme token
EOP (`eop`). Its documents are built by `emotive.data.pipelines.ella`: the prompt, then each
phoneme unit (`phone_units`: the phonemes, word boundaries and pauses, stress marks left to
the prompt) followed by its codes and EOP, then SPEECH_GENERATION_END.

A prompt (`prompt_ids`) follows Llasa: "Convert the text to speech:" TEXT_UNDERSTANDING_START
text TEXT_UNDERSTANDING_END [emotion tag] [speaker tag] SPEECH_GENERATION_START [reference
codes]; with phonemes there is no instruction (it is only for a pretrained text model).
prompt_style "llama3_chat" wraps the same content in Llama 3's chat headers, as
Llasa's own inference script does through the tokenizer's chat template (the exact template
of the released tokenizer, e.g. a system header, is unverified here).

Text the user gives is text only: "<|eot_id|>" or "<|emotion:angry:2|>" typed in a sentence
encodes as characters, never as the special id. A byte-level BPE encodes any character (an
unseen one as its UTF-8 bytes); a supplied tokenizer with an unknown token raises UserError
naming the characters it cannot encode.
"""

from __future__ import annotations

import json
import pathlib
from typing import Iterable, Sequence

import numpy as np

from emotive.codecs.phonemes import STRESS, PhonemeTokenizer, tokenizer_from_str
from emotive.codecs.sentences import check_text
from emotive.errors import UserError

SPECIALS = ("TEXT_GENERATION_START", "TEXT_GENERATION_END", "TEXT_UNDERSTANDING_START",
            "TEXT_UNDERSTANDING_END", "SPEECH_GENERATION_START", "SPEECH_GENERATION_END",
            "SPEECH_UNDERSTANDING_START", "SPEECH_UNDERSTANDING_END")
INSTRUCTION = "Convert the text to speech:"
PROMPT_STYLES = ("plain", "llama3_chat")
LAYOUTS = ("llasa", "ella_v")
LLAMA3_CHAT_TOKENS = ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                      "<|eot_id|>")
META_FILE, TOKENIZER_FILE = "tts_vocab.json", "tokenizer.json"
FORMAT = "emotive.tts_vocab/1"


def train_bpe(texts: Iterable[str], vocab_size: int, *, min_frequency: int = 2):
    """Trains a byte-level BPE `tokenizers.Tokenizer` on `texts` (deterministic for the texts).

    Byte-level: the 256 byte symbols are always in the vocabulary, so any character encodes
    (one it never saw as its UTF-8 bytes) and nothing is unknown. Text is NFC-normalised.
    A small corpus may yield fewer than `vocab_size` tokens; build the TTSVocab with
    `text_vocab_size=vocab_size` to keep the layout fixed (the unused ids are reserved).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise UserError("no text to train the BPE tokenizer on; the table's text column is "
                        "empty, re-encode a dataset that has transcripts")
    if vocab_size < 257:
        raise UserError(f"BPE vocabulary size {vocab_size} is too small: it holds the 256 "
                        "byte symbols plus merges; use at least 257")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def _check_names(names: Sequence[str], what: str) -> tuple[str, ...]:
    names = tuple(str(n).strip() for n in names)
    bad = [n for n in names if not n or "|" in n or ">" in n or "<" in n]
    if bad or len(set(names)) != len(names):
        raise UserError(f"{what} must be distinct non-empty names without '<', '|' or '>', "
                        f"got {list(names)}")
    return names


class TTSVocab:
    """The id layout of the TTS language model (see the module docstring) plus its tokenizer.

    `tokenizer` is a `tokenizers.Tokenizer` (its `encode_special_tokens` is switched on, so
    typed text never becomes a special id) or a `PhonemeTokenizer`. `text_vocab_size`
    defaults to the tokenizer's size (Llasa's text size when the tokenizer already holds
    Llasa's specials) and may be larger, reserving ids. `speaker_slots` defaults to
    len(speakers); `pad_to` rounds `vocab_size` up to a multiple.
    """

    def __init__(self, tokenizer, codebook_size: int, emotions: Sequence[str] = (),
                 intensities: Sequence[int] = (1, 2), speakers: Sequence[str] = (), *,
                 text_vocab_size: int | None = None, speaker_slots: int | None = None,
                 pad_to: int = 1, prompt_style: str = "plain", layout: str = "llasa"):
        self.tokenizer = tokenizer
        tokenizer.encode_special_tokens = True
        phonemes = isinstance(tokenizer, PhonemeTokenizer)
        self.text_frontend = "phoneme" if phonemes else "bpe"
        own = _llasa_text_size(tokenizer) or tokenizer.get_vocab_size(with_added_tokens=True)
        self.text_vocab_size = own if text_vocab_size is None else int(text_vocab_size)
        if self.text_vocab_size < tokenizer.get_vocab_size(with_added_tokens=False):
            raise UserError(f"text_vocab_size {self.text_vocab_size} is smaller than the "
                            f"tokenizer's {tokenizer.get_vocab_size(with_added_tokens=False)} "
                            "tokens; raise it or use another tokenizer")
        if codebook_size < 1:
            raise UserError(f"codebook_size must be positive, got {codebook_size}")
        self.codebook_size = int(codebook_size)
        self.emotions = _check_names([e.lower() for e in emotions], "emotions")
        self.intensities = tuple(int(i) for i in intensities)
        if emotions and (not self.intensities or len(set(self.intensities)) != len(
                self.intensities)):
            raise UserError(f"intensities must be distinct levels, got {list(intensities)}")
        self.speakers = _check_names(speakers, "speakers")
        self.speaker_slots = len(self.speakers) if speaker_slots is None else int(speaker_slots)
        if self.speaker_slots < len(self.speakers):
            raise UserError(f"{len(self.speakers)} speakers do not fit in {self.speaker_slots} "
                            "speaker slots; raise the slot count (vocab.speaker_slots)")
        if prompt_style not in PROMPT_STYLES:
            raise UserError(f"prompt_style must be one of {', '.join(PROMPT_STYLES)}, got "
                            f"{prompt_style!r}")
        self.prompt_style = prompt_style
        if layout not in LAYOUTS:
            raise UserError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        if layout == "ella_v" and (not phonemes or tokenizer.get_vocab_size() >=
                                   self.text_vocab_size):
            raise UserError("the ella_v layout needs the phoneme front end with a spare text "
                            "id for its end-of-phoneme token")
        self.layout = layout
        self.pad_to = max(int(pad_to), 1)
        t = self.text_vocab_size
        self.special = {name: t + i for i, name in enumerate(SPECIALS)}
        self.speech_offset = t + len(SPECIALS)
        self.emotion_offset = self.speech_offset + self.codebook_size
        self.speaker_offset = self.emotion_offset + len(self.emotions) * len(self.intensities)
        self.used_size = self.speaker_offset + self.speaker_slots
        self.vocab_size = self.size_for(t, self.codebook_size,
                                        len(self.emotions) * len(self.intensities),
                                        self.speaker_slots, self.pad_to)
        unk = None if phonemes else getattr(tokenizer.model, "unk_token", None)
        self._unk_id = tokenizer.token_to_id(unk) if unk else None
        self._chat = self._chat_ids() if prompt_style == "llama3_chat" else None
        self._instruction = [] if phonemes else self.encode_text(INSTRUCTION)

    @staticmethod
    def size_for(text_vocab_size: int, codebook_size: int, num_emotion_tags: int,
                 speaker_slots: int, pad_to: int = 1) -> int:
        """The vocabulary size of a layout, from sizes alone (to size a model without data)."""
        used = text_vocab_size + len(SPECIALS) + codebook_size + num_emotion_tags + speaker_slots
        pad_to = max(int(pad_to), 1)
        return -(-used // pad_to) * pad_to

    # ------------------------------------------------------------------ ids

    @property
    def eop(self) -> int | None:
        """The end-of-phoneme token of the ella_v layout (the last text id); None otherwise."""
        return self.text_vocab_size - 1 if self.layout == "ella_v" else None

    def phone_units(self, text_ids: Sequence[int]) -> list[int]:
        """The ella_v units of phoneme text ids: every id but the stress marks (which stay in
        the prompt, before their vowel)."""
        stress = {self.tokenizer.token_to_id(s) for s in STRESS}
        return [int(i) for i in text_ids if int(i) not in stress]

    @property
    def speech_start(self) -> int:
        return self.special["SPEECH_GENERATION_START"]

    @property
    def speech_end(self) -> int:
        """SPEECH_GENERATION_END: the stop token."""
        return self.special["SPEECH_GENERATION_END"]

    def emotion_tag(self, emotion: str, intensity: int = 2) -> int:
        """Id of <|emotion:NAME:LEVEL|>; UserError listing the emotions and levels it has."""
        name = str(emotion).strip().lower()
        if name not in self.emotions or int(intensity) not in self.intensities:
            have = ", ".join(self.emotions) or "none"
            levels = ", ".join(map(str, self.intensities))
            raise UserError(f"this vocabulary has no tag for emotion {emotion!r} at intensity "
                            f"{intensity}; it has emotions: {have} at intensities: {levels}")
        return (self.emotion_offset + self.emotions.index(name) * len(self.intensities)
                + self.intensities.index(int(intensity)))

    def speaker_tag(self, name: str) -> int:
        """Id of <|speaker:NAME|>; UserError listing (some of) the speakers it has."""
        if name not in self.speakers:
            shown = ", ".join(self.speakers[:20]) + (" ..." if len(self.speakers) > 20 else "")
            raise UserError(f"this vocabulary has no speaker {name!r}; it has: "
                            f"{shown or 'no speaker tags'} (or clone a voice from a reference)")
        return self.speaker_offset + self.speakers.index(name)

    def codes_to_ids(self, codes) -> np.ndarray:
        """Speech code indices (any shape, ints in [0, codebook_size)) -> token ids, int32."""
        codes = np.asarray(codes)
        if codes.size and not np.issubdtype(codes.dtype, np.integer):
            raise UserError(f"speech codes must be integers, got dtype {codes.dtype}")
        if codes.size and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise UserError(f"speech codes must lie in [0, {self.codebook_size}), found "
                            f"{int(codes.min())}..{int(codes.max())}; were they made by a "
                            "codec of another codebook size?")
        return (codes.astype(np.int64) + self.speech_offset).astype(np.int32)

    def ids_to_codes(self, ids) -> np.ndarray:
        """Token ids (any shape) -> speech code indices int32; UserError on a non-speech id."""
        ids = np.asarray(ids, np.int64)
        bad = (ids < self.speech_offset) | (ids >= self.emotion_offset)
        if bad.any():
            first = int(ids[bad].flat[0])
            raise UserError(f"id {first} ({self.token_name(first)}) is not a speech code; "
                            "cut the sequence at SPEECH_GENERATION_END and drop the prompt")
        return (ids - self.speech_offset).astype(np.int32)

    def token_name(self, token_id: int) -> str:
        """A readable name for any id: text piece, <|SPECIAL|>, <|s_k|>, tag, or <|pad|>."""
        i = int(token_id)
        if not 0 <= i < self.vocab_size:
            raise UserError(f"id {i} is outside the vocabulary [0, {self.vocab_size})")
        if i == self.eop:
            return "<|EOP|>"
        if i < self.text_vocab_size:
            return self.tokenizer.id_to_token(i) or "<|reserved|>"
        if i < self.speech_offset:
            return f"<|{SPECIALS[i - self.text_vocab_size]}|>"
        if i < self.emotion_offset:
            return f"<|s_{i - self.speech_offset}|>"
        if i < self.speaker_offset:
            e, level = divmod(i - self.emotion_offset, len(self.intensities))
            return f"<|emotion:{self.emotions[e]}:{self.intensities[level]}|>"
        if i < self.speaker_offset + len(self.speakers):
            return f"<|speaker:{self.speakers[i - self.speaker_offset]}|>"
        return "<|reserved|>" if i < self.used_size else "<|pad|>"

    # ------------------------------------------------------------------ text

    def encode_text(self, text: str) -> list[int]:
        """Text -> text ids (no specials added); UserError for characters it cannot encode."""
        encoding = self.tokenizer.encode(text, add_special_tokens=False)
        ids = list(encoding.ids)
        if self._unk_id is not None and self._unk_id in ids:
            chars = sorted({text[a:b] for i, (a, b) in zip(ids, encoding.offsets)
                            if i == self._unk_id})
            raise UserError(f"the tokenizer cannot encode {chars} in {text[:40]!r}; remove "
                            "or spell out those characters")
        if ids and max(ids) >= self.text_vocab_size:
            raise UserError(f"the tokenizer produced id {max(ids)} beyond the text vocabulary "
                            f"({self.text_vocab_size}); it does not fit this layout")
        return ids

    def prefetch(self, texts: Sequence[str]) -> None:
        """Encodes `texts` as one batch ahead of `prompt_ids` where that is faster (phonemes:
        one eSpeak request, not one per text); nothing to do for a BPE."""
        if self.text_frontend == "phoneme":
            self.tokenizer.prefetch(texts)

    def decode_text(self, ids) -> str:
        """Ids -> text; ids outside the text range appear as their names (see token_name)."""
        out, run = [], []
        for i in (int(x) for x in np.asarray(ids).reshape(-1)):
            if 0 <= i < self.text_vocab_size:
                run.append(i)
                continue
            if run:
                out.append(self.tokenizer.decode(run, skip_special_tokens=False))
                run = []
            out.append(self.token_name(i))
        if run:
            out.append(self.tokenizer.decode(run, skip_special_tokens=False))
        return "".join(out)

    def prompt_ids(self, text: str, *, emotion: str | None = None, intensity: int = 2,
                   speaker: str | None = None, ref_text: str | None = None,
                   ref_codes=None) -> list[int]:
        """The Llasa prompt for `text`, ending in SPEECH_GENERATION_START (+ reference codes).

        Voice cloning is continuation: the reference transcript goes before the text and the
        reference codes after SPEECH_GENERATION_START; both or neither must be given.
        """
        text = check_text(text)
        if (ref_text is None) != (ref_codes is None):
            raise UserError("voice cloning needs both the reference transcript (ref_text) and "
                            "its codes (ref_codes)")
        if ref_text is not None:
            text = check_text(ref_text, "reference transcript") + " " + text
        body = (self._instruction + [self.special["TEXT_UNDERSTANDING_START"]]
                + self.encode_text(text) + [self.special["TEXT_UNDERSTANDING_END"]])
        if emotion is not None:
            body.append(self.emotion_tag(emotion, intensity))
        if speaker is not None:
            body.append(self.speaker_tag(speaker))
        if self._chat is not None:
            begin, user, assistant = self._chat
            body = begin + user + body + assistant
        ref = [] if ref_codes is None else self.codes_to_ids(np.reshape(ref_codes, -1)).tolist()
        return body + [self.speech_start] + ref

    def _chat_ids(self) -> tuple[list[int], list[int], list[int]]:
        ids = [self.tokenizer.token_to_id(t) for t in LLAMA3_CHAT_TOKENS]
        if None in ids:
            missing = [t for t, i in zip(LLAMA3_CHAT_TOKENS, ids) if i is None]
            raise UserError(f"prompt_style llama3_chat needs Llama 3's tokens {missing}; the "
                            "tokenizer lacks them, use prompt_style plain")
        bot, start, end, eot = ids
        nl = self.encode_text("\n\n")
        return ([bot], [start] + self.encode_text("user") + [end] + nl,
                [eot, start] + self.encode_text("assistant") + [end] + nl)

    # ------------------------------------------------------------------ files

    def meta(self) -> dict:
        """The layout as a JSON-ready dict (everything but the tokenizer)."""
        meta = {"format": FORMAT, "text_vocab_size": self.text_vocab_size,
                "codebook_size": self.codebook_size, "emotions": list(self.emotions),
                "intensities": list(self.intensities), "speakers": list(self.speakers),
                "speaker_slots": self.speaker_slots, "pad_to": self.pad_to,
                "prompt_style": self.prompt_style, "speech_offset": self.speech_offset,
                "vocab_size": self.vocab_size}
        if self.layout != "llasa":  # files written before layouts existed stay as they were
            meta["layout"] = self.layout
        return meta

    def to_json(self) -> str:
        """The layout and the tokenizer in one JSON string (see from_json)."""
        return json.dumps({**self.meta(), "tokenizer": self.tokenizer.to_str()})

    @classmethod
    def from_json(cls, text: str, where: str = "vocabulary JSON", phonemizer=None) -> "TTSVocab":
        """Reads `to_json`; `phonemizer` (emotive.data.speech.espeak.phonemize) lets phonemes encode."""
        try:
            meta = json.loads(text)
            return cls._parse(meta, meta.pop("tokenizer"), where, phonemizer)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"{where} is not a TTS vocabulary ({str(exc)[:120]})") from None

    @classmethod
    def _parse(cls, meta: dict, tokenizer_json: str, where: str, phonemizer) -> "TTSVocab":
        if meta.get("format") != FORMAT:
            raise UserError(f"{where} is not a TTS vocabulary of format {FORMAT} (found "
                            f"{meta.get('format')!r})")
        try:
            tokenizer = tokenizer_from_str(tokenizer_json, phonemizer)
        except Exception as exc:  # noqa: BLE001 - the library raises its own error types
            raise UserError(f"{where}: unreadable tokenizer ({str(exc)[:120]})") from None
        vocab = cls(tokenizer, meta["codebook_size"], meta["emotions"], meta["intensities"],
                    meta["speakers"], text_vocab_size=meta["text_vocab_size"],
                    speaker_slots=meta["speaker_slots"], pad_to=meta["pad_to"],
                    prompt_style=meta["prompt_style"], layout=meta.get("layout", "llasa"))
        for key in ("speech_offset", "vocab_size"):
            if getattr(vocab, key) != meta[key]:
                raise UserError(f"{where}: {key} is {meta[key]} but the layout gives "
                                f"{getattr(vocab, key)}; the files are damaged or mismatched")
        return vocab

    def save(self, directory) -> pathlib.Path:
        """Writes tts_vocab.json (the layout) and tokenizer.json into `directory`."""
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / META_FILE).write_text(json.dumps(self.meta(), indent=2))
        self.tokenizer.save(str(directory / TOKENIZER_FILE))
        return directory

    @classmethod
    def load(cls, directory, phonemizer=None) -> "TTSVocab":
        """Reads what `save` wrote (phonemizer: see from_json); UserError if files are bad."""
        directory = pathlib.Path(directory)
        paths = (directory / META_FILE, directory / TOKENIZER_FILE)
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise UserError(f"{missing[0]} does not exist; pass a directory written by "
                            "TTSVocab.save")
        try:
            meta = json.loads(paths[0].read_text())
            return cls._parse(meta, paths[1].read_text(), str(directory), phonemizer)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"{directory}: unreadable vocabulary ({str(exc)[:120]})") from None

    @classmethod
    def from_llama3(cls, tokenizer_json_path, codebook_size: int = 65536,
                    emotions: Sequence[str] = (), intensities: Sequence[int] = (1, 2),
                    speakers: Sequence[str] = (), **kwargs) -> "TTSVocab":
        """A vocabulary over a Llama 3 tokenizer.json (or Llasa's own, which already holds
        the specials and speech tokens): with 65,536 codes, Llasa's exact first 193,800 ids.
        Other keywords as in the constructor; prompt_style defaults to llama3_chat."""
        from tokenizers import Tokenizer

        path = pathlib.Path(tokenizer_json_path)
        if not path.is_file():
            raise UserError(f"{path} does not exist; pass the tokenizer.json of a Llama 3 "
                            "(or Llasa) checkpoint")
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # noqa: BLE001
            raise UserError(f"{path} is not a readable tokenizer.json ({str(exc)[:120]})") \
                from None
        kwargs.setdefault("prompt_style", "llama3_chat")
        return cls(tokenizer, codebook_size, emotions, intensities, speakers, **kwargs)


def _llasa_text_size(tokenizer) -> int | None:
    """Llasa's tokenizer.json lists its specials (and <|s_k|>) as added tokens after the
    text ids: T is then the id of the first special, not the tokenizer's full size."""
    first = tokenizer.token_to_id(f"<|{SPECIALS[0]}|>")
    if first is None:
        return None
    for i, name in enumerate(SPECIALS):
        if tokenizer.token_to_id(f"<|{name}|>") != first + i:
            raise UserError(f"the tokenizer's Llasa specials are not consecutive from {first} "
                            "in Llasa's order; it does not fit the Llasa layout")
    return first
