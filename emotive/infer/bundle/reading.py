"""Reading a verified bundle into the family's model: tensor names, config, every tensor checked.

    cfg, params, rest = read_bundle("releases/ser-judge", task="ser")   # pure dicts
    graphdef, params_state, rest_state = abstract_parts(cfg)          # what they fill

Tensor names are "params/<dotted path>" and "rest/<dotted path>" (non-parameter variables:
batch-norm statistics, running moments). Dotted paths are the keys of
`nnx.State.to_pure_dict()` joined by "." (an nnx.List's items are integers:
"encoder.convs.0.kernel"). The released module is the task's model for every single-group
family, and the generator (`Codec`) for the codec GAN (`released_module`).

`read_bundle` verifies the bundle first (SHA256SUMS, files.py), then checks every tensor
against the abstract model the family builds (name, shape, dtype; one-line UserErrors naming
the tensor). A bfloat16 release stores floating parameters as BF16; they are cast back to the
model's dtype here.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, Callable

import jax
import numpy as np
from flax import nnx

from emotive import configs
from emotive.configs import base
from emotive.errors import UserError
from emotive.infer.bundle.files import CONFIG_FILE, verify_bundle
from emotive.infer.bundle.weights import dtype_code, open_weights, weights_metadata

PARAMS, REST = "params", "rest"  # the two key prefixes
# Config fields (dotted) that name another model the bundle holds in a subfolder, a bundle
# of its own: `emotive release` writes them relative to the bundle ("vae"), and read_config
# makes them absolute paths inside it, so the family's task finds them from any directory.
NESTED_FIELDS: dict[str, tuple[str, ...]] = {
    "motion_ldm": ("vae.ckpt", "content.asr_ckpt", "style.speaker_ckpt")}


# ------------------------------------------------------------------------ keys

def dotted(path) -> str:
    """A pytree path of a pure dict (string keys, integer nnx.List items) as 'a.b.0.c'."""
    parts = []
    for entry in path:
        key = getattr(entry, "key", getattr(entry, "idx", None))
        text = str(key)
        if key is None or "." in text or "/" in text or not text:
            raise UserError(f"parameter path {path!r} cannot be written as a dotted key")
        parts.append(text)
    return ".".join(parts)


def flat_keys(prefix: str, tree) -> list[tuple[str, Any]]:
    """[("prefix/dotted.path", leaf)] of a pure dict, in sorted key order."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return sorted((f"{prefix}/{dotted(path)}", leaf) for path, leaf in leaves)


# ------------------------------------------------------------------------ the model

def config_class(experiment: str):
    """The config dataclass of an experiment, from its first preset."""
    table = configs.presets(experiment)
    return type(next(iter(table.values()))())


def released_module(cfg) -> tuple[Callable[[nnx.Rngs], nnx.Module], Any]:
    """(make(rngs) -> the module a bundle of `cfg`'s family holds, its parameter filter).

    Single-group families: the task's own model and filter (everything else is `rest`).
    The codec GAN: its generator, the `Codec` (the discriminators and the semantic head
    only train it), built directly because the codec task loads its semantic teacher."""
    if cfg.task == "codec":
        from emotive.models.codec import Codec

        return (lambda rngs: Codec(cfg.model, rngs=rngs)), nnx.Param
    from emotive.train.tasks import make_task  # the task builds the model it trained

    built = make_task(cfg)
    if built.groups != ("model",):
        raise UserError(f"task {cfg.task!r} has parameter groups {built.groups}; bundles hold "
                        "single-group tasks (and the codec's generator) only")
    return built.make_model, built.param_filters["model"]


def abstract_parts(cfg):
    """(graphdef, abstract params state, abstract rest state) of the released module."""
    make, param_filter = released_module(cfg)
    abstract = nnx.eval_shape(lambda: make(nnx.Rngs(0)))
    return nnx.split(abstract, param_filter, ...)


def read_config(root: pathlib.Path, task: str | tuple[str, ...] | None = None):
    """The bundle's config.json as the family's config (after `verify_bundle`)."""
    tasks = (task,) if isinstance(task, str) else tuple(task or ())
    try:
        raw = json.loads((root / CONFIG_FILE).read_text())
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise UserError(f"bundle {root}: {CONFIG_FILE} is unreadable ({str(exc)[:120]})") \
            from None
    family = raw.get("task")
    if tasks and family not in tasks:
        raise UserError(f"bundle {root} holds a {family!r} model, not {' or '.join(tasks)}; "
                        f"pass a bundle released from `emotive train {tasks[0]}`")
    from emotive import registry

    if family not in registry.FAMILIES:
        raise UserError(f"bundle {root}: {CONFIG_FILE} names task {family!r}, which is no "
                        "emotive family")
    for field in NESTED_FIELDS.get(family, ()):
        *parents, key = field.split(".")
        section = raw
        for part in parents:
            section = section.get(part) if isinstance(section, dict) else None
        value = section.get(key) if isinstance(section, dict) else None
        if isinstance(value, str) and value and not pathlib.Path(value).is_absolute():
            section[key] = str(pathlib.Path(root).absolute() / value)
    return base.from_dict(config_class(family), raw)


def read_bundle(root, *, task: str | tuple[str, ...] | None = None, verify: bool = True):
    """Verifies bundle `root`, then reads (cfg, params pure dict, rest pure dict) of its
    released module, every tensor checked against the abstract model the family builds.

    UserError (one line, naming the file or tensor) for a changed, missing or extra file,
    a config of another family than `task`, or a tensor that is missing, unexpected, or of
    the wrong shape or dtype. BF16 tensors of float parameters are cast to the model's dtype.
    """
    root = pathlib.Path(root)
    if verify:
        verify_bundle(root)
    cfg = read_config(root, task)
    _, params, rest = abstract_parts(cfg)
    where = open_weights(root)
    expected = {}
    for prefix, state in ((PARAMS, params), (REST, rest)):
        for key, leaf in flat_keys(prefix, state.to_pure_dict()):
            expected[key] = leaf
    for key in sorted(where):
        if key not in expected:
            raise UserError(f"bundle {root}: tensor {key} is not a variable of this {cfg.task} "
                            "model (config.json and the weights do not match)")
    for key in sorted(expected):
        if key not in where:
            raise UserError(f"bundle {root}: tensor {key} is missing from the weights")
    values = {}
    for key, want in expected.items():
        code, shape, _ = where[key].tensors[key]
        if shape != tuple(want.shape):
            raise UserError(f"bundle {root}: tensor {key} has shape {list(shape)} but the "
                            f"model built from config.json has {list(want.shape)}")
        want_code = dtype_code(want.dtype)
        cast = code == "BF16" and key.startswith(PARAMS + "/") and np.issubdtype(
            np.dtype(want.dtype), np.floating)
        if code != want_code and not cast:
            raise UserError(f"bundle {root}: tensor {key} has dtype {code} but the model "
                            f"expects {want_code}" + (" (or BF16)" if key.startswith(PARAMS)
                                                      else ""))
        array = where[key].read(key)
        values[key] = array.astype(want.dtype) if cast and code != want_code else array

    def fill(prefix, state):
        return jax.tree_util.tree_map_with_path(
            lambda path, _: values[f"{prefix}/{dotted(path)}"], state.to_pure_dict())

    return cfg, fill(PARAMS, params), fill(REST, rest)


def bundle_step(root) -> int:
    """The training step recorded in the weights' metadata (0 if absent)."""
    step = weights_metadata(pathlib.Path(root)).get("step", "0")
    return int(step) if step.isdigit() else 0
