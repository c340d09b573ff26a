"""Text to speech: the TTS language model samples codec tokens, the codec turns them into audio.

    lm = load_tts("runs/tts-tiny")                       # (cfg, model, vocab, step)
    codec = load_codec("runs/codec-tiny")
    waves = synthesize(lm, codec, "Hello there. How are you?", emotion="happy", intensity=2,
                       num_samples=2, seed=0)            # two float32 [T] at 16 kHz

Long text is split at sentence boundaries (`split_sentences`, about 100 characters a piece,
as Llasa does) and every (sentence, sample) pair is one row of one batch through
`emotive.infer.decoder.generate`, restricted to the speech codes and SPEECH_GENERATION_END.
No sentence may stop before MIN_SECONDS_PER_CHAR per character of its text (per-row
min_new_tokens). Each sample's sentences are joined with PAUSE_SECONDS of silence. Row
seeds derive from (seed, sample, sentence), so a seed reproduces the output. Texts of more
than SENTENCES_PER_BATCH sentences decode (LM, then codec) that many sentences a batch, so
`progress` (a tqdm bar on stderr, what `emotive tts` shows) advances as sentences finish
and the KV cache stays the size of one group; shorter texts are one batch, as before.

Zero-shot voice prompts are continuation, as in Llasa: the reference wav is encoded by the
codec, its transcript goes before the text and its codes after SPEECH_GENERATION_START, so the
model continues in that voice; only the new codes are decoded. Every sentence carries the
whole reference. References must be at most MAX_REF_SECONDS long, and each prompt plus the
new tokens must fit the length the model was trained on (`data.seq_len`).

Aligned models (vocab layout ella_v) decode phoneme-synchronously: each sentence's prompt ends
with its first phoneme unit, the model ends every phoneme with EOP and is fed the next
(`infer.decode_loop`); a phoneme longer than `max_phone_seconds` is ended by force (counted in
the details). `speed` scales the model's own phoneme durations and `seconds` asks for a
total length: a first pass decodes freely, a second with every phoneme's frames fixed to
its first-pass length times the factor (`infer.durations`). Voice prompts need the
reference's phone timings and are not supported with this layout yet.

Classifier-free guidance: `text_scale` and `emotion_scale` (1: off) add, per row, a prompt
without the text and/or one without the emotion tag, decoded in the same batch
(`emotive.infer.sampling`, guidance groups); the next-token logits become
l + (text_scale - 1)(l - l_no_text) + (emotion_scale - 1)(l - l_no_emotion). The model learns
the dropped prompts from training's condition dropout (`data.tag_dropout`,
`data.text_dropout`). A larger emotion_scale is an emotion-strength knob.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import Any, NamedTuple, Sequence

import numpy as np
from tqdm import tqdm

from emotive.codecs.audio import load_audio
from emotive.codecs.sentences import check_text, split_sentences
from emotive.configs.codec import SAMPLE_RATE
from emotive.errors import UserError
from emotive.data.pipelines.tts import drop_condition
from emotive.infer.bundle import is_bundle
from emotive.infer.codec import LoadedCodec
from emotive.data.pipelines.ella import split_units
from emotive.infer.decoder import bucket_length, generate, prepare
from emotive.infer.durations import check_timing, given_targets, scaled_targets
from emotive.infer.sampling import SamplingConfig
from emotive.infer.tts_model import load_tts

MAX_REF_SECONDS = 15.0  # Llasa's prompts are a few seconds; longer ones crowd out the text
MIN_REF_SECONDS = 0.5
PAUSE_SECONDS = 0.25  # silence between sentences
MAX_SENTENCE_CHARS = 100
SENTENCES_PER_BATCH = 4  # long texts: sentences decoded per batch (progress, bounded cache)
# No sentence may end before this many seconds per character of its text: about half the
# corpus voices' slowest rate, so it only stops the failure of ending at once (a 20 ms blip
# for a whole sentence), never a natural ending.
MIN_SECONDS_PER_CHAR = 0.03
DEFAULT_SAMPLING = SamplingConfig(temperature=0.8, top_p=0.95)
MAX_PHONE_SECONDS = 0.5  # aligned models: a phoneme (or pause) longer than this is ended


def reference_codes(codec: LoadedCodec, ref) -> np.ndarray:
    """Codes int32 [N] of a reference recording (a path, or float audio [T] at 16 kHz);
    UserError for a missing, unreadable, silent, too short or too long one (the limits are
    MIN_REF_SECONDS..MAX_REF_SECONDS)."""
    if isinstance(ref, np.ndarray):
        audio_T, name = np.asarray(ref, np.float32).reshape(-1), "the reference audio"
        if audio_T.size < MIN_REF_SECONDS * SAMPLE_RATE or not np.any(audio_T):
            raise UserError(f"{name} is silent or under {MIN_REF_SECONDS} s; give a clean "
                            "clip of 3-10 s")
    else:
        audio_T = load_audio(ref, SAMPLE_RATE, normalize_loudness=False,
                             min_seconds=MIN_REF_SECONDS)  # silence: load_audio's message
        name = str(ref)
    seconds = audio_T.size / SAMPLE_RATE
    if seconds > MAX_REF_SECONDS:
        raise UserError(f"{name}: reference audio is {seconds:.1f} s; a voice prompt may be at "
                        f"most {MAX_REF_SECONDS:g} s, trim it to a clean clip of 3-10 s")
    codes, frames = codec.encode(audio_T[None])
    return codes[0, :frames[0]]


def synthesize(lm, codec: LoadedCodec, text: str, *, emotion: str | None = None,
               intensity: int = 2, speaker: str | None = None, ref_wav=None,
               ref_text: str | None = None, num_samples: int = 1, seed: int = 0,
               sampling: SamplingConfig = DEFAULT_SAMPLING, max_seconds: float = 20.0,
               text_scale: float = 1.0, emotion_scale: float = 1.0,
               issues: list[str] | None = None, progress: bool = False, speed: float = 1.0,
               seconds: float | None = None, max_phone_seconds: float = MAX_PHONE_SECONDS,
               details: list[dict] | None = None) -> list[np.ndarray]:
    """Speaks `text`; returns `num_samples` float32 waveforms [T] at 16 kHz.

    lm: what `emotive.infer.tts_model.load_tts` returns. emotion/intensity/speaker pick the
    vocabulary's tags (None: no tag). ref_wav + ref_text: a voice prompt (both or neither).
    sampling: temperature, top-k/top-p, repetition penalty (its max_new_tokens, stop ids,
    pad id and allowed range are set here). max_seconds bounds each sentence's audio.
    text_scale / emotion_scale: classifier-free guidance (1: off; module docstring). Notes
    (sentences cut by the limit) are appended to `issues` when a list is given. progress:
    a tqdm bar over the sentences on stderr (texts of several sentences). Aligned models:
    speed (> 0; 2 is twice as fast) or seconds (the whole sample's length) fix the phoneme
    durations, max_phone_seconds ends a phoneme by force; `details` receives one dict per
    (sample, sentence): frames per phoneme, forced EOPs, units, stopped.
    """
    notes: list[list[str]] = [[]]
    waves = synthesize_batch(lm, codec, [text], emotions=[emotion], intensities=[intensity],
                             speaker=speaker, ref_wav=ref_wav, ref_text=ref_text,
                             num_samples=num_samples, seed=seed, sampling=sampling,
                             max_seconds=max_seconds, text_scale=text_scale,
                             emotion_scale=emotion_scale, notes=notes, progress=progress,
                             speed=speed, seconds=None if seconds is None else [seconds],
                             max_phone_seconds=max_phone_seconds, details=details)[0]
    if issues is not None:
        issues.extend(notes[0])
    return waves


def synthesize_batch(lm, codec: LoadedCodec, texts: Sequence[str], *,
                     emotions: Sequence[str | None] | None = None,
                     intensities: Sequence[int] | None = None, speaker: str | None = None,
                     ref_wav=None, ref_text: str | None = None, num_samples: int = 1,
                     seed: int = 0, sampling: SamplingConfig = DEFAULT_SAMPLING,
                     max_seconds: float = 20.0, text_scale: float = 1.0,
                     emotion_scale: float = 1.0, notes: list[list[str]] | None = None,
                     progress: bool = False, speed: float = 1.0,
                     seconds: Sequence[float] | None = None,
                     max_phone_seconds: float = MAX_PHONE_SECONDS,
                     details: list[dict] | None = None,
                     durations: Sequence[Sequence[int]] | None = None) -> list[list[np.ndarray]]:
    """Speaks several texts in one batch: waves[k][j] is sample j of texts[k].

    emotions[k] / intensities[k] tag text k (default: no emotion tag, intensity 2); the
    other arguments are `synthesize`'s and apply to every text. Every (text, sample,
    sentence) is one row of one decoding batch, seeded from (seed + k, sample, sentence):
    text k comes out exactly as `synthesize(texts[k], seed=seed + k, ...)` would give it.
    `notes`, when given, is a list of one list per text that receives that text's notes.
    text_scale / emotion_scale: classifier-free guidance scales (module docstring).
    progress: a tqdm bar over the sentences on stderr (when there are several). speed,
    seconds (one per text), max_phone_seconds, details: aligned models (`synthesize`);
    details entries also name their text k. durations: aligned models, one-sentence texts
    only: the frames of every phoneme unit of each text (e.g. eSpeak's: the oracle).
    """
    if num_samples < 1:
        raise UserError(f"num_samples must be at least 1, got {num_samples}")
    if notes is not None and len(notes) != len(texts):
        raise ValueError(f"notes needs one list per text ({len(texts)}), got {len(notes)}")
    plan = plan_batch(lm, codec, texts, emotions=emotions, intensities=intensities,
                      speaker=speaker, ref_wav=ref_wav, ref_text=ref_text, sampling=sampling,
                      max_seconds=max_seconds, text_scale=text_scale,
                      emotion_scale=emotion_scale, max_phone_seconds=max_phone_seconds)
    check_timing(plan, speed, seconds, len(texts), PAUSE_SECONDS)
    units = len(plan.units)
    per_batch = units if units <= SENTENCES_PER_BATCH else SENTENCES_PER_BATCH
    bar = tqdm(total=units, desc="tts", unit="sentence", leave=False,
               disable=not progress or units < 2)
    pieces, found = {}, {}
    model = prepare(lm.model)
    timed = speed != 1.0 or seconds is not None
    given = None if durations is None else given_targets(plan, durations, num_samples)
    for first in range(0, units, per_batch):
        rows = [(u, j) for u in range(first, min(first + per_batch, units))
                for j in range(num_samples)]
        pieces.update(_speak(model, codec, lm.vocab, plan, rows, seed,
                             None if timed else notes, found, given))
        bar.update(len(rows) // num_samples)
    if timed:  # the second pass, every phoneme's frames fixed
        targets = scaled_targets(plan, found, speed, seconds, num_samples, PAUSE_SECONDS)
        for first in range(0, units, per_batch):
            rows = [(u, j) for u in range(first, min(first + per_batch, units))
                    for j in range(num_samples)]
            pieces.update(_speak(model, codec, lm.vocab, plan, rows, seed, notes, found,
                                 targets))
    bar.close()
    if details is not None:
        details.extend({"text": plan.units[u][0], "sentence": plan.units[u][1], "sample": j,
                        **found[u, j]} for u in range(units) for j in range(num_samples))
    return [[join_sentences([pieces[(k, i), j] for i in range(len(plan.sentences[k]))])
             for j in range(num_samples)] for k in range(len(texts))]


def _speak(model, codec: LoadedCodec, vocab, plan: "Plan", rows, seed: int,
           notes: list[list[str]] | None, found: dict, targets: dict | None = None) -> dict:
    """Decodes (unit u, sample j) rows in one batch: {((k, i), j): audio float32 [T]};
    found[u, j] receives each row's details (aligned models: frames per phoneme, forced
    EOPs). targets[u, j]: aligned models, the frames each phoneme must last."""
    seeds = [plan.seed(seed, u, j) for u, j in rows]
    phones = None if not plan.aligned else [plan.phones[u] for u, _ in rows for _ in
                                            range(plan.group)]
    fixed = None if targets is None else [targets[u, j] for u, j in rows
                                          for _ in range(plan.group)]
    out = generate(model, plan.rows([u for u, _ in rows]), plan.sampling,
                   seeds=plan.repeat(seeds), max_len=plan.max_len,
                   min_new_tokens=plan.repeat([plan.min_new[u] for u, _ in rows]),
                   units=phones, targets=fixed)
    out = out.rows(slice(None, None, plan.group))  # the rows of a group are equal
    stopped_rows = out.stopped
    if plan.aligned:
        out = _codes_of(vocab, out, rows, plan, found)
    else:
        found.update({(u, j): {"stopped": bool(stop)} for (u, j), stop in zip(rows, stopped_rows)})
    for (u, j), stopped, length in zip(rows, stopped_rows, out.lengths):
        k, i = plan.units[u]
        if notes is not None and not stopped:
            notes[k].append(f"sample {j}, sentence {i + 1} reached "
                            f"{plan.max_seconds:.1f} s without ending; it is cut there")
        elif notes is not None and length == 0:
            notes[k].append(f"sample {j}, sentence {i + 1} ended at once (no speech); try "
                            "another seed")
    audio = decode_rows(codec, vocab, out.tokens, out.lengths)
    return {(plan.units[u], j): audio[r] for r, (u, j) in enumerate(rows)}


class TTSPipeline(NamedTuple):
    """A TTS LM with the codec it speaks through: what `emotive tts` speaks with, and what
    `emotive.load(tts_bundle, codec=codec_bundle)` (or a TTS bundle holding codec/) returns.

        tts = emotive.load("releases/tts-small")
        waves = tts.synthesize("Hello there.", emotion="happy")   # `synthesize`'s options
    """

    lm: Any  # emotive.infer.tts_model.TTSModel
    codec: LoadedCodec

    def synthesize(self, text: str, **options) -> list[np.ndarray]:
        """Speaks `text` (any length: split into sentences) -> `num_samples` float32
        waveforms [T] at 16 kHz. Options are `synthesize`'s: emotion, intensity, speaker,
        ref_wav + ref_text (a voice prompt), num_samples, seed, sampling, max_seconds,
        text_scale, emotion_scale, issues, progress."""
        return synthesize(self.lm, self.codec, text, **options)

    def synthesize_batch(self, texts: Sequence[str], **options) -> list[list[np.ndarray]]:
        """Speaks several texts in one decoding batch: waves[k][j] is sample j of texts[k]
        (options as `synthesize_batch`: emotions, intensities per text, ...)."""
        return synthesize_batch(self.lm, self.codec, texts, **options)


def load_pipeline(ckpt, codec=None) -> TTSPipeline:
    """A TTS run or bundle with `codec` (a codec run or bundle; default: the TTS bundle's own
    codec/ folder). UserError when there is no codec to speak through."""
    if codec is None:
        inner = pathlib.Path(ckpt) / "codec"
        if not (is_bundle(ckpt) and is_bundle(inner)):
            raise UserError(f"{ckpt} holds no codec/ bundle; pass the codec too (--codec, or "
                            "emotive.load(tts, codec=CODEC))")
        codec = inner
    return TTSPipeline(load_tts(ckpt), LoadedCodec.load(codec))


def join_sentences(pieces: Sequence[np.ndarray]) -> np.ndarray:
    """One sample's sentences joined with PAUSE_SECONDS of silence."""
    pause = np.zeros(int(PAUSE_SECONDS * SAMPLE_RATE), np.float32)
    joined = [x for p in pieces for x in (p, pause)][:-1]
    return np.concatenate(joined).astype(np.float32)


