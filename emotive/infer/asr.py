"""The trained CTC recogniser: batched, jitted transcription.

    rec = load_recognizer("runs/asr-base")                 # a run dir, checkpoints/ or step
    texts = rec.transcribe(audio_BxT, lengths_B)            # list[str], normalised text

Decoding is greedy CTC (best class per frame, repeats merged, blanks dropped) unless a
`BeamDecoder` is given (prefix beam search, optionally with character and word n-gram
language models fitted on the training split's texts; emotive.infer.ctc_decode). Held-out
CER/WER is `emotive eval asr` (emotive.evals.asr).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from emotive.codecs.chars import ctc_greedy_texts
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

    def transcribe(self, audio_BxT, lengths_B=None, decoder: BeamDecoder | None = None
                   ) -> list[str]:
        """Transcripts (normalised text) of float audio [B, T] at 16 kHz with valid lengths
        [B] (default: whole rows): greedy CTC, or the given beam decoder's."""
        if decoder is not None:
            log_probs, slots = self.apply(_log_probs, audio_BxT, lengths_B)
            return decoder.decode(np.asarray(log_probs), np.asarray(slots))
        ids, slots = self.apply(_best_path, audio_BxT, lengths_B)
        return ctc_greedy_texts(np.asarray(ids), np.asarray(slots))


def load_recognizer(ckpt) -> Recognizer:
    """The recogniser of an `emotive train asr` run (run dir, its checkpoints/ or a step dir)."""
    return Recognizer.load(ckpt)
