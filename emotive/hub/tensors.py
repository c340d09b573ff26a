"""Tensor mapping between Hugging Face checkpoints and our models' pure parameter dicts.

Every importer and exporter in `emotive/hub/` describes its model as a list of `HFTensor`s
(a checkpoint key and shape, the path in `nnx.state(model).to_pure_dict()`, and the layout
conversions) and lets the functions here fill, read and check the parameter tree.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from typing import Callable

import jax
import ml_dtypes
import numpy as np
from flax import nnx

from emotive.errors import UserError

NP_DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}
IMPORT_DTYPES = ("float32", "bfloat16")  # parameter and compute dtypes an import can give


def check_import_dtype(dtype: str) -> None:
    if dtype not in IMPORT_DTYPES:
        raise UserError(f"dtype must be float32 or bfloat16, got {dtype!r}")


@dataclasses.dataclass(frozen=True)
class HFTensor:
    """One checkpoint tensor and where it sits in our model."""

    hf_key: str  # as the checkpoint names it (for Wav2Vec2: without the wav2vec2. prefix)
    path: tuple  # in the model's pure parameter dict
    hf_shape: tuple[int, ...]
    to_ours: Callable[[np.ndarray], np.ndarray]  # checkpoint layout -> ours
    to_hf: Callable[[np.ndarray], np.ndarray] | None = None  # ours -> checkpoint (exporters)


def put(pure: dict, path: tuple, value) -> None:
    """Sets `pure[p0][p1]...[pn] = value`, making the nested dicts on the way."""
    *parents, last = path
    for key in parents:
        pure = pure.setdefault(key, {})
    pure[last] = value


def to_pure(specs: list[HFTensor], read: Callable[[str], np.ndarray], dtype: str,
            pure: dict | None = None) -> dict:
    """Reads every spec's tensor with `read(hf_key)`, converts it to our layout and `dtype`."""
    pure = {} if pure is None else pure
    for s in specs:
        put(pure, s.path, np.ascontiguousarray(s.to_ours(read(s.hf_key)).astype(NP_DTYPES[dtype])))
    return pure


def to_hf(specs: list[HFTensor], pure: dict, dtype: str) -> dict[str, np.ndarray]:
    """The checkpoint tensors, by key in spec order, of a (host) pure parameter dict."""
    tensors = {}
    for s in specs:
        leaf = functools.reduce(operator.getitem, s.path, pure)
        tensor = np.asarray(s.to_hf(np.asarray(leaf))).astype(NP_DTYPES[dtype])
        tensors[s.hf_key] = np.ascontiguousarray(tensor)
    return tensors


def build_model(make: Callable[[], nnx.Module], pure: dict) -> nnx.Module:
    """The module `make()` holding `pure`, built abstractly so no random weights are made."""
    abstract = nnx.eval_shape(make)
    graphdef, state = nnx.split(abstract)
    want = jax.tree.map(lambda x: (x.shape, x.dtype), state.to_pure_dict())
    got = jax.tree.map(lambda x: (x.shape, x.dtype), pure)
    # A bug in the weight map, not bad input.
    assert want == got, f"weight map and {type(abstract).__name__} disagree"
    # device_put, not jnp.asarray: the latter compiles a tiny program per distinct shape.
    nnx.replace_by_pure_dict(state, jax.device_put(pure))
    return nnx.merge(graphdef, state)


def listing(keys: list[str], show: int = 3) -> str:
    """`a, b, c and 4 more`: the first few of many tensor names, for one-line errors."""
    more = f" and {len(keys) - show} more" if len(keys) > show else ""
    return ", ".join(keys[:show]) + more
