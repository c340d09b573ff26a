"""Safetensors weights: one file, or shards and their index, for a release bundle and for the
Hugging Face folders of emotive/hub/hf_files.py alike.

    write_shards(root, entries, fetch, metadata, shard_bytes)  # streamed: one tensor in memory
    where = open_weights(root)      # {key: SafetensorsFile} over model.safetensors or the shards
    where[key].tensors[key]         # (dtype code, shape, bytes)
    where[key].read(key)            # the array (numpy; BF16 as ml_dtypes.bfloat16)

Reading is the `safetensors` package's (`safe_open`: lazy, never unpickles). Before a byte of
data is read it checks the header: its length against the file (at most 100 MB), the JSON,
metadata of strings, every dtype, shape and offset, no gap or overlap, and that the data ends
where the file ends. A file it refuses (a truncated file, a header that claims more bytes
than the file holds, data_offsets past the end) is a one-line UserError naming the file.

Writing is `write_safetensors` below, not the package's `save_file`, for two reasons found in
safetensors 0.8.0:
- its serialiser takes every tensor of a file at once (pointers to all of them, held for the
  whole call), so a release would hold a whole shard (2 GB by default; the whole model below
  that) on the host. `write_safetensors` writes the header from (key, shape, dtype) entries
  first, then each tensor as its producer hands it over, and drops it before asking for the
  next: the host holds one tensor.
- it keeps `__metadata__` in a hash map whose order changes from one call to the next, so
  with two metadata keys or more it does not write the same bytes twice. Here the metadata
  keys come in one fixed order (METADATA_ORDER) and the tensors in the order given, so a file
  is reproducible.
The layout is otherwise the package's (compact JSON, `__metadata__` first, the header padded
with spaces to 8 bytes, data in header order): every committed release rewrites to its own
bytes, and a file of one dtype with one metadata key equals `safetensors.numpy.save`'s (both
checked in tests/infer/test_bundle_format.py).
"""

from __future__ import annotations

import json
import math
import pathlib
import struct
from typing import Callable, NamedTuple

import ml_dtypes
import numpy as np
from safetensors import safe_open

from emotive.errors import UserError

WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
# safetensors dtype codes <-> numpy dtypes (little-endian).
DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16), "I64": np.dtype("<i8"), "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"), "I8": np.dtype("i1"), "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("bool")}
# The order `emotive release` has always written its metadata in (other keys follow, sorted):
# the package reads metadata into a hash map, so a file read and written again keeps its bytes
# only if the writer fixes the order itself.
METADATA_ORDER = ("format", "task", "step", "dtype")
# What the package says (0.8.0, and the error names of its older versions) when the header and
# the file's length disagree: a truncated file, or data_offsets past its end.
_SIZE_ERRORS = ("incomplete metadata", "MetadataIncompleteBuffer", "invalid header length",
                "InvalidHeaderLength")

Entry = tuple[str, tuple[int, ...], str]  # (key, shape, dtype code), in file order


def dtype_code(dtype) -> str:
    """The safetensors code ("F32", "BF16", ...) of a numpy dtype; UserError if it has none."""
    dtype = np.dtype(dtype)
    for code, known in DTYPES.items():
        if known == dtype:
            return code
    raise UserError(f"dtype {dtype} cannot be stored in a bundle (safetensors has no code "
                    "for it)")


def nbytes(shape, code: str) -> int:
    """Bytes of a tensor of `shape` stored as dtype `code`."""
    return math.prod(shape) * DTYPES[code].itemsize


def ordered_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    """The metadata in the order it is written: METADATA_ORDER first, the rest sorted."""
    metadata = metadata or {}
    first = [k for k in METADATA_ORDER if k in metadata]
    return {k: metadata[k] for k in first + sorted(set(metadata) - set(first))}


# ------------------------------------------------------------------------ writing

