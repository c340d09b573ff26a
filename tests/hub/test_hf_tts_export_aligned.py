"""`emotive release TTS_RUN OUT --hf-llama` of an aligned model (vocab layout ella_v, ELLA-V):
the folder's generation_config.json lets codes, EOP and the stop token through (nothing
else), its README names the EOP id and the units; in transformers (float32) the logits of a
real ELLA-V sequence (prompt, then unit / codes / EOP per phoneme, then the stop) equal
emotive's within 1e-4; a phoneme-synchronous greedy loop over transformers' forward (the
next unit fed after each EOP, EOP forced after MAX_UNIT_FRAMES codes, the stop after the
last unit) gives emotive's own decoding (`generate(..., units=...)` at temperature 0), and so
does the README's code (transformers' `generate`, its KV cache, and a logits processor that
feeds the units), run as printed but greedy.

The run is a checkpoint of random weights (tests/hub/test_bundles.py's `save_run`) with an
ella_v vocabulary over eSpeak's phonemes, so no training is waited for."""

import json
import re

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from emotive import cli, configs  # noqa: E402
from emotive.codecs.phonemes import PhonemeTokenizer  # noqa: E402
from emotive.codecs.text import TTSVocab  # noqa: E402
from emotive.data.pipelines.ella import interleave, split_units  # noqa: E402
from emotive.data.speech.espeak import phonemize  # noqa: E402
from emotive.hub.hf_tts_export import HF_LLAMA_DIR  # noqa: E402
from emotive.infer.decoder import generate  # noqa: E402
from emotive.infer.sampling import SamplingConfig  # noqa: E402
from emotive.infer.tts_model import load_tts  # noqa: E402

from tests.hub.test_bundles import TINY, save_run  # noqa: E402
from tests.hub.test_hf_tts_export import hf_model  # noqa: E402,F401 (a fixture)

