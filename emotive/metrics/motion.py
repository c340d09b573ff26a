"""Speech-driven motion metrics, each returned with its protocol beside its number.

    fx = MotionFeatureExtractor.load("MOTION/fgd_autoencoder.npz")   # or fit_feature_extractor
    fgd(fx.features(gt_d6), fx.features(gen_d6))         # {"value", "protocol"}
    beat_alignment(positions_TxJx3, 30.0, onsets_s, drop_s=0.0)
    l1_diversity(positions), jerk(positions, 30.0), foot_sliding(positions, 30.0)
    jaw_envelope_correlation(jaw_open_T, audio, 16000, 30.0), lve_blendshapes(pred, gt)
    bootstrap_ci(per_clip_values)                        # {"value", "low", "high", ...}
    probe = EmotionProbe.fit(features_NxF, labels_N); probe.accuracy(X, y)

Every metric returns a dict {"value": float, "protocol": {...}, ...}: the protocol holds each
choice that changes the number (joints, sigma, thresholds, windows, the feature extractor), so
a number is never quoted without how it was measured (published alignment claims often do not
survive a change of protocol; REFERENCE.md). Per-clip metrics return the clip's value; pass a
list of them to `bootstrap_ci` for a mean with a confidence interval.

Protocols (defaults follow EMAGE's `mertic.py` and BEAT):
- FGD: Frechet distance |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) with a 1e-6 ridge on
  both covariances, on features of a motion autoencoder over windows of 32 frames of 55 joints
  x 6D rotations (330 values a frame) -> 240 features. Ours is a small temporal conv
  autoencoder in JAX (two stride-2 convolutions, 32 frames -> 8 x 30 = 240 features; an MLP
  decoder), trained with a fixed seed on the corpus it ships with (`emotive data motion` saves
  it as OUT/fgd_autoencoder.npz). Numbers compare only under the same autoencoder file; the
  protocol names it by a hash of its parameters.
- Beat alignment (BC): audio onsets (librosa onset_detect at 16 kHz, hop 512, as EMAGE; or
  our energy-flux detector, `audio_onsets(method="energy")`); motion beats per joint = local
  minima of the joint's speed (central differences), argrelextrema order 7 at 30 fps, speed
  divided by the mean speed (per joint: the clip's own unless `mean_speed` is given, as
  EMAGE passes the train set's), minima kept where that ratio is above 0.10; per joint, the
  mean over audio onsets of exp(-d^2 / 2 sigma^2), d the distance to the joint's nearest beat,
  sigma 0.3 s; the score is the mean over joints [3, 6, 9, 12-21] (spine, neck, collars, head,
  shoulders, elbows, wrists). EMAGE drops the first and last 2 s; the corpus's clips last 1-4
  s, so `drop_s` is an argument (stated in the protocol).
- L1 diversity (EMAGE L1div): joint positions of all frames pooled, [N, J * 3]; the sum over
  coordinates of the mean absolute deviation from the mean pose (metres).
- Jerk: mean norm of the third time derivative of joint positions (m/s^3), over joints and
  frames (finite differences at the clip's fps).
- Foot sliding: horizontal foot speed (m/s) on contact frames, weighted by 2 - 2^(h / H)
  (h the foot's height above the clip's lowest foot point, H = 5 cm; frames with h > H have
  no contact), averaged over the foot joints' frames (SMPL-X ankles and feet, 7, 8, 10, 11).
- Jaw/envelope correlation: Pearson r between jawOpen and the audio RMS envelope sampled at
  the motion's frame times (a 2-frame window around each).
- LVE on blendshapes (vertex-free): per frame, the maximum over mouth blendshapes (ARKit
  jaw* and mouth*) of the squared error (FaceFormer's LVE takes the squared L2 distance of
  the worst lip vertex), averaged over frames.
- Emotion probe: a multinomial logistic regression (L2, standardised features) on pooled
  motion features (`motion_features`), trained on one set of speakers and scored on another.
"""

from __future__ import annotations

import hashlib
import pathlib
from typing import Sequence

import numpy as np
from scipy.signal import argrelextrema

from emotive.codecs.motion.face import ARKIT_NAMES
from emotive.errors import UserError

