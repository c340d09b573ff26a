"""The trained CTC recogniser: batched, jitted transcription.

    rec = load_recognizer("runs/asr-base")                 # a run dir, checkpoints/ or step
    texts = rec.transcribe(audio_BxT, lengths_B)            # list[str], normalised text

Decoding is greedy CTC (best class per frame, repeats merged, blanks dropped) unless a
`BeamDecoder` is given (prefix beam search, optionally with character and word n-gram
language models fitted on the training split's texts; emotive.infer.ctc_decode). Held-out
CER/WER is `emotive eval asr` (emotive.evals.asr). A phoneme model (`model.targets=phonemes`)
decodes greedily to eSpeak-style IPA ("ð_ə k_æ_t": "_" inside a word, " " between words;
emotive.data.speech.phoneme_targets), and `emotive eval asr` gives its PER.

Audio longer than one window of `rec.chunking` (12 s + 2 x 2 s of context by default) runs
in windows aligned to encoder frames, a few at a time (`emotive.infer.chunking`): each
window keeps the CTC slots of its central 12 s, and the slots are stitched end to end before
decoding (repeats across a seam merge as anywhere else), so memory stays flat in length.
Shorter windows than the other predictors' because the recognisers train on rows of a few
seconds: on 64 s of concatenated test clips `asr-base` scored CER 43.7% with 12 s chunks,
46.7% with 28 s and 55.1% on the whole file at once (each clip alone: 31.2%).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from emotive.codecs.chars import ctc_greedy_texts
from emotive.data.speech.phoneme_targets import ctc_greedy_phonemes
from emotive.errors import UserError
from emotive.infer.chunking import Chunking, chunked_apply
from emotive.infer.ctc_decode import BeamDecoder
from emotive.infer.predictor import Predictor


def _forward(model, audio_BxT, lengths_B):
    """CTC logits [B, S, V] and valid slots per row [B]."""
    out = model(audio_BxT, jnp.maximum(lengths_B, 1))
    return out["logits"], jnp.sum(out["frame_segments"] > 0, axis=1)


def _best_path(model, audio_BxT, lengths_B):
    """Best class per CTC slot, int32 [B, S], and valid slots per row [B]."""
    logits, slots_B = _forward(model, audio_BxT, lengths_B)
    return jnp.argmax(logits, -1).astype(jnp.int32), slots_B


def _log_probs(model, audio_BxT, lengths_B):
    """CTC log-probabilities float32 [B, S, V] and valid slots per row [B]."""
    logits, slots_B = _forward(model, audio_BxT, lengths_B)
    return jax.nn.log_softmax(logits.astype(jnp.float32), -1), slots_B


class Recognizer(Predictor):
    """A loaded CTC recogniser with a jitted greedy decoder."""

    tasks = ("asr",)
    chunking = Chunking(chunk_seconds=12.0)

    def per_slot(self, fn, audio_BxT, lengths_B=None):
        """fn's per-slot output [B, S, ...] and valid slots int32 [B]; rows longer than a
        window are stitched from windows (see the module doc)."""
        if self.chunking.fits(np.shape(audio_BxT)[1]):
            out, slots_B = self.apply(fn, audio_BxT, lengths_B)
            return np.asarray(out), np.asarray(slots_B)
        (out, _), slots_B = chunked_apply(
            self, fn, audio_BxT, lengths_B, self.chunking, ("stitch", None),
            frame=self.cfg.model.encoder.frame_samples, per_frame=self.cfg.model.upsample)
        return out, slots_B

    @property
    def phonemes(self) -> bool:
        """Whether this recogniser transcribes to phonemes (`model.targets=phonemes`)."""
        return self.cfg.model.targets == "phonemes"

    def log_probs(self, audio_BxT, lengths_B=None) -> tuple[np.ndarray, np.ndarray]:
        """CTC log-probabilities float32 [B, S, V] of float audio [B, T] at 16 kHz with valid
        lengths [B] (default: whole rows), and the valid slots of each row int32 [B]; a slot
        is `cfg.model.slot_samples` samples. The forced aligner's input (emotive.infer.align)."""
        log_probs, slots_B = self.per_slot(_log_probs, audio_BxT, lengths_B)
        return np.asarray(log_probs), np.asarray(slots_B)

    def transcribe(self, audio_BxT, lengths_B=None, decoder: BeamDecoder | None = None
                   ) -> list[str]:
        """Transcripts of float audio [B, T] at 16 kHz with valid lengths [B] (default: whole
        rows): normalised text (greedy CTC, or the given beam decoder's), or for a phoneme
        model its phoneme strings (greedy only)."""
        if self.phonemes:
            if decoder is not None:
                raise UserError("a phoneme recogniser decodes greedily: the beam search and "
                                "its language models are for characters; drop --beam")
            return ctc_greedy_phonemes(*self.per_slot(_best_path, audio_BxT, lengths_B))
        if decoder is not None:
            return decoder.decode(*self.per_slot(_log_probs, audio_BxT, lengths_B))
        return ctc_greedy_texts(*self.per_slot(_best_path, audio_BxT, lengths_B))


def load_recognizer(ckpt) -> Recognizer:
    """The recogniser of an `emotive train asr` run (run dir, its checkpoints/ or a step dir)."""
    return Recognizer.load(ckpt)
