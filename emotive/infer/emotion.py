"""Emotion inference from a trained `ser` or `student` checkpoint: batched, jitted, padded.

    predictor = load_emotion_model("runs/ser-base")      # newest checkpoint of a run
    out = predictor.predict(audio_BxT, lengths_B)        # adv [B, 3], probs [B, 8] or None
    result = predictor.classify_file("in.wav")           # JSON-ready dict for one file

Both models give arousal, dominance, valence (in that order, roughly in [0, 1]); a `ser`
model and a student with a category head also give probabilities over the 8 emotions.
Rows are zero-padded to a bucket length and their valid lengths passed along
(`emotive.infer.predictor`): both models mask padding, so a padded row gives the row's own
result, and jit sees one shape per bucket instead of one per clip. Audio longer than one
window of `predictor.chunking` (28 s + 2 x 2 s of context by default) runs in windows,
a few at a time (`emotive.infer.chunking`): A/D/V and logits are the means over windows
weighted by their kept lengths, so memory stays flat in the length of the recording.
"""

from __future__ import annotations

import numpy as np

from emotive.codecs.audio import load_audio
from emotive.configs.common import SAMPLE_RATE
from emotive.data.speech.emotions import EMOTIONS
from emotive.infer.chunking import Chunking, chunked_apply
from emotive.infer.predictor import Predictor
from emotive.models.ser import ADV_ORDER

MIN_SECONDS = 0.25  # the shortest clip the corpora keep (builders' min_seconds)
EMOTION_TASKS = ("ser", "student")


def _forward(model, audio_BxT, lengths_B):
    """(adv [B, 3], logits [B, C]); C = 0 for an A/D/V-only student."""
    out = model(audio_BxT, lengths_B)
    if isinstance(out, dict):  # SpeechEmotionModel
        return out["adv"], out["logits"]
    return out[:, :3], out[:, 3:]  # Wav2Small: A/D/V, then the optional emotion logits


def softmax(logits_BxC: np.ndarray) -> np.ndarray:
    z = logits_BxC - logits_BxC.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class EmotionPredictor(Predictor):
    """A trained emotion model (`ser` or `student`) with a jitted, padded batch predict."""

    tasks = EMOTION_TASKS
    chunking = Chunking()

    @property
    def has_categories(self) -> bool:
        return self.task == "ser" or self.cfg.model.outputs > 3

    def predict(self, audio_BxT: np.ndarray, lengths_B: np.ndarray | None = None) -> dict:
        """Float audio [B, T] at 16 kHz (rows valid up to `lengths_B`, default T) -> dict of
        numpy arrays: adv float32 [B, 3] and, with a category head, logits and probs [B, 8]
        (else None). Rows longer than a window: length-weighted means over windows."""
        if self.chunking.fits(np.shape(audio_BxT)[1]):
            adv, logits = self.apply(_forward, audio_BxT, lengths_B)
        else:
            (adv, logits), _ = chunked_apply(self, _forward, audio_BxT, lengths_B,
                                             self.chunking, ("pool", "pool"))
        logits = np.asarray(logits) if self.has_categories else None
        return {"adv": np.asarray(adv), "logits": logits,
                "probs": None if logits is None else softmax(logits)}

    def classify_file(self, path) -> dict:
        """One audio file (any rate and channel count soundfile reads; resampled to 16 kHz,
        mixed to mono) -> JSON-ready dict: emotion, categories sorted by probability (when the
        model has them), arousal, dominance, valence. UserError for a missing, unreadable,
        empty, NaN, silent or too short (< 0.25 s) file."""
        import soundfile as sf

        audio_T = load_audio(path, SAMPLE_RATE, normalize_loudness=False,
                             min_seconds=MIN_SECONDS)
        out = self.predict(audio_T[None])
        result = {"file": str(path), "task": self.task, "checkpoint_step": self.step,
                  "seconds": round(audio_T.size / SAMPLE_RATE, 3)}
        rate = sf.info(str(path)).samplerate
        if rate != SAMPLE_RATE:
            result["resampled_from_hz"] = int(rate)
        if out["probs"] is not None:
            probs = out["probs"][0]
            order = np.argsort(-probs, kind="stable")
            result["emotion"] = EMOTIONS[int(order[0])]
            result["categories"] = [{"emotion": EMOTIONS[int(i)],
                                     "probability": round(float(probs[i]), 4)} for i in order]
        result.update({name: round(float(out["adv"][0, d]), 4)
                       for d, name in enumerate(ADV_ORDER)})
        return result


def load_emotion_model(ckpt, tasks=EMOTION_TASKS) -> EmotionPredictor:
    """Loads the newest checkpoint under `ckpt` (run dir, checkpoints/ or step dir) of a
    `ser` or `student` run (or only `tasks`); UserError for anything else."""
    return EmotionPredictor.load(ckpt, tuple(tasks))
