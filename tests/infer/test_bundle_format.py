"""The bundle's weights format (emotive/infer/bundle/weights.py) and card reading: every
committed release reads into its model, and its weights rewrite to their very bytes; a file
of one dtype is byte for byte what `safetensors.numpy.save` writes; the writer holds one
tensor at a time; a header that claims more bytes than the file holds is one line naming the
file; the model card reads through huggingface_hub as plain YAML sees it."""

import gc
import json
import pathlib
import shutil
import struct
import weakref

import ml_dtypes
import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file, save

from emotive.errors import UserError
from emotive.infer import bundle
from emotive.infer.bundle.weights import ordered_metadata

RELEASES = pathlib.Path(__file__).resolve().parents[2] / "releases"
# Every committed bundle, nested ones (tts-small/codec/) included.
BUNDLES = sorted(p.parent for p in RELEASES.rglob("SHA256SUMS") if bundle.is_bundle(p.parent))
IDS = [str(p.relative_to(RELEASES)) for p in BUNDLES]


def _one_line(exc_info, *words):
    text = str(exc_info.value)
    assert "\n" not in text and all(w in text for w in words), text


def test_the_committed_bundles_are_found():
    names = {str(p.relative_to(RELEASES)) for p in BUNDLES}
    assert {"tts-small", "tts-small/codec", "ser-judge", "student"} <= names


@pytest.mark.parametrize("root", BUNDLES, ids=IDS)
def test_every_committed_bundle_reads_into_its_model(root):
    """read_bundle checks every tensor against the model config.json builds (the recognisers
    also run in tests/hub/test_releases.py; this covers the TTS model and its codec too)."""
    cfg, params, rest = bundle.read_bundle(root)
    assert cfg.task == json.loads((root / "config.json").read_text())["task"]
    arrays = [a for tree in (params, rest) for a in _leaves(tree)]
    assert arrays and all(np.isfinite(a).all() for a in arrays)
    assert bundle.bundle_step(root) > 0


def _leaves(tree):
    return [tree] if not isinstance(tree, dict) else [x for v in tree.values()
                                                      for x in _leaves(v)]


@pytest.mark.parametrize("root", BUNDLES, ids=IDS)
def test_committed_weights_rewrite_to_their_own_bytes(root, tmp_path):
    """Read with the package (every tensor and the metadata), written again in the order a
    release writes (keys sorted): the committed file, byte for byte."""
    path = root / bundle.WEIGHTS_FILE
    f = bundle.SafetensorsFile(path)
    assert list(f.metadata) == ["format", "task", "step", "dtype"]
    entries = [(key, info.shape, info.dtype) for key, info in sorted(f.tensors.items())]
    out = tmp_path / "model.safetensors"
    shuffled = dict(reversed(list(f.metadata.items())))  # the writer fixes the order itself
    bundle.write_safetensors(out, entries, f.read, shuffled)
    assert out.read_bytes() == path.read_bytes()


def test_one_dtype_is_what_the_package_writes(tmp_path):
    rng = np.random.default_rng(0)
    for dtype in (np.float32, ml_dtypes.bfloat16, np.int64):
        tensors = {f"layers.{i}.w": rng.standard_normal((i + 1, 3)).astype(dtype)
                   for i in range(12)}
        tensors["scalar"] = np.asarray(2, dtype)
        tensors["empty"] = np.zeros((0, 4), dtype)
        entries = [(k, t.shape, bundle.dtype_code(t.dtype)) for k, t in sorted(tensors.items())]
        out = tmp_path / f"{np.dtype(dtype).name}.safetensors"
        bundle.write_safetensors(out, entries, tensors.__getitem__, {"format": "pt"})
        assert out.read_bytes() == save(tensors, metadata={"format": "pt"})
        back = load_file(out)
        for key, value in tensors.items():
            np.testing.assert_array_equal(back[key], value)
            assert back[key].dtype == value.dtype


def test_metadata_order_is_fixed():
    meta = {"z": "1", "dtype": "float32", "a": "2", "step": "5", "format": "pt", "task": "tts"}
    assert list(ordered_metadata(meta)) == ["format", "task", "step", "dtype", "a", "z"]
    assert ordered_metadata(None) == {}


def test_the_writer_holds_one_tensor_at_a_time(tmp_path):
    entries = [(f"t{i}", (256, 64), "F32") for i in range(6)]
    alive = []

    def fetch(key):
        gc.collect()
        assert sum(ref() is not None for ref in alive) == 0, f"{key}: an earlier tensor is held"
        array = np.full((256, 64), int(key[1:]), np.float32)
        alive.append(weakref.ref(array))
        return array

    bundle.write_safetensors(tmp_path / "w.safetensors", entries, fetch, {"format": "pt"})
    back = load_file(tmp_path / "w.safetensors")
    assert [float(back[f"t{i}"][0, 0]) for i in range(6)] == list(range(6))


