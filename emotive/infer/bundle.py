"""Release bundles: a self-verifying folder of safetensors, config.json and a model card.

    verify_bundle("releases/ser-base")                 # every file against SHA256SUMS
    cfg, params, rest = read_bundle("releases/ser-base", task="ser")
    loaded = load_trained("releases/ser-base", task="ser")   # the same, as a model

A bundle (written by `emotive release`, emotive/hub/release.py) holds

    model.safetensors        parameters ("params/<dotted path>") and non-parameter variables
                             ("rest/<dotted path>": batch-norm statistics, running moments) of
                             the released module; above a size threshold the shards
                             model-0000i-of-0000n.safetensors and model.safetensors.index.json
    config.json              the resolved experiment config (configs.base.to_json), with "task"
    vae/, asr/, speaker/     a motion_ldm bundle's VAE and condition encoders, each a bundle
                             of its own that config.json names relative to the bundle
                             (NESTED_FIELDS; read_config makes them absolute)
    tts_vocab.json, tokenizer.json   a TTS bundle's vocabulary (TTSVocab.save)
    README.md                the model card (Hugging Face YAML front matter)
    SHA256SUMS               `sha256sum` lines for every other file

Dotted paths are the keys of `nnx.State.to_pure_dict()` joined by "." (an nnx.List's items
are integers: "encoder.convs.0.kernel"). The released module is the task's model for every
single-group family, and the generator (`Codec`) for the codec GAN (`released_module`).

Reading trusts nothing: every file is hashed against SHA256SUMS before anything is parsed
(a changed, missing or extra file is a one-line UserError naming it), the safetensors
header is parsed as JSON with every offset, dtype and shape checked, and every tensor must
match the abstract model the task builds (name, shape, dtype). Nothing is ever unpickled:
the format is read here with numpy and `json` alone (no safetensors package needed; the
files are standard safetensors, which tests/hub/test_bundles.py checks with the library).
A bfloat16 release stores floating parameters as BF16; they are cast back to the model's
dtype on load.
"""

from __future__ import annotations

import hashlib
import json
import math
import pathlib
import struct
from typing import Any, Callable

import jax
import ml_dtypes
import numpy as np
from flax import nnx

from emotive import configs
from emotive.configs import base
from emotive.errors import UserError

CONFIG_FILE = "config.json"
SUMS_FILE = "SHA256SUMS"
CARD_FILE = "README.md"
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
PARAMS, REST = "params", "rest"  # the two key prefixes
# Download metadata huggingface_hub keeps inside a local_dir; never read, so not checked.
IGNORED_DIRS = (".cache/huggingface",)
# Config fields (dotted) that name another model the bundle holds in a subfolder, a bundle
# of its own: `emotive release` writes them relative to the bundle ("vae"), and read_config
# makes them absolute paths inside it, so the family's task finds them from any directory.
NESTED_FIELDS: dict[str, tuple[str, ...]] = {
    "motion_ldm": ("vae.ckpt", "content.asr_ckpt", "style.speaker_ckpt")}

# safetensors dtype codes <-> numpy dtypes (little-endian).
DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16), "I64": np.dtype("<i8"), "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"), "I8": np.dtype("i1"), "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("bool")}
MAX_HEADER_BYTES = 100 << 20  # what the safetensors library allows


def dtype_code(dtype) -> str:
    dtype = np.dtype(dtype)
    for code, known in DTYPES.items():
        if known == dtype:
            return code
    raise UserError(f"dtype {dtype} cannot be stored in a bundle (safetensors has no code "
                    "for it)")


def is_bundle(path) -> bool:
    """A folder with SHA256SUMS and config.json (a bundle, not an orbax run)."""
    path = pathlib.Path(path)
    return (path / SUMS_FILE).is_file() and (path / CONFIG_FILE).is_file()


# ------------------------------------------------------------------------ checksums

def sha256_file(path: pathlib.Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def bundle_files(root: pathlib.Path) -> list[str]:
    """Every file under `root` (relative POSIX names, sorted) but SHA256SUMS and ignored
    download metadata."""
    names = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if any(rel == d or rel.startswith(d + "/") for d in IGNORED_DIRS):
            continue
        if p.is_symlink() or not (p.is_dir() or p.is_file()):
            raise UserError(f"bundle {root}: {rel} is not a plain file; a bundle holds plain "
                            "files only")
        if p.is_dir():
            continue
        if rel != SUMS_FILE:
            names.append(rel)
    return names


def write_sums(root: pathlib.Path) -> pathlib.Path:
    """SHA256SUMS over every other file of `root`, in `sha256sum` format."""
    root = pathlib.Path(root)
    lines = [f"{sha256_file(root / name)}  {name}\n" for name in bundle_files(root)]
    (root / SUMS_FILE).write_text("".join(lines))
    return root / SUMS_FILE


def read_sums(root: pathlib.Path) -> dict[str, str]:
    path = root / SUMS_FILE
    sums = {}
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"bundle {root}: {SUMS_FILE} is unreadable ({exc})") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition(" ")
        name = name[1:] if name[:1] in (" ", "*") else name  # text or binary mode marker
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) \
                or not name or name.startswith("/") or ".." in name.split("/"):
            raise UserError(f"bundle {root}: {SUMS_FILE} line {number} is not "
                            "'<sha256>  <file>'; the bundle is damaged")
        if name in sums:
            raise UserError(f"bundle {root}: {SUMS_FILE} lists {name} twice")
        sums[name] = digest
    return sums