@dataclasses.dataclass
class Plan:
    """The decoding rows of a batch of texts, one unit per (text k, sentence i).

    rows(units) gives each unit's prompt followed by its guidance group's condition-dropped
    prompts (`group` rows per unit); `sampling` carries the new-token limit, the stop and pad
    ids, the speech-code range and the guidance weights; `min_new[u]` is the earliest stop.
    """

    units: list[tuple[int, int]]
    sentences: list[list[str]]
    prompts: list[list[int]]
    groups: list[list[list[int]]]
    sampling: SamplingConfig
    min_new: list[int]
    max_len: int
    tokens_per_second: float
    phones: list[list[int]] | None = None  # aligned models: each unit's phoneme units

    @property
    def aligned(self) -> bool:
        return self.phones is not None

    @property
    def group(self) -> int:
        return len(self.sampling.guidance) + 1

    @property
    def max_seconds(self) -> float:
        return self.sampling.max_new_tokens / self.tokens_per_second

    def rows(self, units: Sequence[int]) -> list[list[int]]:
        return [p for u in units for p in self.groups[u]]

    def repeat(self, values: Sequence[int]) -> list[int]:
        """One value per unit row -> one per decoding row (a group shares its first's)."""
        return np.repeat(np.asarray(values, np.int64), self.group).tolist()

    def seed(self, seed: int, unit: int, sample: int) -> int:
        """Row seed of sample j of unit u = (text k, sentence i): from (seed + k, j, i), so
        text k of a batch comes out as it would alone with seed + k."""
        k, i = self.units[unit]
        return int(np.random.SeedSequence([seed + k, sample, i]).generate_state(1)[0])


