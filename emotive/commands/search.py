"""`emotive search`: speak text by verifier-guided search over the TTS sampler.

    emotive search "The tea has gone cold." --ckpt runs/tts --codec runs/codec \
        --emotion sad --verifier emotion=runs/ser-s2 --verifier intelligibility=runs/asr-s0 \
        [--weight emotion=2] [--strategy best_of_n|beam|prm_orm|partial_prm] [--budget 16] \
        [--beam-width 4] [--step-tokens 50] [--maximise emotion --subject-to intelligibility=median] \
        [--ref ref.wav [--ref-text "..."]] [--seed 0] --out best.wav [--keep-all DIR]

Writes the chosen audio to --out and prints every verifier's score and the compute used
(LM tokens, verifier calls and seconds, codec seconds, real-time factor). --keep-all DIR
also writes every finished candidate (DIR/candidate-NN.wav) and DIR/candidates.json with
their scores and veto reasons. A speaker verifier needs --ref (the target voice); with
--ref-text the reference is also a voice prompt for the TTS model.
"""

from __future__ import annotations

import argparse

from emotive.errors import UserError


def add_verifier_flags(parser: argparse.ArgumentParser, strategy: bool = True) -> None:
    """The verifier, strategy, selection and sampling flags (`emotive eval search` names its
    strategies in --strategies, so it leaves --strategy out)."""
    parser.add_argument("--verifier", action="append", default=[], metavar="KIND=RUN",
                        help="a verifier: emotion=SER_RUN, intelligibility=ASR_RUN or "
                             "speaker=SPEAKER_RUN (repeat for several)")
    parser.add_argument("--weight", action="append", default=[], metavar="KIND=W",
                        help="weight of a verifier in the outcome score (default 1 each)")
    if strategy:
        parser.add_argument("--strategy", default="best_of_n",
                            help="best_of_n, beam, prm_orm or partial_prm (default best_of_n)")
    parser.add_argument("--beam-width", type=int, default=0,
                        help="beams kept each step (default budget / 4)")
    parser.add_argument("--step-tokens", type=int, default=50,
                        help="tokens between process rewards (default 50, one second)")
    parser.add_argument("--prm-fraction", type=float, default=0.5,
                        help="partial_prm: share of the expected length searched (default 0.5)")
    parser.add_argument("--maximise", default=None,
                        help="choose the candidate with the best score of this verifier ...")
    parser.add_argument("--subject-to", action="append", default=[], metavar="KIND=BOUND",
                        help="... among those whose KIND score reaches BOUND (a number or "
                             "'median')")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--text-scale", type=float, default=1.0,
                        help="classifier-free guidance on the text (1: off)")
    parser.add_argument("--emotion-scale", type=float, default=1.0,
                        help="classifier-free guidance on the emotion (1: off)")


def pairs(values, flag: str, number: bool) -> dict:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise UserError(f"{flag} takes KIND=VALUE, got {item!r}")
        if number:
            try:
                value = float(value)
            except ValueError:
                if value != "median" or flag != "--subject-to":
                    raise UserError(f"{flag} {key}= needs a number, got {value!r}") from None
        out[key] = value
    return out