def verify_bundle(root) -> list[str]:
    """Checks every file of bundle `root` against its SHA256SUMS, before anything else is
    read; returns the file names. UserError naming the first changed, missing or extra file."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise UserError(f"bundle {root} does not exist; pass a folder written by "
                        "`emotive release`")
    if not (root / SUMS_FILE).is_file():
        raise UserError(f"bundle {root} has no {SUMS_FILE}; it was not written by `emotive "
                        "release` (or the file was removed)")
    sums = read_sums(root)
    present = bundle_files(root)
    missing = sorted(set(sums) - set(present))
    if missing:
        raise UserError(f"bundle {root}: {missing[0]} is listed in {SUMS_FILE} but missing; "
                        "download the bundle again")
    for name in present:
        if name not in sums:
            raise UserError(f"bundle {root}: {name} is not listed in {SUMS_FILE}; an extra "
                            "file is refused (remove it, or download the bundle again)")
    for name in present:
        if sha256_file(root / name) != sums[name]:
            raise UserError(f"bundle {root}: {name} does not match its SHA256SUMS entry; the "
                            "file was changed or damaged, download the bundle again")
    return present


# ------------------------------------------------------------------------ safetensors

def plan_shards(entries: list[tuple[str, tuple[int, ...], str]], shard_bytes: int | None
                ) -> list[list[tuple[str, tuple[int, ...], str]]]:
    """Entries (key, shape, dtype code) in order, cut into shards of at most `shard_bytes`
    (a tensor larger than that is a shard of its own); one shard when they all fit."""
    if shard_bytes is not None and shard_bytes <= 0:
        raise UserError(f"shard size must be positive, got {shard_bytes} bytes")
    shards: list[list] = [[]]
    size = 0
    for entry in entries:
        n = nbytes(entry[1], entry[2])
        if shard_bytes is not None and shards[-1] and size + n > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(entry)
        size += n
    return shards


def nbytes(shape, code: str) -> int:
    return math.prod(shape) * DTYPES[code].itemsize


def shard_names(count: int) -> list[str]:
    if count == 1:
        return [WEIGHTS_FILE]
    return [f"model-{i + 1:05d}-of-{count:05d}.safetensors" for i in range(count)]


def write_safetensors(path: pathlib.Path, entries: list[tuple[str, tuple[int, ...], str]],
                      fetch: Callable[[str], np.ndarray | None],
                      metadata: dict[str, str]) -> None:
    """One safetensors file, streamed: the header from `entries` (key, shape, dtype code)
    first, then each tensor as `fetch(key)` returns it, so at most one tensor is in memory.

    `fetch` may return None (a process other than 0 in a multi-host release: it takes part
    in the gather but writes nothing; then `path` is None too)."""
    header: dict[str, Any] = {"__metadata__": dict(metadata)}
    offset = 0
    for key, shape, code in entries:
        n = nbytes(shape, code)
        header[key] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned, as the library writes it
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
            f.write(array.tobytes())
    finally:
        if f is not None:
            f.close()


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice")
        out[key] = value
    return out


class SafetensorsFile:
    """The header of one safetensors file, checked; tensors read on demand with numpy."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        where = f"{path.parent.name}/{path.name}"
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise UserError(f"{where} is not a safetensors file (too short)")
            (n,) = struct.unpack("<Q", head)
            if n > min(MAX_HEADER_BYTES, size - 8):
                raise UserError(f"{where} is not a safetensors file (header of {n} bytes)")
            raw = f.read(n)
        try:
            header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
            if not isinstance(header, dict):
                raise ValueError("the header is not a JSON object")
        except (UnicodeDecodeError, ValueError) as exc:
            raise UserError(f"{where}: unreadable safetensors header ({str(exc)[:120]})") \
                from None
        meta = header.pop("__metadata__", None) or {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise UserError(f"{where}: the safetensors metadata is not a map of strings")
        self.metadata: dict[str, str] = meta
        self.start = 8 + n
        self.tensors: dict[str, tuple[str, tuple[int, ...], int]] = {}  # key -> code, shape, begin
        spans = []
        for key, info in header.items():
            try:
                code, shape = info["dtype"], tuple(info["shape"])
                begin, end = info["data_offsets"]
                ok = (code in DTYPES and all(isinstance(d, int) and d >= 0 for d in shape)
                      and isinstance(begin, int) and isinstance(end, int)
                      and end - begin == nbytes(shape, code) and set(info) == {
                          "dtype", "shape", "data_offsets"})
            except (TypeError, ValueError, KeyError):
                ok = False
            if not ok:
                raise UserError(f"{where}: tensor {key} has a malformed header entry {info!r}"
                                [:300])
            self.tensors[key] = (code, shape, begin)
            spans.append((begin, end, key))
        spans.sort()
        cursor = 0
        for begin, end, key in spans:
            if begin != cursor:
                raise UserError(f"{where}: tensor {key}'s bytes overlap or leave a gap; the "
                                "file is damaged")
            cursor = end
        if cursor != size - self.start:
            raise UserError(f"{where}: the header describes {cursor} data bytes but the file "
                            f"holds {size - self.start}; the file is damaged")

    def read(self, key: str) -> np.ndarray:
        code, shape, begin = self.tensors[key]
        count = math.prod(shape)
        with open(self.path, "rb") as f:
            f.seek(self.start + begin)
            data = np.fromfile(f, dtype=DTYPES[code], count=count)
        if data.size != count:
            raise UserError(f"{self.path.name}: tensor {key} is truncated")
        return data.reshape(shape)


def open_weights(root: pathlib.Path) -> dict[str, SafetensorsFile]:
    """{key: the file that holds it} over model.safetensors or the index's shards."""
    index = root / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
            if not isinstance(weight_map, dict):
                raise TypeError("weight_map is not an object")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"bundle {root}: {INDEX_FILE} is not a safetensors index "
                            f"({str(exc)[:120]})") from None
        names = sorted(set(weight_map.values()))
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


