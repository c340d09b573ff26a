"""Test set-up: 8 simulated CPU devices, so sharding is tested for real.

Under pytest-xdist (`-n 2`, the default `--dist load`) the tests of each module in
`ONE_WORKER` are sent to one worker as one unit, so its module-scoped fixtures (a trained or
released model, a built corpus, a transformers checkpoint) are built once per run instead of
once on each worker. Those units go first, largest first; every other test is sent on its
own after them, so the workers still finish together. An explicit `--dist` is left alone.

(`--dist loadgroup` with `xdist_group` marks would do the same, but pytest-xdist 3.8 groups
by rewriting `item._nodeid`, which pytest 9 no longer reads: the marks are silently ignored.)"""

import os

# Must happen before JAX is imported anywhere.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from flax import nnx  # noqa: E402

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
