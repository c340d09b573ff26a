"""Emotion inference from a trained `ser` or `student` checkpoint: batched, jitted, padded.

    predictor = load_emotion_model("runs/ser-base")      # newest checkpoint of a run
    out = predictor.predict(audio_T)                     # one clip: label, probabilities,
                                                         # arousal, dominance, valence
    out = predictor.predict(audio_BxT, lengths_B, sample_rate=22050)   # rows, any rate
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

from emotive.codecs.audio import load_audio, resample
from emotive.configs.common import SAMPLE_RATE
from emotive.data.speech.emotions import EMOTIONS
from emotive.errors import UserError
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

    def predict(self, audio, lengths_B: np.ndarray | None = None, *,
                sample_rate: int = SAMPLE_RATE) -> dict:
        """Float audio [T] (one clip) or [B, T] (rows valid up to `lengths_B`, default T) at
        `sample_rate` (resampled to 16 kHz) -> dict of results per row:

            label          the most probable emotion name (None without a category head)
            probabilities  {emotion name: probability} (None without a category head)
            arousal, dominance, valence   float32, roughly in [0, 1]
            adv            float32 [3] (ADV_ORDER), logits / probs float32 [8] or None

        For [B, T] audio every value gains a leading batch axis (label and probabilities
        become lists). Rows longer than a window: length-weighted means over windows."""
        audio_BxT, lengths_B, single = _as_batch(audio, lengths_B, sample_rate)
        if self.chunking.fits(audio_BxT.shape[1]):
            adv, logits = self.apply(_forward, audio_BxT, lengths_B)
        else:
            (adv, logits), _ = chunked_apply(self, _forward, audio_BxT, lengths_B,
                                             self.chunking, ("pool", "pool"))
        adv = np.asarray(adv)
        logits = np.asarray(logits) if self.has_categories else None
        out = {"adv": adv, "logits": logits,
               "probs": None if logits is None else softmax(logits)}
        out.update({name: adv[:, d] for d, name in enumerate(ADV_ORDER)})
        if out["probs"] is None:
            out["label"] = out["probabilities"] = None
        else:
            out["label"] = [EMOTIONS[int(i)] for i in out["probs"].argmax(-1)]
            out["probabilities"] = [dict(zip(EMOTIONS, map(float, row)))
                                    for row in out["probs"]]
        if single:
            out = {k: (None if v is None else v[0]) for k, v in out.items()}
        return out

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


def _as_batch(audio, lengths_B, sample_rate: int):
    """(float32 [B, T] at 16 kHz, lengths [B] or None, whether one clip [T] was given);
    UserError for another shape or rate."""
    audio = np.asarray(audio, np.float32)
    if audio.ndim not in (1, 2) or audio.shape[-1] == 0:
        raise UserError(f"audio must be [T] or [B, T] samples with T > 0, got shape "
                        f"{audio.shape}; pass one clip or a batch of rows")
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise UserError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
    single = audio.ndim == 1
    audio_BxT = audio[None] if single else audio
    if sample_rate != SAMPLE_RATE:
        audio_BxT = np.stack([resample(row, sample_rate, SAMPLE_RATE) for row in audio_BxT])
        if lengths_B is not None:
            lengths_B = np.minimum(np.round(np.asarray(lengths_B) * SAMPLE_RATE / sample_rate),
                                   audio_BxT.shape[1]).astype(np.int32)
    return audio_BxT, lengths_B, single


def load_emotion_model(ckpt, tasks=EMOTION_TASKS) -> EmotionPredictor:
    """Loads the newest checkpoint under `ckpt` (run dir, checkpoints/ or step dir) of a
    `ser` or `student` run (or only `tasks`); UserError for anything else."""
    return EmotionPredictor.load(ckpt, tuple(tasks))
