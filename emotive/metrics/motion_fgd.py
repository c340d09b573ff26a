"""Frechet Gesture Distance (FGD) and the motion autoencoder whose features it compares.

    fx = MotionFeatureExtractor.load("MOTION/fgd_autoencoder.npz")   # or fit_feature_extractor
    fgd(fx.features(gt_windows), fx.features(gen_windows))  # {"value", "protocol"}
    motion_windows(clips_of_6d_rotations)                   # [N, 32, 330] windows

Protocol (EMAGE's `mertic.py`): Frechet distance |mu_a - mu_b|^2 + Tr(S_a + S_b -
2 (S_a S_b)^1/2) with a 1e-6 ridge on both covariances, on features of a motion autoencoder
over windows of 32 frames of 55 joints x 6D rotations (330 values a frame) -> 240 features.
Ours is a small temporal conv autoencoder in JAX (two stride-2 convolutions, 32 frames -> 8 x
30 = 240 features; an MLP decoder), trained with a fixed seed on the corpus it ships with
(`emotive data motion` saves it as OUT/fgd_autoencoder.npz). Numbers compare only under the
same autoencoder file; the protocol names it by a hash of its parameters.

Like every motion metric, `fgd` returns {"value", "protocol"}: the protocol holds each choice
that changes the number, so a number is never quoted without how it was measured (published
alignment claims often do not survive a change of protocol; REFERENCE.md).
"""

from __future__ import annotations

import hashlib
import pathlib

import numpy as np

from emotive.errors import UserError

__all__ = ["WINDOW", "FEATURE_DIM", "frechet_distance", "fgd", "motion_windows",
           "MotionFeatureExtractor", "fit_feature_extractor"]

WINDOW = 32          # frames per FGD window (EMAGE)
FEATURE_DIM = 240    # 8 time steps x 30 channels
_FRAME_DIM = 330     # 55 joints x 6D


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
        """An untrained extractor: N(0, 1/fan_in) weights from `seed`, identity standardiser."""
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
        """Frames per input window (32 by default)."""
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
        """The first 16 hex digits of a sha256 over the parameters (names and bytes)."""
        h = hashlib.sha256()
        for key in sorted(self.params):
            h.update(key.encode())
            h.update(np.ascontiguousarray(self.params[key]).tobytes())
        return h.hexdigest()[:16]

    def protocol(self) -> dict:
        """What FGD numbers from this extractor depend on: architecture, window, digest, info."""
        return {"extractor": "temporal conv autoencoder (2 x conv k4 s2 -> 8 x 30)",
                "window": self.window, "input": "55 joints x 6D rotation",
                "sha256_16": self.digest(), **self.info}

    def save(self, path) -> None:
        """Writes the parameters and `info` (as info_* keys) to one npz."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        info = {f"info_{k}": np.asarray(v) for k, v in self.info.items()}
        with open(path, "wb") as f:
            np.savez(f, **self.params, **info)

    @classmethod
    def load(cls, path) -> "MotionFeatureExtractor":
        """The extractor saved at `path`; UserError naming the file if it is missing or bad."""
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
