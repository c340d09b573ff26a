"""`emotive eval KIND --ckpt DIR [--data-dir D] [--split S] [--out DIR]`: evaluate a trained
model on a held-out split and write a JSON report (and plots) beside its checkpoints.

    emotive eval codec --ckpt runs/codec-base --data-dir DATA_DIR --split test
    emotive eval ser --ckpt runs/ser-base --data-dir DATA_DIR --split test
    emotive eval student --ckpt runs/student-base --split test [--teacher runs/ser-base]

Each KIND is one entry of `EVALUATORS`: the module that evaluates it, a help line and the
options it takes beside the common ones. The module defines `run_eval(kind, args) -> int`
and is imported only when its KIND runs. To add an evaluation (speaker, asr, codec, ...),
add one entry here and `run_eval` in your module.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib

from emotive.infer.ctc_decode import WordScoring


@dataclasses.dataclass(frozen=True)
class Evaluator:
    module: str
    help: str
    # Extra options beside the common ones: (flag, argparse keyword arguments).
    options: tuple[tuple[str, dict], ...] = ()


_WORDS = WordScoring(lm=None)  # the word-LM defaults the asr options show

EVALUATORS = {
    "codec": Evaluator("emotive.infer.codec_eval", "speech codec: PESQ (NB, WB), STOI, mel "
                       "distance, SI-SDR, codebook usage on held-out speakers; spectrogram PNG"),
    "tts": Evaluator(
        "emotive.infer.tts_eval", "TTS LM judged by the recognisers: CER of originals, codec "
        "resynthesis and TTS output; emotion accuracy of the TTS output per emotion",
        (("--codec", dict(default=None, help="codec run dir (required)")),
         ("--asr", dict(default=None, help="asr run dir (required)")),
         ("--ser", dict(default=None, help="ser run dir (required)")))),
    "ser": Evaluator("emotive.infer.ser_eval", "speech emotion model: UAR over 8 emotions, "
                     "per-class recall, accuracy, CCC per A/D/V dimension, per condition"),
    "student": Evaluator(
        "emotive.infer.ser_eval", "distilled emotion student: CCC against its teacher and "
        "the labels per dimension and condition, parameter count",
        (("--teacher", dict(default=None, help="teacher run dir (default: the student "
                                               "config's teacher.ckpt)")),)),
    "speaker": Evaluator("emotive.infer.speaker_eval", "speaker encoder: EER of cosine scores "
                         "over all utterance pairs, per condition and clean vs condition"),
    "asr": Evaluator(
        "emotive.infer.asr_eval", "CTC recogniser: corpus CER and WER (greedy decoding, or "
        "prefix beam search with --beam), normalised text, per condition",
        (("--beam", dict(type=int, default=0, help="prefix beam width (default 0: greedy)")),
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
                                         "%(default)s)")))),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True,
                                parser_class=type(parser))
    for kind, ev in EVALUATORS.items():
        p = sub.add_parser(kind, help=ev.help, description=ev.help)
        p.add_argument("--ckpt", required=True,
                       help="training workdir (newest checkpoint), its checkpoints/ or a step dir")
        p.add_argument("--data-dir", default=None,
                       help="TFDS data dir (default: the checkpoint config's data.data_dir)")
        p.add_argument("--dataset", default="emotive_speech")
        p.add_argument("--split", default="validation",
                       help="split to evaluate (default validation; test for final numbers; "
                            "both hold speakers never heard in training)")
        p.add_argument("--batch-size", type=int, default=8)
        p.add_argument("--limit", type=int, default=None, help="evaluate only this many clips")
        p.add_argument("--out", default=None,
                       help="report folder (default: RUN_DIR/eval-KIND-SPLIT-STEP)")
        for flag, kwargs in ev.options:
            p.add_argument(flag, **kwargs)


def run(args: argparse.Namespace) -> int:
    from emotive.errors import UserError

    if args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        raise UserError("--batch-size and --limit must be >= 1")
    module = importlib.import_module(EVALUATORS[args.kind].module)
    return module.run_eval(args.kind, args)