def plan_batch(lm, codec: LoadedCodec, texts: Sequence[str], *,
               emotions: Sequence[str | None] | None = None,
               intensities: Sequence[int] | None = None, speaker: str | None = None,
               ref_wav=None, ref_text: str | None = None,
               sampling: SamplingConfig = DEFAULT_SAMPLING, max_seconds: float = 20.0,
               text_scale: float = 1.0, emotion_scale: float = 1.0,
               max_phone_seconds: float = MAX_PHONE_SECONDS) -> Plan:
    """Checks the request and builds every sentence's prompt (see synthesize_batch)."""
    cfg, model, vocab, _ = lm
    if max_seconds <= 0:
        raise UserError(f"max_seconds must be positive, got {max_seconds}")
    aligned = vocab.layout == "ella_v"
    if aligned and ref_wav is not None:
        raise UserError("this model is aligned (ELLA-V layout): a voice prompt would need the "
                        "reference's phone timings, which it cannot take yet; pick a voice "
                        "with --speaker instead of --ref")
    if not max_phone_seconds > 0:
        raise UserError(f"max_phone_seconds must be positive, got {max_phone_seconds}")
    if not texts:
        raise UserError("nothing to say: give at least one text")
    emotions = list(emotions) if emotions is not None else [None] * len(texts)
    intensities = list(intensities) if intensities is not None else [2] * len(texts)
    if not len(emotions) == len(intensities) == len(texts):
        raise UserError(f"{len(texts)} texts need as many emotions and intensities, got "
                        f"{len(emotions)} and {len(intensities)}")
    if codec.codebook_size != vocab.codebook_size:
        raise UserError(f"the codec has {codec.codebook_size} codes but the TTS model was "
                        f"trained on {vocab.codebook_size}; pass the codec its data was "
                        "encoded with")
    if (ref_wav is None) != (ref_text is None):
        raise UserError("a voice prompt needs both the reference audio (--ref) and its "
                        "transcript (--ref-text)")
    ref_codes = None if ref_wav is None else reference_codes(codec, ref_wav)
    sentences = [split_sentences(check_text(t), MAX_SENTENCE_CHARS) for t in texts]
    units = [(k, i) for k, ks in enumerate(sentences) for i in range(len(ks))]
    prompts = [vocab.prompt_ids(sentences[k][i], emotion=emotions[k],
                                intensity=intensities[k], speaker=speaker, ref_text=ref_text,
                                ref_codes=ref_codes) for k, i in units]
    tokens_per_second = SAMPLE_RATE / codec.hop
    phones = None
    if aligned:  # each prompt ends with its first unit; EOP and the units cost 2 a phoneme
        phones = [vocab.phone_units(vocab.encode_text(sentences[k][i])) for k, i in units]
        prompts = [p + [u[0]] for p, u in zip(prompts, phones)]
    longest, limit = max(map(len, prompts)), cfg.data.seq_len
    room = limit - longest
    if room < tokens_per_second:
        what = "the reference and a sentence" if ref_wav is not None else "a sentence"
        raise UserError(f"the prompt for {what} takes {longest} tokens of the model's "
                        f"{limit}, leaving under a second of speech; use a shorter reference "
                        "or text")
    extra = 0 if phones is None else 2 * max(map(len, phones)) + 1
    max_new = min(math.ceil(max_seconds * tokens_per_second) + extra, room)
    drops = guidance_drops(text_scale, emotion_scale)
    stops = (vocab.speech_end,) if phones is None else (vocab.speech_end, vocab.eop)
    sampling = dataclasses.replace(
        sampling, max_new_tokens=max_new, stop_ids=stops, pad_id=vocab.speech_end,
        allowed_range=(vocab.speech_offset, vocab.speech_offset + vocab.codebook_size),
        guidance=tuple(w for _, w in drops), eop_id=-1 if phones is None else vocab.eop,
        max_unit_frames=0 if phones is None else max(1, round(max_phone_seconds *
                                                              tokens_per_second)))
    groups = [[p] + [drop_condition(vocab, p, what) for what, _ in drops] for p in prompts]
    min_new = [0 if aligned else min(int(MIN_SECONDS_PER_CHAR * len(sentences[k][i]) *
                                         tokens_per_second), max_new) for k, i in units]
    return Plan(units, sentences, prompts, groups, sampling, min_new, limit, tokens_per_second,
                phones)