TOL = 1e-4
MAX_UNIT_FRAMES = 4  # codes a unit may have before EOP is forced
TEXT = "Hello there."  # the README's text, so its code is checked against the same decode
# Two layers (the cache of more than one block), the phoneme front end, the ELLA-V layout.
TTS = TINY["tts"] + ["model.num_layers=2", "vocab.text_frontend=phoneme",
                     "vocab.layout=ella_v"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return save_run(configs.load("tts", "tiny", TTS), tmp_path_factory.mktemp("ella") / "tts",
                    seed=4)  # weights that draw EOP (twice) and have it forced (6 times)


@pytest.fixture(scope="module")
def released(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("ella_release") / "tts-aligned"
    assert cli.main(["release", str(run), str(out), "--hf-llama"]) == 0
    return out


@pytest.fixture(scope="module")
def ours(run):
    return load_tts(run)


def _prompt_and_units(vocab):
    """The README's prompt (its emotion: the vocabulary's first) ending with the first unit,
    and the text's units."""
    units = vocab.phone_units(vocab.encode_text(TEXT))
    return vocab.prompt_ids(TEXT, emotion=vocab.emotions[0]) + units[:1], units


def _sampling(vocab, units):
    return SamplingConfig(temperature=0.0, max_new_tokens=len(units) * (MAX_UNIT_FRAMES + 2) + 1,
                          stop_ids=(vocab.speech_end, vocab.eop), pad_id=vocab.speech_end,
                          allowed_range=(vocab.speech_offset, vocab.emotion_offset),
                          eop_id=vocab.eop, max_unit_frames=MAX_UNIT_FRAMES)


@pytest.fixture(scope="module")
def greedy_ours(ours):
    """emotive's phoneme-synchronous greedy decode of TEXT: (new tokens with the stop, forced
    EOPs)."""
    _, model, vocab, _ = ours
    prompt, units = _prompt_and_units(vocab)
    out = generate(model, [prompt], _sampling(vocab, units), seeds=[0], units=[units])
    assert out.stopped[0]
    n = int(out.lengths[0])
    return out.tokens[0, :n + 1].tolist(), int(out.forced[0])


def test_vocabulary_ids_and_suppress_tokens(released, ours):
    _, _, vocab, _ = ours
    assert vocab.layout == "ella_v" and isinstance(vocab.tokenizer, PhonemeTokenizer)
    assert vocab.eop == vocab.text_vocab_size - 1
    hf = released / HF_LLAMA_DIR
    again = TTSVocab.load(hf, phonemizer=phonemize)  # the exported vocabulary, read back
    assert (again.layout, again.eop) == ("ella_v", vocab.eop)
    assert again.encode_text(TEXT) == vocab.encode_text(TEXT)
    config = json.loads((hf / "config.json").read_text())
    assert config["vocab_size"] == vocab.vocab_size
    assert (config["eos_token_id"], config["bos_token_id"]) == (vocab.speech_end, None)
    gen = json.loads((hf / "generation_config.json").read_text())
    assert (gen["eos_token_id"], gen["pad_token_id"]) == (vocab.speech_end, vocab.speech_end)
    allowed = set(range(vocab.vocab_size)) - set(gen["suppress_tokens"])
    codes = set(range(vocab.speech_offset, vocab.speech_offset + vocab.codebook_size))
    assert allowed == codes | {vocab.eop, vocab.speech_end}
    assert len(gen["suppress_tokens"]) == vocab.vocab_size - vocab.codebook_size - 2
    readme = (hf / "README.md").read_text()
    assert f"| `{vocab.eop}` | `<|EOP|>`" in readme
    assert f"the end-of-phoneme token EOP is id {vocab.eop}" in readme
    assert "`generate` alone cannot do this" in readme
    assert "stress marks (`ˈ` `ˌ`) stand only in the prompt" in readme


def test_logits_of_an_ella_v_sequence_equal_ours(ours, hf_model):
    _, model, vocab, _ = ours
    prompt, units = _prompt_and_units(vocab)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 4, len(units))
    codes = rng.integers(0, vocab.codebook_size, int(frames.sum()))
    body = interleave(vocab, units, frames, codes).tokens.tolist()
    assert body[0] == units[0] and body[-1] == vocab.speech_end
    assert body.count(vocab.eop) == len(units)
    sequence = prompt[:-1] + body  # the prompt's last token is the first unit
    with torch.no_grad():
        theirs = hf_model(torch.tensor([sequence])).logits.numpy()
    mine = np.asarray(nnx.jit(lambda m, t: m(t))(model, jnp.asarray([sequence])))
    diff = float(np.abs(mine - theirs).max())
    print(f"max abs logit diff {diff:.2e} (logits up to {np.abs(theirs).max():.2f})")
    assert mine.shape == theirs.shape == (1, len(sequence), vocab.vocab_size)
    assert diff < TOL


def _hf_greedy_units(hf_model, vocab, prompt, units, max_new):
    """Phoneme-synchronous greedy decoding over transformers' forward, recomputed in full
    each step: after EOP the next unit (the stop after the last); EOP forced once a unit has
    MAX_UNIT_FRAMES codes; else the best of codes and EOP. -> (new tokens, forced EOPs)."""
    allowed = torch.tensor([vocab.eop, *range(vocab.speech_offset, vocab.emotion_offset)])
    sequence, new, frames, spoken, forced = list(prompt), [], 0, 1, 0
    while len(new) < max_new and vocab.speech_end not in new:
        if sequence[-1] == vocab.eop:
            token = units[spoken] if spoken < len(units) else vocab.speech_end
            spoken, frames = spoken + 1, 0
        elif frames >= MAX_UNIT_FRAMES:
            token, forced, frames = vocab.eop, forced + 1, 0
        else:
            with torch.no_grad():
                logits = hf_model(torch.tensor([sequence])).logits[0, -1]
            token = int(allowed[logits[allowed].argmax()])
            frames = 0 if token == vocab.eop else frames + 1
        sequence.append(token)
        new.append(token)
    return new, forced


def test_phoneme_synchronous_greedy_equals_ours(ours, hf_model, greedy_ours):
    _, _, vocab, _ = ours
    prompt, units = _prompt_and_units(vocab)
    mine, forced = greedy_ours
    theirs, theirs_forced = _hf_greedy_units(hf_model, vocab, prompt, units,
                                             _sampling(vocab, units).max_new_tokens)
    assert theirs == mine and theirs_forced == forced
    # every unit followed its EOP in order, then the stop; the model drew EOP itself as well
    # as having it forced, so both ways a unit ends are compared
    after_eop = [t for prev, t in zip([prompt[-1]] + mine, mine) if prev == vocab.eop]
    assert after_eop == units[1:] + [vocab.speech_end]
    assert 0 < forced < mine.count(vocab.eop)
    codes, per_unit = split_units(vocab, mine)
    assert len(per_unit) == len(units) and max(per_unit) == MAX_UNIT_FRAMES
    assert len(set(codes.tolist())) > 3  # not one repeated code: the cache counts


def test_the_readme_code_decodes_as_ours(released, ours, greedy_ours, tmp_path,
                                         monkeypatch):
    _, _, vocab, _ = ours
    readme = (released / HF_LLAMA_DIR / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", readme, re.S)
    # greedy, and the test's frame cap, in place of emotive's sampling and 0.5 s at 50 Hz
    code, n = re.subn(r"do_sample=True", "do_sample=False", code)
    code, m = re.subn(r"max_frames=round\([^)]*\)", f"max_frames={MAX_UNIT_FRAMES}", code)
    assert (n, m) == (1, 1)
    monkeypatch.chdir(released.parent)  # the README's paths start at the release's name
    exec(compile(code, "hf-llama/README.md", "exec"), {})
    mine, _ = greedy_ours
    np.testing.assert_array_equal(np.load("codes.npy"), split_units(vocab, mine)[0])
