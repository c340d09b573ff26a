"""`emotive tts`: speak text with a trained TTS language model and speech codec.

    emotive tts "Hello there. How are you?" --ckpt runs/tts --codec runs/codec \
        --emotion happy [--intensity 2] [--ref ref.wav --ref-text "what ref.wav says"] \
        [--num-samples N] [--seed S] [--temperature 0.8] [--top-p 0.95] [--top-k 0] \
        [--max-seconds 20] [--emotion-scale 2] [--text-scale 1.5] --out out.wav
        [--speed 1.25 | --seconds 3.0] [--max-phone-seconds 0.5]     (aligned models)

    emotive tts "Hello there." --bundle releases/tts-small --emotion happy --out out.wav

Writes out.wav, and out-1.wav, out-2.wav ... when --num-samples > 1 (16 kHz, 16-bit).
--ckpt is the workdir of `emotive train tts`, --codec that of `emotive train codec` (or
their checkpoints/ or a step folder), or release bundles; --bundle is a TTS bundle that
holds its codec (`emotive release TTS_RUN OUT --codec CODEC`). With --ref and --ref-text
the voice of the reference recording (at most 15 s) is continued. --emotion-scale and
--text-scale are classifier-free guidance scales (1: off): above 1 the emotion (or the
words) are followed more strongly, at the cost of one more decoding row each. Text of
several sentences shows a progress bar over them on stderr; long text decodes a few
sentences at a time (emotive.infer.tts). Aligned (ELLA-V) models take --speed (their own
phoneme durations scaled: 2 is twice as fast) or --seconds (the total length), and report
how close the output came, and how many phonemes were ended by force (--max-phone-seconds).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help="the text to speak (long text is split into sentences)")
    parser.add_argument("--ckpt", default=None,
                        help="TTS run dir, checkpoints/, step dir or release bundle")
    parser.add_argument("--codec", default=None,
                        help="codec run dir, checkpoints/, step dir or release bundle")
    parser.add_argument("--bundle", default=None, help="a TTS release bundle holding its "
                        "codec in codec/ (instead of --ckpt and --codec)")
    parser.add_argument("--emotion", default=None,
                        help="emotion tag, e.g. happy (default: none, the model's choice)")
    parser.add_argument("--intensity", type=int, default=2, help="emotion intensity level")
    parser.add_argument("--ref", default=None, help="reference recording to clone the voice of")
    parser.add_argument("--ref-text", default=None, help="transcript of --ref")
    parser.add_argument("--num-samples", type=int, default=1, help="takes to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=0.8, help="0 is greedy")
    parser.add_argument("--top-p", type=float, default=0.95, help="1 turns it off")
    parser.add_argument("--top-k", type=int, default=0, help="0 turns it off")
    parser.add_argument("--max-seconds", type=float, default=20.0,
                        help="longest audio per sentence (default 20)")
    parser.add_argument("--emotion-scale", type=float, default=1.0,
                        help="emotion strength: guidance scale on the emotion tag (1: off)")
    parser.add_argument("--text-scale", type=float, default=1.0,
                        help="guidance scale on the text (1: off)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="aligned models: speaking rate against the model's own (2: twice "
                        "as fast)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="aligned models: total length of each take in seconds")
    parser.add_argument("--max-phone-seconds", type=float, default=0.5,
                        help="aligned models: a phoneme longer than this is ended (default 0.5)")
    parser.add_argument("--out", required=True, help="output wav")


def run(args: argparse.Namespace) -> int:
    import pathlib
    import sys

    from emotive.codecs.audio import save_audio
    from emotive.codecs.sentences import check_text
    from emotive.configs.codec import SAMPLE_RATE
    from emotive.errors import UserError
    from emotive.infer.sampling import SamplingConfig
    from emotive.infer.tts import guidance_drops, load_pipeline, output_paths, synthesize

    check_text(args.text)  # the cheap checks first, before any checkpoint is read
    paths = output_paths(args.out, max(args.num_samples, 1))
    if args.ref is not None and not pathlib.Path(args.ref).is_file():
        raise UserError(f"{args.ref}: no such file; check the --ref path")
    if not 0 <= args.seed < 2**32:
        raise UserError(f"--seed must lie in [0, 2**32), got {args.seed}")
    sampling = SamplingConfig(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k)
    sampling.validate(vocab_size=1)  # the flags only; ids are set from the vocabulary later
    guidance_drops(args.text_scale, args.emotion_scale)  # bad scales fail before loading
    if not args.speed > 0:
        raise UserError(f"--speed must be positive (1: the model's own pace), got {args.speed}")
    if args.seconds is not None and not args.seconds > 0:
        raise UserError(f"--seconds must be positive, got {args.seconds}")
    if not args.max_phone_seconds > 0:
        raise UserError(f"--max-phone-seconds must be positive, got {args.max_phone_seconds}")
    if args.emotion_scale != 1.0 and args.emotion is None:
        raise UserError("--emotion-scale needs --emotion (the tag it strengthens)")
    if args.bundle is not None and (args.ckpt or args.codec):
        raise UserError("--bundle holds the TTS model and its codec; leave out --ckpt/--codec")
    if args.bundle is None and args.ckpt is None:
        raise UserError("pass --ckpt TTS_RUN --codec CODEC_RUN, or --bundle TTS_BUNDLE")
    lm, codec = load_pipeline(args.bundle or args.ckpt, args.codec)
    issues: list[str] = []
    details: list[dict] = []
    waves = synthesize(lm, codec, args.text, emotion=args.emotion, intensity=args.intensity,
                       ref_wav=args.ref, ref_text=args.ref_text, num_samples=args.num_samples,
                       seed=args.seed, sampling=sampling, max_seconds=args.max_seconds,
                       text_scale=args.text_scale, emotion_scale=args.emotion_scale,
                       issues=issues, progress=True, speed=args.speed, seconds=args.seconds,
                       max_phone_seconds=args.max_phone_seconds, details=details)
    for note in issues:
        print(f"emotive tts: note: {note}", file=sys.stderr)
    for j, (path, wave) in enumerate(zip(paths, waves)):
        save_audio(path, wave, SAMPLE_RATE)
        line = f"wrote {path} ({wave.size / SAMPLE_RATE:.2f} s"
        if args.seconds is not None:
            line += f", asked {args.seconds:.2f} s"
        mine = [d for d in details if d["sample"] == j and "frames" in d]
        if mine:
            units = sum(d["units"] for d in mine)
            line += (f"; {units} phoneme units, {sum(d['forced'] for d in mine)} ended by "
                     f"force")
        print(line + ")")
    return 0