def guidance_drops(text_scale: float, emotion_scale: float) -> list[tuple[str, float]]:
    """The conditions classifier-free guidance drops, with their weights (scale - 1)."""
    for name, scale in (("text_scale", text_scale), ("emotion_scale", emotion_scale)):
        if not math.isfinite(scale) or scale < 0:
            raise UserError(f"{name} must be a finite number >= 0 (1: no guidance), got {scale}")
    return [(what, scale - 1.0) for what, scale in (("text", text_scale),
                                                    ("emotion", emotion_scale)) if scale != 1.0]


def _codes_of(vocab, out, rows, plan: "Plan", found: dict):
    """Aligned rows -> their speech codes alone (as ids, in Generated), details in found."""
    codes = []
    for r, (u, j) in enumerate(rows):
        ids, frames = split_units(vocab, out.tokens[r, :out.lengths[r]])
        codes.append(ids + vocab.speech_offset)
        found[u, j] = {"frames": frames, "units": len(plan.phones[u]),
                       "forced": int(out.forced[r]), "stopped": bool(out.stopped[r])}
    tokens = np.full((len(codes), max(1, max(map(len, codes)))), vocab.speech_end, np.int32)
    for r, c in enumerate(codes):
        tokens[r, :len(c)] = c
    return out._replace(tokens=tokens, lengths=np.asarray([len(c) for c in codes], np.int32))