def search_options(args) -> dict:
    """The checked flags -> (verifier checkpoints, weights, Strategy, Selection, sampling)."""
    from emotive.infer.sampling import SamplingConfig
    from emotive.infer.tts import guidance_drops
    from emotive.search.selection import Selection
    from emotive.search.strategies import Strategy
    from emotive.search.verifiers import KINDS

    ckpts = pairs(args.verifier, "--verifier", number=False)
    if not ckpts:
        raise UserError("name at least one verifier: --verifier emotion=SER_RUN (or "
                        f"{', '.join(KINDS)})")
    for kind in ckpts:
        if kind not in KINDS:
            raise UserError(f"unknown verifier {kind!r}; use one of {', '.join(KINDS)}")
    weights = pairs(args.weight, "--weight", number=True)
    strategy = Strategy(getattr(args, "strategy", "best_of_n"), beam_width=args.beam_width,
                        step_tokens=args.step_tokens, prm_fraction=args.prm_fraction)
    selection = Selection(args.maximise, pairs(args.subject_to, "--subject-to", number=True))
    selection.check(list(ckpts))
    sampling = SamplingConfig(temperature=args.temperature, top_p=args.top_p)
    sampling.validate(vocab_size=1)
    guidance_drops(args.text_scale, args.emotion_scale)
    return dict(ckpts=ckpts, weights=weights, strategy=strategy, selection=selection,
                sampling=sampling)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help="the text to speak")
    parser.add_argument("--ckpt", required=True, help="TTS run dir, checkpoints/ or step dir")
    parser.add_argument("--codec", required=True, help="codec run dir")
    parser.add_argument("--emotion", default=None, help="emotion tag and emotion target")
    parser.add_argument("--intensity", type=int, default=2)
    parser.add_argument("--ref", default=None, help="reference recording of the target voice")
    parser.add_argument("--ref-text", default=None,
                        help="transcript of --ref: the reference also becomes a voice prompt")
    parser.add_argument("--budget", type=int, default=8, help="candidates (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=20.0)
    add_verifier_flags(parser)
    parser.add_argument("--out", required=True, help="output wav of the chosen candidate")
    parser.add_argument("--keep-all", default=None, metavar="DIR",
                        help="also write every candidate and their scores here")


def run(args: argparse.Namespace) -> int:
    import json
    import pathlib

    from emotive.codecs.audio import load_audio, save_audio
    from emotive.codecs.sentences import check_text
    from emotive.configs.common import SAMPLE_RATE
    from emotive.infer.codec import load_codec
    from emotive.infer.tts import output_paths
    from emotive.infer.tts_model import load_tts
    from emotive.search.search import search
    from emotive.search.verifiers import Request, load_verifiers

    check_text(args.text)
    out = output_paths(args.out, 1)[0]
    opts = search_options(args)
    if args.budget < 1:
        raise UserError(f"--budget must be >= 1, got {args.budget}")
    opts["strategy"].validate(args.budget)
    if "speaker" in opts["ckpts"] and args.ref is None:
        raise UserError("the speaker verifier needs --ref, a recording of the target voice")
    if args.ref_text is not None and args.ref is None:
        raise UserError("--ref-text needs --ref, the recording it transcribes")
    ref = None if args.ref is None else load_audio(args.ref, SAMPLE_RATE,
                                                   normalize_loudness=False)
    request = Request(text=args.text, emotion=args.emotion, intensity=args.intensity,
                      speaker_ref=ref, ref_text=args.ref_text)
    lm, codec = load_tts(args.ckpt), load_codec(args.codec)
    verifiers = load_verifiers(opts["ckpts"], opts["weights"] or None)
    result = search(lm, codec, request, verifiers=verifiers, strategy=opts["strategy"],
                    budget=args.budget, seed=args.seed, selection=opts["selection"],
                    sampling=opts["sampling"], max_seconds=args.max_seconds,
                    text_scale=args.text_scale, emotion_scale=args.emotion_scale,
                    progress=True)
    save_audio(out, result.audio, SAMPLE_RATE)
    scores = ", ".join(f"{k} {v:.3f}" for k, v in result.scores.items())
    c = result.compute
    print(f"wrote {out} ({result.audio.size / SAMPLE_RATE:.2f} s): {scores}")
    print(f"compute: {c.lm_tokens} LM tokens in {c.lm_seconds:.1f} s, {c.verifier_calls} "
          f"verifier calls in {c.verifier_seconds:.1f} s, codec {c.codec_seconds:.1f} s, "
          f"wall {c.wall_seconds:.1f} s (RTF {c.rtf:.2f})")
    for note in result.details["notes"]:
        print(f"emotive search: note: {note}")
    if args.keep_all:
        folder = pathlib.Path(args.keep_all)
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for s, (pool, chosen) in enumerate(zip(result.candidates, result.chosen)):
            for n, cand in enumerate(pool):
                name = f"candidate-{s:02d}-{n:02d}.wav"
                save_audio(folder / name, cand.audio, SAMPLE_RATE)
                rows.append({"file": name, "sentence": s, "chosen": n == chosen,
                             "scores": cand.scores, "outcome": cand.outcome,
                             "vetoes": cand.vetoes, "stopped": cand.stopped})
        (folder / "candidates.json").write_text(json.dumps(
            {"candidates": rows, "details": result.details,
             "compute": result.compute.as_dict()}, indent=2))
        print(f"wrote {len(rows)} candidates and candidates.json to {folder}")
    return 0
