"""The trained CTC recogniser: batched, jitted transcription, and CER/WER on a held-out split.

    rec = load_recognizer("runs/asr-base")                 # a run dir, checkpoints/ or step
    texts = rec.transcribe(audio_BxT, lengths_B)            # list[str], normalised text
    report = evaluate(rec, data_dir, "test", out_dir=...)   # JSON report, see `evaluate`

Decoding is greedy CTC (best class per frame, repeats merged, blanks dropped) unless a
`BeamDecoder` is given (prefix beam search, optionally with character and word n-gram language
models fitted on the training split's texts: `emotive eval asr --beam 16 --lm-order 6
--word-lm-order 3`). Utterances of
a split are read whole, sorted by length and padded to a few bucket lengths with a fixed
batch size, so only a handful of shapes are ever compiled (`utterance_batches`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm import tqdm

from emotive.codecs.chars import ctc_greedy_texts, normalize_text
from emotive.configs.asr import SAMPLE_RATE
from emotive.errors import UserError
from emotive.infer.ctc_decode import BeamDecoder, CharNgramLM, WordNgramLM, WordScoring
from emotive.infer.loading import load_trained, run_split_eval
from emotive.metrics.recognition import error_counts

# Padded lengths in seconds (longer utterances round up to whole multiples of the last).
BUCKET_SECONDS = (2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)


def bucket_length(num_samples: int) -> int:
    """The padded length (samples) for an utterance of `num_samples`."""
    for seconds in BUCKET_SECONDS:
        if num_samples <= seconds * SAMPLE_RATE:
            return int(seconds * SAMPLE_RATE)
    step = int(BUCKET_SECONDS[-1] * SAMPLE_RATE)
    return -(-num_samples // step) * step


def as_float(audio_T) -> np.ndarray:
    audio_T = np.asarray(audio_T)
    if audio_T.dtype == np.int16:
        return audio_T.astype(np.float32) / 32768.0
    return audio_T.astype(np.float32)


def text_of(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_split(data_dir, split: str, *, dataset: str = "emotive_speech",
               limit: int | None = None) -> list[dict]:
    """Every record of a built split (at most `limit`), as dicts of audio float32 [T] and
    text, speaker, condition, id strings ("" where the dataset lacks a field)."""
    from emotive.data.tfds_io import open_split

    source = open_split(data_dir, dataset, split).source
    count = len(source) if limit is None else min(limit, len(source))
    records = []
    for i in range(count):
        r = source[i]
        records.append({"audio": as_float(r["audio"]),
                        **{k: text_of(r.get(k, "")) for k in ("text", "speaker", "condition",
                                                                "id")}})
    if not records:
        raise UserError(f"{dataset}/{split} under {data_dir} holds no records to evaluate")
    return records


def utterance_batches(audios: list[np.ndarray],
                      batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yields (indices [b], audio float32 [batch_size, L], lengths int32 [batch_size]).

    Utterances go in length order, so a batch pads to the bucket of its longest; rows past
    the b real ones are silent padding with length 0.
    """
    order = np.argsort([a.shape[0] for a in audios], kind="stable")
    for start in range(0, order.size, batch_size):
        idx = order[start:start + batch_size]
        length = bucket_length(max(audios[i].shape[0] for i in idx))
        audio = np.zeros((batch_size, length), np.float32)
        lengths = np.zeros(batch_size, np.int32)
        for row, i in enumerate(idx):
            audio[row, :audios[i].shape[0]] = audios[i]
            lengths[row] = audios[i].shape[0]
        yield idx, audio, lengths


def _forward(graphdef, state, audio_BxT, lengths_B):
    """CTC logits [B, S, V] and valid slots per row [B]."""
    out = nnx.merge(graphdef, state)(audio_BxT, jnp.maximum(lengths_B, 1))
    return out["logits"], jnp.sum(out["frame_segments"] > 0, axis=1)


# The graph definition is a static argument, so every recogniser of one architecture (a
# checkpoint loaded twice, the CLI after an eval) shares compiled programs per shape.
@functools.partial(jax.jit, static_argnums=0)
def _best_path(graphdef, state, audio_BxT, lengths_B):
    """Best class per CTC slot, int32 [B, S], and valid slots per row [B]."""
    logits, slots_B = _forward(graphdef, state, audio_BxT, lengths_B)
    return jnp.argmax(logits, -1).astype(jnp.int32), slots_B


@functools.partial(jax.jit, static_argnums=0)
def _log_probs(graphdef, state, audio_BxT, lengths_B):
    """CTC log-probabilities float32 [B, S, V] and valid slots per row [B]."""
    logits, slots_B = _forward(graphdef, state, audio_BxT, lengths_B)
    return jax.nn.log_softmax(logits.astype(jnp.float32), -1), slots_B


@dataclasses.dataclass
class Recognizer:
    """A loaded CTC recogniser with a jitted greedy decoder."""

    cfg: Any
    model: nnx.Module
    step: int
    step_dir: Any = None

    def __post_init__(self):
        self._graphdef, self._state = nnx.split(self.model)

    def transcribe(self, audio_BxT, lengths_B=None, decoder: BeamDecoder | None = None
                   ) -> list[str]:
        """Transcripts (normalised text) of float audio [B, T] at 16 kHz with valid lengths
        [B] (default: whole rows): greedy CTC, or the given beam decoder's."""
        audio_BxT = np.asarray(audio_BxT, np.float32)
        if lengths_B is None:
            lengths_B = np.full(audio_BxT.shape[0], audio_BxT.shape[1], np.int32)
        lengths_B = np.asarray(lengths_B, np.int32)
        if decoder is not None:
            log_probs, slots = _log_probs(self._graphdef, self._state, audio_BxT, lengths_B)
            return decoder.decode(np.asarray(log_probs), np.asarray(slots))
        ids, frames = _best_path(self._graphdef, self._state, audio_BxT, lengths_B)
        return ctc_greedy_texts(np.asarray(ids), np.asarray(frames))


