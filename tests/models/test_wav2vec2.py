"""wav2vec2 encoder and emotion heads: parity with transformers, padding, import refusals."""

import functools
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from safetensors.numpy import load_file, save_file  # noqa: E402

from emotive.configs import classifiers  # noqa: E402
from emotive.errors import UserError  # noqa: E402
from emotive.hub.hf_wav2vec2 import fold_weight_norm, import_hf_wav2vec2  # noqa: E402
from emotive.models.ser import SpeechEmotionModel  # noqa: E402

TOL = 1e-4
SAMPLES = 1600  # 0.1 s: 79 frames through conv kernels (10, 3, 3), strides (5, 2, 2)
SHORT = 1100  # the padded row's valid samples: 54 frames
COMMON = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
              conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
              num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
CONFIGS = {
    # large/robust layout (audeering): LayerNorm after every conv, pre-LN blocks, final norm;
    # saved as audeering's EmotionModel: "wav2vec2."-prefixed encoder plus a regression head
    "stable": dict(do_stable_layer_norm=True, feat_extract_norm="layer", conv_bias=True),
    # base layout: GroupNorm on the first conv only, no conv bias, post-LN blocks; bare encoder
    "base": dict(do_stable_layer_norm=False, feat_extract_norm="group", conv_bias=False),
}
POS = "encoder.pos_conv_embed.conv."


class RegressionHead(torch.nn.Module):
    """audeering's head: mean over frames -> Linear -> tanh -> Linear(3)."""

    def __init__(self, dim):
        super().__init__()
        self.dense = torch.nn.Linear(dim, dim)
        self.out_proj = torch.nn.Linear(dim, 3)

    def forward(self, hidden_BxNxE):
        return self.out_proj(torch.tanh(self.dense(hidden_BxNxE.mean(dim=1))))


