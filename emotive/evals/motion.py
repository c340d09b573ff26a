"""The held-out motion report: the model against four baselines, each metric with its CI.

    emotive eval motion --ckpt runs/motion-ldm --split test [--limit 128] [--ser SER]

Rows (all on the same held-out clips, one take each, spread evenly over the emotions):
- ground truth: the clip's own motion;
- random clip: the ground truth of another utterance of the split (another text), cut or
  looped to the clip's length;
- mean pose: the train split's mean frame (rotations re-orthonormalised), held still;
- audio retrieval: the train clip whose pooled audio features (mean and std of the log-mel
  content features) are nearest, cut or looped to length;
- VAE reconstruction: the ground truth through the model's VAE (the ceiling of any latent
  model on it);
- model: generated for the clip's audio, its labelled emotion and intensity, and a style
  reference from another clip of the same speaker.

Columns: FGD (the corpus's fixed-seed FGD autoencoder; CI by resampling clips), beat
alignment (EMAGE BC against energy onsets, drop 0 s since clips last 1-4 s), L1 diversity
(CI by resampling clips), motion-emotion accuracy (the probe fitted on the train split's
ground truth, a judge trained apart from the model), lip-sync error (LVE over mouth
blendshapes against the ground truth) and the jaw/envelope correlation; and, for the model,
seam jerk over in-window jerk on ~30 s inputs (test clips of one speaker joined). Two
studies follow: probe accuracy against the emotion guidance scale, and a style swap (style
features and beat alignment with the clip's own speaker's reference against another
speaker's). Every number carries its protocol in report.json.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
from tqdm import tqdm

from emotive.codecs.motion import rotations
from emotive.codecs.motion.face import ARKIT_INDEX
from emotive.codecs.motion.render import body_positions, write_frame_png
from emotive.data.speech import emotions as emo
from emotive.data.pipelines import motion as md
from emotive.data.motion.corpus_files import read_motion_corpus
from emotive.errors import UserError
from emotive.evals.common import write_report
from emotive.infer.motion import Guidance, MotionGenerator
from emotive.metrics import motion_fgd
from emotive.metrics.bootstrap import bootstrap_ci
from emotive.metrics.lip_sync import jaw_envelope_correlation, lve_blendshapes
from emotive.metrics.motion_beats import audio_onsets, beat_alignment
from emotive.metrics.motion_body import l1_diversity
from emotive.metrics.motion_probe import EmotionProbe, motion_features

ROWS = ("ground truth", "random clip", "mean pose", "audio retrieval", "VAE reconstruction",
        "model")
SEAM_HALF = 4   # frames either side of a seam centre that count as the seam


def _fit_length(x_TxD: np.ndarray, t: int) -> np.ndarray:
    reps = -(-t // len(x_TxD))
    return np.concatenate([x_TxD] * reps)[:t]


def _select(records, split: str, limit: int) -> list[dict]:
    rows = [r for r in records if r["split"] == split and r["take"] == 0]
    if not rows:
        raise UserError(f"the motion corpus has no {split!r} takes; use train, validation "
                        "or test")
    by_emotion = {e: [r for r in rows if r["emotion"] == e] for e in emo.EMOTIONS}
    per = max(1, limit // len(emo.EMOTIONS))
    out = []
    for e, group in by_emotion.items():
        idx = np.unique(np.linspace(0, len(group) - 1, min(per, len(group))).astype(int))
        out += [group[i] for i in idx] if group else []
    return out[:limit]


class _Clips:
    """Frames and audio of a list of records, with derived positions."""

    def __init__(self, root: pathlib.Path, speech: pathlib.Path, records, desc: str):
        from emotive.codecs.motion.smplx_npz import read_smplx_npz
        from emotive.data.motion.corpus_files import read_face_npz
        self.records = records
        self.frames, self.audio = [], []
        for r in tqdm(records, desc=desc, unit="clip", leave=False):
            body = read_smplx_npz(root / r["body"], expect_fps=md.FPS)
            face = read_face_npz(root / r["face"])[0]
            t = min(len(body.poses), len(face))
            self.frames.append(md.frame_vector(body.poses[:t], body.trans[:t], face[:t]))
            self.audio.append(md.read_audio(speech / r["audio"]))


def positions_of(frames_Tx385) -> np.ndarray:
    poses, trans, _ = md.split_frames(frames_Tx385)
    return body_positions(poses.reshape(len(poses), -1, 3), trans)


def d6_of(frames_Tx385) -> np.ndarray:
    return frames_Tx385[:, md.BODY].reshape(len(frames_Tx385), -1, 6)


def mean_frame(frames: list[np.ndarray]) -> np.ndarray:
    """The mean frame with each joint's mean 6D rotation re-orthonormalised."""
    m = np.concatenate(frames).mean(0)
    d6 = m[md.BODY].reshape(-1, 6)
    m[md.BODY] = rotations.matrix_to_rotation_6d(rotations.rotation_6d_to_matrix(d6)).ravel()
    m[md.TRANS] = 0.0
    return m.astype(np.float32)


