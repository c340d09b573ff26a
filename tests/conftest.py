"""Test set-up: 8 simulated CPU devices, so sharding is tested for real.

Under pytest-xdist (`-n 2`, the default `--dist load`) the tests of each module in
`ONE_WORKER` are sent to one worker as one unit, so its module-scoped fixtures (a trained or
released model, a built corpus, a transformers checkpoint) are built once per run instead of
once on each worker. Those units go first, largest first; every other test is sent on its
own after them, so the workers still finish together. An explicit `--dist` is left alone.

(`--dist loadgroup` with `xdist_group` marks would do the same, but pytest-xdist 3.8 groups
by rewriting `item._nodeid`, which pytest 9 no longer reads: the marks are silently ignored.)"""

import os
import pathlib
import shutil

# Must happen before JAX is imported anywhere.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from flax import nnx  # noqa: E402

# The tiny preset shrunk to the bone (strides 16, 20: still 320 samples per token; the full
# layout is tested in tests/models/test_codec.py), GAN terms on after 12 steps.
MICRO = ["model.channels=4,4,6", "model.strides=16,20", "model.dilations=",
         "model.activation=gelu", "model.encoder.d_model=8", "model.encoder.head_dim=4",
         "model.encoder.num_heads=2", "model.encoder.num_kv_heads=2", "model.encoder.mlp_dim=16",
         "model.decoder.num_layers=1", "model.decoder.d_model=8", "model.decoder.head_dim=4",
         "model.decoder.num_heads=2", "model.decoder.num_kv_heads=2", "model.decoder.mlp_dim=16",
         "disc.periods=2", "disc.period_channels=4", "disc.spec_n_ffts=", "disc.spec_hops=",
         "loss.mel_n_ffts=512", "loss.mel_n_mels=40", "loss.gan_start_step=12",
         "data.crop_seconds=0.32", "optim.lr=3e-3", "optim.warmup_steps=3",
         "train.batch_size=4", "train.steps=24", "train.log_every=1", "train.eval_every=24",
         "train.eval_batches=1", "train.ckpt_every=24", "train.async_ckpt=false",
         "train.peak_tflops=1.0"]

