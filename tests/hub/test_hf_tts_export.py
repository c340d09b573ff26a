"""`emotive release TTS_RUN OUT --hf-llama`: OUT/hf-llama/ is a transformers LlamaForCausalLM
folder in Llasa's layout (eos = SPEECH_GENERATION_END, the vocabulary files, a README on the
ids, the codec in the sibling OUT/codec/). It loads in transformers in float32, its logits
for a real TTS prompt equal emotive's within 1e-4, and greedy decoding there (16 new tokens,
free and restricted to the speech codes as generation_config.json ships it) equals emotive's
own decoding (`emotive.infer.decoder.generate` at temperature 0). SHA256SUMS covers it.

The runs are checkpoints of random weights written as the trainer writes them
(tests/hub/test_bundles.py's `save_run`), so no training is waited for."""

import json
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from emotive import cli, configs  # noqa: E402
from emotive.errors import UserError  # noqa: E402
from emotive.hub.hf_llama import import_hf_llama  # noqa: E402
from emotive.hub.hf_tts_export import HF_LLAMA_DIR  # noqa: E402
from emotive.infer import bundle  # noqa: E402
from emotive.infer.decoder import generate  # noqa: E402
from emotive.infer.sampling import SamplingConfig  # noqa: E402
from emotive.infer.tts_model import load_tts  # noqa: E402

from tests.hub.test_bundles import TINY, save_run  # noqa: E402
from tests.conftest import MICRO  # noqa: E402

TOL = 1e-4
NEW = 16
# Two layers (so the KV cache of more than one block is exercised), Llama-shaped.
TTS = TINY["tts"] + ["model.num_layers=2"]
CODEC = MICRO + ["model.fsq_levels=4,4,3"]  # 48 codes, the TTS vocabulary's codebook


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_tts_runs")
    return {"tts": save_run(configs.load("tts", "tiny", TTS), root / "tts", seed=5),
            "codec": save_run(configs.load("codec", "tiny", CODEC), root / "codec", seed=4)}


