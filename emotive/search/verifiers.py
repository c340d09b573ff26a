"""One verifier interface for inference-time search: score a batch of candidate waveforms.

    request = Request(text="Hello there.", emotion="happy", speaker_ref=ref_audio_T)
    judge = load_verifiers({"emotion": "runs/ser-base", "speaker": "runs/speaker-base",
                            "intelligibility": "runs/asr-base"},
                           weights={"emotion": 1.0, "speaker": 0.5, "intelligibility": 1.0})
    scores_B = judge.score(audio_BxT, request, lengths_B)    # higher is better

Every verifier maps float audio [B, T] at 16 kHz (valid samples `lengths_B`) and one
`Request` to float32 scores [B], batched through the jitted model of a trained checkpoint:
- `EmotionVerifier`: the probability of the requested emotion category, or, for A/D/V
  targets (or a student without categories), 1 - mean absolute error to the target in
  [0, 1] (the heads' range); both lie in [0, 1].
- `SpeakerVerifier`: cosine similarity of the candidate's speaker embedding to that of the
  request's reference recording, in [-1, 1] (the reference is embedded once and cached).
- `IntelligibilityVerifier`: 1 - CER of the recogniser's transcript against the intended
  text, clipped to [0, 1].
- `WeightedVerifier`: the weighted mean of several; its `details` gives each part.
A request that lacks what a verifier needs (no text for intelligibility, no reference for
speaker similarity, neither emotion nor A/D/V for emotion) is a UserError, never a silent 0.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Protocol, Sequence

import numpy as np

from emotive.data.speech.emotions import EMOTIONS
from emotive.errors import UserError
from emotive.infer import bundle
from emotive.infer.asr import Recognizer
from emotive.infer.emotion import EmotionPredictor
from emotive.infer.speaker import SpeakerEmbedder
from emotive.metrics.recognition import cer, prefix_cer

KINDS = ("emotion", "speaker", "intelligibility")


@dataclasses.dataclass(frozen=True)
class Request:
    """What the candidates should be: any of text, emotion (or A/D/V), reference voice.

    For search, also how to condition the TTS model (intensity, speaker tag, ref_text: the
    transcript of speaker_ref, which then becomes a voice prompt) and, per request, the
    verifier weights ({kind: weight}, in place of the search's) and thresholds ({kind:
    minimum score}: a candidate below one is vetoed)."""

    text: str | None = None
    emotion: str | None = None
    adv: tuple[float, float, float] | None = None  # arousal, dominance, valence in [0, 1]
    speaker_ref: np.ndarray | None = dataclasses.field(default=None, compare=False)
    intensity: int = 2
    speaker: str | None = None
    ref_text: str | None = None
    weights: Mapping[str, float] | None = dataclasses.field(default=None, compare=False)
    thresholds: Mapping[str, float] | None = dataclasses.field(default=None, compare=False)


class Verifier(Protocol):
    name: str

    def score(self, audio_BxT: np.ndarray, request: Request,
              lengths_B: np.ndarray | None = None, partial: bool = False) -> np.ndarray:
        """Scores [B]; partial=True: the audio is the first part of an utterance (a process
        reward), which changes what intelligibility compares against."""


def _lengths(audio_BxT: np.ndarray, lengths_B) -> np.ndarray:
    if audio_BxT.ndim != 2:
        raise UserError(f"verifiers take a batch of waveforms [B, T], got shape {audio_BxT.shape}")
    if lengths_B is None:
        return np.full(audio_BxT.shape[0], audio_BxT.shape[1], np.int32)
    return np.asarray(lengths_B, np.int32)


class EmotionVerifier:
    name = "emotion"

    def __init__(self, predictor):
        self.predictor = predictor  # emotive.infer.emotion.EmotionPredictor

    def predict(self, audio_BxT, lengths_B=None) -> dict:
        """The emotion model's outputs: adv [B, 3] and probs [B, 8] (None without categories)."""
        audio_BxT = np.asarray(audio_BxT, np.float32)
        return self.predictor.predict(audio_BxT, _lengths(audio_BxT, lengths_B))

    def categories(self, audio_BxT, lengths_B=None) -> np.ndarray:
        """The most probable emotion of each row, int [B] (indices into EMOTIONS)."""
        probs = self.predict(audio_BxT, lengths_B)["probs"]
        if probs is None:
            raise UserError("this emotion model has no category head; use a ser checkpoint")
        return np.argmax(probs, axis=1)

    def score(self, audio_BxT, request: Request, lengths_B=None, partial=False) -> np.ndarray:
        out = self.predict(audio_BxT, lengths_B)
        if request.emotion is not None and out["probs"] is not None:
            if request.emotion not in EMOTIONS:
                raise UserError(f"unknown emotion {request.emotion!r}; use one of "
                                f"{', '.join(EMOTIONS)}")
            return out["probs"][:, EMOTIONS.index(request.emotion)].astype(np.float32)
        if request.adv is None:
            raise UserError("the emotion verifier needs request.emotion (with a categorical "
                            "model) or request.adv (arousal, dominance, valence)")
        target = np.asarray(request.adv, np.float32)
        return (1.0 - np.mean(np.abs(out["adv"] - target), axis=1)).astype(np.float32)


