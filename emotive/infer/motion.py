"""Speech-driven motion: the VAE predictor and the diffusion generator (its condition
encoders are `infer.motion_conditions`).

    gen = MotionGenerator.load("runs/motion-ldm", ser="runs/ser-base")  # a motion_ldm run
    out = gen.generate(audio, emotion="happy", intensity=2, style_ref=ref_audio, seed=0)
    out.poses, out.trans, out.face          # [T, 165] axis-angle, [T, 3], [T, 52] at 30 fps
    outs = gen.generate_batch(audios, emotions=[...], style_refs=[...])   # many clips at once

Sampling is DDIM (eta 0, `diffusion.sample_steps` levels) with classifier-free guidance per
factor: four denoiser rows per sample (nothing, content, content + emotion, content +
emotion + style) combine as

    pred = p0 + s_c (p_c - p0) + s_e (p_ce - p_c) + s_s (p_ces - p_ce)

so each scale strengthens one factor given the ones before it (all scales 1: the plain
conditional prediction, one row). Any length: audio is cut into windows of
`data.window_frames` frames that overlap by a quarter; windows are sampled in order, and the
overlap's latents of window j are inpainted from window j - 1 (at every level the known part
is replaced by its forward-noised copy, the same noise each level), then decoded windows are
cross-faded linearly over the overlap. Every clip of a batch advances one window per round,
so short clips are one round and memory grows with the audio only through its features and
the output frames.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from emotive.data.pipelines import motion as md
from emotive.errors import UserError
from emotive.infer import bundle
from emotive.infer.motion_conditions import ContentEncoder, StyleEncoder
from emotive.infer.predictor import Predictor
from emotive.models.diffusion import Schedule, ddim_timesteps
from emotive.models.motion_denoiser import Conditions


def resolve_beside(path, step_dir) -> pathlib.Path:
    """A checkpoint path recorded in a run's config: inside a release bundle `step_dir`, the
    bundle's own subfolder first (a motion_ldm bundle names its VAE "vae"); else as given if
    it exists (relative to the working directory), else relative to `step_dir` or the
    nearest ancestor of it that holds it, so a run trained with `vae.ckpt=runs/vae` loads
    from any working directory."""
    p = pathlib.Path(path)
    if p.is_absolute():
        return p
    here = pathlib.Path(step_dir).absolute()
    if bundle.is_bundle(here) and (here / p).exists():
        return here / p
    if p.exists():
        return p
    for parent in (here, *here.parents):
        if (parent / p).exists():
            return parent / p
    return p


# ----------------------------------------------------------------------------- the VAE


def _encode(model, frames, mask):
    return model.encode(frames, mask)[0]


def _decode(model, z, lmask):
    return model.decode(z, lmask)


class MotionAutoencoder(Predictor):
    """A trained motion VAE: frames <-> latents (means of q(z|x))."""

    tasks = ("motion_vae",)

    @property
    def downsample(self) -> int:
        return self.cfg.model.downsample

    @property
    def latent_dim(self) -> int:
        return self.cfg.model.latent_dim

    def encode(self, frames_BxTxD, mask_BxT) -> np.ndarray:
        """Latent means [B, T / downsample, C]; T must be a multiple of the downsampling."""
        return np.asarray(self.run(_encode, np.asarray(frames_BxTxD, np.float32),
                                   np.asarray(mask_BxT, np.float32)))

    def decode(self, z_BxNxC, latent_mask_BxN) -> np.ndarray:
        return np.asarray(self.run(_decode, np.asarray(z_BxNxC, np.float32),
                                   np.asarray(latent_mask_BxN, np.float32)))

    def reconstruct(self, frames_Tx385) -> np.ndarray:
        """One clip through encoder and decoder (padded to the downsampling)."""
        t = len(frames_Tx385)
        n = -(-t // self.downsample)
        x, mask = md.pad_window(np.asarray(frames_Tx385, np.float32), 0, n * self.downsample)
        lmask = np.ones((1, n), np.float32)
        return self.decode(self.encode(x[None], mask[None]), lmask)[0, :t]


# ----------------------------------------------------------------------------- sampling


@dataclasses.dataclass(frozen=True)
class Guidance:
    """Classifier-free guidance scales per factor (1 = plain conditioning, 0 = the factor
    ignored, > 1 = strengthened)."""

    content: float = 1.0
    emotion: float = 1.0
    style: float = 1.0

    @property
    def plain(self) -> bool:
        return self.content == self.emotion == self.style == 1.0


def _sample_fn(prediction: str):
    def sample(model, z_init, content, emotion, style, style_keep, lmask, fmask, known,
               known_mask, known_noise, timesteps, next_steps, abar, scales):
        """DDIM over `timesteps` for B samples; rows are [B x variants] when guided."""
        sched = Schedule(abar)
        b = z_init.shape[0]
        variants = scales.shape[0]   # 1 (plain) or 4
        zeros_e = jnp.zeros_like(emotion)
        if variants == 1:
            conds = Conditions(content, jnp.ones(b), emotion, style, style_keep)
        else:   # nothing, content, content + emotion, content + emotion + style
            rep = lambda x: jnp.concatenate([x] * 4)
            conds = Conditions(rep(content), jnp.repeat(jnp.array([0., 1., 1., 1.]), b),
                               jnp.concatenate([zeros_e, zeros_e, emotion, emotion]),
                               rep(style), jnp.concatenate([jnp.zeros(3 * b),
                                                            style_keep]))
        km = known_mask[:, :, None]

        def step(z, ts):
            t, t_next = ts
            t_b = jnp.full((b,), t)
            z = jnp.where(km > 0, sched.q_sample(known, t_b, known_noise), z)
            rows = z if variants == 1 else jnp.concatenate([z] * 4)
            tr = jnp.full((rows.shape[0],), t)
            lm = lmask if variants == 1 else jnp.concatenate([lmask] * 4)
            fm = fmask if variants == 1 else jnp.concatenate([fmask] * 4)
            pred = model(rows, tr, conds, lm, fm)
            if variants > 1:
                p0, pc, pce, pces = jnp.split(pred, 4)
                pred = (p0 + scales[1] * (pc - p0) + scales[2] * (pce - pc)
                        + scales[3] * (pces - pce))
            x0, eps = sched.split(pred, z, t_b, prediction)
            return sched.ddim_step(x0, eps, jnp.full((b,), t_next)), None

        z, _ = jax.lax.scan(step, z_init, (timesteps, next_steps))
        return jnp.where(km > 0, known, z) * lmask[:, :, None]
    sample.__name__ = f"sample_{prediction}"
    return sample


_SAMPLERS = {p: _sample_fn(p) for p in ("epsilon", "v")}


def _denormalize(model, z):
    return model.latent_norm.denormalize(z)


@dataclasses.dataclass
class GeneratedMotion:
    frames: np.ndarray       # [T, 385]
    fps: float
    seams: list[int]         # centre frames of the cross-faded overlaps

    @property
    def parts(self):
        return md.split_frames(self.frames)


class MotionGenerator(Predictor):
    """A trained motion LDM with its VAE and condition encoders."""

    tasks = ("motion_ldm",)

    def __init__(self, cfg, model, step=0, step_dir=None, *, vae: MotionAutoencoder | None = None,
                 content: ContentEncoder | None = None, style: StyleEncoder | None = None,
                 ser=None):
        super().__init__(cfg, model, step, step_dir)
        self.vae = vae
        self.content = content
        self.style = style
        self.ser = ser
        d = cfg.diffusion
        self.schedule = Schedule.scaled_linear(d.steps, d.beta_start, d.beta_end)

    @classmethod
    def load(cls, ckpt, tasks=None, *, ser=None):
        base = Predictor.load.__func__(Predictor, ckpt, tasks or cls.tasks)
        cfg = base.cfg
        find = lambda path: str(resolve_beside(path, base.step_dir)) if path else path
        cfg = dataclasses.replace(
            cfg, vae=dataclasses.replace(cfg.vae, ckpt=find(cfg.vae.ckpt)),
            content=dataclasses.replace(cfg.content, asr_ckpt=find(cfg.content.asr_ckpt)),
            style=dataclasses.replace(cfg.style, speaker_ckpt=find(cfg.style.speaker_ckpt)))
        emotion = None
        if ser is not None:
            from emotive.infer.emotion import EmotionPredictor
            emotion = EmotionPredictor.load(ser, ("ser", "student"))
        return cls(cfg, base.model, base.step, base.step_dir,
                   vae=MotionAutoencoder.load(cfg.vae.ckpt),
                   content=ContentEncoder(cfg.content.source, cfg.content.asr_ckpt),
                   style=StyleEncoder(cfg.style.speaker_ckpt), ser=emotion)

    @property
    def has_style(self) -> bool:
        return self.style is not None and self.style.embedder is not None

    # -- conditions --------------------------------------------------------------------

    def emotion_condition(self, emotion=None, intensity=None, adv=None, emotion_ref=None
                          ) -> np.ndarray:
        if emotion_ref is not None:
            if self.ser is None:
                raise UserError("an emotion reference needs an SER model: pass --ser SER_RUN")
            md.check_speech(emotion_ref, name="--emotion-ref")
            out = self.ser.predict(emotion_ref[None])
            adv = np.clip(out["adv"][0], 0.0, 1.0)
            if out.get("probs") is None:   # an A/D/V-only student
                return md.emotion_vector(adv=adv)
            return md.emotion_from_prediction(out["probs"][0], adv)
        if emotion is None and adv is None:
            return np.zeros(md.EMOTION_DIM, np.float32)
        return md.emotion_vector(emotion, intensity, adv)

    # -- generation --------------------------------------------------------------------

    def generate(self, audio_T, **kwargs) -> GeneratedMotion:
        per_clip = ("emotion", "emotion_vec", "style_ref")
        kw = {k: [v] for k, v in kwargs.items() if k in per_clip and v is not None}
        rest = {k: v for k, v in kwargs.items() if k not in per_clip}
        return self.generate_batch([audio_T], **kw, **rest)[0]

    def generate_batch(self, audios, *, emotion_vec=None, emotion=None, style_ref=None,
                       guidance: Guidance = Guidance(), seed: int = 0, window: int | None = None,
                       steps: int | None = None, batch_size: int = 32,
                       progress: bool = False) -> list[GeneratedMotion]:
        """Motion for each audio (16 kHz float arrays). Per clip: `emotion_vec` (14 values,
        from `emotion_condition`) or `emotion` (a name), `style_ref` (reference audio for
        the style; default the clip's own audio). Clip k is seeded (seed, k)."""
        n = len(audios)
        for i, a in enumerate(audios):
            md.check_speech(a, name=f"audio {i}")
        if emotion_vec is None:
            emotion_vec = [self.emotion_condition(e) for e in (emotion or [None] * n)]
        refs = style_ref or [None] * n
        refs = [audios[i] if r is None else r for i, r in enumerate(refs)]
        for i, r in enumerate(refs):
            md.check_speech(r, name=f"style reference {i}")
        styles = self.style(refs)
        keep_s = np.full(n, 1.0 if self.has_style else 0.0, np.float32)
        frames = [md.audio_frames(a) for a in audios]
        content = [self.content(a, t) for a, t in zip(audios, frames)]
        out = []
        for lo in range(0, n, batch_size):
            idx = list(range(lo, min(n, lo + batch_size)))
            out += self._generate_group(
                [frames[i] for i in idx], [content[i] for i in idx],
                np.stack([emotion_vec[i] for i in idx]).astype(np.float32), styles[idx],
                keep_s[idx], [np.random.default_rng([seed, i]) for i in idx], guidance,
                window or self.cfg.data.window_frames, steps, progress)
        return out

    def _windows(self, t: int, window: int, overlap: int) -> list[int]:
        hop = window - overlap
        starts = [0]
        while starts[-1] + window < t:
            starts.append(starts[-1] + hop)
        return starts

    def _generate_group(self, frames, content, emotions, styles, keep_s, rngs, guidance,
                        window, steps, progress):
        k = self.vae.downsample
        if window % (4 * k):
            raise UserError(f"the window ({window} frames) must be a multiple of {4 * k}")
        overlap = window // 4
        nw, no = window // k, overlap // k
        c = self.vae.latent_dim
        starts = [self._windows(t, window, overlap) for t in frames]
        latents = [np.zeros((-(-(s[-1] + window) // k), c), np.float32) for s in starts]
        noise_all = [r.standard_normal((len(latents[i]) + nw, c)).astype(np.float32)
                     for i, r in enumerate(rngs)]
        d = self.cfg.diffusion
        ts = ddim_timesteps(d.steps, steps or d.sample_steps)
        nxt = np.append(ts[1:], -1).astype(np.int32)
        scales = (np.ones(1, np.float32) if guidance.plain else
                  np.array([1.0, guidance.content, guidance.emotion, guidance.style],
                           np.float32))
        sampler = _SAMPLERS[d.prediction]
        rounds = max(len(s) for s in starts)
        bar = tqdm(total=rounds, desc="motion windows", unit="round", disable=not progress,
                   leave=False)
        for j in range(rounds):
            rows = [i for i, s in enumerate(starts) if len(s) > j]
            b = len(rows)
            z0 = np.zeros((b, nw, c), np.float32)
            cont = np.zeros((b, window, content[0].shape[1]), np.float32)
            fmask = np.zeros((b, window), np.float32)
            known = np.zeros((b, nw, c), np.float32)
            kmask = np.zeros((b, nw), np.float32)
            knoise = np.zeros((b, nw, c), np.float32)
            for r, i in enumerate(rows):
                s = starts[i][j]
                cont[r], fmask[r] = md.pad_window(content[i], s, window)
                z0[r] = noise_all[i][s // k:s // k + nw]
                knoise[r] = noise_all[i][::-1][:nw]   # another fixed draw for the overlap
                if j > 0:
                    known[r, :no] = latents[i][s // k:s // k + no]
                    kmask[r, :no] = 1.0
            lmask = md.latent_mask_np(fmask, k)
            z = np.asarray(self.run(sampler, z0, cont, emotions[rows], styles[rows],
                                    keep_s[rows], lmask, fmask, known, kmask, knoise, ts, nxt,
                                    self.schedule.alphas_cumprod.astype(np.float32), scales))
            for r, i in enumerate(rows):
                s = starts[i][j] // k
                valid = int(lmask[r].sum())
                latents[i][s:s + valid] = z[r, :valid]
            bar.update()
        bar.close()
        return [self._decode(latents[i], frames[i], starts[i], window, overlap)
                for i in range(len(frames))]

    def _decode(self, z_norm, t, starts, window, overlap) -> GeneratedMotion:
        k = self.vae.downsample
        z = np.asarray(self.run(_denormalize, z_norm[None]))[0]
        total = np.zeros((len(z) * k, md.FRAME_DIM), np.float64)
        weight = np.zeros(len(z) * k)
        nw = window // k
        for j, s in enumerate(starts):
            part = z[s // k:s // k + nw]
            pad = np.zeros((1, nw, z.shape[1]), np.float32)
            pad[0, :len(part)] = part
            lm = np.zeros((1, nw), np.float32)
            lm[0, :len(part)] = 1.0
            dec = self.vae.decode(pad, lm)[0, :len(part) * k]
            w = np.ones(len(dec))
            if j > 0:
                w[:overlap] = (np.arange(overlap) + 0.5) / overlap
            if j + 1 < len(starts):
                tail = min(overlap, len(dec))
                w[len(dec) - tail:] *= 1.0 - (np.arange(tail) + 0.5) / overlap
            total[s:s + len(dec)] += dec * w[:, None]
            weight[s:s + len(dec)] += w
        frames = (total / np.maximum(weight, 1e-8)[:, None])[:t].astype(np.float32)
        return GeneratedMotion(frames, md.FPS, [s + overlap // 2 for s in starts[1:]])
