"""The verifier interface: what each verifier scores, the weighted mean, and bad requests.

The models behind the verifiers are tested where they are built; here small stand-ins with
the same methods give known outputs, so every score can be checked by hand.
"""

import numpy as np
import pytest

from emotive.data.speech.emotions import EMOTIONS
from emotive.errors import UserError
from emotive.search.verifiers import (EmotionVerifier, IntelligibilityVerifier, Request,
                                     SpeakerVerifier, WeightedVerifier, load_verifiers)


class FakeEmotion:
    def __init__(self, categories=True):
        self.categories = categories

    def predict(self, audio_BxT, lengths_B):
        b = audio_BxT.shape[0]
        probs = np.full((b, 8), 0.1 / 7, np.float32)
        probs[np.arange(b), np.arange(b) % 8] = 0.9  # row i is most sure of emotion i
        adv = np.tile(np.array([[0.5, 0.5, 0.5]], np.float32), (b, 1))
        adv[0] = [1.0, 0.0, 0.5]
        return {"adv": adv, "probs": probs if self.categories else None}


class FakeEmbedder:
    def embed(self, audio_BxT, lengths_B=None):
        # Embedding = the mean of the first and second half of each row: easy to steer.
        t = audio_BxT.shape[1] // 2
        return np.stack([audio_BxT[:, :t].mean(1), audio_BxT[:, t:].mean(1)], axis=1)


class FakeRecognizer:
    def __init__(self, texts):
        self.texts = texts

    def transcribe(self, audio_BxT, lengths_B=None):
        return self.texts[:audio_BxT.shape[0]]


def test_emotion_scores_the_requested_category_or_adv_closeness():
    audio = np.zeros((3, 1600), np.float32)
    v = EmotionVerifier(FakeEmotion())
    scores = v.score(audio, Request(emotion=EMOTIONS[1]))
    np.testing.assert_allclose(scores, [0.1 / 7, 0.9, 0.1 / 7], rtol=1e-6)
    adv = EmotionVerifier(FakeEmotion(categories=False)).score(
        audio, Request(emotion="happy", adv=(1.0, 0.0, 0.5)))
    np.testing.assert_allclose(adv, [1.0, 1 - 1 / 3, 1 - 1 / 3], rtol=1e-6)
    with pytest.raises(UserError, match="unknown emotion"):
        v.score(audio, Request(emotion="bored"))
    with pytest.raises(UserError, match="request.adv"):
        EmotionVerifier(FakeEmotion(categories=False)).score(audio, Request(emotion="sad"))


def test_speaker_similarity_is_cosine_to_the_reference():
    audio = np.zeros((2, 4), np.float32)
    audio[0] = [1, 1, 0, 0]   # embedding (1, 0)
    audio[1] = [1, 1, 1, 1]   # embedding (1, 1)
    v = SpeakerVerifier(FakeEmbedder())
    ref = np.array([0, 0, 2, 2], np.float32)  # embedding (0, 2)
    np.testing.assert_allclose(v.score(audio, Request(speaker_ref=ref)),
                               [0.0, 1 / np.sqrt(2)], atol=1e-6)
    with pytest.raises(UserError, match="speaker_ref"):
        v.score(audio, Request())


def test_intelligibility_is_one_minus_cer_clipped():
    audio = np.zeros((3, 1600), np.float32)
    v = IntelligibilityVerifier(FakeRecognizer(["hello world", "hello wrld", ""]))
    scores = v.score(audio, Request(text="Hello, world!"))
    np.testing.assert_allclose(scores, [1.0, 1 - 1 / 11, 0.0], rtol=1e-6)
    with pytest.raises(UserError, match="request.text"):
        v.score(audio, Request())


def test_weighted_mean_and_details():
    audio = np.zeros((2, 1600), np.float32)
    emo = EmotionVerifier(FakeEmotion())
    asr = IntelligibilityVerifier(FakeRecognizer(["abc", "abd"]))
    judge = WeightedVerifier([emo, asr], [3.0, 1.0])
    request = Request(text="abc", emotion=EMOTIONS[0])
    parts = judge.details(audio, request)
    np.testing.assert_allclose(judge.score(audio, request),
                               (3 * parts["emotion"] + parts["intelligibility"]) / 4, rtol=1e-6)
    assert judge.score(audio, request)[0] > judge.score(audio, request)[1]
    with pytest.raises(UserError, match="weights"):
        WeightedVerifier([emo], [0.0])
    with pytest.raises(UserError, match="at least one"):
        load_verifiers({})
    with pytest.raises(UserError, match="without a checkpoint"):
        load_verifiers({"emotion": "x"}, {"speaker": 1.0})