class SpeakerVerifier:
    name = "speaker"

    def __init__(self, embedder):
        self.embedder = embedder  # emotive.infer.speaker.SpeakerEmbedder
        self._ref_key, self._ref = None, None

    def reference(self, ref_T: np.ndarray) -> np.ndarray:
        key = (ref_T.shape, hash(np.asarray(ref_T, np.float32).tobytes()))
        if key != self._ref_key:
            self._ref_key, self._ref = key, self.embedder.embed(np.asarray(ref_T)[None])[0]
        return self._ref

    def score(self, audio_BxT, request: Request, lengths_B=None, partial=False) -> np.ndarray:
        if request.speaker_ref is None:
            raise UserError("the speaker verifier needs request.speaker_ref, a reference "
                            "recording of the target voice (float audio [T] at 16 kHz)")
        audio_BxT = np.asarray(audio_BxT, np.float32)
        emb = self.embedder.embed(audio_BxT, _lengths(audio_BxT, lengths_B))
        ref = self.reference(request.speaker_ref)
        norms = np.linalg.norm(emb, axis=1) * np.linalg.norm(ref) + 1e-8
        return (emb @ ref / norms).astype(np.float32)


class IntelligibilityVerifier:
    name = "intelligibility"

    def __init__(self, recognizer):
        self.recognizer = recognizer  # emotive.infer.asr.Recognizer

    def transcribe(self, audio_BxT, lengths_B=None) -> list[str]:
        audio_BxT = np.asarray(audio_BxT, np.float32)
        return self.recognizer.transcribe(audio_BxT, _lengths(audio_BxT, lengths_B))

    def score(self, audio_BxT, request: Request, lengths_B=None, partial=False) -> np.ndarray:
        """1 - CER; with partial=True against the best-matching prefix of the text."""
        if not request.text:
            raise UserError("the intelligibility verifier needs request.text, the intended words")
        hyps = self.transcribe(audio_BxT, lengths_B)
        rate = (lambda h: prefix_cer(request.text, h)) if partial else \
            (lambda h: cer([request.text], [h]))
        rates = np.array([rate(hyp) for hyp in hyps], np.float64)
        return np.clip(1.0 - rates, 0.0, 1.0).astype(np.float32)


class WeightedVerifier:
    """The weighted mean of several verifiers' scores."""

    name = "weighted"

    def __init__(self, parts: Sequence[Verifier], weights: Sequence[float]):
        if not parts or len(parts) != len(weights):
            raise UserError("a weighted verifier needs one weight per verifier, and at least one")
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise UserError(f"verifier weights must be >= 0 and not all 0, got {list(weights)}")
        self.parts, self.weights = list(parts), [float(w) for w in weights]

    def details(self, audio_BxT, request: Request, lengths_B=None,
                partial=False) -> dict[str, np.ndarray]:
        return {v.name: v.score(audio_BxT, request, lengths_B, partial) for v in self.parts}

    def weights_for(self, request: Request) -> list[float]:
        """The request's own weights where it gives them, else the verifier's."""
        given = dict(request.weights or {})
        unknown = set(given) - {v.name for v in self.parts}
        if unknown:
            raise UserError(f"the request weighs verifiers the search does not have: "
                            f"{sorted(unknown)}; it has {[v.name for v in self.parts]}")
        weights = [float(given.get(v.name, w)) for v, w in zip(self.parts, self.weights)]
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise UserError(f"verifier weights must be >= 0 and not all 0, got {weights}")
        return weights

    def combine(self, parts: Mapping[str, np.ndarray], request: Request) -> np.ndarray:
        weights = self.weights_for(request)
        total = sum(w * parts[v.name] for v, w in zip(self.parts, weights))
        return (total / sum(weights)).astype(np.float32)

    def score(self, audio_BxT, request: Request, lengths_B=None, partial=False) -> np.ndarray:
        return self.combine(self.details(audio_BxT, request, lengths_B, partial), request)


def load_verifier(kind: str, ckpt) -> Verifier:
    """One verifier from a checkpoint directory of the matching task (UserError naming the
    task it found for another kind's checkpoint)."""
    if kind not in KINDS:
        raise UserError(f"unknown verifier {kind!r}; use one of {', '.join(KINDS)}")
    if bundle.is_bundle(ckpt) and bundle.bundle_role(ckpt) == "judge":
        raise UserError(f"{ckpt} is a judge (its card's role): judges score search results "
                        "and never guide them; pass a verifier or teacher bundle, or a run")
    if kind == "emotion":
        return EmotionVerifier(EmotionPredictor.load(ckpt))
    if kind == "speaker":
        return SpeakerVerifier(SpeakerEmbedder.load(ckpt))
    if kind == "intelligibility":
        rec = Recognizer.load(ckpt)
        if rec.phonemes:
            raise UserError(f"{ckpt} is a phoneme recogniser (model.targets=phonemes): "
                            "intelligibility needs a character model")
        return IntelligibilityVerifier(rec)
    raise UserError(f"unknown verifier {kind!r}; use one of {', '.join(KINDS)}")


def load_verifiers(ckpts: Mapping[str, str], weights: Mapping[str, float] | None = None):
    """{kind: checkpoint dir} (+ optional {kind: weight}, default 1) -> one Verifier; a single
    kind without weights is returned as itself, several as a WeightedVerifier."""
    if not ckpts:
        raise UserError(f"name at least one verifier checkpoint ({', '.join(KINDS)})")
    weights = dict(weights or {})
    unknown = set(weights) - set(ckpts)
    if unknown:
        raise UserError(f"weights given for verifiers without a checkpoint: {sorted(unknown)}")
    parts = [load_verifier(kind, path) for kind, path in ckpts.items()]
    if len(parts) == 1 and not weights:
        return parts[0]
    return WeightedVerifier(parts, [weights.get(v.name, 1.0) for v in parts])