def _randomize(module, seed):
    """Every weight random (norm scales near 1) so no parameter can be mapped wrongly unseen."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for key, p in module.named_parameters():
            is_scale = "norm" in key and key.endswith("weight")
            p.copy_(torch.randn_like(p) * 0.2 + (1.0 if is_scale else 0.0))
    return module.eval()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """name -> (directory, transformers Wav2Vec2Model, torch head or None)."""
    out = {}
    for i, (name, extra) in enumerate(CONFIGS.items()):
        cfg = transformers.Wav2Vec2Config(**COMMON, **extra, attn_implementation="eager")
        model = _randomize(transformers.Wav2Vec2Model(cfg), i)
        path = tmp_path_factory.mktemp(name)
        model.save_pretrained(path, safe_serialization=True)
        head = None
        if name == "stable":
            head = _randomize(RegressionHead(cfg.hidden_size), 10 + i)
            tensors = {f"wav2vec2.{k}": v for k, v in load_file(path / "model.safetensors").items()}
            tensors.update({f"classifier.{k}": v.numpy() for k, v in head.state_dict().items()})
            save_file(tensors, path / "model.safetensors")
        out[name] = (path, model, head)
    return out


def _audio(seed=0):
    return np.random.RandomState(seed).randn(2, SAMPLES).astype(np.float32)


def _hf_input(audio_BxT, lengths):
    """What Wav2Vec2FeatureExtractor hands the model: normalised rows, zero padding."""
    out = np.zeros_like(audio_BxT)
    for b, n in enumerate(lengths):
        x = audio_BxT[b, :n]
        out[b, :n] = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    return torch.from_numpy(out)


def _max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def _as_hf_records(encoded):
    """Our hidden states laid out as transformers' `hidden_states`: 5.x records every block's
    output before the final norm (ours as is); 4.x ended with the final-normed state."""
    states = encoded["hidden_states"]
    if int(transformers.__version__.split(".")[0]) < 5:
        states = states[:-1] + (encoded["last_hidden_state"],)
    return states


# Tiny programs: XLA's backend optimisations would cost more time than they save.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


@functools.partial(jax.jit, static_argnames=("graphdef", "heads"), compiler_options=FAST_COMPILE)
def _run(graphdef, state, audio_BxT, lengths_B, heads):
    """Everything the parity tests look at, in one program: one compile per model layout."""
    model = nnx.merge(graphdef, state)
    out = {"hidden": model.encoder(audio_BxT, lengths_B, output_hidden_states=True)}
    if heads:  # the full model, through Transformer.__call__ rather than block by block
        out["predict"] = model(audio_BxT, lengths_B)
    return out


@pytest.fixture(scope="module")
def runs(checkpoints):
    """name -> (import info, outputs on full rows, outputs with row 1 padded after SHORT)."""
    out = {}
    audio = _audio()
    garbage = audio.copy()
    garbage[1, SHORT:] = 7.0  # whatever lies in the padding must not matter
    for name, (path, _, _) in checkpoints.items():
        heads = name == "stable"
        model, info = import_hf_wav2vec2(path, with_head=heads)
        graphdef, state = nnx.split(model)
        full = _run(graphdef, state, jnp.asarray(audio), jnp.full((2,), SAMPLES), heads)
        padded = _run(graphdef, state, jnp.asarray(garbage), jnp.asarray([SAMPLES, SHORT]), heads)
        out[name] = (info, full, padded)
    return out


@pytest.mark.parametrize("name", list(CONFIGS))
def test_hidden_states_match_transformers(checkpoints, runs, name):
    _, hf_model, _ = checkpoints[name]
    info, full, _ = runs[name]
    assert info.config.do_stable_layer_norm == (name == "stable")
    assert info.weight_norm == "parametrizations.weight.original0/parametrizations.weight.original1"
    with torch.no_grad():
        want = hf_model(_hf_input(_audio(), [SAMPLES] * 2), output_hidden_states=True)
    got = full["hidden"]
    assert len(got["hidden_states"]) == len(want.hidden_states) == 3
    diffs = [_max_diff(g, w.numpy()) for g, w in zip(_as_hf_records(got), want.hidden_states)]
    diffs.append(_max_diff(got["last_hidden_state"], want.last_hidden_state.numpy()))
    print(f"{name}: max abs diff per hidden state {['%.2e' % d for d in diffs]}")
    assert max(diffs) < TOL, diffs
    if "predict" in full:  # Transformer.__call__ in one go equals the block-by-block run
        assert _max_diff(full["predict"]["pooled"], got["last_hidden_state"].mean(1)) < 1e-5


@pytest.mark.parametrize("name", list(CONFIGS))
def test_padded_row_matches_its_unpadded_run(checkpoints, runs, name):
    _, hf_model, _ = checkpoints[name]
    _, full, padded = runs[name]
    got = padded["hidden"]
    audio = _audio()
    with torch.no_grad():  # the short row run alone (ours equals it: see the test above)
        alone = hf_model(_hf_input(audio[1:, :SHORT], [SHORT]), output_hidden_states=True)
    n = int(got["lengths"][1])
    assert n == alone.last_hidden_state.shape[1] == 54
    assert got["mask"][1].sum() == n and not got["mask"][1, n:].any()
    for p, a in zip(_as_hf_records(got) + (got["last_hidden_state"],),
                    alone.hidden_states + (alone.last_hidden_state,)):
        assert _max_diff(p[1, :n], a[0].numpy()) < TOL
    for p, f in zip(got["hidden_states"], full["hidden"]["hidden_states"]):
        assert _max_diff(p[0], f[0]) < 1e-5  # the full row is untouched by its neighbour
    if name == "stable":
        pooled = padded["predict"]["pooled"]
        assert _max_diff(pooled[1], alone.last_hidden_state[0].mean(0).numpy()) < TOL
        assert _max_diff(padded["predict"]["adv"][0], full["predict"]["adv"][0]) < 1e-5
        # transformers defines padded batches through attention_mask for this layout only:
        # its base layout's GroupNorm takes statistics over the padding too.
        mask = torch.from_numpy(np.arange(SAMPLES)[None] < np.array([[SAMPLES], [SHORT]]))
        with torch.no_grad():
            want = hf_model(_hf_input(audio, [SAMPLES, SHORT]), attention_mask=mask.long(),
                            output_hidden_states=True)
        for p, w in zip(_as_hf_records(got), want.hidden_states):
            assert _max_diff(p[0], w[0].numpy()) < TOL
            assert _max_diff(p[1, :n], w[1, :n].numpy()) < TOL


def test_regression_head_matches_torch(checkpoints, runs):
    _, hf_model, head = checkpoints["stable"]
    info, full, _ = runs["stable"]
    assert info.with_head and info.ignored_keys == ("wav2vec2.masked_spec_embed",)
    with torch.no_grad():
        want = head(hf_model(_hf_input(_audio(), [SAMPLES] * 2)).last_hidden_state).numpy()
    diff = _max_diff(full["predict"]["adv"], want)
    print(f"regression head: max abs diff {diff:.2e}")
    assert diff < TOL
    assert full["predict"]["logits"].shape == (2, 8) and full["predict"]["pooled"].shape == (2, 32)


def _variant(src, dst, change):
    """A copy of checkpoint `src` whose tensors dict is edited in place by `change`."""
    shutil.copytree(src, dst)
    tensors = load_file(dst / "model.safetensors")
    change(tensors)
    save_file(tensors, dst / "model.safetensors")
    return dst


def test_old_weight_norm_key_spelling(checkpoints, tmp_path):
    path, _, _ = checkpoints["base"]

    def rename(t):
        t[POS + "weight_g"] = t.pop(POS + "parametrizations.weight.original0")
        t[POS + "weight_v"] = t.pop(POS + "parametrizations.weight.original1")

    old, old_info = import_hf_wav2vec2(_variant(path, tmp_path / "old", rename), with_head=False)
    new, _ = import_hf_wav2vec2(path, with_head=False)
    assert old_info.weight_norm == "weight_g/weight_v"
    np.testing.assert_array_equal(old.encoder.pos_conv.kernel[...],
                                  new.encoder.pos_conv.kernel[...])


def test_fold_weight_norm_keeps_one_norm_per_tap():
    rng = np.random.RandomState(0)
    g, v = rng.rand(1, 1, 5).astype(np.float32), rng.randn(6, 3, 5).astype(np.float32)
    w = fold_weight_norm(g, v)
    np.testing.assert_allclose(np.sqrt((w.astype(np.float64) ** 2).sum(axis=(0, 1))), g[0, 0],
                               rtol=1e-6)


def test_import_refusals(checkpoints, tmp_path):
    stable, _, _ = checkpoints["stable"]
    base, _, _ = checkpoints["base"]
    key = "wav2vec2.encoder.layers.1.feed_forward.intermediate_dense.weight"
    bad = _variant(stable, tmp_path / "shape", lambda t: t.update({key: t[key][:, :-1]}))
    with pytest.raises(UserError, match=f"tensor {key} has shape \\[64, 31\\]") as exc:
        import_hf_wav2vec2(bad)
    assert "\n" not in str(exc.value)  # one-line messages
    with pytest.raises(UserError, match="no audeering regression head.*with_head=False"):
        import_hf_wav2vec2(base)
    v_key = POS + "parametrizations.weight.original1"
    bad_v = _variant(base, tmp_path / "v", lambda t: t.update({v_key: t[v_key][:, :, :-1]}))
    with pytest.raises(UserError, match=f"tensor {v_key} has shape \\[32, 8, 15\\]"):
        import_hf_wav2vec2(bad_v, with_head=False)
    extra = _variant(base, tmp_path / "extra",
                     lambda t: t.update({"encoder.adapter.weight": t[v_key]}))
    with pytest.raises(UserError, match="encoder.adapter.weight that a Wav2Vec2 model"):
        import_hf_wav2vec2(extra, with_head=False)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(base / "config.json", pickled)
    (pickled / "pytorch_model.bin").write_bytes(b"not to be unpickled")
    with pytest.raises(UserError, match="only pickled PyTorch weights"):
        import_hf_wav2vec2(pickled)
    wrong = tmp_path / "wrong"
    shutil.copytree(base, wrong)
    cfg = json.loads((wrong / "config.json").read_text())
    (wrong / "config.json").write_text(json.dumps({**cfg, "model_type": "hubert"}))
    with pytest.raises(UserError, match="model_type='hubert'"):
        import_hf_wav2vec2(wrong)


def test_every_param_carries_logical_axes():
    model = nnx.eval_shape(lambda: SpeechEmotionModel(classifiers.tiny(False), nnx.Rngs(0)))
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        axes = var.get_metadata().get("axes")
        assert axes is not None and len(axes) == len(var.shape), path