def plan_shards(entries: list[Entry], shard_bytes: int | None) -> list[list[Entry]]:
    """Entries (key, shape, dtype code) in order, cut into shards of at most `shard_bytes`
    (a tensor larger than that is a shard of its own); one shard when they all fit."""
    if shard_bytes is not None and shard_bytes <= 0:
        raise UserError(f"shard size must be positive, got {shard_bytes} bytes")
    shards: list[list[Entry]] = [[]]
    size = 0
    for entry in entries:
        n = nbytes(entry[1], entry[2])
        if shard_bytes is not None and shards[-1] and size + n > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(entry)
        size += n
    return shards


def shard_names(count: int) -> list[str]:
    """model.safetensors for one file, else model-0000i-of-0000n.safetensors."""
    if count == 1:
        return [WEIGHTS_FILE]
    return [f"model-{i + 1:05d}-of-{count:05d}.safetensors" for i in range(count)]


def write_safetensors(path: pathlib.Path | None, entries: list[Entry],
                      fetch: Callable[[str], np.ndarray | None],
                      metadata: dict[str, str]) -> None:
    """One safetensors file, streamed: the header from `entries` (key, shape, dtype code)
    first, then each tensor as `fetch(key)` returns it, so at most one tensor is in memory.

    `fetch` may return None (a process other than 0 in a multi-host release: it takes part
    in the gather but writes nothing; then `path` is None too)."""
    header: dict = {"__metadata__": ordered_metadata(metadata)}
    offset = 0
    for key, shape, code in entries:
        n = nbytes(shape, code)
        header[key] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned, as the package writes it
    f = open(path, "wb") if path is not None else None
    try:
        if f is not None:
            f.write(struct.pack("<Q", len(raw)))
            f.write(raw)
        for key, shape, code in entries:
            array = fetch(key)
            if f is None:
                continue
            array = np.asarray(array, order="C")   # ascontiguousarray would make a scalar [1]
            if tuple(array.shape) != tuple(shape) or array.dtype != DTYPES[code]:
                raise ValueError(f"tensor {key}: got {array.dtype}{list(array.shape)}, planned "
                                 f"{code}{list(shape)}")
            f.write(array.reshape(-1).view(np.uint8))  # its bytes, without a copy
            del array  # nothing is held while the next tensor is fetched
    finally:
        if f is not None:
            f.close()