__all__ = ["UPPER_BODY_JOINTS", "FOOT_JOINTS", "MOUTH_BLENDSHAPES", "frechet_distance", "fgd",
           "MotionFeatureExtractor", "fit_feature_extractor", "motion_windows", "audio_onsets",
           "motion_beats", "beat_alignment", "l1_diversity", "jerk", "foot_sliding",
           "audio_envelope", "jaw_envelope_correlation", "lve_blendshapes", "bootstrap_ci",
           "motion_features", "EmotionProbe"]

UPPER_BODY_JOINTS = (3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21)   # EMAGE's list
FOOT_JOINTS = (7, 8, 10, 11)   # SMPL-X left/right ankle, left/right foot
MOUTH_BLENDSHAPES = tuple(i for i, n in enumerate(ARKIT_NAMES) if n.startswith(("jaw", "mouth")))
WINDOW = 32          # frames per FGD window (EMAGE)
FEATURE_DIM = 240    # 8 time steps x 30 channels
_FRAME_DIM = 330     # 55 joints x 6D


# ----------------------------------------------------------------------------------------------
# FGD
# ----------------------------------------------------------------------------------------------


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(feats_a_NxF, feats_b_MxF, *, eps: float = 1e-6) -> float:
    """Frechet distance of Gaussians fitted to two feature sets [N, F] and [M, F].

    Tr((S_a S_b)^1/2) is computed as the trace of (A S_b A)^1/2 with A = S_a^1/2 (the same
    eigenvalues, but a symmetric matrix, so identical sets give 0 to rounding). `eps` is a
    ridge added to both covariances.
    """
    a = np.asarray(feats_a_NxF, np.float64)
    b = np.asarray(feats_b_MxF, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"frechet_distance needs [N, F] and [M, F] with N, M >= 2, got "
                         f"{a.shape} and {b.shape}")
    ridge = eps * np.eye(a.shape[1])
    sa, sb = np.cov(a, rowvar=False) + ridge, np.cov(b, rowvar=False) + ridge
    root = _psd_sqrt(sa)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root @ sb @ root), 0.0, None)).sum()
    diff = a.mean(0) - b.mean(0)
    return float(max(diff @ diff + np.trace(sa) + np.trace(sb) - 2.0 * cross, 0.0))


def fgd(feats_real_NxF, feats_gen_MxF, *, extractor: "MotionFeatureExtractor | None" = None,
        eps: float = 1e-6) -> dict:
    """FGD of generated against real features (from the same extractor), with its protocol."""
    protocol = {"metric": "FGD", "ridge": eps, "features": int(np.shape(feats_real_NxF)[1]),
                "windows_real": int(len(feats_real_NxF)), "windows_gen": int(len(feats_gen_MxF))}
    if extractor is not None:
        protocol["extractor"] = extractor.protocol()
    return {"value": frechet_distance(feats_real_NxF, feats_gen_MxF, eps=eps),
            "protocol": protocol}


def motion_windows(rot6d_TxJx6_list, *, window: int = WINDOW, stride: int = 8) -> np.ndarray:
    """Windows [N, window, J * 6] cut from clips of 6D rotations [T, J, 6] (a clip shorter than
    `window` gives one window padded by repeating its last frame)."""
    out = []
    for clip in rot6d_TxJx6_list:
        x = np.asarray(clip, np.float32).reshape(len(clip), -1)
        if len(x) < window:
            x = np.concatenate([x, np.repeat(x[-1:], window - len(x), axis=0)])
        for start in range(0, len(x) - window + 1, stride):
            out.append(x[start:start + window])
    if not out:
        raise ValueError("motion_windows needs at least one clip")
    return np.stack(out)


def _conv(x, w, b, stride):
    import jax

    y = jax.lax.conv_general_dilated(x, w, (stride,), "SAME", dimension_numbers=("NWC", "WIO",
                                                                                   "NWC"))
    return y + b


def _encode(params, x_BxWxD):
    import jax
    import jax.numpy as jnp

    x = (x_BxWxD - params["mean"]) / params["std"]
    h = jax.nn.leaky_relu(_conv(x, params["enc1_w"], params["enc1_b"], 2), 0.2)
    z = _conv(h, params["enc2_w"], params["enc2_b"], 2)
    return jnp.reshape(z, (z.shape[0], -1))


