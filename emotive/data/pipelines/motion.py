"""Motion training data: frame vectors, speech-content features, emotion vectors, windows.

    table = load_table(cfg.data, "train")           # every take of a split, in memory
    x_Tx385 = frame_vector(poses_Tx165, trans_Tx3, face_Tx52)
    poses, trans, face = split_frames(x_Tx385)      # the inverse (6D -> axis-angle)
    mel_content(audio, 16000, num_frames)           # [T, 64] content features at 30 fps
    emotion_vector("happy", 2) / emotion_vector(adv=(.8, .6, .7)) / from_probs(p, adv)

A frame is 385 values: 55 SMPL-X joints x 6D rotation (330), the root translation relative
to the clip's first frame (3), and the 52 ARKit face weights. The emotion vector (14 values)
is [8 category weights, intensity, has-category, arousal, dominance, valence, has-A/D/V]:
every part can be given or left out, so one model takes a category with an intensity,
A/D/V alone, or an SER model's probabilities and A/D/V for a reference recording.
"""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

from emotive.codecs.audio import mel_filterbank
from emotive.codecs.motion import rotations
from emotive.codecs.motion.face import NUM_ARKIT
from emotive.codecs.motion.smplx_npz import NUM_JOINTS, read_smplx_npz
from emotive.data.speech import emotions as emo
from emotive.data.motion.corpus_files import read_face_npz, read_motion_corpus
from emotive.data.speech.prosody import frame_windows
from emotive.errors import UserError

FPS = 30.0
BODY = slice(0, 6 * NUM_JOINTS)                          # 330
TRANS = slice(BODY.stop, BODY.stop + 3)                  # 3
FACE = slice(TRANS.stop, TRANS.stop + NUM_ARKIT)         # 52
FRAME_DIM = FACE.stop                                    # 385
MEL_BANDS = 32
CONTENT_DIM_MEL = 2 * MEL_BANDS
EMOTION_DIM = len(emo.EMOTIONS) + 6
_CAT = slice(0, len(emo.EMOTIONS))
_INTENSITY, _HAS_CAT = len(emo.EMOTIONS), len(emo.EMOTIONS) + 1
_ADV = slice(len(emo.EMOTIONS) + 2, len(emo.EMOTIONS) + 5)
_HAS_ADV = len(emo.EMOTIONS) + 5


# ----------------------------------------------------------------------------- frames


def frame_vector(poses_Tx165, trans_Tx3, face_Tx52) -> np.ndarray:
    """[T, 385] float32: 6D joint rotations, translation from the first frame, face weights."""
    poses = np.asarray(poses_Tx165, np.float64).reshape(len(poses_Tx165), NUM_JOINTS, 3)
    trans = np.asarray(trans_Tx3, np.float64)
    d6 = rotations.axis_angle_to_rotation_6d(poses).reshape(len(poses), -1)
    return np.concatenate([d6, trans - trans[:1], np.asarray(face_Tx52, np.float64)],
                          axis=1).astype(np.float32)