def decode_rows(codec: LoadedCodec, vocab, tokens_BxN, lengths_B) -> list[np.ndarray]:
    """Each row's codes (before its stop) -> audio [lengths_b * hop]; empty rows -> []."""
    empty = np.zeros(0, np.float32)
    keep = [b for b in range(len(lengths_B)) if lengths_B[b] > 0]
    if not keep:
        return [empty] * len(lengths_B)
    width = bucket_length(int(max(lengths_B)))  # few distinct shapes, few codec compiles
    codes = np.zeros((len(keep), width), np.int32)
    for r, b in enumerate(keep):
        codes[r, :lengths_B[b]] = vocab.ids_to_codes(tokens_BxN[b, :lengths_B[b]])
    frames = np.asarray([lengths_B[b] for b in keep])
    audio = codec.decode(codes, frames)
    out = [empty] * len(lengths_B)
    for r, b in enumerate(keep):
        out[b] = audio[r, :int(lengths_B[b]) * codec.hop]
    return out


def output_paths(out, num_samples: int) -> list[pathlib.Path]:
    """out.wav, then out-1.wav, out-2.wav ... for further samples."""
    out = pathlib.Path(out)
    if out.suffix.lower() != ".wav":
        raise UserError(f"--out {out} must name a .wav file")
    return [out] + [out.with_name(f"{out.stem}-{j}{out.suffix}") for j in range(1, num_samples)]