def _audio_key(audio: np.ndarray) -> np.ndarray:
    c = md.mel_content(audio, 16000, md.audio_frames(audio))
    return np.concatenate([c.mean(0), c.std(0)])


def _bootstrap_set(values_fn, n: int, resamples: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    vals = [values_fn(rng.integers(0, n, n)) for _ in range(resamples)]
    return float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))


class _Scorer:
    """Every column for a list of generated frame sequences on the selected clips."""

    def __init__(self, clips: _Clips, extractor, probe, resamples: int):
        self.clips, self.extractor, self.probe, self.resamples = clips, extractor, probe, resamples
        self.onsets = [audio_onsets(a, 16000, method="energy") for a in clips.audio]
        self.gt_windows = self._windows(clips.frames)
        self.gt_feats = extractor.features(np.concatenate(self.gt_windows))

    def _windows(self, frames):
        return [motion_fgd.motion_windows([d6_of(f)], stride=8) for f in frames]

    def score(self, frames: list[np.ndarray]) -> dict:
        labels = [r["emotion"] for r in self.clips.records]
        pos = [positions_of(f) for f in frames]
        win = self._windows(frames)
        feats = [self.extractor.features(w) for w in win]
        gt_counts = np.cumsum([0] + [len(w) for w in self.gt_windows])
        gt_by_clip = [self.gt_feats[gt_counts[i]:gt_counts[i + 1]] for i in range(len(win))]

        def fgd_of(idx):
            return motion_fgd.frechet_distance(np.concatenate([gt_by_clip[i] for i in idx]),
                                               np.concatenate([feats[i] for i in idx]))
        fgd = motion_fgd.fgd(self.gt_feats, np.concatenate(feats), extractor=self.extractor)
        fgd["low"], fgd["high"] = _bootstrap_set(fgd_of, len(frames), self.resamples, 1)
        ba = [beat_alignment(p, md.FPS, o, drop_s=0.0, onset_method="energy")
              for p, o in zip(pos, self.onsets)]
        div = l1_diversity(pos)
        div["low"], div["high"] = _bootstrap_set(
            lambda idx: l1_diversity([pos[i] for i in idx])["value"], len(pos),
            self.resamples, 2)
        acc = self.probe.accuracy(np.stack([motion_features(p, md.FPS) for p in pos]),
                                  labels)
        lve = [lve_blendshapes(f[:, md.FACE], g[:, md.FACE])
               for f, g in zip(frames, self.clips.frames)]
        jaw = [jaw_envelope_correlation(f[:, md.FACE][:, ARKIT_INDEX["jawOpen"]], a, 16000,
                                        md.FPS) for f, a in zip(frames, self.clips.audio)]
        return {
            "fgd": fgd,
            "beat_alignment": bootstrap_ci([b["value"] for b in ba],
                                           protocol=ba[0]["protocol"]),
            "diversity": div,
            "emotion_accuracy": {**bootstrap_ci(acc["correct"], protocol=acc["protocol"]),
                                 "per_class_recall": acc["per_class_recall"]},
            "lip_sync_lve": bootstrap_ci([v["value"] for v in lve],
                                         protocol=lve[0]["protocol"]),
            "jaw_envelope_r": bootstrap_ci([v["value"] for v in jaw],
                                           protocol=jaw[0]["protocol"]),
        }


def seam_jerk(frames_Tx385: np.ndarray, seams: list[int]) -> dict:
    """Mean jerk (m/s^3) of joint positions at frames within SEAM_HALF of a seam centre and
    at every other frame, and their ratio."""
    p = positions_of(frames_Tx385).astype(np.float64)
    j = np.linalg.norm(np.diff(p, 3, axis=0), axis=-1).mean(1) * md.FPS ** 3   # [T - 3]
    centre = np.arange(len(j)) + 1.5
    near = np.zeros(len(j), bool)
    for s in seams:
        near |= np.abs(centre - s) <= SEAM_HALF
    if not near.any() or near.all():
        return {"seam": float("nan"), "in_window": float("nan"), "ratio": float("nan")}
    seam, inside = float(j[near].mean()), float(j[~near].mean())
    return {"seam": seam, "in_window": inside, "ratio": seam / inside}


def _long_inputs(clips: _Clips, seconds: float, count: int) -> list[np.ndarray]:
    """Up to `count` inputs of about `seconds`, each joining clips of one speaker."""
    by_speaker: dict[str, list[int]] = {}
    for i, r in enumerate(clips.records):
        by_speaker.setdefault(r["speaker"], []).append(i)
    out = []
    for idx in by_speaker.values():
        pieces, total = [], 0.0
        for i in idx * 20:
            pieces.append(clips.audio[i])
            total += clips.audio[i].size / 16000
            if total >= seconds:
                break
        out.append(np.concatenate(pieces)[:int(seconds * 16000)])
        if len(out) == count:
            break
    return out


