"""grain pipelines over random-access speech sources: fixed-length crops and length buckets.

A source is anything with `len` and `[i]` returning an example dict with at least `audio`
(int16 or float [T] at 16 kHz), e.g. `open_split(...).source` (a `tfds.data_source`) or a list.
Both pipelines are built on `emotive.data.pipelines.input.make_iterator`, so they shuffle with a seed,
give each process a disjoint contiguous block of every global batch (the global batch is the
same whatever the number of processes), and return a grain iterator whose
`get_state()`/`set_state()` restore the exact position (it is saved with every checkpoint).

Batches are dicts of process-local numpy arrays (B = global batch / process count):
    audio         float32 [B, L]  waveform in [-1, 1], zero after the valid part
    mask          bool    [B, L]  True on valid samples
    length        int32   [B]     valid samples per row
    emotion       int32   [B]     index into EMOTIONS, -1 if the dataset has no emotion
    intensity     int32   [B]     dataset's intensity level, 0 if unknown
    adv           float32 [B, 3]  arousal, dominance, valence (0 where unknown)
    has_adv       bool    [B]     whether `adv` is known
    speaker       int32   [B]     index into the split's sorted speaker names, -1 if unknown
    example_mask  bool    [B]     False on rows that only pad a final short batch (buckets
                                  with drop_remainder=False; always True for crops)
    text, id      object  [B]     Python strings; host-side only, drop before device_put
    condition     object  [B]     recording condition (emotive_speech: clean, distance, shout;
                                  "" if the dataset has none); host-side only like text

`crop_batches` (codec and recogniser training): every row is a random crop of `crop_samples`
(shorter clips are zero-padded), so L is fixed; an `AugmentConfig` augments each crop
(`emotive.data.pipelines.augment`). `bucket_batches` (variable length): records of similar length
are batched together and padded to the smallest of a fixed set of bucket lengths, so jit sees
at most len(buckets) shapes.
"""

from __future__ import annotations

import functools
from typing import Sequence

import grain
import numpy as np

from emotive.configs.augment import AugmentConfig
from emotive.configs.common import SAMPLE_RATE
from emotive.data.speech.emotions import EMOTIONS
from emotive.errors import UserError
from emotive.data.pipelines.augment import augment_crop
from emotive.data.pipelines.input import local_batch_size, make_iterator
from emotive.data.builders.tfds_io import open_split

# Stand-in for "forever": grain wants a finite plan to index, this many epochs never run out.
_FOREVER_EPOCHS = 2**31


def speaker_table(speakers: Sequence[str]) -> dict[str, int]:
    """Maps each distinct speaker name to its position in sorted order (stable across runs)."""
    return {name: i for i, name in enumerate(sorted(set(speakers)))}


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def decode_record(record: dict, speakers: dict[str, int]) -> dict:
    """Turns one source record into the label fields of a batch row plus its raw audio [T].

    Takes a record (TFDS ClassLabel ints or emotion names both work) and a speaker table;
    returns a dict with audio (as stored), emotion, intensity, adv, has_adv, speaker, text, id,
    condition, phones (eSpeak's phone starts as JSON text, "" where the dataset has none).
    """
    emotion = record.get("emotion", -1)
    if isinstance(emotion, (str, bytes)):
        emotion = EMOTIONS.index(_text(emotion))
    has_adv = all(k in record for k in ("arousal", "dominance", "valence"))
    adv = [record[k] for k in ("arousal", "dominance", "valence")] if has_adv else [0, 0, 0]
    speaker = _text(record["speaker"]) if "speaker" in record else None
    return {"audio": np.asarray(record["audio"]), "emotion": np.int32(emotion),
            "intensity": np.int32(record.get("intensity", 0)),
            "adv": np.asarray(adv, np.float32), "has_adv": np.bool_(has_adv),
            "speaker": np.int32(speakers.get(speaker, -1)),
            "text": _text(record.get("text", "")), "id": _text(record.get("id", "")),
            "condition": _text(record.get("condition", "")),
            "phones": _text(record.get("phones", ""))}


def _as_float(audio_T: np.ndarray) -> np.ndarray:
    if audio_T.dtype == np.int16:
        return audio_T.astype(np.float32) / 32768.0
    return audio_T.astype(np.float32)


def _fit(example: dict, length: int, offset: int) -> dict:
    """Cuts `length` samples from `offset` (or zero-pads to `length`); adds mask and length."""
    audio_T = example["audio"]
    valid = min(audio_T.shape[0] - offset, length)
    out_L = np.zeros(length, np.float32)
    out_L[:valid] = _as_float(audio_T[offset:offset + valid])
    mask_L = np.zeros(length, bool)
    mask_L[:valid] = True
    return {**example, "audio": out_L, "mask": mask_L, "length": np.int32(valid)}


# Python strings per row: they stay on the host (jax arrays cannot hold them).
HOST_FIELDS = ("text", "id", "condition", "phones")

_EMPTY_ROW = {"emotion": np.int32(-1), "intensity": np.int32(0),
              "adv": np.zeros(3, np.float32), "has_adv": np.bool_(False),
              "speaker": np.int32(-1), "text": "", "id": "", "condition": "", "phones": ""}


