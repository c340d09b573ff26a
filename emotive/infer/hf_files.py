"""Reading Hugging Face checkpoint folders: config.json and safetensors, never pickles.

Shared by every importer in `emotive/infer/` (Llama, Wav2Vec2).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
from safetensors import safe_open

from emotive.errors import UserError

PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt")
INDEX_FILE = "model.safetensors.index.json"


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
    if (root / "model.safetensors").is_file():
        return [root / "model.safetensors"]
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


def open_safetensors(path: pathlib.Path):
    try:
        return safe_open(path, framework="numpy")
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise UserError(f"{path} is not a readable safetensors file ({reason})") from None


def read_tensor(handle, key: str, path: pathlib.Path) -> np.ndarray:
    try:
        return handle.get_tensor(key)
    except (TypeError, ValueError):
        # Older safetensors cannot hand bfloat16 to numpy; the flax reader can.
        with safe_open(path, framework="flax") as f:
            return np.asarray(f.get_tensor(key))