def evaluate(gen: MotionGenerator, data_dir, split: str = "test", *, dataset: str = "",
             batch_size: int = 32, limit: int | None = None, out_dir=None,
             emotion_scales=(0.0, 1.0, 2.0, 3.0), long_seconds: float = 30.0,
             long_inputs: int = 4, train_clips: int = 1200, resamples: int = 200,
             seed: int = 0) -> dict:
    """The report described in the module doc (written to out_dir/report.json)."""
    del dataset
    root = pathlib.Path(data_dir or gen.cfg.data.motion_dir)
    summary, records = read_motion_corpus(root)
    speech = md.speech_dir_of(root, summary)
    fgd_path = root / "fgd_autoencoder.npz"
    extractor = motion_fgd.MotionFeatureExtractor.load(fgd_path)
    chosen = _select(records, split, limit or 128)
    clips = _Clips(root, speech, chosen, f"motion {split}")
    train_recs = _select(records, "train", train_clips)
    train = _Clips(root, speech, train_recs, "motion train")
    probe = EmotionProbe.fit(
        np.stack([motion_features(positions_of(f), md.FPS) for f in train.frames]),
        [r["emotion"] for r in train_recs], classes=emo.EMOTIONS)
    scorer = _Scorer(clips, extractor, probe, resamples)
    rng = np.random.default_rng(seed)
    n = len(chosen)

    # Baselines.
    rows: dict[str, list[np.ndarray]] = {"ground truth": clips.frames}
    other = []
    for i, r in enumerate(chosen):
        pool = [j for j, q in enumerate(chosen) if q["text"] != r["text"]]
        other.append(_fit_length(clips.frames[int(rng.choice(pool))], len(clips.frames[i])))
    rows["random clip"] = other
    still = mean_frame(train.frames)
    rows["mean pose"] = [np.repeat(still[None], len(f), 0) for f in clips.frames]
    keys = np.stack([_audio_key(a) for a in train.audio])
    mu, sd = keys.mean(0), keys.std(0) + 1e-6
    bank = (keys - mu) / sd
    rows["audio retrieval"] = [
        _fit_length(train.frames[int(np.argmin(((bank - (_audio_key(a) - mu) / sd) ** 2).sum(1)))],
                    len(f)) for a, f in zip(clips.audio, clips.frames)]

    rows["VAE reconstruction"] = [gen.vae.reconstruct(f) for f in clips.frames]

    # The model: the clip's emotion, a style reference from another clip of its speaker.
    same_speaker = [[j for j, q in enumerate(chosen) if q["speaker"] == r["speaker"]
                     and q["clip"] != r["clip"]] or [i] for i, r in enumerate(chosen)]
    refs = [clips.audio[int(rng.choice(s))] for s in same_speaker]
    evs = [md.emotion_vector(r["emotion"], r["intensity"]) for r in chosen]

    def generate(guidance=Guidance(), style_refs=refs, gen_seed=seed):
        return [g.frames for g in gen.generate_batch(
            clips.audio, emotion_vec=evs, style_ref=style_refs, guidance=guidance,
            seed=gen_seed, batch_size=batch_size, progress=True)]
    rows["model"] = generate()
    table = {name: scorer.score(frames) for name, frames in
             tqdm(rows.items(), desc="scoring", leave=False)}

    # Seams on long inputs.
    longs = _long_inputs(clips, long_seconds, long_inputs)
    outs = gen.generate_batch(longs, emotion_vec=[md.emotion_vector("neutral")] * len(longs),
                              seed=seed, batch_size=batch_size, progress=True)
    seams = [seam_jerk(o.frames, o.seams) for o in outs]
    table["model"]["seam_jerk_ratio"] = {
        **bootstrap_ci([s["ratio"] for s in seams]),
        "seam_jerk": float(np.mean([s["seam"] for s in seams])),
        "in_window_jerk": float(np.mean([s["in_window"] for s in seams])),
        "protocol": {"inputs": len(longs), "seconds": long_seconds,
                     "window_frames": gen.cfg.data.window_frames,
                     "overlap_frames": gen.cfg.data.window_frames // 4,
                     "seam": f"frames within {SEAM_HALF} of each overlap's centre",
                     "jerk": "mean norm of the third difference of joint positions, m/s^3"}}

    # Emotion guidance sweep.
    sweep = {}
    for s in emotion_scales:
        frames = rows["model"] if s == 1.0 else generate(Guidance(emotion=float(s)))
        pos = [positions_of(f) for f in frames]
        acc = probe.accuracy(np.stack([motion_features(p, md.FPS) for p in pos]),
                             [r["emotion"] for r in chosen])
        sweep[str(s)] = bootstrap_ci(acc["correct"])

    # Style swap: another speaker's reference.
    speakers = sorted({r["speaker"] for r in chosen})
    swap_refs = []
    for i, r in enumerate(chosen):
        others = [j for j, q in enumerate(chosen) if q["speaker"] != r["speaker"]]
        swap_refs.append(clips.audio[int(rng.choice(others))] if others else refs[i])
    swapped = generate(style_refs=swap_refs)
    reseeded = generate(gen_seed=seed + 1)
    style_feat = lambda frames: np.stack([motion_features(positions_of(f), md.FPS)
                                       for f in frames])
    base_f, swap_f, seed_f = style_feat(rows["model"]), style_feat(swapped), style_feat(reseeded)
    scale = base_f.std(0) + 1e-8
    swap_dist = np.linalg.norm((swap_f - base_f) / scale, axis=1)
    seed_dist = np.linalg.norm((seed_f - base_f) / scale, axis=1)
    swap_ba = scorer.score(swapped)["beat_alignment"]
    style = {"speakers": speakers, "has_style": gen.has_style,
             "feature_change_swap": bootstrap_ci(swap_dist),
             "feature_change_reseed": bootstrap_ci(seed_dist),
             "beat_alignment_own": table["model"]["beat_alignment"],
             "beat_alignment_swapped": swap_ba,
             "protocol": {"features": "motion_features (pose mean/std rel. pelvis, joint speed "
                                      "mean/p90), standardised by the model rows' std",
                          "swap": "a style reference from another speaker of the split",
                          "reseed": "the same reference, seed + 1 (the noise floor)"}}

    report = {"split": split, "step": gen.step, "clips": n, "motion_dir": str(root),
              "rows": table, "emotion_guidance": sweep, "style_swap": style,
              "judges": {"emotion": "EmotionProbe fitted on the train split's ground truth "
                                    f"({len(train_recs)} clips), not on any model output",
                         "fgd": extractor.protocol()},
              "sampling": {"steps": gen.cfg.diffusion.sample_steps, "seed": seed,
                           "prediction": gen.cfg.diffusion.prediction}}
    if out_dir is not None:
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_frame_png([("ground truth", positions_of(clips.frames[0])),
                         ("model", positions_of(rows["model"][0])),
                         ("mean pose", positions_of(rows["mean pose"][0]))],
                        out / "frames.png")
        _plot_sweep(sweep, out / "emotion_guidance.png")
        write_report(out, report)
    return report


