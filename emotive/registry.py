"""The one table of model families: what each is made of, by module name.

    family("ser").config     # "emotive.configs.ser": the experiment config, with PRESETS
    module("ser", "task")    # emotive.train.tasks.ser, imported now: make_task(cfg) -> Task
    load_predictor("ser", "runs/ser-base")   # the family's predictor for a trained run

A family is a trainable thing with a config module (frozen dataclasses and `PRESETS`), a
task module (`make_task(cfg)`), and optionally a predictor (`Class.load(ckpt)` in infer/)
and an evaluator (`evaluate` and `format_report` in evals/). Everything is named by its
module path and imported only when asked for, so this module imports nothing of the
project but errors and may be used from any layer. A new family is one entry here.
"""

from __future__ import annotations

import dataclasses
import importlib

from emotive.errors import UserError


@dataclasses.dataclass(frozen=True)
class Family:
    config: str
    task: str
    predictor: str | None = None  # "module:Class"; Class.load(ckpt) gives a predictor
    evaluator: str | None = None  # module with evaluate(...) and format_report(report)
    eval_help: str = ""  # one line for `emotive eval FAMILY --help`


FAMILIES: dict[str, Family] = {
    "toy_lm": Family("emotive.configs.toy_lm", "emotive.train.tasks.toy_lm"),
    "codec": Family(
        "emotive.configs.codec", "emotive.train.tasks.codec", "emotive.infer.codec:LoadedCodec",
        "emotive.evals.codec", "speech codec: PESQ (NB, WB), STOI, mel distance, SI-SDR, "
        "codebook usage on held-out speakers; spectrogram PNG"),
    "tts": Family(
        "emotive.configs.tts", "emotive.train.tasks.tts", "emotive.infer.tts_model:TTSModel",
        "emotive.evals.tts", "TTS LM judged by the recognisers: CER of originals, codec "
        "resynthesis and TTS output; emotion accuracy of the TTS output per emotion"),
    "ser": Family(
        "emotive.configs.ser", "emotive.train.tasks.ser", "emotive.infer.emotion:EmotionPredictor",
        "emotive.evals.emotion", "speech emotion model: UAR over 8 emotions, per-class recall, "
        "accuracy, CCC per A/D/V dimension, per condition"),
    "student": Family(
        "emotive.configs.student", "emotive.train.tasks.student",
        "emotive.infer.emotion:EmotionPredictor", "emotive.evals.emotion",
        "distilled emotion student: CCC against its teacher and the labels per dimension and "
        "condition, parameter count"),
    "speaker": Family(
        "emotive.configs.speaker", "emotive.train.tasks.speaker",
        "emotive.infer.speaker:SpeakerEmbedder", "emotive.evals.speaker",
        "speaker encoder: EER of cosine scores over all utterance pairs, per condition and "
        "clean vs condition"),
    "asr": Family(
        "emotive.configs.asr", "emotive.train.tasks.asr", "emotive.infer.asr:Recognizer",
        "emotive.evals.asr", "CTC recogniser: corpus CER and WER (greedy decoding, or prefix "
        "beam search with --beam), normalised text, per condition"),
    "motion_vae": Family(
        "emotive.configs.motion_vae", "emotive.train.tasks.motion_vae",
        "emotive.infer.motion:MotionAutoencoder"),
    "motion_ldm": Family(
        "emotive.configs.motion_ldm", "emotive.train.tasks.motion_ldm",
        "emotive.infer.motion:MotionGenerator", "emotive.evals.motion",
        "speech-driven motion: FGD, beat alignment, diversity, motion-emotion accuracy, "
        "lip-sync error and seam jerk against ground truth, random-clip, mean-pose and "
        "audio-retrieval baselines, with confidence intervals"),
}


# The `emotive eval` kind of a family whose name is not the one users type.
EVAL_KINDS = {"motion_ldm": "motion"}


def eval_kind(name: str) -> str:
    return EVAL_KINDS.get(name, name)


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise UserError(f"unknown family '{name}'; available: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


def module(name: str, part: str):
    """The imported module of one part ("config", "task", "evaluator") of family `name`."""
    path = getattr(family(name), part)
    if path is None:
        raise UserError(f"family '{name}' has no {part}")
    return importlib.import_module(path)


def predictor_class(name: str):
    path = family(name).predictor
    if path is None:
        raise UserError(f"family '{name}' has no predictor; "
                        f"those with one: {', '.join(with_part('predictor'))}")
    module_name, cls = path.split(":")
    return getattr(importlib.import_module(module_name), cls)


def load_predictor(name: str, ckpt):
    """The predictor of family `name` for a trained run of that family (a run dir, its
    checkpoints/ or a step dir); a run of another task is a UserError."""
    return predictor_class(name).load(ckpt, (name,))


def with_part(part: str) -> list[str]:
    """The families that have `part` ("predictor", "evaluator"), in table order."""
    return [n for n, f in FAMILIES.items() if getattr(f, part) is not None]