def _collate(rows: list[dict | None], length: int) -> dict:
    """Stacks fitted rows into a batch; None rows become zero padding with example_mask False."""
    blank = {**_EMPTY_ROW, "audio": np.zeros(length, np.float32),
             "mask": np.zeros(length, bool), "length": np.int32(0)}
    filled = [blank if r is None else r for r in rows]
    batch = {k: np.stack([r[k] for r in filled]) for k in blank if k not in HOST_FIELDS}
    for k in HOST_FIELDS:
        batch[k] = np.array([r[k] for r in filled], dtype=object)
    batch["example_mask"] = np.array([r is not None for r in rows])
    return batch


def crop_batches(source, *, crop_samples: int, global_batch_size: int, seed: int,
                 process_index: int = 0, process_count: int = 1,
                 speakers: Sequence[str] = (), shuffle: bool = True,
                 num_epochs: int | None = None, prefetch_threads: int = 0,
                 augment: AugmentConfig | None = None):
    """Batches of fixed-length random crops (codec training), e.g. 2 s = 32000 samples.

    Takes a random-access `source`, the crop length, the global batch size, a seed, this
    process's index and the process count, the split's speaker names (for the speaker index),
    and make_iterator's shuffle/num_epochs/prefetch options (an incomplete last global batch
    is dropped). The crop offset of each record comes from make_iterator's per-record rng,
    seeded by (seed, global position), so batches depend only on the seed and the position.
    With an enabled `augment` (training only) each crop is `augment_crop`'s, from the same
    rng; without, the crops are those of the plain path, bit for bit.
    Returns a checkpointable grain iterator of batches (see the module docstring).
    """
    if crop_samples < 1:
        raise UserError(f"crop_samples must be positive, got {crop_samples}")
    table = speaker_table(speakers)
    augmenting = augment is not None and augment.enabled

    def crop(example: dict, rng: np.random.Generator) -> dict:
        if augmenting:
            audio = augment_crop(example["audio"], crop_samples, augment, rng)
            return _fit({**example, "audio": audio}, crop_samples, 0)
        spare = example["audio"].shape[0] - crop_samples
        offset = int(rng.integers(0, spare + 1)) if spare > 0 else 0
        return _fit(example, crop_samples, offset)

    return make_iterator(source, global_batch_size=global_batch_size, seed=seed,
                         process_index=process_index, process_count=process_count,
                         shuffle=shuffle, num_epochs=num_epochs,
                         transform=functools.partial(decode_record, speakers=table),
                         random_transform=crop,
                         batch_fn=functools.partial(_collate, length=crop_samples),
                         prefetch_threads=prefetch_threads)


def check_buckets(buckets: Sequence[int]) -> tuple[int, ...]:
    """Returns `buckets` as a tuple after checking they are increasing positive sample counts."""
    buckets = tuple(int(b) for b in buckets)
    if not buckets or buckets[0] < 1 or any(a >= b for a, b in zip(buckets, buckets[1:])):
        raise UserError(f"buckets must be increasing positive sample counts, got {buckets}")
    return buckets


def plan_buckets(num_samples: np.ndarray, *, buckets: Sequence[int], batch_size: int,
                 window_batches: int, seed: int, epoch: int, shuffle: bool = True,
                 drop_remainder: bool = True) -> list[tuple[int, np.ndarray]]:
    """The global batches of one epoch: [(bucket length, record indices int64 [batch_size])].

    Takes each record's length (int [N]). Records are shuffled (seeded by seed and epoch),
    cut into windows of `window_batches * batch_size`, sorted by length within a window and
    cut into batches, so a batch holds records of similar length; the batch order is then
    shuffled. A batch's bucket is the smallest bucket >= its longest record (the largest
    bucket if none is). Without drop_remainder the last batch is padded with index -1.
    """
    buckets = check_buckets(buckets)
    num_samples = np.asarray(num_samples)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(num_samples.size) if shuffle else np.arange(num_samples.size)
    window = window_batches * batch_size
    batches = []
    for start in range(0, order.size, window):
        chunk = order[start:start + window]
        chunk = chunk[np.argsort(num_samples[chunk], kind="stable")]
        for b in range(0, chunk.size, batch_size):
            rows = chunk[b:b + batch_size]
            if rows.size < batch_size:
                if drop_remainder:
                    continue
                rows = np.concatenate([rows, np.full(batch_size - rows.size, -1, rows.dtype)])
            batches.append(rows)
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    bounds = np.asarray(buckets)
    plan = []
    for rows in batches:
        longest = int(num_samples[rows[rows >= 0]].max())
        plan.append((int(bounds[min(np.searchsorted(bounds, longest), bounds.size - 1)]), rows))
    return plan


