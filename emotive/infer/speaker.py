"""The trained speaker encoder: batched, jitted, unit-length embeddings.

    enc = load_speaker_encoder("runs/speaker-base")        # a run dir, checkpoints/ or step
    emb_BxD = enc.embed(audio_BxT, lengths_B)              # unit-length embeddings (numpy)

Audio longer than one window of `enc.chunking` (28 s + 2 x 2 s of context by default) runs
in windows, a few at a time (`emotive.infer.chunking`); the embedding is the mean of the
windows' embeddings weighted by their kept lengths, re-normalised to unit length.

Held-out EER is `emotive eval speaker` (emotive.evals.speaker).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from emotive.infer.chunking import Chunking, chunked_apply
from emotive.infer.predictor import Predictor


def _embed(model, audio_BxT, lengths_B):
    return model(audio_BxT, jnp.maximum(lengths_B, 1))["embedding"]


class SpeakerEmbedder(Predictor):
    """A loaded speaker encoder with a jitted embedding function."""

    tasks = ("speaker",)
    chunking = Chunking()

    @property
    def dim(self) -> int:
        return self.cfg.model.embed_dim

    def embed(self, audio_BxT, lengths_B=None) -> np.ndarray:
        """Unit-length embeddings float32 [B, D] of float audio [B, T] at 16 kHz with valid
        lengths [B] (default: whole rows). Rows longer than a window: the length-weighted
        mean over windows, re-normalised."""
        if self.chunking.fits(np.shape(audio_BxT)[1]):
            return np.asarray(self.apply(_embed, audio_BxT, lengths_B))
        (emb,), _ = chunked_apply(self, _embed, audio_BxT, lengths_B, self.chunking, ("pool",),
                                  frame=self.cfg.model.encoder.frame_samples)
        return emb / np.maximum(np.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)


def load_speaker_encoder(ckpt) -> SpeakerEmbedder:
    """The encoder of an `emotive train speaker` run (run dir, checkpoints/ or a step dir)."""
    return SpeakerEmbedder.load(ckpt)