@pytest.fixture(scope="module")
def released(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf_tts_release") / "tts-tiny"
    assert cli.main(["release", str(runs["tts"]), str(out), "--codec", str(runs["codec"]),
                     "--hf-llama"]) == 0
    return out


@pytest.fixture(scope="module")
def ours(runs):
    return load_tts(runs["tts"])


@pytest.fixture(scope="module")
def hf_model(released):
    model = transformers.LlamaForCausalLM.from_pretrained(
        released / HF_LLAMA_DIR, dtype=torch.float32, attn_implementation="eager")
    return model.eval()


def _prompt(vocab):
    return vocab.prompt_ids("oak table river light.", emotion="happy", intensity=1)


def test_folder_layout_ids_and_checksums(released, ours, tmp_path):
    _, model, vocab, _ = ours
    hf = released / HF_LLAMA_DIR
    names = sorted(p.name for p in hf.iterdir())
    assert names == ["README.md", "config.json", "generation_config.json",
                     "model.safetensors", "tokenizer.json", "tts_vocab.json"]
    config = json.loads((hf / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["torch_dtype"] == "float32" and config["vocab_size"] == vocab.vocab_size
    assert config["eos_token_id"] == vocab.speech_end  # <|SPEECH_GENERATION_END|>
    assert config["bos_token_id"] is None  # plain prompts start with no BOS
    assert "pad_token_id" not in config  # it would freeze the eos row in a transformers fine-tune
    gen = json.loads((hf / "generation_config.json").read_text())
    assert (gen["eos_token_id"], gen["pad_token_id"]) == (vocab.speech_end, vocab.speech_end)
    assert gen["do_sample"] and gen["max_length"] == ours.cfg.data.seq_len
    allowed = set(range(vocab.vocab_size)) - set(gen["suppress_tokens"])
    assert allowed == set(range(vocab.speech_offset, vocab.emotion_offset)) | {vocab.speech_end}
    # the vocabulary beside it is the bundle's, byte for byte
    for name in ("tts_vocab.json", "tokenizer.json"):
        assert (hf / name).read_bytes() == (released / name).read_bytes()
    readme = (hf / "README.md").read_text()
    assert bundle.card_metadata(hf)["library_name"] == "transformers"
    assert f"`eos_token_id` {vocab.speech_end} is `<|SPEECH_GENERATION_END|>`" in readme
    assert f"`<|s_N|>` = {vocab.speech_offset} + N" in readme
    assert f"| `{vocab.emotion_tag('happy', 1)}` | `<|emotion:happy:1|>` |" in readme
    assert "`tts-tiny/codec/`" in readme and "no transformers tokenizer" in readme
    assert "`hf-llama/`" in (released / "README.md").read_text()

    # SHA256SUMS covers hf-llama/ (and codec/); hf-llama/ is no bundle of its own
    listed = bundle.verify_bundle(released)
    assert {f"{HF_LLAMA_DIR}/{n}" for n in names} <= set(listed)
    assert "codec/model.safetensors" in listed and not bundle.is_bundle(hf)
    assert cli.main(["bundle", "verify", str(released)]) == 0
    bad = tmp_path / "bad"
    shutil.copytree(released, bad)
    path = bad / HF_LLAMA_DIR / "config.json"
    path.write_text(path.read_text().replace('"eos_token_id"', '"eos_token_id" ', 1))
    with pytest.raises(UserError, match="hf-llama/config.json does not match"):
        bundle.verify_bundle(bad)

    # the bundle still loads as before, the extra folder ignored by the loader
    again = load_tts(released)
    prompt = jnp.asarray([_prompt(vocab)])
    np.testing.assert_array_equal(np.asarray(again.model(prompt)), np.asarray(model(prompt)))


def test_logits_equal_ours_in_float32(ours, hf_model):
    _, model, vocab, _ = ours
    assert model.cfg.dtype == "float32"
    prompt = _prompt(vocab)
    with torch.no_grad():
        theirs = hf_model(torch.tensor([prompt])).logits.numpy()
    mine = np.asarray(nnx.jit(lambda m, t: m(t))(model, jnp.asarray([prompt])))
    diff = float(np.abs(mine - theirs).max())
    print(f"max abs logit diff {diff:.2e} (logits up to {np.abs(theirs).max():.2f})")
    assert mine.shape == theirs.shape == (1, len(prompt), vocab.vocab_size)
    assert diff < TOL


def _hf_generate(hf_model, prompt, **kwargs):
    with torch.no_grad():
        out = hf_model.generate(torch.tensor([prompt]), **kwargs).numpy()[0]
    return out[len(prompt):].tolist()


def test_greedy_decoding_equals_ours(ours, hf_model):
    _, model, vocab, _ = ours
    prompt = _prompt(vocab)
    # free greedy decoding: the whole vocabulary, no stop. transformers fills every unset
    # (None) field from the model's generation_config.json, so that is swapped out here
    gen = transformers.GenerationConfig(do_sample=False, max_new_tokens=NEW, eos_token_id=None,
                                        pad_token_id=0)
    shipped, hf_model.generation_config = hf_model.generation_config, gen
    try:
        theirs = _hf_generate(hf_model, prompt, generation_config=gen)
    finally:
        hf_model.generation_config = shipped
    mine = generate(model, [prompt], SamplingConfig(temperature=0.0, max_new_tokens=NEW),
                    seeds=[0])
    assert mine.lengths.tolist() == [NEW] and len(theirs) == NEW
    assert mine.tokens[0].tolist() == theirs
    assert len(set(theirs)) > 3  # these weights decode no constant run, so the cache counts

    # as emotive speaks: only speech codes and SPEECH_GENERATION_END, stopping there; in
    # transformers the shipped generation_config.json (suppress_tokens, eos) with greedy on
    theirs = _hf_generate(hf_model, prompt, do_sample=False, max_new_tokens=NEW)
    speech = SamplingConfig(temperature=0.0, max_new_tokens=NEW, stop_ids=(vocab.speech_end,),
                            pad_id=vocab.speech_end,
                            allowed_range=(vocab.speech_offset, vocab.emotion_offset))
    mine = generate(model, [prompt], speech, seeds=[0])
    n = int(mine.lengths[0])
    assert theirs[:n] == mine.tokens[0, :n].tolist()
    assert all(vocab.speech_offset <= t < vocab.emotion_offset for t in theirs[:n])
    assert len(set(theirs[:n])) > 3
    if n < NEW:  # both stopped at the eos
        assert theirs[n] == vocab.speech_end


def test_bfloat16_export_and_refusals(runs, ours, tmp_path, capsys):
    out = tmp_path / "bf16"
    assert cli.main(["release", str(runs["tts"]), str(out), "--dtype", "bfloat16",
                     "--hf-llama"]) == 0
    hf = out / HF_LLAMA_DIR
    assert json.loads((hf / "config.json").read_text())["torch_dtype"] == "bfloat16"
    assert "holds no codec" in (hf / "README.md").read_text()
    model, info = import_hf_llama(hf)
    assert info.source_dtypes == ("BF16",)
    want = ours.model.body.blocks[1].mlp.up.kernel[...]
    got = model.body.blocks[1].mlp.up.kernel[...]
    np.testing.assert_array_equal(np.asarray(got),
                                  np.asarray(want.astype(jnp.bfloat16).astype(jnp.float32)))
    bundle.verify_bundle(out)

    capsys.readouterr()
    assert cli.main(["release", str(runs["codec"]), str(tmp_path / "codec"),
                     "--hf-llama"]) == 2
    assert "--hf-llama exports a TTS language model; this is a codec run" in \
        capsys.readouterr().err
    assert not (tmp_path / "codec").exists()