def weights_metadata(root: pathlib.Path) -> dict[str, str]:
    """The safetensors metadata of the (first) weights file: format, task, step, dtype."""
    where = open_weights(root)
    first = min(where.values(), key=lambda f: f.path.name) if where else None
    return dict(first.metadata) if first is not None else {}


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


def summary(root) -> dict:
    """Family, parameter count and bytes, dtypes and files of a (verified) bundle."""
    root = pathlib.Path(root)
    files = verify_bundle(root)
    raw = json.loads((root / CONFIG_FILE).read_text())
    where = open_weights(root)
    counts = {PARAMS: 0, REST: 0}
    sizes = {PARAMS: 0, REST: 0}
    dtypes: dict[str, set] = {PARAMS: set(), REST: set()}
    for key, f in where.items():
        code, shape, _ = f.tensors[key]
        group = key.split("/", 1)[0]
        if group in counts:
            counts[group] += math.prod(shape)
            sizes[group] += nbytes(shape, code)
            dtypes[group].add(code)
    return {"task": raw.get("task"), "parameters": counts[PARAMS],
            "parameter_bytes": sizes[PARAMS], "rest_values": counts[REST],
            "rest_bytes": sizes[REST], "dtype": ",".join(sorted(dtypes[PARAMS])) or "none",
            "rest_dtype": ",".join(sorted(dtypes[REST])) or "none",
            "metadata": weights_metadata(root),
            "files": {name: (root / name).stat().st_size for name in files}}


def card_metadata(root) -> dict:
    """The YAML front matter of the bundle's README.md as a dict ({} without one)."""
    import yaml

    path = pathlib.Path(root) / CARD_FILE
    if not path.is_file():
        return {}
    text = path.read_text()
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---\n", 4)
    if end < 0:
        raise UserError(f"{path}: the YAML front matter has no closing '---'")
    try:
        data = yaml.safe_load(text[4:end])
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: unreadable YAML front matter ({str(exc).splitlines()[0]})") \
            from None
    return data if isinstance(data, dict) else {}


def card_metrics(root) -> list[dict]:
    """[{task, dataset, split, type, name, value}] from the card's model-index."""
    out = []
    for model in card_metadata(root).get("model-index") or []:
        for result in model.get("results") or []:
            ds = result.get("dataset") or {}
            for m in result.get("metrics") or []:
                out.append({"task": (result.get("task") or {}).get("type"),
                            "dataset": ds.get("name"), "split": ds.get("split"),
                            "type": m.get("type"), "name": m.get("name"),
                            "value": m.get("value")})
    return out