# Test modules (paths from the repository root) whose module-scoped fixtures cost seconds.
ONE_WORKER = frozenset({
    "tests/test_motion_cli.py",           # a trained motion VAE and LDM, their bundles
    "tests/hub/test_bundles.py",          # a corpus, six runs, their bundles, eval reports
    "tests/hub/test_hf_tts_export.py",    # two runs, a --hf-llama release, its torch model
    "tests/hub/test_hf_llama.py",         # transformers checkpoints
    "tests/search/test_search.py",        # the TTS runs of test_tts, a ser run
    "tests/infer/test_tts.py",            # a TTS and a codec run
    "tests/infer/test_classify.py",       # a corpus, a ser and a student run
    "tests/infer/test_transcribe.py",     # a corpus, an asr and a speaker run
    "tests/infer/test_codec_tools.py",    # a corpus, a codec run
    "tests/infer/test_sampling.py",       # a transformers Llama and ours
    "tests/train/test_ser_task.py",       # a corpus, a trained ser teacher
    "tests/train/test_speaker_asr_tasks.py",  # a corpus
    "tests/train/test_sharding.py",       # the one-device training run
    "tests/train/test_resume.py",         # a straight training run (a subprocess)
    "tests/models/test_wav2vec2.py",      # transformers checkpoints and their outputs
    "tests/models/test_motion_models.py",  # a motion generator
    "tests/models/test_codec.py",         # a codec and its jitted encode and decode
    "tests/models/test_wav2small.py",     # a Wav2Small model
    "tests/data/speech/test_synth.py",             # the tiny corpus
    "tests/data/motion/test_motion_synth.py",      # a speech corpus and its motion corpus
    "tests/data/pipelines/test_pipeline.py",       # a TFDS build
    "tests/data/builders/test_builders.py",        # LJSpeech and RAVDESS folders and builds
    "tests/data/builders/test_builders_tts.py",    # ESD and LibriTTS folders and builds
    "tests/data/builders/test_motion_builders.py", # BEAT2 and AMASS folders
})


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """xdist's load-scope scheduler, with one scope per ONE_WORKER module and one per test
    elsewhere (the other tests are spread one at a time, as `--dist load` spreads them)."""
    args = config.invocation_params.args
    if config.getvalue("dist") != "load" or any(
            a == "--dist" or a.startswith("--dist=") or a == "-d" for a in args):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class OneWorkerModules(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER else nodeid

    return OneWorkerModules(config, log)


# ----------------------------------------------------------------------------- random weights
# Test modules import this as `from tests.conftest import numpy_init`: numpy draws cost no
# per-shape RNG compiles (seconds each on a CPU). Norm scales are ones, matrices
# N(0, 1/fan_in), vectors N(0, 0.01); for tests whose properties hold for any parameters.


def numpy_init(make, seed=0, *, params_only=False, zero=None):
    """Module `make()` with numpy random values in every state leaf, or with `params_only`
    in its nnx.Params only (other state, such as running moments, as `make()` sets it, in
    one jitted call). `zero(path)` True leaves that leaf zero (and draws nothing for it)."""
    rng = np.random.default_rng(seed)

    def fill(path, x):
        if path[-1].key == "scale":
            return np.ones(x.shape, np.float32)
        if zero is not None and zero(path):
            return np.zeros(x.shape, np.float32)
        scale = 0.1 if len(x.shape) < 2 else 1 / np.sqrt(np.prod(x.shape[:-1]))
        return (scale * rng.standard_normal(x.shape)).astype(np.float32)

    def filled(state):
        nnx.replace_by_pure_dict(state, jax.tree_util.tree_map_with_path(
            fill, state.to_pure_dict()))
        return state

    abstract = nnx.eval_shape(make)
    if not params_only:
        graphdef, state = nnx.split(abstract)
        return nnx.merge(graphdef, filled(state))
    graphdef, params, rest = nnx.split(abstract, nnx.Param, ...)
    nnx.replace_by_pure_dict(rest, jax.jit(
        lambda: nnx.split(make(), nnx.Param, ...)[2].to_pure_dict())())
    return nnx.merge(graphdef, filled(params), rest)


# ----------------------------------------------------------------------------- shared fixtures
# Built once per run and shared by every xdist worker: the first worker to ask builds under a
# file lock, the others wait and read. Tests read these folders and never write into them.


def _shared_folder(tmp_path_factory, name: str, make) -> pathlib.Path:
    """`make(folder)` run once per test run; returns the folder. Under xdist the folder sits
    in the run's base temp shared by the workers, else in this session's own."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # pytest-N/, shared by pytest-N/popen-gw*/
    folder = base / f"shared-{name}"
    with FileLock(str(folder) + ".lock"):
        if not (folder / ".complete").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            (folder / ".complete").touch()
    return folder


@pytest.fixture(scope="session")
def tiny_speech_data(tmp_path_factory) -> pathlib.Path:
    """The tiny corpus's first 24 clips (14 train, 4 validation, 6 test; 8 train speakers)
    built as the emotive_speech TFDS dataset: its DATA_DIR."""
    from emotive.data.builders import build
    from emotive.data.speech.synth import build_corpus

    def make(root):
        build_corpus(root / "corpus", preset="tiny", limit=24, workers=1, progress=False)
        build("emotive_speech", root / "corpus", root / "data", progress=False, verbose=False)

    return _shared_folder(tmp_path_factory, "tiny-speech-24", make) / "data"


class _NoIterator:
    """Stands in for the train iterator whose checkpoint state carries the vocabulary."""

    def get_state(self):
        return {}


def save_tts_run(run, cfg, vocab, seed: int) -> None:
    """A TTS LM of random weights (numpy_init with `seed`) saved at step 5 as `emotive train tts`
    saves it, the vocabulary in the iterator state."""
    import jax.numpy as jnp

    from emotive.configs import base
    from emotive.data.pipelines.tts import VocabCarryingIterator
    from emotive.models.lm import CausalLM
    from emotive.train.checkpoint import Checkpointer
    from emotive.train.tasks.tts import model_vocab_size

    assert vocab.vocab_size == model_vocab_size(cfg)
    model = numpy_init(lambda: CausalLM(cfg.model, vocab.vocab_size, rngs=nnx.Rngs(0)),
                       seed=seed)
    ckpt = Checkpointer(run / "checkpoints", async_save=False)
    ckpt.save(5, {"step": jnp.int32(5),
                  "params": {"model": nnx.state(model, nnx.Param).to_pure_dict()}},
              VocabCarryingIterator(_NoIterator(), vocab.to_json()), base.to_dict(cfg))
    ckpt.close()


@pytest.fixture(scope="session")
def tiny_tts_runs(tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
    """(TTS run dir, codec run dir) with random weights, written the way their trainers write
    them: a one-layer TTS LM (data.seq_len 160) with a 300-piece BPE vocabulary, and the MICRO
    codec with 4*4*3 = 48 codes."""
    import jax.numpy as jnp

    from emotive import configs
    from emotive.codecs.text import TTSVocab, train_bpe
    from emotive.configs import base
    from emotive.models.codec import Codec
    from emotive.train.checkpoint import Checkpointer

    words = "oak table river light stone green quiet morning bird".split()

    def make(root):
        codec_cfg = configs.load("codec", "tiny", MICRO + ["model.fsq_levels=4,4,3"])
        codec = numpy_init(lambda: Codec(codec_cfg.model, rngs=nnx.Rngs(0)))
        ckpt = Checkpointer(root / "codec" / "checkpoints", async_save=False)
        ckpt.save(3, {"step": jnp.int32(3), "params": {"generator": {
            "codec": nnx.state(codec, nnx.Param).to_pure_dict()}}}, None,
            base.to_dict(codec_cfg))
        ckpt.close()

        cfg = configs.load("tts", "tiny", [
            "vocab.codebook_size=48", "vocab.bpe_size=300", "vocab.pad_to=64",
            "vocab.speaker_slots=0", "data.seq_len=160", "model.num_layers=1",
            "model.d_model=32", "model.mlp_dim=64"])
        texts = [" ".join(np.random.default_rng(i).choice(words, 6)) + "." for i in range(40)]
        vocab = TTSVocab(train_bpe(texts, 300), 48, cfg.vocab.emotions, cfg.vocab.intensities,
                         text_vocab_size=300, pad_to=64)
        save_tts_run(root / "tts", cfg, vocab, seed=1)

    root = _shared_folder(tmp_path_factory, "tiny-tts-runs", make)
    return root / "tts", root / "codec"


@pytest.fixture(scope="session")
def tiny_aligned_tts_run(tmp_path_factory, tiny_tts_runs) -> tuple[pathlib.Path, pathlib.Path]:
    """(TTS run dir, codec run dir): a random one-layer TTS LM of the aligned (ELLA-V) layout
    over the phoneme front end, beside tiny_tts_runs' codec."""
    from emotive import configs
    from emotive.codecs.phonemes import PhonemeTokenizer
    from emotive.codecs.text import TTSVocab
    from emotive.data.speech.espeak import phonemize

    def make(root):
        cfg = configs.load("tts", "tiny", [
            "vocab.codebook_size=48", "vocab.text_frontend=phoneme", "vocab.layout=ella_v",
            "vocab.pad_to=64", "vocab.speaker_slots=0", "data.seq_len=1024",
            "model.num_layers=1", "model.d_model=32", "model.mlp_dim=64"])
        vocab = TTSVocab(PhonemeTokenizer(phonemize), 48, cfg.vocab.emotions,
                         cfg.vocab.intensities, text_vocab_size=cfg.vocab.text_size, pad_to=64,
                         layout="ella_v")
        save_tts_run(root / "tts", cfg, vocab, seed=2)

    root = _shared_folder(tmp_path_factory, "tiny-aligned-tts-run", make)
    return root / "tts", tiny_tts_runs[1]
