"""The CTC recogniser task: whole utterances packed into fixed-length rows, character CTC loss.

The trainer compiles one step for one batch shape, and utterances vary from under a second
to many seconds, so each row packs several whole utterances (`pack_rows`): every step reads
round(batch_size * records_per_row) random utterances, each standardised on its own (zero
mean, unit variance), and places them longest first into the first row with room for both
its samples and its characters. Segment ids keep attention inside each utterance; the row's
CTC target is the utterances' texts joined by one space, in row order. With
`model.targets=phonemes` the targets are eSpeak's phonemes of each text instead (in the
speaker's accent for a corpus speaker; emotive.data.speech.phoneme_targets), joined by a
word boundary; they are phonemised as rows are packed and cached per text.

Loss: optax.ctc_loss summed over rows and divided by the number of target characters
(nats per character). Periodic eval reports the same loss on packed rows of the held-out
split; CER/WER come from `emotive eval asr` (emotive.evals.asr).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

from emotive.codecs import chars, phonemes
from emotive.configs.asr import AsrConfig
from emotive.configs.augment import AugmentConfig
from emotive.data.pipelines.augment import augment
from emotive.data.pipelines.input import local_batch_size, make_iterator
from emotive.data.speech.phoneme_targets import PhonemeTargets, speaker_voice
from emotive.errors import UserError
from emotive.models.asr import CtcRecognizer, vocab_size
from emotive.models.transformer import train_flops
from emotive.train.losses import audio_throughput
from emotive.train.task import DataSpec, Task
from emotive.data.builders.tfds_io import open_data_split


class _Subset:
    """Random access to `source` restricted to `indices` (len and [i], as grain needs)."""

    def __init__(self, source, indices: np.ndarray):
        self.source, self.indices = source, np.asarray(indices, np.int64)

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, i: int):
        return self.source[int(self.indices[i])]


def augmented_utterance(augment_cfg: AugmentConfig):
    """make_iterator's random_transform for training rows: each utterance augmented whole
    before packing (speed changes its length and keeps its text, so labels stay aligned; an
    utterance slowed past data.row_seconds is skipped for that step like any that fits no row).
    """
    def transform(record: dict, rng: np.random.Generator) -> dict:
        return {**record, "audio": augment(record["audio"], augment_cfg, rng)}
    return transform


def _standardize(audio_T: np.ndarray) -> np.ndarray:
    x = audio_T.astype(np.float32)
    if audio_T.dtype == np.int16:
        x /= 32768.0
    x -= x.mean()
    return x / np.sqrt(np.mean(np.square(x)) + 1e-7)


def char_labels(records: list[dict]) -> list[np.ndarray]:
    """The character ids (emotive.codecs.chars) of each record's `text` (str or bytes)."""
    return [chars.encode(r["text"].decode() if isinstance(r["text"], bytes) else r["text"])
            for r in records]


def phoneme_labels(targets: PhonemeTargets):
    """labels_of for pack_rows: each record's phoneme targets, in its speaker's accent."""
    def labels_of(records: list[dict]) -> list[np.ndarray]:
        return targets.encode_many([r["text"] for r in records],
                                   [speaker_voice(r.get("speaker", "")) for r in records])
    return labels_of


def pack_rows(records: list[dict], *, rows: int, row_samples: int, max_labels: int,
              labels_of=char_labels, separator: int = chars.SPACE) -> dict:
    """Packs utterances (dicts with `audio` [T] and `text`) into `rows` fixed-length rows.

    labels_of(records) gives each record's target ids (default: characters), and
    `separator` goes between the targets of two utterances in a row (phonemes: WORD).
    Returns numpy arrays: audio float32 [R, L], segment_ids int32 [R, L] (utterance k of a
    row is k + 1, padding 0), labels int32 [R, max_labels] (0-padded), label_length int32
    [R], utterances int32 [R] (how many each row holds) and valid_samples int32 [R].
    """
    items = []
    for record, labels in zip(records, labels_of(records)):
        audio = np.asarray(record["audio"])
        if 0 < labels.size <= max_labels and 0 < audio.shape[0] <= row_samples:
            items.append((audio, labels))
    items.sort(key=lambda item: -item[0].shape[0])
    audio_RxL = np.zeros((rows, row_samples), np.float32)
    seg_RxL = np.zeros((rows, row_samples), np.int32)
    labels_RxU = np.zeros((rows, max_labels), np.int32)
    filled = np.zeros(rows, np.int64)
    label_length = np.zeros(rows, np.int32)
    count = np.zeros(rows, np.int32)
    for audio, labels in items:
        for r in range(rows):
            pos = label_length[r] + (1 if count[r] else 0)  # a space between utterances
            start, n = filled[r], audio.shape[0]
            if start + n <= row_samples and pos + labels.size <= max_labels:
                audio_RxL[r, start:start + n] = _standardize(audio)
                seg_RxL[r, start:start + n] = count[r] + 1
                if count[r]:
                    labels_RxU[r, pos - 1] = separator
                labels_RxU[r, pos:pos + labels.size] = labels
                label_length[r] = pos + labels.size
                filled[r] += n
                count[r] += 1
                break
    return {"audio": audio_RxL, "segment_ids": seg_RxL, "labels": labels_RxU,
            "label_length": label_length, "utterances": count,
            "valid_samples": filled.astype(np.int32)}