def _decode(params, z_BxF):
    import jax

    h = jax.nn.leaky_relu(z_BxF @ params["dec1_w"] + params["dec1_b"], 0.2)
    return h @ params["dec2_w"] + params["dec2_b"]


class MotionFeatureExtractor:
    """The FGD feature extractor: parameters of the autoencoder (numpy), `features(windows)`.

    `init(seed)` gives an untrained one (a fixed-seed random conv projection, usable for tests);
    `fit_feature_extractor` trains it; `save`/`load` keep it as one npz.
    """

    def __init__(self, params: dict, info: dict | None = None):
        self.params = {k: np.asarray(v, np.float32) for k, v in params.items()}
        self.info = dict(info or {})

    @classmethod
    def init(cls, seed: int = 0, *, frame_dim: int = _FRAME_DIM, window: int = WINDOW,
             hidden: int = 128, channels: int = 30, decoder_hidden: int = 256
             ) -> "MotionFeatureExtractor":
        rng = np.random.default_rng([seed, 0xF6D])

        def w(*shape, fan_in):
            return rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape).astype(np.float32)

        feat = (window // 4) * channels
        params = {"mean": np.zeros(frame_dim), "std": np.ones(frame_dim),
                  "enc1_w": w(4, frame_dim, hidden, fan_in=4 * frame_dim),
                  "enc1_b": np.zeros(hidden),
                  "enc2_w": w(4, hidden, channels, fan_in=4 * hidden), "enc2_b": np.zeros(channels),
                  "dec1_w": w(feat, decoder_hidden, fan_in=feat),
                  "dec1_b": np.zeros(decoder_hidden),
                  "dec2_w": w(decoder_hidden, window * frame_dim, fan_in=decoder_hidden),
                  "dec2_b": np.zeros(window * frame_dim)}
        return cls(params, {"seed": seed, "trained_steps": 0})

    @property
    def window(self) -> int:
        return int(self.params["dec2_b"].shape[0] // self.params["mean"].shape[0])

    def features(self, windows_NxWxD, batch: int = 512) -> np.ndarray:
        """Features [N, 240] of windows [N, 32, 330] (6D rotations flattened per frame)."""
        import jax

        x = np.asarray(windows_NxWxD, np.float32)
        if x.ndim != 3 or x.shape[1:] != (self.window, self.params["mean"].shape[0]):
            raise ValueError(f"windows must be [N, {self.window}, {self.params['mean'].shape[0]}]"
                             f", got {x.shape}")
        encode = jax.jit(_encode)
        return np.concatenate([np.asarray(encode(self.params, x[i:i + batch]))
                               for i in range(0, len(x), batch)])

    def digest(self) -> str:
        h = hashlib.sha256()
        for key in sorted(self.params):
            h.update(key.encode())
            h.update(np.ascontiguousarray(self.params[key]).tobytes())
        return h.hexdigest()[:16]

    def protocol(self) -> dict:
        return {"extractor": "temporal conv autoencoder (2 x conv k4 s2 -> 8 x 30)",
                "window": self.window, "input": "55 joints x 6D rotation",
                "sha256_16": self.digest(), **self.info}

    def save(self, path) -> None:
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        info = {f"info_{k}": np.asarray(v) for k, v in self.info.items()}
        with open(path, "wb") as f:
            np.savez(f, **self.params, **info)

    @classmethod
    def load(cls, path) -> "MotionFeatureExtractor":
        path = pathlib.Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no such FGD autoencoder file; make one with "
                            "`emotive data motion` (OUT/fgd_autoencoder.npz)")
        try:
            with np.load(path, allow_pickle=False) as npz:
                data = {k: npz[k] for k in npz.files}
        except Exception as e:
            raise UserError(f"{path}: not a readable FGD autoencoder npz ({type(e).__name__})"
                            ) from None
        needed = {"mean", "std", "enc1_w", "enc1_b", "enc2_w", "enc2_b", "dec1_w", "dec1_b",
                  "dec2_w", "dec2_b"}
        if not needed <= set(data):
            raise UserError(f"{path}: missing keys {sorted(needed - set(data))}; not an FGD "
                            "autoencoder file")
        info = {k[5:]: data[k].item() for k in data if k.startswith("info_")}
        return cls({k: data[k] for k in needed}, info)


def fit_feature_extractor(windows_NxWxD, *, seed: int = 0, steps: int = 300, batch: int = 64,
                          lr: float = 1e-3) -> MotionFeatureExtractor:
    """Trains the autoencoder on windows [N, 32, 330] (reconstruction MSE of standardised
    frames, Adam, fixed seed); returns the extractor with its training record in `info`."""
    import jax
    import jax.numpy as jnp
    import optax

    x = np.asarray(windows_NxWxD, np.float32)
    model = MotionFeatureExtractor.init(seed, frame_dim=x.shape[2], window=x.shape[1])
    flat = x.reshape(-1, x.shape[2])
    model.params["mean"] = flat.mean(0)
    model.params["std"] = np.maximum(flat.std(0), 1e-3).astype(np.float32)
    fixed = {k: jnp.asarray(model.params[k]) for k in ("mean", "std")}
    params = {k: jnp.asarray(v) for k, v in model.params.items() if k not in fixed}
    opt = optax.adam(lr)
    state = opt.init(params)

    def loss_fn(p, xb):
        full = {**p, **fixed}
        target = ((xb - fixed["mean"]) / fixed["std"]).reshape(xb.shape[0], -1)
        return jnp.mean(jnp.square(_decode(full, _encode(full, xb)) - target))

    @jax.jit
    def step(p, s, xb):
        loss, grads = jax.value_and_grad(loss_fn)(p, xb)
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    rng = np.random.default_rng([seed, 0xF17])
    losses = []
    for _ in range(steps):
        idx = rng.integers(0, len(x), min(batch, len(x)))
        params, state, loss = step(params, state, x[idx])
        losses.append(float(loss))
    model.params.update({k: np.asarray(v) for k, v in params.items()})
    model.info = {"seed": seed, "trained_steps": steps, "train_windows": int(len(x)),
                  "first_loss": round(losses[0], 5) if losses else None,
                  "final_loss": round(float(np.mean(losses[-10:])), 5) if losses else None}
    return model


# ----------------------------------------------------------------------------------------------
# Beats
# ----------------------------------------------------------------------------------------------


def audio_onsets(audio_T, sr: int, *, method: str = "librosa") -> np.ndarray:
    """Onset times (seconds) of a mono waveform.

    "librosa": librosa.onset.onset_detect(sr=sr, hop_length=512, units="time"), EMAGE's choice
    (the first call compiles numba code: seconds). "energy": our energy-flux detector (10 ms
    hops, 25 ms windows; the rise of the smoothed log energy, peaks at least 120 ms apart,
    rising by 1.5 dB a hop or more, into frames within 30 dB of the clip's loudest).
    """
    x = np.asarray(audio_T, np.float32).reshape(-1)
    if method == "librosa":
        import librosa

        return np.asarray(librosa.onset.onset_detect(y=x, sr=sr, hop_length=512, units="time"))
    if method != "energy":
        raise ValueError(f"onset method must be 'librosa' or 'energy', got {method!r}")
    hop, size = sr // 100, int(0.025 * sr)
    if x.size < size + hop:
        return np.zeros(0)
    n = 1 + (x.size - size) // hop
    frames = x[np.arange(size)[None, :] + hop * np.arange(n)[:, None]]
    db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-10)
    db = np.maximum(db, db.max() - 50.0)
    smooth = np.convolve(db, np.ones(3) / 3, mode="same")
    flux = np.maximum(np.diff(smooth, prepend=smooth[0]), 0.0)
    loud = np.r_[smooth[3:], np.repeat(smooth[-1:], 3)] > db.max() - 30.0
    onsets, last = [], -np.inf
    for i in range(1, n - 1):
        lo, hi = max(0, i - 5), min(n, i + 6)
        if flux[i] >= 1.5 and flux[i] == flux[lo:hi].max() and loud[i] and i - last >= 12:
            onsets.append(i)
            last = i
    return (np.asarray(onsets, np.float64) * hop + size / 2) / sr


