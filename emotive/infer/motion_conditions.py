"""The motion generator's condition encoders: ContentEncoder (per-frame speech content: mel,
a recogniser's encoder states, or both) and StyleEncoder (a speaker encoder's embedding of a
reference clip); run_config reads the saved config of the run they load, cheaply."""

from __future__ import annotations

import pathlib

import jax.numpy as jnp
import numpy as np

from emotive.configs import base as config_base
from emotive.data.pipelines import motion as md
from emotive.errors import UserError
from emotive.infer import bundle
from emotive.train.checkpoint import latest_step_dir, read_config


def run_config(ckpt, task: str) -> dict:
    """The saved config of a run (or release bundle) of `task` (cheap: no weights read);
    UserError otherwise."""
    if bundle.is_bundle(ckpt):
        raw = config_base.to_dict(bundle.read_config(pathlib.Path(ckpt).absolute()))
        what = "bundle"
    else:
        raw = read_config(latest_step_dir(pathlib.Path(ckpt).absolute()))
        what = "run"
    if raw.get("task") != task:
        raise UserError(f"{ckpt} is a {raw.get('task')!r} {what}, not {task!r}; pass the workdir "
                        f"of `emotive train {task}`" + (" or its release bundle"
                                                        if what == "bundle" else ""))
    return raw


def _asr_hidden(model, audio_BxT, lengths_B):
    hidden, seg = model.encoder(audio_BxT, jnp.maximum(lengths_B, 1))
    return hidden, seg


class ContentEncoder:
    """Per-frame speech content at the motion frame rate: log-mel ("mel"), a CTC
    recogniser's encoder states ("asr", linearly resampled to the motion frames; long audio
    runs in 20 s chunks with 2 s of context on each side, so memory is flat in length), or
    both side by side ("asr+mel")."""

    CHUNK_S, CONTEXT_S = 20.0, 2.0

    def __init__(self, source: str, asr_ckpt: str = ""):
        self.source = source
        self.recognizer = None
        if source in ("asr", "asr+mel"):
            from emotive.infer.asr import Recognizer
            self.recognizer = Recognizer.load(asr_ckpt)

    @staticmethod
    def dim_of(content_cfg) -> int:
        if content_cfg.source == "mel":
            return md.CONTENT_DIM_MEL
        raw = run_config(content_cfg.asr_ckpt, "asr")
        width = int(raw["model"]["encoder"]["transformer"]["d_model"])
        return width + (md.CONTENT_DIM_MEL if content_cfg.source == "asr+mel" else 0)

    def __call__(self, audio_T: np.ndarray, num_frames: int) -> np.ndarray:
        if self.recognizer is None:
            return md.mel_content(audio_T, 16000, num_frames)
        hidden = self._asr(audio_T, num_frames)
        if self.source == "asr+mel":
            return np.concatenate([hidden, md.mel_content(audio_T, 16000, num_frames)], axis=1)
        return hidden

    def _asr(self, audio_T: np.ndarray, num_frames: int) -> np.ndarray:
        enc = self.recognizer.cfg.model.encoder
        hop = enc.frame_samples
        chunk, ctx = int(self.CHUNK_S * 16000), int(self.CONTEXT_S * 16000)
        pieces, times = [], []
        for start in range(0, max(audio_T.size, 1), chunk):
            lo, hi = max(0, start - ctx), min(audio_T.size, start + chunk + ctx)
            seg = audio_T[lo:hi][None]
            hidden, fseg = self.recognizer.apply(_asr_hidden, seg, np.array([seg.shape[1]]))
            hidden, valid = np.asarray(hidden[0], np.float32), np.asarray(fseg[0]) > 0
            t = (lo + (np.arange(len(hidden)) + 0.5) * hop) / 16000
            keep = valid & (t >= start / 16000) & (t < (start + chunk) / 16000)
            pieces.append(hidden[keep])
            times.append(t[keep])
        h, t = np.concatenate(pieces), np.concatenate(times)
        frame_t = np.arange(num_frames) / md.FPS
        return np.stack([np.interp(frame_t, t, h[:, d]) for d in range(h.shape[1])],
                        axis=1).astype(np.float32)


class StyleEncoder:
    """Speaker-style vectors: a speaker encoder's unit embedding of a reference clip."""

    def __init__(self, speaker_ckpt: str = ""):
        self.embedder = None
        if speaker_ckpt:
            from emotive.infer.speaker import SpeakerEmbedder
            self.embedder = SpeakerEmbedder.load(speaker_ckpt)

    @staticmethod
    def dim_of(style_cfg) -> int:
        if not style_cfg.speaker_ckpt:
            return 1
        return int(run_config(style_cfg.speaker_ckpt, "speaker")["model"]["embed_dim"])

    def __call__(self, audios: list[np.ndarray]) -> np.ndarray:
        if self.embedder is None:
            return np.zeros((len(audios), 1), np.float32)
        out = []
        for i in range(0, len(audios), 16):
            rows = [a[:16000 * 8] for a in audios[i:i + 16]]   # 8 s is plenty for a voice
            lengths = np.array([r.size for r in rows], np.int32)
            batch = np.zeros((len(rows), lengths.max()), np.float32)
            for j, r in enumerate(rows):
                batch[j, :r.size] = r
            out.append(self.embedder.embed(batch, lengths))
        return np.concatenate(out).astype(np.float32)