def bucket_batches(source, num_samples: np.ndarray | None = None, *, buckets: Sequence[int],
                   global_batch_size: int, seed: int, window_batches: int = 8,
                   process_index: int = 0, process_count: int = 1,
                   speakers: Sequence[str] = (), shuffle: bool = True,
                   num_epochs: int | None = None, drop_remainder: bool = True,
                   prefetch_threads: int = 0):
    """Variable-length batches grouped by length and padded to a fixed set of bucket lengths.

    Takes a random-access `source`, each record's length `num_samples` (int [N]; read from the
    source when None, which reads every record once), increasing bucket lengths in samples,
    the global batch size, a seed, the number of batches per sorting window (larger: tighter
    buckets, less randomness), this process's index and the process count, the split's speaker
    names and make_iterator's options. Records longer than the largest bucket are randomly
    cropped to it. Returns a checkpointable grain iterator of batches whose length L is always
    one of `buckets`.

    Every process plans the same global batches (`plan_buckets`) and loads its contiguous
    block of rows of each, so at every step all processes pad to the same bucket (their arrays
    form one global array, identical whatever the process count) and their rows are disjoint.
    make_iterator is therefore called with process_count=1 over the plan's batch numbers, not
    over records. Without drop_remainder the last batch of an epoch is padded with empty rows
    (example_mask False).
    """
    buckets = check_buckets(buckets)
    block = local_batch_size(global_batch_size, process_count)
    mine = slice(process_index * block, (process_index + 1) * block)
    if num_samples is None:
        num_samples = np.asarray([np.shape(source[i]["audio"])[0] for i in range(len(source))])
    num_samples = np.asarray(num_samples, np.int64)
    if num_samples.size != len(source):
        raise UserError(f"num_samples has {num_samples.size} entries for {len(source)} records")
    table = speaker_table(speakers)

    @functools.lru_cache(maxsize=2)
    def epoch_plan(epoch: int):
        return plan_buckets(num_samples, buckets=buckets, batch_size=global_batch_size,
                            window_batches=window_batches, seed=seed, epoch=epoch,
                            shuffle=shuffle, drop_remainder=drop_remainder)

    per_epoch = len(epoch_plan(0))
    if per_epoch == 0:
        raise UserError(f"{len(source)} records make no full batch of {global_batch_size}; "
                        "lower the batch size or pass drop_remainder=False")

    def load(step: int, rng: np.random.Generator) -> dict:
        length, rows = epoch_plan(step // per_epoch)[step % per_epoch]
        # One draw per global row, so a crop does not depend on the number of processes.
        draws = rng.random(rows.size)[mine]
        out = []
        for i, u in zip(rows[mine], draws):
            if i < 0:
                out.append(None)
                continue
            example = decode_record(source[int(i)], table)
            spare = example["audio"].shape[0] - length
            out.append(_fit(example, length, int(u * (spare + 1)) if spare > 0 else 0))
        return _collate(out, length)

    plan = grain.MapDataset.range(per_epoch * (num_epochs or _FOREVER_EPOCHS))
    return make_iterator(plan, global_batch_size=1, seed=seed, shuffle=False, num_epochs=1,
                         random_transform=load, batch_fn=lambda items: items[0],
                         prefetch_threads=prefetch_threads)


def split_buckets(num_samples: np.ndarray, unit: int) -> tuple[int, ...]:
    """Bucket lengths for whole clips: `unit` doubling up to the longest clip, which is the
    last bucket (rounded up to a whole unit), so jit sees a handful of shapes."""
    longest = int(np.max(num_samples)) if len(num_samples) else unit
    buckets, size = [], unit
    while size < longest:
        buckets.append(size)
        size *= 2
    return tuple(buckets) + (-(-longest // unit) * unit,)


def whole_clip_batches(data_dir, dataset: str, split: str, *, batch_size: int,
                       unit: int = SAMPLE_RATE):
    """Every clip of a built split whole and in order, once: the one split reader of every
    evaluation and split encoder. Yields the batches of `bucket_batches` (padded to
    `split_buckets(..., unit)`; the last batch's empty rows have example_mask False); the
    iterator is closed when the caller stops early. UserError for an empty split."""
    opened = open_split(data_dir, dataset, split)
    if not len(opened.source):
        raise UserError(f"split {split!r} of {dataset} under {data_dir} has no clips to "
                        "evaluate")
    batches = bucket_batches(opened.source, opened.num_samples,
                             buckets=split_buckets(opened.num_samples, unit),
                             global_batch_size=batch_size, seed=0, shuffle=False, num_epochs=1,
                             drop_remainder=False, speakers=opened.speakers)
    try:
        yield from batches
    finally:
        batches.close()


def split_speakers(data_dir, dataset: str, split: str) -> tuple[str, ...]:
    """The sorted speaker names of a built split (what batch["speaker"] indexes)."""
    return open_split(data_dir, dataset, split).speakers


def split_texts(data_dir, dataset: str, split: str) -> list[str]:
    """The transcript of every record of a built split (e.g. to fit a language model)."""
    source = open_split(data_dir, dataset, split).source
    texts = [_text(source[i].get("text", "")) for i in range(len(source))]
    if not any(texts):
        raise UserError(f"{dataset}/{split} under {data_dir} holds no transcripts")
    return texts