def _speeds(positions_TxJx3, fps: float) -> np.ndarray:
    """Per-joint speed [T, J]: central differences inside, one-sided at the ends (EMAGE)."""
    p = np.asarray(positions_TxJx3, np.float64)
    if len(p) < 2:
        return np.zeros(p.shape[:2])
    v = np.empty_like(p)
    v[0], v[-1] = (p[1] - p[0]) * fps, (p[-1] - p[-2]) * fps
    v[1:-1] = (p[2:] - p[:-2]) * fps / 2.0
    return np.linalg.norm(v, axis=-1)


def motion_beats(positions_TxJx3, fps: float, *, joints: Sequence[int] = UPPER_BODY_JOINTS,
                 order: int = 7, threshold: float = 0.1, mean_speed=None) -> list[np.ndarray]:
    """Frames of each joint's motion beats: local minima of its normalised speed (see the
    module doc); one int array per entry of `joints`."""
    speed = _speeds(positions_TxJx3, fps)[:, list(joints)]
    norm = (speed.mean(0) if mean_speed is None
            else np.broadcast_to(np.asarray(mean_speed, np.float64).reshape(-1)[list(joints)]
                                 if np.size(mean_speed) > 1 else mean_speed, (len(joints),)))
    speed = speed / np.maximum(norm, 1e-12)
    beats = []
    for j in range(speed.shape[1]):
        minima = argrelextrema(speed[:, j], np.less, order=order)[0]
        beats.append(minima[speed[minima, j] > threshold])
    return beats