def ctc_loss_per_char(logits_BxNxV, frame_seg_BxN, labels_BxU, label_length_B):
    """Summed CTC loss over rows with targets / their total characters; and that total."""
    logit_pad = (frame_seg_BxN == 0).astype(jnp.float32)
    label_pad = (jnp.arange(labels_BxU.shape[1])[None, :]
                 >= label_length_B[:, None]).astype(jnp.float32)
    per_row = optax.ctc_loss(logits_BxNxV, logit_pad, labels_BxU, label_pad, blank_id=chars.BLANK)
    has_target = label_length_B > 0
    per_row = jnp.where(has_target & jnp.isfinite(per_row), per_row, 0.0)
    total_chars = jnp.maximum(jnp.sum(label_length_B), 1).astype(jnp.float32)
    return jnp.sum(per_row) / total_chars, total_chars


def make_task(cfg: AsrConfig) -> Task:
    data, enc = cfg.data, cfg.model.encoder
    records_per_batch = max(1, round(cfg.train.batch_size * data.records_per_row))
    targets = {}  # pack_rows' defaults: characters
    if cfg.model.targets == "phonemes":  # phonemised as batches are packed, cached per text
        targets = dict(labels_of=phoneme_labels(PhonemeTargets()), separator=phonemes.WORD)

    def forward(model, batch, rng=None):
        out = model(batch["audio"], segment_ids_BxT=batch["segment_ids"], rng=rng)
        return out, ctc_loss_per_char(out["logits"], out["frame_segments"], batch["labels"],
                                      batch["label_length"])

    def loss_fn(model: CtcRecognizer, batch, rng):
        out, (loss, _) = forward(model, batch, rng)
        valid = out["frame_segments"] > 0
        blank = (jnp.argmax(out["logits"], -1) == chars.BLANK) & valid
        return loss, {"blank_fraction": blank.sum() / jnp.maximum(valid.sum(), 1),
                      "utterances_per_row": jnp.mean(batch["utterances"].astype(jnp.float32))}

    def eval_fn(model: CtcRecognizer, batch):
        _, (loss, _) = forward(model, batch)
        return {"loss": loss}

    def iterator(split: str, train: bool):
        def make(process_index: int, process_count: int):
            opened = open_data_split(data, split)
            fits = np.flatnonzero(opened.num_samples <= data.row_samples)
            if fits.size == 0:
                raise UserError(f"{data.dataset}/{split} has no utterance of at most "
                                f"data.row_seconds={data.row_seconds} s; raise data.row_seconds")
            rows = local_batch_size(cfg.train.batch_size, process_count)
            augmented = augmented_utterance(cfg.augment) if train and cfg.augment.enabled \
                else None

            def pack(records):
                return pack_rows(records, rows=rows, row_samples=data.row_samples,
                                 max_labels=data.max_labels, **targets)

            return make_iterator(_Subset(opened.source, fits), global_batch_size=records_per_batch,
                                 seed=cfg.train.seed + (0 if train else 1),
                                 process_index=process_index, process_count=process_count,
                                 shuffle=True, batch_fn=pack, random_transform=augmented)
        return make

    frames = -(-data.row_samples // enc.frame_samples)
    return Task(
        name="asr",
        make_model=lambda rngs: CtcRecognizer(cfg.model, rngs=rngs),
        data=DataSpec(train=iterator(data.train_split, True),
                      eval=iterator(data.eval_split, False)),
        losses={"model": loss_fn},
        eval_fn=eval_fn,
        flops_per_step=train_flops(enc.transformer, cfg.train.batch_size, frames,
                                   head_params=enc.transformer.d_model * vocab_size(cfg.model)
                                   * cfg.model.upsample),
        **audio_throughput("valid_samples"),
    )


def report_after_training(cfg: AsrConfig, summary: dict) -> str:
    ev = summary.get("eval", {})
    ckpt = summary["checkpoint_dir"]
    unit, rates = ("phoneme", "PER") if cfg.model.targets == "phonemes" else ("character",
                                                                             "CER/WER")
    return "\n".join([
        f"asr: eval CTC loss on {cfg.data.eval_split} (held-out speakers and texts) "
        f"{ev.get('loss', float('nan')):.3f} nats/{unit}",
        f"checkpoints: {ckpt}",
        f"{rates} per condition: emotive eval asr --ckpt {ckpt} --data-dir {cfg.data.data_dir} "
        "--split test",
        f"transcribe a file: emotive transcribe IN.wav --ckpt {ckpt}",
        f"TensorBoard logs: {summary['tensorboard_dir']}",
        f"metrics (JSONL): {summary['metrics_file']}"])