def split_frames(x_Tx385) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(poses [T, 165] axis-angle, trans [T, 3], face [T, 52] clipped to [0, 1])."""
    x = np.asarray(x_Tx385, np.float64)
    d6 = x[:, BODY].reshape(len(x), NUM_JOINTS, 6)
    poses = rotations.rotation_6d_to_axis_angle(d6).reshape(len(x), -1)
    return (poses.astype(np.float32), x[:, TRANS].astype(np.float32),
            np.clip(x[:, FACE], 0.0, 1.0).astype(np.float32))


# ----------------------------------------------------------------------------- conditions


def mel_content(audio_T, sr: int, num_frames: int, fps: float = FPS) -> np.ndarray:
    """[num_frames, 64]: 32 log-mel bands of a 64 ms window centred on each motion frame,
    and their change from the previous frame (onsets). Linear in the audio's length."""
    x = np.asarray(audio_T, np.float32).reshape(-1)
    n_fft = int(0.064 * sr)
    centres = np.round(np.arange(num_frames) / fps * sr).astype(np.int64)
    padded = np.pad(x, (n_fft // 2, n_fft // 2 + n_fft))
    frames = padded[centres[:, None] + np.arange(n_fft)[None, :]]
    spec = np.abs(np.fft.rfft(frames * np.hanning(n_fft)[None], axis=1)) ** 2
    mel = np.log(spec @ mel_filterbank(sr, n_fft, MEL_BANDS).T + 1e-6) / 5.0
    delta = np.diff(mel, axis=0, prepend=mel[:1])
    return np.concatenate([mel, delta], axis=1).astype(np.float32)


def emotion_vector(emotion: str | None = None, intensity: int | None = None,
                   adv=None) -> np.ndarray:
    """The 14-value emotion condition: a category (with intensity 1 or 2; default the
    emotion's highest) and/or A/D/V in [0, 1]; a category alone also fills in its A/D/V."""
    v = np.zeros(EMOTION_DIM, np.float32)
    if emotion is not None:
        intensity = max(emo.intensities(emotion)) if intensity is None else int(intensity)
        emo.check_emotion(emotion, intensity)
        v[_CAT][emo.EMOTIONS.index(emotion)] = 1.0
        v[_INTENSITY] = emo.intensity_scale(intensity)
        v[_HAS_CAT] = 1.0
        if adv is None:
            adv = emo.affect_targets(emotion, intensity)
    if adv is not None:
        adv = np.asarray(adv, np.float32).reshape(-1)
        if adv.shape != (3,) or not np.all((adv >= 0) & (adv <= 1)):
            raise UserError(f"A/D/V must be three values in [0, 1], got {adv.tolist()}")
        v[_ADV] = adv
        v[_HAS_ADV] = 1.0
    return v


def emotion_from_prediction(probs_8, adv_3) -> np.ndarray:
    """The emotion condition from an SER model's category probabilities and A/D/V (a
    reference recording's emotion): the probabilities as category weights, intensity 1."""
    v = emotion_vector(adv=np.clip(np.asarray(adv_3, np.float32), 0.0, 1.0))
    p = np.asarray(probs_8, np.float32).reshape(-1)
    if p.shape != (len(emo.EMOTIONS),):
        raise UserError(f"the emotion model gives {p.size} categories, not "
                        f"{len(emo.EMOTIONS)}; pass an 8-emotion ser run")
    v[_CAT], v[_INTENSITY], v[_HAS_CAT] = p / max(p.sum(), 1e-8), 1.0, 1.0
    return v


def drop_emotion_parts(e_BxE: np.ndarray, keep_cat_B, keep_adv_B) -> np.ndarray:
    """Zeros the category part (weights, intensity, flag) and/or the A/D/V part of rows."""
    e = np.array(e_BxE, np.float32, copy=True)
    cat = np.asarray(keep_cat_B, bool)
    adv = np.asarray(keep_adv_B, bool)
    e[~cat, :_HAS_CAT + 1] = 0.0
    e[~adv, _ADV.start:] = 0.0
    return e


# ----------------------------------------------------------------------------- the table


@dataclasses.dataclass
class MotionTable:
    """Every take of one split: frames, content features, emotion vectors, metadata."""

    records: list[dict]
    frames: list[np.ndarray]             # [T, 385] each
    audio_dir: Path
    content: list[np.ndarray] | None = None   # [T, F] each
    emotions: np.ndarray | None = None        # [N, 14]
    style: np.ndarray | None = None           # [N, S]: the take's clip's speaker embedding

    def __len__(self) -> int:
        return len(self.records)

    def audio(self, i: int) -> np.ndarray:
        return read_audio(self.audio_dir / self.records[i]["audio"])


def read_audio(path) -> np.ndarray:
    try:
        x, sr = sf.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise UserError(f"{path}: unreadable audio ({e}); rebuild the speech corpus") from None
    if sr != 16000:
        raise UserError(f"{path}: sample rate {sr}, the motion corpus's audio is 16 kHz")
    return x.mean(axis=1)


def speech_dir_of(motion_dir: Path, summary: dict) -> Path:
    """The speech corpus of a motion corpus: as recorded, else a sibling or parent copy."""
    recorded = Path(summary.get("speech_dir", ""))
    for candidate in (recorded, motion_dir / "speech", motion_dir.parent / recorded.name):
        if (candidate / "metadata.jsonl").is_file():
            return candidate
    raise UserError(f"{motion_dir}: its speech corpus {recorded} is missing; rebuild it or "
                    "place it beside the motion corpus")


def load_table(data_cfg, split: str, *, progress: bool = True) -> MotionTable:
    """The takes of `split` (at most data.max_takes, spread evenly), read into memory."""
    root = Path(data_cfg.motion_dir)
    summary, records = read_motion_corpus(root)
    records = [r for r in records if r["split"] == split]
    if not records:
        raise UserError(f"{root}: split {split!r} has no takes; use one of "
                        f"{', '.join(sorted(summary.get('splits', {})))}")
    if data_cfg.max_takes and len(records) > data_cfg.max_takes:
        keep = np.unique(np.linspace(0, len(records) - 1, data_cfg.max_takes).astype(int))
        records = [records[i] for i in keep]
    from tqdm import tqdm
    frames = []
    for r in tqdm(records, desc=f"motion {split}", unit="take", disable=not progress,
                  leave=False):
        body = read_smplx_npz(root / r["body"], expect_fps=FPS)
        face, _, _ = read_face_npz(root / r["face"])
        t = min(len(body.poses), len(face))
        frames.append(frame_vector(body.poses[:t], body.trans[:t], face[:t]))
    emotions = np.stack([emotion_vector(r["emotion"], r["intensity"]) for r in records])
    return MotionTable(records, frames, speech_dir_of(root, summary), emotions=emotions)


def by_clip(table: MotionTable) -> dict[str, list[int]]:
    """Clip id -> its takes' indices (takes share one audio)."""
    out: dict[str, list[int]] = {}
    for i, r in enumerate(table.records):
        out.setdefault(r["clip"], []).append(i)
    return out


def style_partners(table: MotionTable) -> list[np.ndarray]:
    """For each take, the takes of the same speaker from other clips (its style references;
    the take's own clip when the speaker has no other)."""
    speakers: dict[str, list[int]] = {}
    for i, r in enumerate(table.records):
        speakers.setdefault(r["speaker"], []).append(i)
    out = []
    for i, r in enumerate(table.records):
        others = [j for j in speakers[r["speaker"]] if table.records[j]["clip"] != r["clip"]]
        out.append(np.asarray(others or [i]))
    return out


# ----------------------------------------------------------------------------- windows


def crop_start(length: int, window: int, key: tuple, rng: np.random.Generator | None) -> int:
    """Where a window of `window` frames starts in a clip of `length` (random if longer)."""
    if length <= window:
        return 0
    if rng is None:   # evaluation: a fixed start per record
        return zlib.crc32(repr(key).encode()) % (length - window + 1)
    return int(rng.integers(0, length - window + 1))


def pad_window(x_TxD: np.ndarray, start: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(x[start:start + window] zero-padded to `window` rows, mask [window] float32)."""
    part = x_TxD[start:start + window]
    out = np.zeros((window,) + x_TxD.shape[1:], np.float32)
    out[:len(part)] = part
    mask = np.zeros(window, np.float32)
    mask[:len(part)] = 1.0
    return out, mask


def stack(items: list[dict]) -> dict:
    return {k: np.stack([it[k] for it in items]) for k in items[0]}


def audio_frames(audio_T: np.ndarray, sr: int = 16000, fps: float = FPS) -> int:
    return int(round(audio_T.size / sr * fps))


def check_speech(audio_T: np.ndarray, *, name: str) -> None:
    """UserError for audio with no speech to drive motion (silence, or shorter than 0.2 s)."""
    x = np.asarray(audio_T, np.float32)
    if x.size < 3200:
        raise UserError(f"{name}: {x.size / 16000:.2f} s of audio; motion needs at least 0.2 s")
    if not np.isfinite(x).all():
        raise UserError(f"{name}: holds NaN or Inf samples; fix the file")
    win = frame_windows(x, 400, 160)
    if np.sqrt(np.mean(win ** 2, axis=1)).max() < 1e-3:
        raise UserError(f"{name}: is silent (peak RMS below -60 dBFS); motion is driven by "
                        "speech, pass a recording with speech in it")


def latent_mask_np(mask_BxT: np.ndarray, downsample: int) -> np.ndarray:
    """numpy twin of models.motion_vae.latent_mask: a latent step is valid if any frame is."""
    b, t = mask_BxT.shape
    return mask_BxT.reshape(b, t // downsample, downsample).max(-1).astype(np.float32)