def beat_alignment(positions_TxJx3, fps: float, onsets_s, *, sigma: float = 0.3,
                   order: int = 7, threshold: float = 0.1, drop_s: float = 2.0,
                   joints: Sequence[int] = UPPER_BODY_JOINTS, mean_speed=None,
                   onset_method: str = "given") -> dict:
    """EMAGE beat consistency of one clip against its audio onsets (seconds).

    Frames and onsets within `drop_s` of either end are dropped first (EMAGE: 2 s). Returns
    {"value", "protocol", "onsets", "beats"}; value is NaN when no onset is left.
    """
    pos = np.asarray(positions_TxJx3, np.float64)
    num = len(pos)
    start = int(round(drop_s * fps))
    end = num - start
    protocol = {"metric": "beat_alignment (EMAGE)", "sigma_s": sigma, "order": order,
                "threshold": threshold, "drop_s": drop_s, "joints": list(joints), "fps": fps,
                "speed_normaliser": "clip mean per joint" if mean_speed is None else "given",
                "onsets": onset_method}
    onsets = np.asarray(onsets_s, np.float64).reshape(-1)
    onsets = onsets[(onsets >= start / fps) & (onsets < end / fps)] - start / fps
    if end - start < 2 * order + 1 or onsets.size == 0:
        return {"value": float("nan"), "protocol": protocol, "onsets": int(onsets.size),
                "beats": 0}
    beats = motion_beats(pos[start:end], fps, joints=joints, order=order, threshold=threshold,
                         mean_speed=mean_speed)
    scores = []
    for frames in beats:
        if frames.size == 0:
            scores.append(0.0)
            continue
        d = np.abs(onsets[:, None] - frames[None, :] / fps).min(axis=1)
        scores.append(float(np.mean(np.exp(-d ** 2 / (2 * sigma ** 2)))))
    return {"value": float(np.mean(scores)), "protocol": protocol, "onsets": int(onsets.size),
            "beats": int(sum(b.size for b in beats))}


# ----------------------------------------------------------------------------------------------
# Diversity, jerk, foot sliding
# ----------------------------------------------------------------------------------------------


def l1_diversity(positions) -> dict:
    """EMAGE L1div of joint positions: clips [T, J, 3] (a list, or one array [N, T, J, 3] or
    [T, J, 3]) pooled frame-wise; sum over coordinates of the mean |x - mean pose|."""
    if isinstance(positions, (list, tuple)):
        frames = np.concatenate([np.asarray(p, np.float64).reshape(len(p), -1) for p in positions])
    else:
        p = np.asarray(positions, np.float64)
        frames = p.reshape(-1, p.shape[-2] * p.shape[-1])
    value = float(np.abs(frames - frames.mean(0)).sum(1).mean())
    return {"value": value, "protocol": {"metric": "L1div (EMAGE)", "units": "metres",
                                         "frames": int(len(frames)),
                                         "coordinates": int(frames.shape[1])}}