def _plot_sweep(sweep: dict, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    s = [float(k) for k in sweep]
    v = [sweep[k]["value"] for k in sweep]
    lo = [sweep[k]["value"] - sweep[k]["low"] for k in sweep]
    hi = [sweep[k]["high"] - sweep[k]["value"] for k in sweep]
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.errorbar(s, v, yerr=[lo, hi], marker="o", capsize=3)
    ax.set_xlabel("emotion guidance scale")
    ax.set_ylabel("motion-emotion accuracy")
    ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _cell(m: dict | None, fmt: str) -> str:
    if m is None:
        return "-"
    return f"{m['value']:{fmt}} [{m['low']:{fmt}}, {m['high']:{fmt}}]"


def format_report(report: dict) -> str:
    cols = (("FGD", "fgd", ".3f"), ("beat align", "beat_alignment", ".3f"),
            ("L1div", "diversity", ".3f"), ("emotion acc", "emotion_accuracy", ".3f"),
            ("lip LVE", "lip_sync_lve", ".4f"), ("jaw-env r", "jaw_envelope_r", ".2f"),
            ("seam/in-window jerk", "seam_jerk_ratio", ".2f"))
    lines = [f"motion on {report['split']} ({report['clips']} held-out clips, step "
             f"{report['step']}); cells: value [95% CI]",
             "| row | " + " | ".join(c[0] for c in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for name, row in report["rows"].items():
        lines.append(f"| {name} | " + " | ".join(_cell(row.get(k), f) for _, k, f in cols)
                     + " |")
    lines.append("emotion guidance scale -> accuracy: " + ", ".join(
        f"{k}: {v['value']:.3f}" for k, v in report["emotion_guidance"].items()))
    st = report["style_swap"]
    lines.append(f"style swap: feature change {st['feature_change_swap']['value']:.2f} "
                 f"(reseed {st['feature_change_reseed']['value']:.2f}); beat alignment own "
                 f"{st['beat_alignment_own']['value']:.3f}, swapped "
                 f"{st['beat_alignment_swapped']['value']:.3f}")
    lines.append("judges: " + json.dumps(report["judges"]["emotion"]))
    return "\n".join(lines)
