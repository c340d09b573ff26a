"""Codec inference: load a trained codec, encode audio to code indices, decode them back.

    codec = load_codec("runs/codec-tiny")                 # newest checkpoint of a run
    codes_N = codec.encode_file("in.wav")                  # int32 [N], 50 per second
    audio_T = codec.decode(codes_N[None])[0]               # float32 [N * 320]
    for piece in stream_decode(codec, codes_N): ...        # chunked, bounded latency
    table = encode_split(codec, data_dir, "train")         # a TFDS split -> codes + labels
    table = encode_split(codec, data_dir, "train", aligner=load_recognizer(PHONEME_ASR_RUN))
                                            # phones by forced alignment where it has none

Everything runs batched through jitted pure functions (one compile per input shape).
Input longer than one window of `codec.chunking` (28 s + 2 x 2 s of context by default)
runs in windows, a few at a time (`emotive.infer.chunking`), so memory stays flat in length:
encode keeps the codes of each window's central 28 s (windows start on whole hops, so they
tile the clip at exact frame boundaries); decode keeps the audio of each window's central
1,400 frames (context-trim, no cross-fade: every kept frame is decoded with at least 2 s of
context on both sides, more than the ISTFT's 2-frame overlap and the frame conv's reach).
Bad input (missing files, silence, foreign arrays, out-of-range codes) raises UserError.
"""

from __future__ import annotations

import pathlib
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from emotive.codecs.audio import load_audio
from emotive.configs import base
from emotive.configs.codec import SAMPLE_RATE, CodecConfig
from emotive.data.pipelines.encoded import load_encoded, save_encoded  # noqa: F401 (the table's I/O)
from emotive.data.pipelines.ella import phone_frames
from emotive.data.pipelines.speech import split_speakers, whole_clip_batches
from emotive.data.speech.phoneme_targets import PhonemeTargets, speaker_voice
from emotive.errors import UserError
from emotive.infer.align import align_clips, failure_lines, require_phonemes
from emotive.infer.bundle import is_bundle
from emotive.infer.chunking import Chunking, batched, chunked_apply, plan_windows
from emotive.infer.loading import load_bundle
from emotive.infer.predictor import Predictor, bucket_length
from emotive.models.codec import Codec
from emotive.train.checkpoint import latest_step_dir, read_config, restore_params

DECODE_UNIT = 25  # frames (0.5 s): decode pads its code axis to bucket lengths of this


def _encode(model, audio_BxT, lengths_B):
    _, indices, mask = model.encode(audio_BxT, lengths_B)
    return indices, mask


def _decode(model, indices_BxN, mask_BxN, positions_BxN):
    return model.decode(indices_BxN, mask_BxN, positions_BxN)