def jerk(positions_TxJx3, fps: float) -> dict:
    """Mean norm of the third derivative of joint positions (m/s^3)."""
    p = np.asarray(positions_TxJx3, np.float64)
    value = (float(np.linalg.norm(np.diff(p, 3, axis=0), axis=-1).mean() * fps ** 3)
             if len(p) > 3 else float("nan"))
    return {"value": value, "protocol": {"metric": "jerk", "units": "m/s^3", "fps": fps,
                                         "derivative": "third finite difference",
                                         "joints": int(p.shape[1])}}


def foot_sliding(positions_TxJx3, fps: float, *, feet: Sequence[int] = FOOT_JOINTS,
                 height: float = 0.05, up_axis: int = 1) -> dict:
    """Contact-weighted horizontal foot speed (m/s); see the module doc."""
    p = np.asarray(positions_TxJx3, np.float64)[:, list(feet)]
    h = p[..., up_axis] - p[..., up_axis].min()
    horizontal = [a for a in range(3) if a != up_axis]
    speed = np.linalg.norm(np.diff(p[..., horizontal], axis=0), axis=-1) * fps
    h_mid = 0.5 * (h[1:] + h[:-1])
    weight = np.clip(2.0 - 2.0 ** (h_mid / height), 0.0, None)
    value = float((speed * weight).mean()) if speed.size else float("nan")
    return {"value": value, "protocol": {"metric": "foot sliding", "units": "m/s",
                                         "feet": list(feet), "contact_height_m": height,
                                         "weight": "2 - 2^(h/H)", "fps": fps}}


# ----------------------------------------------------------------------------------------------
# Face
# ----------------------------------------------------------------------------------------------


def audio_envelope(audio_T, sr: int, fps: float, num_frames: int) -> np.ndarray:
    """RMS of the audio in a window of 2 motion frames centred on each frame time [num_frames]."""
    x = np.asarray(audio_T, np.float64).reshape(-1)
    half = int(sr / fps)
    centres = (np.arange(num_frames) / fps * sr).astype(np.int64)
    csum = np.concatenate([[0.0], np.cumsum(x * x)])
    lo = np.clip(centres - half, 0, x.size)
    hi = np.clip(centres + half, 0, x.size)
    return np.sqrt((csum[hi] - csum[lo]) / np.maximum(hi - lo, 1))