def write_shards(root: pathlib.Path | None, entries: list[Entry],
                 fetch: Callable[[str], np.ndarray | None], metadata: dict[str, str],
                 shard_bytes: int | None) -> list[str]:
    """model.safetensors in `root`, or above `shard_bytes` the shards
    model-0000i-of-0000n.safetensors and model.safetensors.index.json; every tensor streamed
    through `write_safetensors` in `entries` order. Returns the weight file names.

    `root` None: every tensor is still fetched (a gather other processes take part in), and
    nothing is written."""
    shards = plan_shards(entries, shard_bytes)
    names = shard_names(len(shards))
    for name, shard in zip(names, shards):
        write_safetensors(root / name if root is not None else None, shard, fetch, metadata)
    if root is not None and len(shards) > 1:
        index = {"metadata": {"total_size": sum(nbytes(s, c) for _, s, c in entries)},
                 "weight_map": {key: name for name, shard in zip(names, shards)
                                for key, _, _ in shard}}
        (root / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return names


# ------------------------------------------------------------------------ reading

def open_safetensors(path: pathlib.Path):
    """`safe_open(path)` for numpy: the header checked by the package, the data read lazily.
    A context manager. One-line UserError naming the file for a file the package refuses."""
    try:
        return safe_open(str(path), framework="numpy")
    except OSError as exc:
        raise UserError(f"{path} cannot be read ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reason = text.removeprefix("Error while deserializing header: ")[:200]
        if any(marker in text for marker in _SIZE_ERRORS):
            size = path.stat().st_size if path.is_file() else 0
            raise UserError(f"{path} is not a safetensors file: its header does not fit the "
                            f"file's {size:,} bytes (a truncated file, or data_offsets past its "
                            f"end: {reason})") from None
        raise UserError(f"{path} is not a safetensors file ({reason})") from None


def read_tensor(handle, key: str, path: pathlib.Path) -> np.ndarray:
    """Tensor `key` of an open file as a numpy array (BF16 as ml_dtypes.bfloat16)."""
    try:
        return handle.get_tensor(key)
    except (TypeError, ValueError):
        # Older safetensors cannot hand bfloat16 to numpy; the flax reader can.
        with safe_open(str(path), framework="flax") as f:
            return np.asarray(f.get_tensor(key))


class TensorInfo(NamedTuple):
    """What a file's header says of one tensor."""

    dtype: str  # safetensors code: "F32", "BF16", ...
    shape: tuple[int, ...]
    nbytes: int


class SafetensorsFile:
    """One safetensors file: its metadata and every tensor's dtype code and shape, from the
    header the package checked; the data read on demand, one tensor at a time."""

    def __init__(self, path: pathlib.Path):
        self.path = pathlib.Path(path)
        self.tensors: dict[str, TensorInfo] = {}
        with open_safetensors(self.path) as handle:
            self.metadata: dict[str, str] = ordered_metadata(handle.metadata())
            for key in handle.keys():
                view = handle.get_slice(key)
                code, shape = view.get_dtype(), tuple(view.get_shape())
                if code not in DTYPES:
                    raise UserError(f"{self.path}: tensor {key} has dtype {code}, which emotive "
                                    f"does not read ({', '.join(DTYPES)})")
                self.tensors[key] = TensorInfo(code, shape, nbytes(shape, code))

    def read(self, key: str) -> np.ndarray:
        """Tensor `key` as a numpy array of its stored dtype and shape."""
        with open_safetensors(self.path) as handle:
            return read_tensor(handle, key, self.path)


def open_weights(root: pathlib.Path) -> dict[str, SafetensorsFile]:
    """{key: the file that holds it} over model.safetensors or the index's shards; UserError
    for a malformed index, a missing shard, or a tensor in two files or not where the index
    says."""
    index = root / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
            if not isinstance(weight_map, dict):
                raise TypeError("weight_map is not an object")
            names = sorted(set(weight_map.values()), key=str)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"bundle {root}: {INDEX_FILE} is not a safetensors index "
                            f"({str(exc)[:120]})") from None
    elif (root / WEIGHTS_FILE).is_file():
        weight_map, names = None, [WEIGHTS_FILE]
    else:
        raise UserError(f"bundle {root} has no {WEIGHTS_FILE} (or {INDEX_FILE})")
    where: dict[str, SafetensorsFile] = {}
    for name in names:
        if not isinstance(name, str) or "/" in name or not (root / name).is_file():
            raise UserError(f"bundle {root}: {INDEX_FILE} names a missing shard {name!r}")
        f = SafetensorsFile(root / name)
        for key in f.tensors:
            if key in where:
                raise UserError(f"bundle {root}: tensor {key} is in both {where[key].path.name} "
                                f"and {name}")
            if weight_map is not None and weight_map.get(key) != name:
                raise UserError(f"bundle {root}: tensor {key} is in {name} but {INDEX_FILE} "
                                f"says {weight_map.get(key)}")
            where[key] = f
    if weight_map is not None:
        for key in weight_map:
            if key not in where:
                raise UserError(f"bundle {root}: {INDEX_FILE} lists tensor {key}, which no "
                                "shard holds")
    return where


def weights_metadata(root: pathlib.Path) -> dict[str, str]:
    """The safetensors metadata of the (first) weights file: format, task, step, dtype."""
    where = open_weights(root)
    first = min(where.values(), key=lambda f: f.path.name) if where else None
    return dict(first.metadata) if first is not None else {}
