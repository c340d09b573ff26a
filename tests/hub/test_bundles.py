"""Release bundles (emotive/infer/bundle/, emotive/hub/release.py): releasing a run and
loading the bundle gives bit-identical outputs to loading the checkpoint, for ser, student,
speaker, asr, codec and tts (float32), and within bfloat16 rounding for a bfloat16 release;
tampering (a changed byte, a removed or added file, a wrong dtype or shape, a config of
another family) is refused in one line; card metrics equal the eval report JSON; sharded
weights; the bundle is about parameter bytes; `emotive release` / `emotive bundle` / every
`--ckpt` and `emotive.load` take bundles.

Runs are checkpoints of random weights (and random batch-norm statistics) written the way
the trainer writes them, so no training is waited for."""

import hashlib
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from flax import nnx

import emotive
from emotive import cli, configs
from emotive.codecs.text import TTSVocab, train_bpe
from emotive.configs import base
from emotive.data.pipelines.tts import VocabCarryingIterator
from emotive.errors import UserError
from emotive.evals.common import eval_dir
from emotive.hub.card import read_report
from emotive.hub.release import release
from emotive.infer import bundle
from emotive.infer.asr import Recognizer, _log_probs
from emotive.infer.codec import LoadedCodec
from emotive.infer.emotion import EmotionPredictor
from emotive.infer.speaker import SpeakerEmbedder
from emotive.infer.tts import TTSPipeline
from emotive.infer.tts_model import load_tts
from emotive.models.codec import Codec
from emotive.train.checkpoint import Checkpointer
from emotive.train.tasks import make_task
from emotive.train.tasks.tts import build_vocab, model_vocab_size

from tests.conftest import MICRO

RATE = 16000
WORDS = "oak table river light stone green quiet morning bird".split()


def _fill(rng):
    def fill(path, x):
        name = str(path[-1].key)
        if name in ("scale", "var"):
            return (1 + 0.2 * rng.random(x.shape)).astype(x.dtype)
        scale = 0.1 if len(x.shape) < 2 else 1 / np.sqrt(np.prod(x.shape[:-1]))
        return (scale * rng.standard_normal(x.shape)).astype(x.dtype)
    return fill


def _random_state(make, param_filter, seed):
    """(params, rest) pure dicts of `make(rngs)` with numpy random values (no RNG compiles);
    batch-norm statistics random too, so the bundle's `rest` is really carried."""
    abstract = nnx.eval_shape(lambda: make(nnx.Rngs(seed)))
    _, params, rest = nnx.split(abstract, param_filter, ...)
    rng = np.random.default_rng(seed)
    return tuple(jax.tree_util.tree_map_with_path(_fill(rng), s.to_pure_dict())
                 for s in (params, rest))


class _NoIterator:
    def get_state(self):
        return {}


def save_run(cfg, path, seed=0, step=5):
    """A checkpoint as `emotive train` writes it (params and rest; a TTS run's vocabulary
    in its iterator state: a BPE, or eSpeak's phonemes with vocab.text_frontend=phoneme),
    with random weights."""
    data_iter = None
    if cfg.task == "codec":
        params, _ = _random_state(lambda rngs: Codec(cfg.model, rngs=rngs), nnx.Param, seed)
        state = {"params": {"generator": {"codec": params}}}
    else:
        task = make_task(cfg)
        params, rest = _random_state(task.make_model, task.param_filters["model"], seed)
        state = {"params": {"model": params}, "rest": rest}
    if cfg.task == "tts" and cfg.vocab.text_frontend == "phoneme":
        vocab = build_vocab(cfg, {})  # eSpeak's phonemes, in the config's layout (ella_v too)
    elif cfg.task == "tts":
        texts = [" ".join(np.random.default_rng(i).choice(WORDS, 6)) + "." for i in range(40)]
        vocab = TTSVocab(train_bpe(texts, 300), cfg.vocab.codebook_size, cfg.vocab.emotions,
                         cfg.vocab.intensities, text_vocab_size=300, pad_to=64)
    if cfg.task == "tts":
        assert vocab.vocab_size == model_vocab_size(cfg)
        data_iter = VocabCarryingIterator(_NoIterator(), vocab.to_json())
    ckpt = Checkpointer(path / "checkpoints", async_save=False)
    ckpt.save(step, {"step": jnp.int32(step), **state}, data_iter, base.to_dict(cfg))
    ckpt.close()
    return path


