"""Emotion inference from a trained `ser` or `student` checkpoint: batched, jitted, padded.

    predictor = load_emotion_model("runs/ser-base")      # newest checkpoint of a run
    out = predictor.predict(audio_BxT, lengths_B)        # adv [B, 3], probs [B, 8] or None
    result = predictor.classify_file("in.wav")           # JSON-ready dict for one file

Both models give arousal, dominance, valence (in that order, roughly in [0, 1]); a `ser`
model and a student with a category head also give probabilities over the 8 emotions.
Rows are zero-padded to a whole number of `pad_to` samples and their valid lengths passed
along: both models mask padding, so a padded row gives the row's own result, and jit sees
one shape per padded length instead of one per clip.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib

import jax
import numpy as np
from flax import nnx

from emotive.codecs.audio import load_audio
from emotive.data.emotions import EMOTIONS
from emotive.infer.loading import Trained, load_trained
from emotive.models.ser import ADV_ORDER

SAMPLE_RATE = 16000
MIN_SECONDS = 0.25  # the shortest clip the corpora keep (builders' min_seconds)
EMOTION_TASKS = ("ser", "student")


@functools.partial(jax.jit, static_argnums=0)
def _forward(graphdef, state, audio_BxT, lengths_B):
    """(adv [B, 3], logits [B, C]); C = 0 for an A/D/V-only student."""
    out = nnx.merge(graphdef, state)(audio_BxT, lengths_B)
    if isinstance(out, dict):  # SpeechEmotionModel
        return out["adv"], out["logits"]
    return out[:, :3], out[:, 3:]  # Wav2Small: A/D/V, then the optional emotion logits


def softmax(logits_BxC: np.ndarray) -> np.ndarray:
    z = logits_BxC - logits_BxC.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclasses.dataclass
class EmotionPredictor:
    """A trained emotion model with a jitted, padded batch predict."""

    trained: Trained
    pad_to: int = SAMPLE_RATE // 2

    def __post_init__(self):
        self._graphdef, self._state = nnx.split(self.trained.model)

    @property
    def task(self) -> str:
        return self.trained.cfg.task

    @property
    def step(self) -> int:
        return self.trained.step

    @property
    def has_categories(self) -> bool:
        return self.task == "ser" or self.trained.cfg.model.outputs > 3

    @property
    def num_params(self) -> int:
        return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self._state.filter(nnx.Param)))

    def predict(self, audio_BxT: np.ndarray, lengths_B: np.ndarray | None = None) -> dict:
        """Float audio [B, T] at 16 kHz (rows valid up to `lengths_B`, default T) -> dict of
        numpy arrays: adv float32 [B, 3] and, with a category head, logits and probs [B, 8]
        (else None)."""
        audio_BxT = np.asarray(audio_BxT, np.float32)
        b, t = audio_BxT.shape
        if lengths_B is None:
            lengths_B = np.full(b, t, np.int32)
        padded = max(1, -(-t // self.pad_to)) * self.pad_to
        audio_BxT = np.pad(audio_BxT, ((0, 0), (0, padded - t)))
        adv, logits = _forward(self._graphdef, self._state, audio_BxT,
                               np.asarray(lengths_B, np.int32))
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
    # orbax wants an absolute path; a relative --ckpt is common on the command line.
    return EmotionPredictor(load_trained(pathlib.Path(ckpt).absolute(), task=tuple(tasks)))
