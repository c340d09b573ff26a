"""`emotive motion`: body and face motion for speech, from a trained motion LDM.

    emotive motion --audio x.wav --ckpt runs/motion-ldm --emotion happy [--intensity 2] \
        [--style-ref s.wav] [--emotion-scale 1.5] [--seed 0] [--steps 20] --out m.npz \
        [--face-out f.npz] [--bvh m.bvh] [--arkit m.csv] [--render m.mp4|m.gif]
    emotive motion --audio x.wav --ckpt RUN --adv 0.8,0.6,0.7 --out m.npz        # A/D/V in [0, 1]
    emotive motion --audio x.wav --ckpt RUN --emotion-ref r.wav --ser SER --out m.npz

Writes OUT (a BEAT2-layout SMPL-X npz: poses [T, 165] axis-angle, trans, 300 zero betas,
30 fps) and its face track (ARKit-52 weights + FLAME jaw, default OUT-face.npz; read by
`emotive render --face`), with T = round(audio seconds x 30). --bvh writes the body on the
SMPL-X skeleton (metres; read it back with expect_joints=SMPLX_JOINT_NAMES), --arkit the
face as an ARKit CSV with a time column, --render a stick-figure gif or mp4 (mp4 needs
ffmpeg and then carries the audio).

The emotion is one of: a category (--emotion, with --intensity 1 or 2; default the highest),
arousal/dominance/valence (--adv), or a reference recording judged by an SER run
(--emotion-ref with --ser); none of them: no emotion condition. The style (speaker
gestures) comes from --style-ref, default the audio itself; a model trained without a
speaker encoder has no style and ignores it. --content-scale, --emotion-scale and
--style-scale are classifier-free guidance scales per factor (1: plain conditioning; all 1
is the cheapest, one denoiser row instead of four). Audio is read at its own level (as the
corpus's audio is in training), mixed to mono and resampled to 16 kHz.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
import time

from emotive.errors import UserError

BETAS = 300   # BEAT2's shape width (all zero: the neutral body)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--audio", required=True, help="speech recording to drive the motion")
    parser.add_argument("--ckpt", required=True,
                        help="motion_ldm run dir, its checkpoints/ or a step dir")
    emotion = parser.add_argument_group("emotion (at most one of --emotion, --adv, "
                                        "--emotion-ref)")
    emotion.add_argument("--emotion", default=None, help="emotion category, e.g. happy")
    emotion.add_argument("--intensity", type=int, default=None,
                         help="intensity of --emotion: 1 or 2 (default: the highest it has)")
    emotion.add_argument("--adv", default=None, metavar="A,D,V",
                         help="arousal, dominance, valence in [0, 1], e.g. 0.8,0.6,0.7")
    emotion.add_argument("--emotion-ref", default=None,
                         help="recording whose emotion (as --ser hears it) to follow")
    emotion.add_argument("--ser", default=None, help="ser run judging --emotion-ref")
    parser.add_argument("--style-ref", default=None,
                        help="recording of the speaker whose gesture style to use "
                             "(default: --audio itself)")
    parser.add_argument("--content-scale", type=float, default=1.0,
                        help="guidance scale on the speech content (1: plain)")
    parser.add_argument("--emotion-scale", type=float, default=1.0,
                        help="guidance scale on the emotion (1: plain, > 1 stronger)")
    parser.add_argument("--style-scale", type=float, default=1.0,
                        help="guidance scale on the style (1: plain)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None,
                        help="DDIM steps (default: the run's diffusion.sample_steps)")
    parser.add_argument("--out", required=True, help="OUT.npz: SMPL-X body (BEAT2 layout)")
    parser.add_argument("--face-out", default=None,
                        help="face track npz (default: OUT-face.npz)")
    parser.add_argument("--bvh", default=None, help="also write the body as BVH")
    parser.add_argument("--arkit", default=None, help="also write the face as ARKit-52 CSV")
    parser.add_argument("--render", default=None,
                        help="also write a stick-figure video: .gif, or .mp4 (needs ffmpeg)")


def _check_suffix(path: str, flag: str, suffixes: tuple[str, ...]) -> pathlib.Path:
    p = pathlib.Path(path)
    if p.suffix.lower() not in suffixes:
        raise UserError(f"{flag} {p}: write a {' or '.join(suffixes)} file")
    return p


def _parse_adv(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(0.0 <= v <= 1.0 for v in values):
        raise UserError(f"--adv takes three numbers in [0, 1], arousal,dominance,valence "
                        f"(e.g. 0.8,0.6,0.7), got {text!r}")
    return values


def _check_flags(args) -> dict:
    """The cheap checks, before any file or checkpoint is read; returns the output paths."""
    given = [flag for flag, value in (("--emotion", args.emotion), ("--adv", args.adv),
                                      ("--emotion-ref", args.emotion_ref)) if value is not None]
    if len(given) > 1:
        raise UserError(f"{' and '.join(given)} both set the emotion; pass one of --emotion, "
                        "--adv or --emotion-ref")
    if args.intensity is not None and args.emotion is None:
        raise UserError("--intensity needs --emotion (the category it is the intensity of)")
    if args.emotion_ref is not None and args.ser is None:
        raise UserError("--emotion-ref needs --ser SER_RUN (the model that hears its emotion)")
    if args.ser is not None and args.emotion_ref is None:
        raise UserError("--ser is only used to judge --emotion-ref; pass both or neither")
    for flag, scale in (("--content-scale", args.content_scale),
                        ("--emotion-scale", args.emotion_scale),
                        ("--style-scale", args.style_scale)):
        if not (math.isfinite(scale) and scale >= 0):
            raise UserError(f"{flag} must be a number >= 0 (1: plain conditioning), got {scale}")
    if args.emotion_scale != 1.0 and not given:
        raise UserError("--emotion-scale needs an emotion to strengthen: pass --emotion, --adv "
                        "or --emotion-ref")
    if not 0 <= args.seed < 2**32:
        raise UserError(f"--seed must lie in [0, 2**32), got {args.seed}")
    if args.steps is not None and args.steps < 2:   # one DDIM level would be t = 0 alone
        raise UserError(f"--steps must be at least 2, got {args.steps}")
    out = _check_suffix(args.out, "--out", (".npz",))
    paths = {"out": out,
             "face": (_check_suffix(args.face_out, "--face-out", (".npz",)) if args.face_out
                      else out.with_name(f"{out.stem}-face.npz"))}
    if paths["face"].resolve() == out.resolve():
        raise UserError(f"--face-out {paths['face']} is --out itself; name another file")
    if args.bvh:
        paths["bvh"] = _check_suffix(args.bvh, "--bvh", (".bvh",))
    if args.arkit:
        paths["arkit"] = _check_suffix(args.arkit, "--arkit", (".csv",))
    if args.render:
        from emotive.codecs.motion import render

        video = _check_suffix(args.render, "--render", (".gif", ".mp4"))
        if video.suffix.lower() == ".mp4" and not render.has_ffmpeg():
            raise UserError(f"--render {video}: writing mp4 needs ffmpeg on the PATH, which is "
                            f"not there; pass --render {video.with_suffix('.gif')} instead")
        paths["render"] = video
    return paths


def _read_speech(path: str, flag: str):
    """A recording as 16 kHz mono float32 at its own level; one-line UserError naming the
    flag for a missing, non-audio, silent or too short file."""
    import numpy as np

    from emotive.codecs.audio import load_audio
    from emotive.configs.common import SAMPLE_RATE
    from emotive.data.pipelines import motion as md

    p = pathlib.Path(path)
    if not p.is_file():
        raise UserError(f"{flag} {p}: no such file; check the path")
    try:
        audio = load_audio(p, SAMPLE_RATE, normalize_loudness=False)
    except UserError as e:
        # load_audio's messages read "PATH: what is wrong; what to do": keep what is wrong.
        what = str(e).splitlines()[0].split("; ")[0]
        what = what[len(f"{p}: "):] if what.startswith(f"{p}: ") else what
        raise UserError(f"{flag} {p}: {what}; pass a speech recording (.wav, .flac or .ogg "
                        "audio)") from None
    md.check_speech(audio, name=f"{flag} {p}")
    return np.asarray(audio, np.float32)


def _write(paths: dict, parts, fps: float, audio_path: str) -> list[str]:
    """Writes every requested file; returns one line per file."""
    import numpy as np

    from emotive.codecs.motion.face import FaceWeights, arkit_to_flame_jaw
    from emotive.codecs.motion.smplx_npz import NUM_JOINTS, SmplxClip, write_smplx_npz
    from emotive.data.motion.corpus_files import write_face_npz

    poses, trans, face = parts
    t = len(poses)
    clip = SmplxClip(np.asarray(poses, np.float64).reshape(t, NUM_JOINTS, 3),
                     np.asarray(trans, np.float64), np.zeros(BETAS), fps, gender="neutral")
    lines = []
    write_smplx_npz(paths["out"], clip)
    lines.append(f"wrote {paths['out']} (SMPL-X body, {t} frames at {fps:g} fps)")
    write_face_npz(paths["face"], face, arkit_to_flame_jaw(np.asarray(face, np.float64)), fps)
    lines.append(f"wrote {paths['face']} (face: ARKit-52 weights + FLAME jaw)")
    if "bvh" in paths:
        from emotive.codecs.motion.bvh import write_bvh

        write_bvh(paths["bvh"], clip.to_motion())
        lines.append(f"wrote {paths['bvh']} (BVH, SMPL-X skeleton, metres)")
    if "arkit" in paths:
        from emotive.codecs.motion.face_io import write_arkit_csv

        write_arkit_csv(paths["arkit"], FaceWeights(np.asarray(face, np.float64), fps=fps))
        lines.append(f"wrote {paths['arkit']} (ARKit-52 CSV)")
    if "render" in paths:
        from emotive.codecs.motion import render

        video = paths["render"]
        is_mp4 = video.suffix.lower() == ".mp4"
        render.render_motion([("generated", render.body_positions(clip.poses, clip.trans))],
                             video, fps=fps, audio=audio_path if is_mp4 else None)
        lines.append(f"wrote {video} (stick figure{', with the audio' if is_mp4 else ''})")
    return lines


def run(args: argparse.Namespace) -> int:
    paths = _check_flags(args)
    adv = _parse_adv(args.adv) if args.adv is not None else None
    from emotive.data.pipelines import motion as md

    if args.emotion is not None or adv is not None:
        md.emotion_vector(args.emotion, args.intensity, adv)   # bad names/values fail here
    audio = _read_speech(args.audio, "--audio")
    style_ref = _read_speech(args.style_ref, "--style-ref") if args.style_ref else None
    emotion_ref = (_read_speech(args.emotion_ref, "--emotion-ref") if args.emotion_ref
                   else None)

    from emotive.configs.common import SAMPLE_RATE
    from emotive.infer.motion import Guidance, MotionGenerator
    from emotive.models.diffusion import ddim_timesteps

    start = time.perf_counter()
    gen = MotionGenerator.load(args.ckpt, ser=args.ser)
    load_s = time.perf_counter() - start
    if args.steps is not None and args.steps > gen.cfg.diffusion.steps:
        raise UserError(f"--steps {args.steps}: the run has {gen.cfg.diffusion.steps} noise "
                        f"levels; pass at most that")
    if not gen.has_style and (args.style_ref is not None or args.style_scale != 1.0):
        print("emotive motion: note: this run has no speaker encoder (style.speaker_ckpt), so "
              "--style-ref and --style-scale have no effect", file=sys.stderr)
    vec = gen.emotion_condition(emotion=args.emotion, intensity=args.intensity, adv=adv,
                                emotion_ref=emotion_ref)
    start = time.perf_counter()
    out = gen.generate(audio, emotion_vec=vec, style_ref=style_ref,
                       guidance=Guidance(args.content_scale, args.emotion_scale,
                                         args.style_scale),
                       seed=args.seed, steps=args.steps, progress=True)
    wall = time.perf_counter() - start
    for line in _write(paths, out.parts, out.fps, args.audio):
        print(line)
    frames, seams = len(out.frames), len(out.seams)
    seconds = audio.size / SAMPLE_RATE
    d = gen.cfg.diffusion
    levels = len(ddim_timesteps(d.steps, args.steps or d.sample_steps))
    print(f"{frames} frames ({frames / out.fps:.2f} s of motion for {seconds:.2f} s of audio), "
          f"{seams + 1} window{'s' if seams else ''} ({seams} seam{'' if seams == 1 else 's'}), "
          f"{levels} DDIM steps; generated in {wall:.2f} s (real-time factor "
          f"{wall / seconds:.3f}; checkpoint step {gen.step} loaded in {load_s:.1f} s)")
    return 0
