"""grain input pipelines: per-process slice, seeded per-epoch shuffle, map, fixed-shape batches.

The returned iterator is a grain DatasetIterator: its `get_state()` is saved with
every checkpoint, so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

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
                  prefetch_threads: int = 0):
    """A checkpointable iterator of this process's share of each global batch.

    `source` is any random-access sequence (a tfds data source, a list, a
    MapDataset). Each process takes every `process_count`-th record starting at
    `process_index` (disjoint shards that together cover the epoch), shuffles
    them with `seed` afresh each epoch, maps `transform` (or `random_transform`,
    which also receives a per-record numpy Generator derived from `seed`, so crops
    are reproducible), and batches `global_batch_size / process_count` records.
    `num_epochs=None` repeats forever.
    """
    ds = source if isinstance(source, grain.MapDataset) else grain.MapDataset.source(source)
    if len(ds) < process_count:
        raise UserError(f"the dataset has {len(ds)} records, fewer than the {process_count} "
                        "processes reading it")
    ds = ds[process_index::process_count]
    if shuffle:
        ds = ds.shuffle(seed=seed)
    ds = ds.repeat(num_epochs)
    if transform is not None:
        ds = ds.map(transform)
    if random_transform is not None:
        ds = ds.random_map(random_transform, seed=seed + 1 + process_index)
    batch_size = local_batch_size(global_batch_size, process_count)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, batch_fn=batch_fn)
    iter_ds = ds.to_iter_dataset()
    if prefetch_threads > 0:
        iter_ds = grain.experimental.ThreadPrefetchIterDataset(iter_ds,
                                                               prefetch_buffer_size=prefetch_threads)
    return iter(iter_ds)