def _pearson(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def jaw_envelope_correlation(jaw_open_T, audio_T, sr: int, fps: float) -> dict:
    """Pearson r between a jaw-opening track [T] (jawOpen, or FLAME jaw x) and the audio's RMS
    envelope at the motion's frame times."""
    jaw = np.asarray(jaw_open_T, np.float64).reshape(-1)
    env = audio_envelope(audio_T, sr, fps, jaw.size)
    return {"value": _pearson(jaw, env),
            "protocol": {"metric": "jaw/envelope Pearson r", "envelope": "RMS, 2-frame window",
                         "fps": fps, "sample_rate": sr}}


def lve_blendshapes(pred_Tx52, gt_Tx52, *, indices: Sequence[int] = MOUTH_BLENDSHAPES) -> dict:
    """Vertex-free LVE: mean over frames of the max squared error over mouth blendshapes."""
    pred, gt = np.asarray(pred_Tx52, np.float64), np.asarray(gt_Tx52, np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"lve needs equal shapes, got {pred.shape} and {gt.shape}")
    err = np.square(pred[:, list(indices)] - gt[:, list(indices)]).max(axis=1)
    return {"value": float(err.mean()),
            "protocol": {"metric": "LVE on blendshapes", "error": "max squared error per frame",
                         "blendshapes": [ARKIT_NAMES[i] for i in indices]
                         if pred.shape[1] == len(ARKIT_NAMES) else list(indices),
                         "frames": int(len(err))}}


# ----------------------------------------------------------------------------------------------
# Confidence intervals
# ----------------------------------------------------------------------------------------------


def bootstrap_ci(values_N, *, level: float = 0.95, resamples: int = 1000, seed: int = 0,
                 protocol: dict | None = None) -> dict:
    """Mean of per-clip values with a percentile bootstrap interval (clips resampled with
    replacement; NaNs dropped and counted). `protocol` (a metric's) is kept beside it."""
    v = np.asarray(values_N, np.float64).reshape(-1)
    nan = int(np.isnan(v).sum())
    v = v[~np.isnan(v)]
    out = {"value": float(v.mean()) if v.size else float("nan"), "n": int(v.size),
           "dropped_nan": nan, "level": level,
           "bootstrap": {"resamples": resamples, "seed": seed, "method": "percentile"}}
    if v.size == 0:
        out.update(low=float("nan"), high=float("nan"))
    else:
        rng = np.random.default_rng(seed)
        means = v[rng.integers(0, v.size, (resamples, v.size))].mean(axis=1)
        alpha = (1.0 - level) / 2
        out.update(low=float(np.quantile(means, alpha)), high=float(np.quantile(means, 1 - alpha)))
    if protocol is not None:
        out["protocol"] = protocol
    return out


# ----------------------------------------------------------------------------------------------
# The motion-emotion probe
# ----------------------------------------------------------------------------------------------

_PROBE_JOINTS = tuple(range(22))   # the SMPL-X body


def motion_features(positions_TxJx3, fps: float) -> np.ndarray:
    """Pooled features of one clip: body joints relative to the pelvis (mean and std over
    frames), each body joint's mean speed and 90th-percentile speed, all in metres (and m/s)."""
    p = np.asarray(positions_TxJx3, np.float64)[:, _PROBE_JOINTS]
    rel = p - p[:, :1]
    speed = _speeds(p, fps)
    return np.concatenate([rel.mean(0).ravel(), rel.std(0).ravel(), speed.mean(0),
                           np.percentile(speed, 90, axis=0)]).astype(np.float32)


class EmotionProbe:
    """Multinomial logistic regression on standardised features (L-BFGS, L2 weight `l2`)."""

    def __init__(self, weights, bias, mean, std, classes: Sequence[str], l2: float):
        self.weights, self.bias = weights, bias
        self.mean, self.std = mean, std
        self.classes = tuple(classes)
        self.l2 = l2

    @classmethod
    def fit(cls, features_NxF, labels_N, *, classes: Sequence[str] | None = None,
            l2: float = 1e-2, max_iter: int = 500) -> "EmotionProbe":
        from scipy.optimize import minimize

        x = np.asarray(features_NxF, np.float64)
        labels = [str(v) for v in labels_N]
        classes = tuple(classes) if classes is not None else tuple(sorted(set(labels)))
        y = np.asarray([classes.index(v) for v in labels])
        mean, std = x.mean(0), np.maximum(x.std(0), 1e-8)
        z = (x - mean) / std
        n, f = z.shape
        k = len(classes)
        onehot = np.eye(k)[y]

        def loss(theta):
            w, b = theta[:f * k].reshape(f, k), theta[f * k:]
            logits = z @ w + b
            logits -= logits.max(1, keepdims=True)
            logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
            p = np.exp(logp)
            value = -(onehot * logp).sum() / n + 0.5 * l2 * (w * w).sum()
            g = (p - onehot) / n
            return value, np.concatenate([(z.T @ g + l2 * w).ravel(), g.sum(0)])

        res = minimize(loss, np.zeros(f * k + k), jac=True, method="L-BFGS-B",
                       options={"maxiter": max_iter})
        return cls(res.x[:f * k].reshape(f, k), res.x[f * k:], mean, std, classes, l2)

    def predict(self, features_NxF) -> list[str]:
        z = (np.asarray(features_NxF, np.float64) - self.mean) / self.std
        return [self.classes[i] for i in np.argmax(z @ self.weights + self.bias, axis=1)]

    def accuracy(self, features_NxF, labels_N) -> dict:
        """Accuracy with per-class recall and the protocol."""
        pred = self.predict(features_NxF)
        truth = [str(v) for v in labels_N]
        correct = np.asarray([p == t for p, t in zip(pred, truth)])
        recall = {c: float(np.mean([p == c for p, t in zip(pred, truth) if t == c]))
                  for c in self.classes if c in truth}
        return {"value": float(correct.mean()) if correct.size else float("nan"),
                "per_class_recall": recall, "correct": correct.astype(float).tolist(),
                "protocol": {"metric": "motion-emotion probe accuracy",
                             "model": f"multinomial logistic regression, L2 {self.l2}, "
                                      "standardised features",
                             "features": "body joints rel. pelvis mean+std, speed mean+p90",
                             "classes": list(self.classes), "test_clips": len(truth)}}