def load_recognizer(ckpt) -> Recognizer:
    """The recogniser of an `emotive train asr` run (run dir, its checkpoints/ or a step dir)."""
    trained = load_trained(ckpt, task="asr")
    return Recognizer(trained.cfg, trained.model, trained.step, trained.step_dir)


def _rates(counts: dict) -> dict:
    out = dict(counts)
    out["cer"] = counts["char_edits"] / max(counts["chars"], 1)
    out["wer"] = counts["word_edits"] / max(counts["words"], 1)
    return out


def read_texts(data_dir, split: str, *, dataset: str = "emotive_speech") -> list[str]:
    """The transcript of every record of a built split (e.g. to fit a language model)."""
    from emotive.data.tfds_io import open_split

    source = open_split(data_dir, dataset, split).source
    texts = [text_of(source[i].get("text", "")) for i in range(len(source))]
    if not any(texts):
        raise UserError(f"{dataset}/{split} under {data_dir} holds no transcripts")
    return texts


def evaluate(rec: Recognizer, data_dir, split: str = "test", *, dataset: str = "emotive_speech",
             batch_size: int = 16, limit: int | None = None, out_dir=None,
             decoder: BeamDecoder | None = None) -> dict:
    """Transcribes every utterance of `split` (greedy, or with `decoder`); returns (and writes
    to out_dir/report.json, with every transcript in out_dir/transcripts.jsonl) a report:

    {split, step, utterances, decoding, overall: {cer, wer, char_edits, chars, word_edits,
     words}, per_condition: {condition: the same}, normalisation, examples: first 10 pairs}.
    CER/WER are corpus-level over normalised text (emotive.metrics.recognition).
    """
    records = read_split(data_dir, split, dataset=dataset, limit=limit)
    hyps = [""] * len(records)
    batches = utterance_batches([r["audio"] for r in records], batch_size)
    for idx, audio, lengths in tqdm(batches, total=-(-len(records) // batch_size),
                                    desc=f"asr {split}", unit="batch", leave=False):
        for i, text in zip(idx, rec.transcribe(audio, lengths, decoder)):
            hyps[i] = text
    refs = [r["text"] for r in records]
    conditions = sorted({r["condition"] for r in records})
    per_condition = {}
    for c in conditions:
        chosen = [i for i, r in enumerate(records) if r["condition"] == c]
        per_condition[c or "unknown"] = {"utterances": len(chosen), **_rates(error_counts(
            [refs[i] for i in chosen], [hyps[i] for i in chosen]))}
    report = {"split": split, "dataset": dataset, "step": rec.step, "utterances": len(records),
              "decoding": decoder.describe() if decoder is not None else {"method": "greedy"},
              "overall": _rates(error_counts(refs, hyps)), "per_condition": per_condition,
              "normalisation": "emotive.codecs.chars.normalize_text on reference and hypothesis",
              "examples": [{"id": records[i]["id"], "ref": normalize_text(refs[i]),
                            "hyp": hyps[i]} for i in range(min(10, len(records)))]}
    if out_dir is not None:
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        with open(out / "transcripts.jsonl", "w") as f:
            for r, hyp in zip(records, hyps):
                f.write(json.dumps({"id": r["id"], "condition": r["condition"],
                                    "ref": normalize_text(r["text"]), "hyp": hyp}) + "\n")
    return report


def format_report(report: dict) -> str:
    """A few readable lines: overall and per-condition CER and WER."""
    o = report["overall"]
    lines = [f"asr on {report['dataset']}/{report['split']} ({report['utterances']} utterances, "
             f"step {report['step']}): CER {100 * o['cer']:.2f}%  WER {100 * o['wer']:.2f}%"]
    for c, m in report["per_condition"].items():
        lines.append(f"  {c:<10} {m['utterances']:>5} utt  CER {100 * m['cer']:6.2f}%  "
                     f"WER {100 * m['wer']:6.2f}%")
    return "\n".join(lines)


def decoder_from_args(args, data_dir, dataset: str) -> BeamDecoder | None:
    """The decoder that `--beam`, `--lm-order`, `--lm-weight`, `--char-bonus` and the
    `--word-*` options ask for (None: greedy). The language models are fitted on the training
    split of data_dir."""
    if args.beam < 0 or args.lm_order < 0 or args.word_lm_order < 0:
        raise UserError("--beam, --lm-order and --word-lm-order must be >= 0 (0: greedy "
                        "decoding, no LM)")
    if args.beam == 0:
        for flag, value in (("--lm-order", args.lm_order), ("--word-lm-order", args.word_lm_order)):
            if value:
                raise UserError(f"{flag} needs a beam search: add --beam N (e.g. 16)")
        return None
    texts = read_texts(data_dir, "train", dataset=dataset) if (
        args.lm_order or args.word_lm_order) else []
    lm = CharNgramLM.fit(texts, args.lm_order) if args.lm_order else None
    words = None
    if args.word_lm_order:
        words = WordScoring(WordNgramLM.fit(texts, args.word_lm_order), args.word_lm_weight,
                            args.word_bonus, args.unknown_word_penalty)
    return BeamDecoder(args.beam, lm, args.lm_weight, args.char_bonus, words)


def run_eval(kind: str, args) -> int:
    """`emotive eval asr`: load, transcribe the split, print and write the report."""
    rec = load_recognizer(args.ckpt)
    decoder = decoder_from_args(args, args.data_dir or rec.cfg.data.data_dir, args.dataset)
    return run_split_eval(kind, args, rec, functools.partial(evaluate, decoder=decoder),
                          format_report)
