"""`emotive eval KIND --ckpt DIR [--data-dir D] [--split S] [--out DIR]`: evaluate a trained
model on a held-out split and write a JSON report (and plots) beside its checkpoints.

    emotive eval codec --ckpt runs/codec-base --data-dir DATA_DIR --split test
    emotive eval ser --ckpt runs/ser-base --data-dir DATA_DIR --split test
    emotive eval student --ckpt runs/student-base --split test [--teacher runs/ser-base]

Every family of `emotive.registry.FAMILIES` with an evaluator is a KIND: its predictor is
loaded from --ckpt and its evaluator module's `evaluate` and `format_report` run. This
module holds only the argparse side: the options a kind takes beside the common ones
(`OPTIONS`) and, for kinds that need more than one model, how to load them (`_RUNNERS`).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools

from emotive import registry
from emotive.errors import UserError
from emotive.infer.ctc_decode import BeamDecoder, CharNgramLM, WordNgramLM, WordScoring

_WORDS = WordScoring(lm=None)  # the word-LM defaults the asr options show

# Extra options per kind beside the common ones: (flag, argparse keyword arguments).
OPTIONS: dict[str, tuple[tuple[str, dict], ...]] = {
    "tts": (("--codec", dict(default=None, help="codec run dir (required)")),
            ("--asr", dict(default=None, help="asr run dir (required)")),
            ("--ser", dict(default=None, help="ser run dir (required)")),
            ("--text-scale", dict(type=float, default=1.0,
                                  help="classifier-free guidance on the text (1: off)")),
            ("--emotion-scale", dict(type=float, default=1.0,
                                     help="classifier-free guidance on the emotion (1: off)")),
            ("--temperature", dict(type=float, default=None,
                                   help="sampling temperature of the TTS (default: emotive tts's)")),
            ("--speed", dict(type=float, default=1.0,
                             help="aligned models: speaking rate against their own (1: as is)")),
            ("--oracle-durations", dict(action="store_true",
                                        help="aligned models: every phoneme as long as in "
                                        "eSpeak's timings of the clip (a diagnostic)"))),
    "search": (("--codec", dict(default=None, help="codec run dir (required)")),
               ("--judge-asr", dict(default=None, help="held-out asr run: the CER judge")),
               ("--judge-ser", dict(default=None, help="held-out ser run: the emotion judge")),
               ("--strategies", dict(default="best_of_n,prm_orm",
                                     help="comma-separated (default best_of_n,prm_orm)")),
               ("--budgets", dict(default="1,2,4,8,16,32", help="candidates per request")),
               ("--seed", dict(type=int, default=0)),
               ("--max-seconds", dict(type=float, default=8.0,
                                      help="longest candidate (default 8 s)"))),
    "motion": (("--emotion-scales", dict(default="0,1,2,3",
                                         help="emotion guidance scales of the sweep")),
               ("--long-seconds", dict(type=float, default=30.0,
                                       help="length of the seam-jerk inputs (default 30 s)")),
               ("--long-inputs", dict(type=int, default=4,
                                      help="how many long inputs (default 4)")),
               ("--train-clips", dict(type=int, default=1200,
                                      help="train clips for the probe and baselines")),
               ("--resamples", dict(type=int, default=200, help="bootstrap resamples")),
               ("--seed", dict(type=int, default=0))),
    "student": (("--teacher", dict(default=None, help="teacher run dir (default: the student "
                                                       "config's teacher.ckpt)")),),
    "asr": (
        ("--beam", dict(type=int, default=0, help="prefix beam width (default 0: greedy)")),
        ("--lm-order", dict(type=int, default=0, help="with --beam: a character n-gram LM of "
                                                      "this order fitted on the train split")),
        ("--lm-weight", dict(type=float, default=0.5, help="LM weight alpha (default 0.5)")),
        ("--char-bonus", dict(type=float, default=0.0, help="score bonus beta per character "
                                                            "(default 0)")),
        ("--word-lm-order", dict(type=int, default=0, help="with --beam: also a word n-gram LM "
                                                           "of this order fitted on the train "
                                                           "split")),
        ("--word-lm-weight", dict(type=float, default=_WORDS.weight,
                                  help="word LM weight (default %(default)s)")),
        ("--word-bonus", dict(type=float, default=_WORDS.bonus, help="score bonus per word, "
                              "with the word LM (default %(default)s)")),
        ("--unknown-word-penalty", dict(type=float, default=_WORDS.unknown_penalty,
                                        help="subtracted from the word LM's log-probability "
                                        "of a word outside its vocabulary (default "
                                        "%(default)s)"))),
}


# Evaluations that are not one family's: kind -> help line (their runner is in _RUNNERS).
EXTRA_KINDS = {
    "search": "verifier-guided search over held-out requests: judge scores, verifier and "
              "judge gains, gaming gap and compute per strategy and budget; curves PNG/JSON",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True,
                                parser_class=type(parser))
    helps = {registry.eval_kind(kind): registry.family(kind).eval_help
             for kind in registry.with_part("evaluator")}
    for kind, help_text in {**helps, **EXTRA_KINDS}.items():
        p = sub.add_parser(kind, help=help_text, description=help_text)
        p.add_argument("--ckpt", required=True,
                       help="training workdir (newest checkpoint), its checkpoints/ or a step dir")
        p.add_argument("--data-dir", default=None,
                       help="TFDS data dir (default: the checkpoint config's data.data_dir)")
        p.add_argument("--dataset", default="emotive_speech")
        p.add_argument("--label", default=None,
                       help="what the data is, for model cards (e.g. heldout_voices: the "
                            "held-out voice family); stored in the report as dataset_label")
        p.add_argument("--split", default="validation",
                       help="split to evaluate (default validation; test for final numbers; "
                            "both hold speakers never heard in training)")
        p.add_argument("--batch-size", type=int, default=8)
        p.add_argument("--limit", type=int, default=None, help="evaluate only this many clips")
        p.add_argument("--out", default=None,
                       help="report folder (default: RUN_DIR/eval-KIND-SPLIT-STEP)")
        for flag, kwargs in OPTIONS.get(kind, ()):
            p.add_argument(flag, **kwargs)
        if kind == "search":
            from emotive.commands.search import add_verifier_flags
            add_verifier_flags(p, strategy=False)


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        raise UserError("--batch-size and --limit must be >= 1")
    return _RUNNERS.get(args.kind, run_split_eval)(args.kind, args)


def run_split_eval(kind: str, args, predictor=None, evaluate=None) -> int:
    """The body of `emotive eval KIND` for one loaded model on one split: load the family's
    predictor (unless given), evaluate, print the report and where it was written."""
    from emotive.evals.common import eval_dir

    evaluator = registry.module(kind, "evaluator")
    predictor = predictor or registry.load_predictor(kind, args.ckpt)
    out_dir = args.out or eval_dir(args.ckpt, kind, args.split, predictor.step)
    report = (evaluate or evaluator.evaluate)(
        predictor, args.data_dir or predictor.cfg.data.data_dir, args.split,
        dataset=args.dataset, batch_size=args.batch_size, limit=args.limit, out_dir=out_dir)
    if args.label:
        label_report(out_dir, args.label)
    print(evaluator.format_report(report))
    print(f"report: {out_dir}/report.json")
    return 0


def text_recognizer(ckpt):
    """The asr predictor of `ckpt`, refused in one line when it writes phonemes (it cannot
    score a text's CER)."""
    rec = registry.load_predictor("asr", ckpt)
    if rec.phonemes:
        raise UserError(f"{ckpt} is a phoneme recogniser (model.targets=phonemes): it cannot "
                        "score text; judge with a character model")
    return rec


def label_report(out_dir, label: str) -> None:
    """Adds `dataset_label` to out_dir/report.json: cards name the data by it."""
    import json
    import pathlib

    from emotive.evals.common import write_report

    report = json.loads((pathlib.Path(out_dir) / "report.json").read_text())
    write_report(out_dir, {**report, "dataset_label": label})


def decoder_from_args(args, data_dir, dataset: str) -> BeamDecoder | None:
    """The decoder that `--beam`, `--lm-order`, `--lm-weight`, `--char-bonus` and the
    `--word-*` options ask for (None: greedy). The language models are fitted on the training
    split of data_dir."""
    from emotive.data.pipelines.speech import split_texts

    if args.beam < 0 or args.lm_order < 0 or args.word_lm_order < 0:
        raise UserError("--beam, --lm-order and --word-lm-order must be >= 0 (0: greedy "
                        "decoding, no LM)")
    if args.beam == 0:
        for flag, value in (("--lm-order", args.lm_order), ("--word-lm-order", args.word_lm_order)):
            if value:
                raise UserError(f"{flag} needs a beam search: add --beam N (e.g. 16)")
        return None
    texts = split_texts(data_dir, dataset, "train") if (
        args.lm_order or args.word_lm_order) else []
    lm = CharNgramLM.fit(texts, args.lm_order) if args.lm_order else None
    words = None
    if args.word_lm_order:
        words = WordScoring(WordNgramLM.fit(texts, args.word_lm_order), args.word_lm_weight,
                            args.word_bonus, args.unknown_word_penalty)
    return BeamDecoder(args.beam, lm, args.lm_weight, args.char_bonus, words)


def _run_asr(kind: str, args) -> int:
    from emotive.evals import asr

    rec = registry.load_predictor("asr", args.ckpt)
    decoder = decoder_from_args(args, args.data_dir or rec.cfg.data.data_dir, args.dataset)
    return run_split_eval(kind, args, rec, functools.partial(asr.evaluate, decoder=decoder))


def _run_student(kind: str, args) -> int:
    from emotive.evals import emotion

    student = registry.load_predictor("student", args.ckpt)
    teacher_ckpt = args.teacher or student.cfg.teacher.ckpt
    if not teacher_ckpt:
        raise UserError("the student's config names no teacher; pass --teacher DIR")
    teacher = registry.load_predictor("ser", teacher_ckpt)
    return run_split_eval(kind, args, student,
                          functools.partial(emotion.evaluate, teacher=teacher))


def _run_tts(kind: str, args) -> int:
    """`emotive eval tts`: needs --codec, --asr and --ser beside --ckpt."""
    from emotive.evals import tts
    from emotive.evals.common import eval_dir

    for flag in ("codec", "asr", "ser"):
        if not getattr(args, flag):
            raise UserError(f"emotive eval tts needs --{flag} RUN_DIR (see --help)")
    lm = registry.load_predictor("tts", args.ckpt)
    emotion_model = registry.load_predictor("ser", args.ser)
    codec = registry.load_predictor("codec", args.codec)
    recognizer = text_recognizer(args.asr)
    out_dir = args.out or eval_dir(args.ckpt, kind, args.split, lm.step)
    report = tts.evaluate(lm, codec, recognizer, emotion_model,
                          args.data_dir or codec.cfg.data.data_dir, args.split,
                          dataset=args.dataset, limit=args.limit or 48, out_dir=out_dir,
                          batch_size=args.batch_size, text_scale=args.text_scale,
                          emotion_scale=args.emotion_scale,
                          oracle_durations=args.oracle_durations, speed=args.speed,
                          temperature=args.temperature)
    print(tts.format_report(report))
    print(f"report: {out_dir}/report.json")
    return 0


def _run_search(kind: str, args) -> int:
    """`emotive eval search`: the TTS run (--ckpt), --codec, verifiers and judges."""
    from emotive.commands.search import search_options
    from emotive.evals import search
    from emotive.evals.common import eval_dir
    from emotive.search.verifiers import load_verifiers

    for flag in ("codec", "judge_asr", "judge_ser"):
        if not getattr(args, flag):
            raise UserError(f"emotive eval search needs --{flag.replace('_', '-')} RUN_DIR "
                            "(see --help)")
    opts = search_options(args)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    budgets = search.parse_budgets(args.budgets)
    for name in strategies:
        dataclasses.replace(opts["strategy"], name=name).validate(max(budgets))
    for role, path in [("judge", args.judge_asr), ("judge", args.judge_ser)]:
        if any(str(path) == str(v) for v in opts["ckpts"].values()):
            raise UserError(f"{path} is both a verifier and a judge; a judge must be a model "
                            "the search never saw (another seed or architecture)")
    lm = registry.load_predictor("tts", args.ckpt)
    codec = registry.load_predictor("codec", args.codec)
    verifiers = load_verifiers(opts["ckpts"], opts["weights"] or None)
    judges = search.Judges(text_recognizer(args.judge_asr),
                           registry.load_predictor("ser", args.judge_ser))
    out_dir = args.out or eval_dir(args.ckpt, kind, args.split, lm.step)
    report = search.evaluate(
        lm, codec, verifiers, judges, args.data_dir or codec.cfg.data.data_dir, args.split,
        strategies=strategies, budgets=budgets, dataset=args.dataset, limit=args.limit or 64,
        seed=args.seed, out_dir=out_dir, selection=opts["selection"],
        template=opts["strategy"], sampling=opts["sampling"], max_seconds=args.max_seconds,
        text_scale=args.text_scale, emotion_scale=args.emotion_scale,
        models={"verifiers": opts["ckpts"], "weights": opts["weights"],
                "judge_asr": args.judge_asr, "judge_ser": args.judge_ser})
    print(search.format_report(report))
    print(f"report: {out_dir}/report.json, curves: {out_dir}/curves.png")
    return 0


def _run_motion(kind: str, args) -> int:
    """`emotive eval motion`: a motion_ldm run on held-out clips of its motion corpus."""
    from emotive.evals import motion
    from emotive.evals.common import eval_dir

    try:
        scales = tuple(float(v) for v in args.emotion_scales.split(",") if v.strip())
    except ValueError:
        raise UserError(f"--emotion-scales must be comma-separated numbers, got "
                        f"{args.emotion_scales!r}") from None
    gen = registry.load_predictor("motion_ldm", args.ckpt)
    out_dir = args.out or eval_dir(args.ckpt, kind, args.split, gen.step)
    report = motion.evaluate(gen, args.data_dir or gen.cfg.data.motion_dir, args.split,
                             batch_size=max(args.batch_size, 32), limit=args.limit or 128,
                             out_dir=out_dir, emotion_scales=scales,
                             long_seconds=args.long_seconds, long_inputs=args.long_inputs,
                             train_clips=args.train_clips, resamples=args.resamples,
                             seed=args.seed)
    print(motion.format_report(report))
    print(f"report: {out_dir}/report.json, figures: {out_dir}/frames.png, "
          f"{out_dir}/emotion_guidance.png")
    return 0


_RUNNERS = {"motion": _run_motion, "asr": _run_asr, "student": _run_student, "tts": _run_tts, "search": _run_search}