def test_shards_and_index(tmp_path):
    tensors = {f"w{i}": np.full((100,), i, np.float32) for i in range(5)}  # 400 bytes each
    entries = [(k, t.shape, "F32") for k, t in sorted(tensors.items())]
    names = bundle.write_shards(tmp_path, entries, tensors.__getitem__, {"format": "pt"}, 900)
    assert names == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    where = bundle.open_weights(tmp_path)
    assert {k: f.path.name for k, f in where.items()} == json.loads(
        (tmp_path / bundle.INDEX_FILE).read_text())["weight_map"]
    for key, value in tensors.items():
        np.testing.assert_array_equal(where[key].read(key), value)
    one = tmp_path / "one"
    one.mkdir()
    assert bundle.write_shards(one, entries, tensors.__getitem__, {}, None) == [
        bundle.WEIGHTS_FILE]
    assert sorted(p.name for p in one.iterdir()) == [bundle.WEIGHTS_FILE]


def _small_file(path):
    tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(4, np.int32)}
    entries = [(k, t.shape, bundle.dtype_code(t.dtype)) for k, t in sorted(tensors.items())]
    bundle.write_safetensors(path, entries, tensors.__getitem__, {"format": "pt"})
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return data, n, json.loads(data[8:8 + n])


def _with_header(header, body):
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + body


def test_a_header_claiming_more_bytes_than_the_file_holds(tmp_path):
    path = tmp_path / "model.safetensors"
    data, n, header = _small_file(path)
    assert bundle.SafetensorsFile(path).tensors["b"] == ("I32", (4,), 16)

    cases = {"truncated": data[:-3],
             "header length": struct.pack("<Q", len(data) * 2) + data[8:],
             "header cut": data[:8 + n // 2]}
    past = dict(header, b={"dtype": "I32", "shape": [8], "data_offsets": [24, 56]})
    cases["data_offsets past the end"] = _with_header(past, data[8 + n:])
    for case, damaged in cases.items():
        path.write_bytes(damaged)
        with pytest.raises(UserError) as e:
            bundle.SafetensorsFile(path)
        _one_line(e, str(path), "not a safetensors file")
        if case in ("truncated", "data_offsets past the end"):
            _one_line(e, "does not fit", f"{len(damaged):,} bytes")


def test_a_truncated_release_is_refused_after_its_sums(tmp_path):
    """Sums rewritten to match, so the header check is what refuses it."""
    root = tmp_path / "student"
    shutil.copytree(RELEASES / "student", root)
    weights = root / bundle.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-100])
    bundle.write_sums(root)
    bundle.verify_bundle(root)
    with pytest.raises(UserError) as e:
        bundle.read_bundle(root, task="student")
    _one_line(e, "student/model.safetensors", "not a safetensors file", "truncated")
    with pytest.raises(UserError) as e:
        bundle.summary(root)
    _one_line(e, "model.safetensors", "not a safetensors file")


def test_a_dtype_no_bundle_holds_is_refused(tmp_path):
    path = tmp_path / "f8.safetensors"
    path.write_bytes(_with_header(
        {"__metadata__": {}, "q": {"dtype": "F8_E4M3", "shape": [8], "data_offsets": [0, 8]}},
        bytes(8)))
    with pytest.raises(UserError) as e:
        bundle.SafetensorsFile(path)
    _one_line(e, str(path), "tensor q", "F8_E4M3")


def _plain_yaml(root):
    text = (root / bundle.CARD_FILE).read_text()
    return yaml.safe_load(text[4:text.index("\n---\n", 4)])


@pytest.mark.parametrize("root", BUNDLES, ids=IDS)
def test_the_card_reads_as_plain_yaml_sees_it(root):
    front = _plain_yaml(root)
    assert bundle.card_metadata(root) == front
    flat = [{"task": r["task"]["type"], "dataset": r["dataset"]["name"],
             "split": r["dataset"]["split"], "type": m["type"], "name": m["name"],
             "value": m["value"]}
            for model in front["model-index"] for r in model["results"] for m in r["metrics"]]
    assert flat and bundle.card_metrics(root) == flat


def test_cards_missing_or_broken(tmp_path):
    assert bundle.card_metadata(tmp_path) == {} and bundle.card_metrics(tmp_path) == []
    card = tmp_path / bundle.CARD_FILE
    card.write_text("# no front matter\n")
    assert bundle.card_metadata(tmp_path) == {} and bundle.card_metrics(tmp_path) == []
    card.write_text("---\nlicense: apache-2.0\n# never closed\n")
    with pytest.raises(UserError) as e:
        bundle.card_metadata(tmp_path)
    _one_line(e, "README.md", "no closing '---'")
    card.write_text("---\nlicense: [apache-2.0\n---\n# x\n")
    with pytest.raises(UserError) as e:
        bundle.card_metrics(tmp_path)
    _one_line(e, "README.md", "unreadable model card front matter")
