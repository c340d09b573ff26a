"""grain input pipelines: per-process slice, seeded per-epoch shuffle, map, fixed-shape batches.

The returned iterator is a grain DatasetIterator: its `get_state()` is saved with
every checkpoint, so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

import grain
import numpy as np

from emotive.errors import UserError


def local_batch_size(global_batch_size: int, process_count: int) -> int:
    if global_batch_size % process_count:
        raise UserError(f"train.batch_size={global_batch_size} must be divisible by the "
                        f"{process_count} processes")
    return global_batch_size // process_count


def make_iterator(source: Sequence | grain.MapDataset, *, global_batch_size: int, seed: int,
                  process_index: int = 0, process_count: int = 1, shuffle: bool = True,
                  num_epochs: int | None = None,
                  transform: Callable[[Any], dict] | None = None,
                  random_transform: Callable[[Any, np.random.Generator], dict] | None = None,
                  batch_fn: Callable[[list], dict] | None = None, drop_remainder: bool = True,
                  prefetch_threads: int = 0, read_threads: int = 4, read_buffer: int = 8):
    """A checkpointable iterator of this process's share of each global batch.

    `source` is any random-access sequence (a tfds data source, a list, a
    MapDataset). Record order is a per-epoch shuffle of the whole dataset with
    `seed`; global batch k is positions [k*B, (k+1)*B) of that order and process
    p reads the contiguous block [k*B + p*B/P, k*B + (p+1)*B/P). So every process
    reads a disjoint share, the shares cover each epoch, and the global batch is
    the same rows in the same order whatever the number of processes.
    `transform(record)` then `random_transform(record, rng)` run on this
    process's records only; the rng is seeded by (seed, global position), so random
    crops are also independent of the process count. `num_epochs=None` repeats
    forever; an incomplete last global batch is dropped.
    """
    del drop_remainder  # always: fixed shapes, and identical global batches across topologies
    n = len(source)
    batch_size = local_batch_size(global_batch_size, process_count)
    if n < global_batch_size and num_epochs is not None:
        raise UserError(f"the dataset has {n} records, fewer than one global batch of "
                        f"{global_batch_size}; lower the batch size or add data")
    order = grain.MapDataset.range(n)
    if shuffle:
        order = order.shuffle(seed=seed)
    order = order.repeat(num_epochs)
    num_batches = len(order) // global_batch_size

    def load(i: int):
        position = (i // batch_size) * global_batch_size + process_index * batch_size \
            + i % batch_size
        record = source[int(order[position])]
        if transform is not None:
            record = transform(record)
        if random_transform is not None:
            record = random_transform(record, np.random.default_rng([seed, position]))
        return record

    ds = grain.MapDataset.range(num_batches * batch_size).map(load)
    ds = ds.batch(batch_size, drop_remainder=True, batch_fn=batch_fn)
    # Elements are whole batches: keep grain's read-ahead small so memory stays bounded.
    iter_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=read_threads,
                                                   prefetch_buffer_size=read_buffer))
    if prefetch_threads > 0:
        iter_ds = grain.experimental.ThreadPrefetchIterDataset(iter_ds,
                                                               prefetch_buffer_size=prefetch_threads)
    return iter(iter_ds)


class IteratorWrapper:
    """A batch iterator around grain's `inner` one: forwards grain's optional prefetch and
    close hooks; subclasses define __next__ and the checkpoint state (get/set_state)."""

    def __init__(self, inner):
        self.inner = inner

    def __iter__(self):
        return self

    def start_prefetch(self) -> None:
        start = getattr(self.inner, "start_prefetch", None)
        if start is not None:
            start()

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


class DeviceBatches(IteratorWrapper):
    """A checkpointable batch iterator that keeps only the fields the device needs.

    The speech pipelines also yield host-side strings (text, id, condition) that cannot
    become jax arrays. get_state/set_state speak bytes, which grain's orbax handler accepts
    for any iterator.
    """

    def __init__(self, inner, fields: Sequence[str]):
        super().__init__(inner)
        self.fields = tuple(fields)

    def __next__(self) -> dict:
        batch = next(self.inner)
        return {k: batch[k] for k in self.fields}

    def get_state(self) -> bytes:
        return json.dumps(self.inner.get_state()).encode()

    def set_state(self, state: bytes) -> None:
        self.inner.set_state(json.loads(state.decode()))