TINY = {
    "ser": [], "student": [], "speaker": [], "asr": [],
    "codec": MICRO + ["model.fsq_levels=4,4,3"],
    "tts": ["vocab.codebook_size=48", "vocab.bpe_size=300", "vocab.pad_to=64",
            "vocab.speaker_slots=0", "data.seq_len=160", "model.num_layers=1",
            "model.d_model=32", "model.mlp_dim=64"],
}


@pytest.fixture(scope="module")
def data_dir(tiny_speech_data):
    return tiny_speech_data


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("bundle_runs")
    out = {}
    for seed, (family, overrides) in enumerate(TINY.items()):
        data = [f"data.data_dir={data_dir}"] if family != "tts" else []
        out[family] = save_run(configs.load(family, "tiny", overrides + data),
                               root / family, seed=seed)
    return out


@pytest.fixture(scope="module")
def bundles(runs, tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles")
    return {family: release(run, root / family) for family, run in runs.items()}


def _audio(batch=2, seconds=0.7, seed=0):
    rng = np.random.default_rng(seed)
    audio = (0.1 * rng.standard_normal((batch, int(seconds * RATE)))).astype(np.float32)
    return audio, np.array([audio.shape[1], audio.shape[1] * 2 // 3], np.int32)[:batch]


def _outputs(family, predictor):
    """Every output the family's predictor gives on fixed inputs, as numpy arrays."""
    audio, lengths = _audio()
    if family in ("ser", "student"):
        out = predictor.predict(audio, lengths)
        return [out["adv"]] + ([out["logits"]] if out["logits"] is not None else [])
    if family == "speaker":
        return [predictor.embed(audio, lengths)]
    if family == "asr":
        return [np.asarray(a) for a in predictor.apply(_log_probs, audio, lengths)]
    if family == "codec":
        codes, frames = predictor.encode(audio, lengths)
        return [codes, frames, predictor.decode(codes, frames)]
    cfg, model, vocab, _ = predictor
    prompt = vocab.prompt_ids("oak table.", emotion="happy", intensity=1)
    return [np.asarray(model(jnp.asarray([prompt])))]


def _load(family, path):
    return load_tts(path) if family == "tts" else emotive.load(path)


@pytest.mark.parametrize("family", list(TINY))
def test_bundle_outputs_equal_the_checkpoint_bit_for_bit(family, runs, bundles):
    from_run, from_bundle = _load(family, runs[family]), _load(family, bundles[family])
    assert type(from_run) is type(from_bundle)
    for a, b in zip(_outputs(family, from_run), _outputs(family, from_bundle), strict=True):
        np.testing.assert_array_equal(a, b)
    if family == "tts":
        assert from_bundle.vocab.to_json() == from_run.vocab.to_json()
        assert from_bundle.step == from_run.step == 5 and from_bundle.cfg == from_run.cfg
    else:
        assert from_bundle.step == from_run.step == 5 and from_bundle.cfg == from_run.cfg


def test_predictor_classes_take_bundles(bundles):
    assert isinstance(emotive.load(bundles["ser"]), EmotionPredictor)
    assert isinstance(EmotionPredictor.load(bundles["student"]), EmotionPredictor)
    assert isinstance(SpeakerEmbedder.load(bundles["speaker"]), SpeakerEmbedder)
    assert isinstance(Recognizer.load(bundles["asr"]), Recognizer)
    assert isinstance(LoadedCodec.load(bundles["codec"]), LoadedCodec)
    with pytest.raises(UserError, match="holds a 'speaker' model, not asr"):
        Recognizer.load(bundles["speaker"])
    with pytest.raises(UserError, match="holds a 'ser' model, not codec"):
        LoadedCodec.load(bundles["ser"])


def test_bundle_files_and_size(bundles, runs):
    root = bundles["ser"]
    names = sorted(p.name for p in root.iterdir())
    assert names == ["README.md", "SHA256SUMS", "config.json", "model.safetensors"]
    tts_names = sorted(p.name for p in bundles["tts"].iterdir())
    assert {"tts_vocab.json", "tokenizer.json"} <= set(tts_names)
    # SHA256SUMS is sha256sum's format over every other file
    lines = (root / "SHA256SUMS").read_text().splitlines()
    assert sorted(line.split("  ")[1] for line in lines) == [n for n in names
                                                             if n != "SHA256SUMS"]
    for line in lines:
        digest, name = line.split("  ")
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest
    # config.json is the resolved config as configs.base.to_json writes it
    assert (root / "config.json").read_text() == base.to_json(_load("ser", runs["ser"]).cfg) + "\n"
    # only parameters and batch-norm statistics: the weights are their bytes plus a header
    for family, path in bundles.items():
        info = bundle.summary(path)
        weights = (path / "model.safetensors").stat().st_size
        tensors = info["parameter_bytes"] + info["rest_bytes"]
        assert tensors <= weights <= tensors * 1.02 + 16384, family
        small = sum(s for n, s in info["files"].items() if not n.endswith(".safetensors"))
        assert small < (200_000 if family == "tts" else 30_000), (family, info["files"])
    student = bundle.summary(bundles["student"])
    assert student["rest_values"] > 0  # the student's batch-norm statistics


def test_files_are_standard_safetensors(bundles):
    load_file = pytest.importorskip("safetensors.numpy").load_file  # the hf extra
    path = bundles["student"] / "model.safetensors"
    ours = bundle.SafetensorsFile(path)
    theirs = load_file(str(path))
    assert sorted(theirs) == sorted(ours.tensors)
    for key, value in theirs.items():
        np.testing.assert_array_equal(value, ours.read(key))
    assert any(k.startswith("rest/norms.0.") for k in theirs)
    assert "params/attention.kernel" in theirs


def _copy(src, tmp_path, name="b"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def _rewrite_tensor(root, key, transform):
    """Rewrites model.safetensors with tensor `key` replaced by transform(array)."""
    f = bundle.SafetensorsFile(root / "model.safetensors")
    arrays = {k: f.read(k) for k in f.tensors}
    arrays[key] = transform(arrays[key])
    entries = [(k, a.shape, bundle.dtype_code(a.dtype)) for k, a in sorted(arrays.items())]
    bundle.write_safetensors(root / "model.safetensors", entries, arrays.__getitem__,
                             f.metadata)


def _one_line(exc_info, *words):
    text = str(exc_info.value)
    assert "\n" not in text and all(w in text for w in words), text


def test_tampering_is_refused(bundles, tmp_path):
    src = bundles["ser"]
    tensors = bundle.SafetensorsFile(src / "model.safetensors").tensors
    key = next(k for k, (_, shape, _) in sorted(tensors.items()) if len(shape) == 2)

    changed = _copy(src, tmp_path, "changed")  # one byte of the weights
    data = bytearray((changed / "model.safetensors").read_bytes())
    data[-3] ^= 0x01
    (changed / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(UserError) as e:
        emotive.load(changed)
    _one_line(e, "model.safetensors", "does not match its SHA256SUMS")

    removed = _copy(src, tmp_path, "removed")
    (removed / "README.md").unlink()
    with pytest.raises(UserError) as e:
        EmotionPredictor.load(removed)
    _one_line(e, "README.md", "missing")

    added = _copy(src, tmp_path, "added")
    (added / "extra.json").write_text("{}")
    with pytest.raises(UserError) as e:
        EmotionPredictor.load(added)
    _one_line(e, "extra.json", "not listed")
    assert cli.main(["bundle", "verify", str(added)]) == 2

    downloaded = _copy(src, tmp_path, "downloaded")  # huggingface_hub's local_dir metadata
    (downloaded / ".cache" / "huggingface").mkdir(parents=True)
    (downloaded / ".cache" / "huggingface" / "README.md.metadata").write_text("x")
    assert "README.md.metadata" not in " ".join(bundle.verify_bundle(downloaded))

    half = _copy(src, tmp_path, "half")  # float16 (a dtype a bundle never holds), sums fixed
    _rewrite_tensor(half, key, lambda a: a.astype(np.float16))
    bundle.write_sums(half)
    bundle.verify_bundle(half)
    with pytest.raises(UserError) as e:
        EmotionPredictor.load(half)
    _one_line(e, key, "dtype F16", "F32")

    shape = _copy(src, tmp_path, "shape")
    _rewrite_tensor(shape, key, lambda a: a[..., :-1])
    bundle.write_sums(shape)
    with pytest.raises(UserError) as e:
        EmotionPredictor.load(shape)
    _one_line(e, key, "shape")

    extra = _copy(src, tmp_path, "extra_tensor")
    f = bundle.SafetensorsFile(extra / "model.safetensors")
    arrays = {k: f.read(k) for k in f.tensors}
    arrays["params/backdoor.kernel"] = np.zeros((2, 2), np.float32)
    entries = [(k, a.shape, bundle.dtype_code(a.dtype)) for k, a in sorted(arrays.items())]
    bundle.write_safetensors(extra / "model.safetensors", entries, arrays.__getitem__, {})
    bundle.write_sums(extra)
    with pytest.raises(UserError) as e:
        EmotionPredictor.load(extra)
    _one_line(e, "params/backdoor.kernel", "not a variable")

    other = _copy(src, tmp_path, "other_family")  # the config says speaker, sums fixed
    raw = json.loads((other / "config.json").read_text())
    raw["task"] = "speaker"
    (other / "config.json").write_text(json.dumps(raw))
    bundle.write_sums(other)
    with pytest.raises(UserError) as e:
        EmotionPredictor.load(other)
    _one_line(e, "'speaker'", "not ser or student")
    with pytest.raises(UserError) as e:
        emotive.load(other)  # as a speaker bundle its config does not parse
    assert "\n" not in str(e.value)

    garbage = _copy(src, tmp_path, "garbage")  # a header that lies about its length, sums fixed
    data = bytearray((garbage / "model.safetensors").read_bytes())
    data[:8] = (len(data) * 2).to_bytes(8, "little")
    (garbage / "model.safetensors").write_bytes(bytes(data))
    bundle.write_sums(garbage)
    with pytest.raises(UserError) as e:
        EmotionPredictor.load(garbage)
    _one_line(e, "model.safetensors", "not a safetensors file")


def test_bfloat16_release_and_shards(runs, tmp_path):
    full = emotive.load(runs["asr"])
    half = release(runs["asr"], tmp_path / "asr-bf16", dtype="bfloat16", shard_bytes=40_000)
    names = sorted(p.name for p in half.iterdir())
    shards = [n for n in names if n.startswith("model-")]
    assert len(shards) >= 2 and bundle.INDEX_FILE in names and "model.safetensors" not in names
    info = bundle.summary(half)
    assert info["dtype"] == "BF16" and info["metadata"]["dtype"] == "bfloat16"
    assert info["parameter_bytes"] == 2 * full.num_params
    loaded = emotive.load(half)
    leaves = jax.tree.leaves(loaded._state.filter(nnx.Param))
    assert {x.dtype for x in leaves} == {jnp.dtype(jnp.float32)}  # cast back on load
    for a, b in zip(jax.tree.leaves(full._state.filter(nnx.Param)), leaves):
        np.testing.assert_array_equal(np.asarray(a).astype(jnp.bfloat16).astype(np.float32), b)
    # a shard removed from the index's list is a missing file
    (half / shards[-1]).unlink()
    with pytest.raises(UserError, match=shards[-1]):
        emotive.load(half)


@pytest.fixture(scope="module")
def reports(runs, data_dir, tmp_path_factory):
    """Real `emotive eval` report folders of the asr and ser runs (a few test clips)."""
    root = tmp_path_factory.mktemp("reports")
    for family in ("asr", "ser"):
        assert cli.main(["eval", family, "--ckpt", str(runs[family]), "--data-dir",
                         str(data_dir), "--split", "test", "--limit", "4", "--out",
                         str(root / family)]) == 0
    return {"asr": root / "asr", "ser": root / "ser"}


def _front_matter(path):
    text = (path / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text[4:text.index("\n---\n", 4)]), text


def test_card_metrics_equal_the_eval_json(runs, reports, tmp_path, capsys):
    out = tmp_path / "asr-card"
    assert cli.main(["release", str(runs["asr"]), str(out), "--eval",
                     str(reports["asr"])]) == 0
    report = json.loads((reports["asr"] / "report.json").read_text())
    meta, text = _front_matter(out)
    assert meta["license"] == "apache-2.0" and meta["pipeline_tag"] == \
        "automatic-speech-recognition" and "emotive" in meta["tags"]
    assert meta["datasets"] == ["emotive_speech"]
    (result,) = meta["model-index"][0]["results"]
    values = {m["type"]: m["value"] for m in result["metrics"]}
    assert values == {"cer": report["overall"]["cer"], "wer": report["overall"]["wer"]}
    assert result["dataset"]["split"] == "test"
    assert "emotive train asr --preset tiny --set data.data_dir=" in text
    assert "git commit" in text and "## Limitations" in text
    # the card's numbers, read back by `emotive bundle info`
    capsys.readouterr()
    assert cli.main(["bundle", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["task"] == "asr" and {m["type"]: m["value"] for m in
                                      info["card_metrics"]} == values
    assert cli.main(["bundle", "info", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "asr bundle" in printed and "model.safetensors" in printed and "CER" in printed
    hub = pytest.importorskip("huggingface_hub")
    card = hub.ModelCard.load(out / "README.md")
    (evaluation,) = [r for r in card.data.eval_results if r.metric_type == "cer"]
    assert evaluation.metric_value == report["overall"]["cer"]
    assert card.data.license == "apache-2.0"


def test_ser_card_and_bad_reports(runs, reports, tmp_path):
    ser = read_report(reports["ser"], "ser")
    report = json.loads((reports["ser"] / "report.json").read_text())
    got = {kind: value for kind, _, value in ser["metrics"]}
    assert got["uar"] == report["overall"]["uar"]
    assert got["ccc_valence"] == report["overall"]["ccc"]["valence"]
    with pytest.raises(UserError, match="holds none of the metrics of a ser card"):
        read_report(reports["asr"], "ser")
    with pytest.raises(UserError, match="a report of 'ser', not 'asr'"):
        read_report(reports["ser"], "asr")
    with pytest.raises(UserError, match="a report of 'ser', not 'student'"):
        read_report(reports["ser"], "student")
    with pytest.raises(UserError, match="no report.json"):
        release(runs["ser"], tmp_path / "x", eval_reports=[tmp_path])
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.partial").exists()
    with pytest.raises(UserError, match="not empty"):
        release(runs["ser"], reports["ser"])


def test_pipeline_bundle_speaks_alone(runs, bundles, tmp_path, capsys):
    out = tmp_path / "tts-pipeline"
    release(runs["tts"], out, codec=bundles["codec"])
    assert (out / "codec" / "SHA256SUMS").is_file()
    assert "codec/model.safetensors" in bundle.verify_bundle(out)
    pipeline = emotive.load(out)
    assert isinstance(pipeline, TTSPipeline)
    assert isinstance(emotive.load(bundles["tts"], codec=runs["codec"]), TTSPipeline)
    kw = dict(seed=3, max_seconds=0.2)
    (alone,) = pipeline.synthesize("Oak table.", **kw)
    lm, codec = load_tts(runs["tts"]), LoadedCodec.load(runs["codec"])
    from emotive.infer.tts import synthesize

    np.testing.assert_array_equal(alone, synthesize(lm, codec, "Oak table.", **kw)[0])
    wav = tmp_path / "o.wav"
    assert cli.main(["tts", "Oak table.", "--bundle", str(out), "--max-seconds", "0.2",
                     "--out", str(wav)]) == 0 and wav.is_file()
    assert cli.main(["tts", "Oak table.", "--ckpt", str(bundles["tts"]), "--out",
                     str(wav)]) == 2
    assert "holds no codec/ bundle" in capsys.readouterr().err


def test_eval_beside_a_bundle_not_inside(bundles):
    path = eval_dir(bundles["asr"], "asr", "test", 5)
    assert path.parent == bundles["asr"].parent and path.name == "asr-eval-asr-test-5"


def test_sharded_restore_writes_the_same_bytes(runs, bundles, tmp_path):
    """The multi-host path (restore over all 8 devices, gather leaf by leaf) on one process
    writes the very bytes of the plain path."""
    from emotive.hub.release import _read_run
    from emotive.hub.weights import write_weights

    step_dir, cfg = _read_run(runs["student"])
    (tmp_path / "w").mkdir()
    write_weights(tmp_path / "w", step_dir, cfg, dtype="float32", shard_bytes=None, step=5,
                  sharded=True)
    assert (tmp_path / "w" / "model.safetensors").read_bytes() == \
        (bundles["student"] / "model.safetensors").read_bytes()


def test_a_report_of_another_step_is_refused(runs, reports, tmp_path):
    moved = tmp_path / "old"
    shutil.copytree(reports["asr"], moved)
    report = json.loads((moved / "report.json").read_text())
    (moved / "report.json").write_text(json.dumps({**report, "step": 4}))
    with pytest.raises(UserError, match="evaluated step 4, but the released checkpoint is "
                                        "step 5"):
        release(runs["asr"], tmp_path / "x", eval_reports=[moved])


def test_a_release_states_its_role_and_a_judge_never_guides_search(runs, tmp_path):
    from emotive.search.verifiers import load_verifier

    judge = release(runs["ser"], tmp_path / "ser-judge", role="judge")
    assert bundle.summary(judge)["role"] == "judge"
    card = (judge / bundle.CARD_FILE).read_text()
    assert "role:judge" in card and "## Role" in card and "never used in training" in card
    with pytest.raises(UserError, match="is a judge"):
        load_verifier("emotion", judge)
    verifier = release(runs["ser"], tmp_path / "ser-verifier", role="verifier")
    assert bundle.bundle_role(verifier) == "verifier"
    assert load_verifier("emotion", verifier).name == "emotion"
    assert bundle.bundle_role(release(runs["ser"], tmp_path / "plain")) is None
    with pytest.raises(UserError, match="--role must be one of"):
        release(runs["ser"], tmp_path / "bad", role="oracle")
    assert not (tmp_path / "bad").exists()


def test_a_labelled_eval_names_its_data_in_the_card(runs, tmp_path):
    from emotive.hub.card import read_report

    out = tmp_path / "eval-heldout"
    assert cli.main(["eval", "ser", "--ckpt", str(runs["ser"]), "--split", "test", "--limit",
                     "4", "--out", str(out), "--label", "heldout_voices"]) == 0
    assert read_report(out, "ser")["dataset"] == "emotive_speech/heldout_voices"
    assert json.loads((out / "report.json").read_text())["dataset_label"] == "heldout_voices"