class LoadedCodec(Predictor):
    """A trained generator with jitted batch encode/decode; `step` is its training step."""

    tasks = ("codec",)
    chunking = Chunking()

    @classmethod
    def load(cls, ckpt, tasks=None) -> "LoadedCodec":
        """The newest checkpoint under `ckpt` (a run dir, its checkpoints/ or a step dir),
        or a codec release bundle (its generator, verified; see emotive/infer/bundle/)."""
        if is_bundle(ckpt):
            trained = load_bundle(ckpt, ("codec",))
            return cls(trained.cfg, trained.model, trained.step, trained.step_dir)
        step_dir = latest_step_dir(ckpt)
        raw = read_config(step_dir)
        if raw.get("task") != "codec":
            raise UserError(f"checkpoint {step_dir} is a {raw.get('task')!r} run, not a codec; "
                            "pass the workdir of `emotive train codec`")
        cfg = base.from_dict(CodecConfig, raw)
        abstract = nnx.eval_shape(lambda: Codec(cfg.model, rngs=nnx.Rngs(0)))
        graphdef, state = nnx.split(abstract)
        shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                              state.to_pure_dict())
        # The train state's generator group is the CodecGAN's `codec` subtree.
        params = restore_params(step_dir, {"generator": {"codec": shapes}})["generator"]["codec"]
        nnx.replace_by_pure_dict(state, params)
        step = int(step_dir.name) if step_dir.name.isdigit() else 0
        return cls(cfg, nnx.merge(graphdef, state), step, step_dir)

    @property
    def hop(self) -> int:
        return self.cfg.model.hop

    @property
    def codebook_size(self) -> int:
        return self.model.fsq.codebook_size

    def encode(self, audio_BxT: np.ndarray, lengths_B: np.ndarray | None = None):
        """Float audio [B, T] at 16 kHz (zero-padded rows, valid samples `lengths_B`) ->
        (indices int32 [B, ceil(T / hop)], valid frames int32 [B]). Rows longer than a
        window are stitched from windows (see the module doc)."""
        frames = -(-np.shape(audio_BxT)[1] // self.hop)
        if self.chunking.fits(np.shape(audio_BxT)[1]):
            indices, mask = self.apply(_encode, audio_BxT, lengths_B)
            return (np.asarray(indices)[:, :frames],
                    np.asarray(mask).sum(axis=1).astype(np.int32))
        (indices, _), frames_B = chunked_apply(self, _encode, audio_BxT, lengths_B,
                                               self.chunking, ("stitch", None), frame=self.hop)
        return np.pad(indices, ((0, 0), (0, frames - indices.shape[1]))), frames_B

    def decode(self, indices_BxN: np.ndarray, frames_B: np.ndarray | None = None) -> np.ndarray:
        """Code indices int [B, N] (valid frames `frames_B`) -> float32 audio [B, N * hop];
        rows longer than a window are decoded in windows (see the module doc)."""
        indices_BxN = np.asarray(indices_BxN, np.int32)
        b, n = indices_BxN.shape
        frames_B = np.full(b, n) if frames_B is None else np.asarray(frames_B)
        chunk, context = self.chunking.sizes(1, rate=SAMPLE_RATE / self.hop)
        if n > chunk + 2 * context:
            return self._decode_windows(indices_BxN, np.minimum(frames_B, n), chunk, context)
        padded = bucket_length(max(n, 1), DECODE_UNIT)
        indices = np.pad(indices_BxN, ((0, 0), (0, padded - n)))
        mask = np.arange(padded)[None, :] < np.minimum(frames_B, n)[:, None]
        audio = self.decode_masked(indices, mask, np.broadcast_to(np.arange(padded),
                                                                  (b, padded)))
        return audio[:, :n * self.hop]

    def _decode_windows(self, indices_BxN, frames_B, chunk: int, context: int) -> np.ndarray:
        """decode of long rows: each window of chunk + 2 * context frames (local rotary
        positions; only differences matter) keeps the audio of its kept frames."""
        b, n = indices_BxN.shape
        hop, width = self.hop, chunk + 2 * context
        audio = np.zeros((b, n * hop), np.float32)
        jobs = [(r, w) for r in range(b) for w in plan_windows(int(frames_B[r]), chunk, context)]
        for batch, real in batched(jobs, self.chunking.batch):
            codes = np.zeros((len(batch), width), np.int32)
            for i, (r, w) in enumerate(batch):
                codes[i, :w.hi - w.lo] = indices_BxN[r, w.lo:w.hi]
            mask = np.arange(width)[None] < np.array([w.hi - w.lo for _, w in batch])[:, None]
            out = self.decode_masked(codes, mask, np.broadcast_to(np.arange(width), mask.shape))
            for i, (r, w) in enumerate(batch[:real]):
                audio[r, w.start * hop:w.end * hop] = out[i, (w.start - w.lo) * hop:
                                                          (w.end - w.lo) * hop]
        return audio

    def decode_masked(self, indices_BxN, mask_BxN, positions_BxN) -> np.ndarray:
        """Like decode, with any frame mask bool [B, N] and rotary positions int [B, N]."""
        return np.asarray(self.run(_decode, jnp.asarray(indices_BxN, jnp.int32),
                                   jnp.asarray(mask_BxN, bool),
                                   jnp.asarray(positions_BxN, jnp.int32)))

    def encode_file(self, path) -> np.ndarray:
        """An audio file (any rate soundfile reads; resampled to 16 kHz, mixed to mono) ->
        code indices int32 [N]. UserError for a missing, unreadable, empty or silent file."""
        audio_T = load_audio(path, SAMPLE_RATE, normalize_loudness=False)
        indices, _ = self.encode(audio_T[None])
        return indices[0]


def load_codec(ckpt) -> LoadedCodec:
    """Loads the newest checkpoint under `ckpt` (a run dir, its checkpoints/ or a step dir)."""
    return LoadedCodec.load(ckpt)


def check_codes(codes, codebook_size: int, name: str) -> np.ndarray:
    """Returns `codes` as int32 [N] after checking shape, dtype and range; UserError if bad."""
    codes = np.asarray(codes)
    if codes.ndim == 2 and codes.shape[0] == 1:
        codes = codes[0]
    if codes.ndim != 1:
        raise UserError(f"{name}: expected a 1-D array of code indices [N], got shape "
                        f"{codes.shape}; pass the output of `emotive codec encode`")
    if codes.size == 0:
        raise UserError(f"{name}: holds no codes; encode some audio first")
    if not np.issubdtype(codes.dtype, np.integer):
        raise UserError(f"{name}: code indices must be integers, got dtype {codes.dtype}; pass "
                        "the output of `emotive codec encode`")
    low, high = int(codes.min()), int(codes.max())
    if low < 0 or high >= codebook_size:
        raise UserError(f"{name}: code indices must lie in [0, {codebook_size}), found "
                        f"{low}..{high}; were they made by another codec?")
    return codes.astype(np.int32)


def load_codes(path, codebook_size: int) -> np.ndarray:
    """Reads a .npy of code indices; returns int32 [N] (see check_codes)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; check the path")
    try:
        codes = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: not a readable .npy array ({reason}); pass the output of "
                        "`emotive codec encode`") from None
    return check_codes(codes, codebook_size, str(path))


def stream_decode(codec: LoadedCodec, codes_N: np.ndarray, *, chunk_frames: int = 25,
                  left_context: int = 50, lookahead: int = 2) -> Iterator[np.ndarray]:
    """Decodes codes int [N] in chunks; yields float32 audio [chunk_frames * hop] per chunk
    (shorter at the end), which concatenate to [N * hop].

    Each chunk is decoded by `decode_window` in a fixed window of left_context +
    chunk_frames + lookahead frames (one compiled shape). Latency is chunk_frames +
    lookahead frames. With a window covering the whole clip the result equals
    `codec.decode`; with less context it differs a little (tests/infer/test_codec_tools.py
    measures how much).
    """
    codes_N = check_codes(codes_N, codec.codebook_size, "codes")
    if chunk_frames < 1 or left_context < 0 or lookahead < 0:
        raise UserError("chunk_frames must be >= 1 and left_context, lookahead >= 0")
    n = codes_N.size
    for start in range(0, n, chunk_frames):
        end = min(start + chunk_frames, n)
        yield decode_window(codec, codes_N[None], np.array([n]), start, end,
                            left_context=left_context, width=chunk_frames,
                            lookahead=lookahead)[0]


def decode_window(codec: LoadedCodec, codes_BxN: np.ndarray, frames_B: np.ndarray, start: int,
                  end: int, *, left_context: int = 50, width: int | None = None,
                  lookahead: int = 0) -> np.ndarray:
    """Audio float32 [B, (end - start) * hop] of frames start..end-1 of every row, decoded
    in a window of left_context + width + lookahead frames (width >= end - start, default
    end - start) at the rows' real frame positions; frames at or past a row's `frames_B`
    are masked (a row's audio there is meaningless). The search's process rewards decode
    each new chunk of every live candidate this way, in one batch."""
    codes_BxN = np.asarray(codes_BxN)
    b, n = codes_BxN.shape
    width = end - start if width is None else width
    window = left_context + width + lookahead
    frames = np.arange(start - left_context, start - left_context + window)
    limit_B = np.minimum(np.asarray(frames_B), end + lookahead)
    valid = (frames[None] >= 0) & (frames[None] < limit_B[:, None])
    codes = np.where(valid, codes_BxN[:, np.clip(frames, 0, n - 1)], 0)
    # Masked frames need only a valid, distinct position; rotary depends on differences.
    positions = np.broadcast_to(np.where(frames >= 0, frames, 0), (b, window))
    audio = codec.decode_masked(codes, valid, positions)
    hop = codec.hop
    return audio[:, left_context * hop:(left_context + end - start) * hop]


def iterate_split(codec: LoadedCodec, data_dir, split: str, *, dataset: str = "emotive_speech",
                  batch_size: int = 8, limit: int | None = None,
                  decode: bool = False) -> Iterator[dict]:
    """Encodes every clip of a TFDS split whole, in length-bucketed padded batches.

    Yields one dict per clip: id, text, condition ("" where the dataset has none), phones
    (`phone_frames`: eSpeak's phones with their frames at the codec's rate), emotion,
    intensity, speaker (index into the split's sorted speaker names), adv float32 [3], has_adv,
    audio float32 [T] (the input), codes int32 [ceil(T / hop)], and with `decode` the decoded
    audio float32 [T] (decoded as a padded batch, which equals decoding the clip alone). Stops
    after `limit` clips.
    """
    done = 0
    batches = whole_clip_batches(data_dir, dataset, split, batch_size=batch_size)
    try:
        for batch in batches:
            codes, frames = codec.encode(batch["audio"], batch["length"])
            decoded = codec.decode(codes, frames) if decode else None
            for r in np.flatnonzero(batch["example_mask"]):
                length = int(batch["length"][r])
                row = {"id": str(batch["id"][r]), "text": str(batch["text"][r]),
                       "condition": str(batch["condition"][r]),
                       "phones": phone_frames(batch["phones"][r], codec.hop, int(frames[r])),
                       "emotion": int(batch["emotion"][r]),
                       "intensity": int(batch["intensity"][r]),
                       "speaker": int(batch["speaker"][r]), "adv": batch["adv"][r],
                       "has_adv": bool(batch["has_adv"][r]), "audio": batch["audio"][r, :length],
                       "codes": codes[r, :frames[r]]}
                if decoded is not None:
                    row["decoded"] = decoded[r, :length]
                yield row
                done += 1
                if limit is not None and done >= limit:
                    return
    finally:
        batches.close()


def _fill_phones(aligner, waiting: list[tuple[dict, np.ndarray]], speakers, hop: int,
                 targets: PhonemeTargets) -> list[str]:
    """Gives each waiting (row, audio) the phones of its forced alignment ("" if it fails);
    returns the failures as 'id: reason' lines."""
    rows = [row for row, _ in waiting]
    done = align_clips(aligner, [audio for _, audio in waiting], [r["text"] for r in rows],
                       [r["codes"].size for r in rows], hop=hop, targets=targets,
                       voices=[speaker_voice(speakers[r["speaker"]] if r["speaker"] >= 0
                                             else "") for r in rows], batch_size=len(rows))
    for row, result in zip(rows, done):
        row["phones"] = result.phones
    return failure_lines([r["id"] for r in rows], done)


def encode_split(codec: LoadedCodec, data_dir, split: str, *, dataset: str = "emotive_speech",
                 batch_size: int = 8, limit: int | None = None, aligner=None) -> dict:
    """Pre-encodes a TFDS split into code sequences with their labels carried along.

    Returns the in-memory table of `emotive.data.pipelines.encoded` (codes end to end, offsets,
    labels, phones, speakers, codebook_size), which `save_encoded` writes as an array_record
    folder. `aligner`: a phoneme recogniser (`emotive.infer.asr.Recognizer`, UserError for a
    character one) whose CTC forced alignment (`emotive.infer.align`) gives the phones of
    every clip the dataset has none for; a clip it cannot align keeps "" and is listed in
    the table's `alignment_failures` ('id: reason' lines; not stored by `save_encoded`).
    """
    if aligner is not None:
        require_phonemes(aligner)
    speakers = split_speakers(data_dir, dataset, split)
    rows, waiting, failures, targets = [], [], [], PhonemeTargets()
    for row in iterate_split(codec, data_dir, split, dataset=dataset, batch_size=batch_size,
                             limit=limit):
        audio = row.pop("audio")
        rows.append(row)
        if aligner is not None and not row["phones"]:
            waiting.append((row, audio))
        if len(waiting) == batch_size:
            failures += _fill_phones(aligner, waiting, speakers, codec.hop, targets)
            waiting = []
    if waiting:
        failures += _fill_phones(aligner, waiting, speakers, codec.hop, targets)
    lengths = [r["codes"].size for r in rows]
    return {"codes": np.concatenate([r["codes"] for r in rows]).astype(np.int32),
            "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            "id": np.array([r["id"] for r in rows]), "text": np.array([r["text"] for r in rows]),
            "phones": np.array([r["phones"] for r in rows]),
            **{k: np.array([r[k] for r in rows], np.int32)
               for k in ("emotion", "intensity", "speaker")},
            "adv": np.array([r["adv"] for r in rows], np.float32).reshape(-1, 3),
            "has_adv": np.array([r["has_adv"] for r in rows], bool),
            "speakers": np.array(speakers, dtype=str), "codebook_size": np.int64(
                codec.codebook_size),
            **({"alignment_failures": np.array(failures, dtype=str)} if aligner is not None else {})}
