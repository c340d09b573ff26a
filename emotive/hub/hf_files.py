"""Hugging Face checkpoint folders: config.json and safetensors (read, written), never pickles.

Shared by every importer and exporter in `emotive/hub/` (Llama, Wav2Vec2). The safetensors
files are opened, read and written by the helpers a release bundle uses
(emotive/infer/bundle/weights.py): the `safetensors` package reads, one streaming writer
writes, one shard plan and index.
"""

from __future__ import annotations

import contextlib
import json
import pathlib

import numpy as np

from emotive.errors import UserError
from emotive.infer.bundle.weights import (INDEX_FILE, WEIGHTS_FILE, dtype_code,
                                          open_safetensors, read_tensor, write_shards)

PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt")
FLOAT_TENSOR_DTYPES = ("F32", "BF16", "F16")


def read_hf_config(root: pathlib.Path) -> dict:
    """config.json of a Hugging Face checkpoint directory, as a dict."""
    if not root.is_dir():
        raise UserError(f"{root} is not a directory; pass a Hugging Face checkpoint folder "
                        "holding config.json and *.safetensors")
    path = root / "config.json"
    if not path.is_file():
        raise UserError(f"{root} has no config.json; pass a Hugging Face checkpoint folder")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is not readable JSON ({exc})") from None


def weight_files(root: pathlib.Path) -> list[pathlib.Path]:
    """The safetensors files of a checkpoint: the index's shards, one file, or all of them."""
    index = root / INDEX_FILE
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, json.JSONDecodeError, KeyError, AttributeError) as exc:
            raise UserError(f"{index} is not a valid safetensors index ({exc})") from None
        absent = [n for n in names if not (root / n).is_file()]
        if absent:
            raise UserError(f"{index} names shards that are missing: {', '.join(absent)}")
        return [root / n for n in names]
    if (root / WEIGHTS_FILE).is_file():
        return [root / WEIGHTS_FILE]
    files = sorted(root.glob("*.safetensors"))
    if files:
        return files
    pickles = sorted(p.name for pat in PICKLE_PATTERNS for p in root.glob(pat))
    if pickles:
        raise UserError(f"{root} holds only pickled PyTorch weights ({', '.join(pickles)}), "
                        "which emotive never loads because unpickling can run code; convert "
                        "them to safetensors first (from_pretrained then "
                        "save_pretrained(safe_serialization=True))")
    raise UserError(f"{root} has no model.safetensors or sharded *.safetensors weights")


class CheckpointTensors:
    """All tensors of a checkpoint's safetensors files, by key: names, shapes and dtypes up
    front, the data read lazily. A context manager that holds the files open.

    With `strip_prefix`, keys that start with it are known without it (`stored` gives the
    name in the file back).
    """

    def __init__(self, files: list[pathlib.Path], strip_prefix: str = ""):
        self.where: dict[str, tuple[pathlib.Path, str]] = {}  # key -> (file, stored name)
        self.meta: dict[str, tuple[tuple[int, ...], str]] = {}  # key -> (shape, dtype)
        self._handles = {}
        with contextlib.ExitStack() as stack:  # closes what was opened if anything raises
            for f in files:
                self._handles[f] = handle = stack.enter_context(open_safetensors(f))
                for name in handle.keys():
                    key = name[len(strip_prefix):] if name.startswith(strip_prefix) else name
                    if key in self.where:
                        raise UserError(f"tensor {name} appears in both "
                                        f"{self.where[key][0].name} and {f.name}; the "
                                        "checkpoint is inconsistent")
                    sl = handle.get_slice(name)
                    self.where[key] = (f, name)
                    self.meta[key] = (tuple(sl.get_shape()), sl.get_dtype())
            self._stack = stack.pop_all()

    def __enter__(self) -> "CheckpointTensors":
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def stored(self, key: str) -> str:
        """The tensor's name in its file (the key itself if there is no such tensor)."""
        return self.where[key][1] if key in self.where else key

    def check(self, key: str, shape: tuple[int, ...]) -> str:
        """Raises unless present tensor `key` has `shape` and a float dtype; returns the dtype."""
        got, kind = self.meta[key]
        if got != tuple(shape):
            raise UserError(f"tensor {self.stored(key)} has shape {list(got)} but config.json "
                            f"implies {list(shape)}; the weights do not match the config")
        if kind not in FLOAT_TENSOR_DTYPES:
            raise UserError(f"tensor {self.stored(key)} has dtype {kind}; only F32, BF16 and "
                            "F16 weights are supported (quantised checkpoints are not)")
        return kind

    def unused(self, used, ignorable=lambda key: False) -> list[str]:
        """Stored names, sorted, of the tensors neither in `used` nor `ignorable(key)`."""
        return sorted(self.stored(k) for k in self.where if k not in used and not ignorable(k))

    def read(self, key: str) -> np.ndarray:
        f, name = self.where[key]
        return read_tensor(self._handles[f], name, f)


def write_safetensors(tensors: dict[str, np.ndarray], root: pathlib.Path,
                      shard_size_bytes: int | None) -> None:
    """model.safetensors, or with `shard_size_bytes` model-0000i-of-0000n shards and an index
    (one model.safetensors when they all fit), tensors sorted by name."""
    if shard_size_bytes is not None and shard_size_bytes < 0:
        raise UserError(f"shard_size_bytes must be positive, got {shard_size_bytes}")
    entries = [(key, tuple(t.shape), dtype_code(t.dtype)) for key, t in sorted(tensors.items())]
    # transformers refuses safetensors files without a framework tag in their metadata.
    write_shards(root, entries, tensors.__getitem__, {"format": "pt"}, shard_size_bytes or None)
