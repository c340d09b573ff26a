"""A TTS bundle's hf-llama/ folder: its language model for transformers, in Llasa's layout.

`emotive release --hf-llama` (TTS only) writes it beside the bundle's own files, and the
bundle's SHA256SUMS covers it: config.json (the LlamaForCausalLM written by
`emotive.hub.hf_llama.export_hf_llama`, with bos/eos ids from the vocabulary: eos =
SPEECH_GENERATION_END, bos only for llama3_chat prompts, no pad), generation_config.json
(emotive's default sampling, pad = eos, and the speech-code restriction as
suppress_tokens), the vocabulary files (tts_vocab.json, tokenizer.json) and a README on the
id layout. Its weights are read back from the bundle just written, so they are exactly the
bundle's (float32, or bfloat16 with dtype=bfloat16).

An aligned model (vocab layout ella_v) exports the same way, EOP joining the ids it may
draw (suppress_tokens); its README names the EOP id and the units, and shows a logits
processor that feeds the next phoneme unit after each EOP, which transformers' `generate`
cannot do alone.
"""

from __future__ import annotations

import json
import pathlib

import jax
from huggingface_hub import ModelCardData

from emotive.errors import UserError
from emotive.hub.card import LICENSE, model_card
from emotive.hub.nested import CODEC_DIR
from emotive.infer import bundle

HF_LLAMA_DIR = "hf-llama"  # the folder in a TTS bundle
# hf-llama/README.md's front matter keys, in the order it has always had them
README_ORDER = ("license", "library_name", "pipeline_tag", "tags")


def hf_llama_ids(vocab) -> dict:
    """The special ids of the transformers export. eos = SPEECH_GENERATION_END, where emotive
    stops; bos = <|begin_of_text|> when every prompt starts with it (prompt_style
    llama3_chat, Llasa's), else None: emotive's plain prompts begin with no BOS token, and an
    absent key would make transformers assume Llama's id 1, a text token here. The pad id
    (emotive pads finished rows with the eos) goes into generation_config.json only: in
    config.json transformers makes it the embedding's padding_idx, whose row a fine-tune in
    transformers would then never update."""
    from emotive.codecs.text import LLAMA3_CHAT_TOKENS

    bos = None
    if vocab.prompt_style == "llama3_chat":
        bos = vocab.tokenizer.token_to_id(LLAMA3_CHAT_TOKENS[0])
    return {"bos_token_id": bos, "eos_token_id": vocab.speech_end}


def speech_suppressed_ids(vocab) -> list[int]:
    """Every id but the speech codes, SPEECH_GENERATION_END and (ella_v layout) EOP: emotive's
    TTS decoding draws from those only (its allowed_range and stop ids), and transformers
    does the same with these as generation_config.json's suppress_tokens."""
    lo, hi = vocab.speech_offset, vocab.speech_offset + vocab.codebook_size
    stops = {vocab.speech_end} | ({vocab.eop} if vocab.eop is not None else set())
    return [i for i in range(vocab.vocab_size) if not lo <= i < hi and i not in stops]


def hf_generation_config(cfg, vocab) -> dict:
    """generation_config.json: emotive's default TTS sampling (emotive.infer.tts), the
    speech-code restriction, and the training length as max_length (prompt + new tokens)."""
    from emotive.infer.tts import DEFAULT_SAMPLING as s

    return {**hf_llama_ids(vocab), "pad_token_id": vocab.speech_end,
            "do_sample": True, "temperature": s.temperature, "top_p": s.top_p,
            "top_k": s.top_k, "repetition_penalty": s.repetition_penalty,
            "max_length": cfg.data.seq_len, "suppress_tokens": speech_suppressed_ids(vocab),
            "_from_model_config": False}


def _id_lines(vocab) -> list[str]:
    t, k = vocab.text_vocab_size, vocab.codebook_size
    front = ("phonemes (emotive's PhonemeTokenizer: eSpeak NG IPA symbols, word boundaries, "
             "pauses)" if vocab.text_frontend == "phoneme"
             else "a byte-level BPE (`tokenizer.json`, Hugging Face `tokenizers` format)")
    eop = vocab.eop
    lines = [f"| `[0, {eop if eop is not None else t})` | text: {front}; ids the tokenizer "
             "lacks are reserved |"]
    if eop is not None:
        lines.append(f"| `{eop}` | `<|EOP|>`: end of phoneme (the last text id, ELLA-V) |")
    lines += [f"| `{i}` | `{vocab.token_name(i)}` |" for i in range(t, vocab.speech_offset)]
    lines.append(f"| `[{vocab.speech_offset}, {vocab.speech_offset + k})` | speech code N as "
                 f"`<|s_N|>` = {vocab.speech_offset} + N ({k} codes of the codec) |")
    for i in range(vocab.emotion_offset, vocab.speaker_offset):
        lines.append(f"| `{i}` | `{vocab.token_name(i)}` |")
    if vocab.speaker_slots:
        names = (", ".join(vocab.speakers) if len(vocab.speakers) <= 12
                 else f"{len(vocab.speakers)} names, in order in tts_vocab.json")
        end = vocab.speaker_offset + vocab.speaker_slots
        lines.append(f"| `[{vocab.speaker_offset}, {end})` | speaker tags "
                     f"`<|speaker:NAME|>` ({names or 'none named'}; unnamed slots reserved) |")
    if vocab.vocab_size > vocab.used_size:
        lines.append(f"| `[{vocab.used_size}, {vocab.vocab_size})` | padding rows (for "
                     "sharding); never produced |")
    return lines


def _aligned_usage(emotion: str | None, unit_seconds: float) -> list[str]:
    """The README's decoding of an aligned model: transformers' `generate` with a logits
    processor that feeds the phoneme units, as emotive's phoneme-synchronous decoding does
    (`emotive.infer.decode_loop`)."""
    return [
        "",
        "",
        "class FeedUnits(transformers.LogitsProcessor):",
        '    """After each EOP the text\'s next unit (the eos after the last); EOP once a unit has',
        '    max_frames codes; else codes or EOP, as emotive draws. One prompt at a time."""',
        "",
        "    def __init__(self, vocab, units, max_frames):",
        "        self.vocab, self.units, self.max_frames = vocab, units, max_frames",
        "        lo = vocab.speech_offset",
        "        self.codes = range(lo, lo + vocab.codebook_size)",
        "",
        "    def __call__(self, input_ids, scores):",
        "        v, ids = self.vocab, input_ids[0].tolist()",
        "        frames = next(i for i, t in enumerate(reversed(ids)) if t not in self.codes)",
        "        if ids[-1] == v.eop:  # the prompt holds no EOP: count them to find the unit",
        "            n = ids.count(v.eop)",
        "            force = self.units[n] if n < len(self.units) else v.speech_end",
        "        elif frames >= self.max_frames:",
        "            force = v.eop",
        "        else:  # codes or EOP (suppress_tokens also leaves the eos, never drawn here)",
        "            return scores.index_fill(1, torch.tensor([v.speech_end]), -float(\"inf\"))",
        "        forced = torch.full_like(scores, -float(\"inf\"))",
        "        forced[:, force] = 0",
        "        return forced",
        "",
        "",
        'text = "Hello there."',
        "units = vocab.phone_units(vocab.encode_text(text))  # phonemes, word boundaries, "
        "pauses",
        "prompt = torch.tensor([vocab.prompt_ids(text%s) + units[:1]])" % (
            f', emotion="{emotion}"' if emotion else ""),
        "# emotive ends a unit after %g s: 50 is the codec's frames a second" % unit_seconds,
        "feed = FeedUnits(vocab, units, max_frames=round(%g * 50))" % unit_seconds,
        "out = lm.generate(prompt, logits_processor=transformers.LogitsProcessorList([feed]),",
        "                  do_sample=True)  # generation_config.json: emotive's sampling",
        "codes, frames = split_units(vocab, out[0, prompt.shape[1]:].tolist())  # frames: per unit",
        'np.save("codes.npy", codes)']


def _aligned_decoding(vocab, cfg, sampling, unit_seconds: float) -> list[str]:
    """The README's Decoding section of an aligned (ELLA-V) model."""
    return [
        "The ELLA-V layout (arXiv 2401.07333): after the prompt, which ends with the text's "
        "first phoneme unit, the model speaks one unit at a time as `unit codes... <|EOP|>`; "
        f"the end-of-phoneme token EOP is id {vocab.eop} (the last text id). The model never "
        "draws a unit: after each EOP the caller feeds the text's next unit, and after the "
        "last unit's EOP speech ends (`<|SPEECH_GENERATION_END|>`). transformers' `generate` "
        "alone cannot do this: it needs a logits processor that forces the next unit after "
        "each EOP, as `FeedUnits` above (or a loop of your own over the model's forward).", "",
        "The units are `vocab.phone_units(vocab.encode_text(text))`: the phonemes eSpeak NG "
        "gives for the normalised text, its word boundaries (` `) and pauses (`,` `.` `?` "
        "`!`), in order; the stress marks (`ˈ` `ˌ`) stand only in the prompt. One sentence "
        "a prompt.", "",
        "`generation_config.json` holds emotive's default sampling (temperature %g, top-p "
        "%g), `max_length` %d (the training length, prompt included), pad = eos, and as "
        "`suppress_tokens` every id but the speech codes, EOP and the eos, as emotive "
        "restricts its draws (it forces the eos, never draws it). emotive ends a unit by "
        "force after %g s of codes (`emotive tts --max-phone-seconds`), as `FeedUnits`' "
        "`max_frames`. Not reproduced here: sentence splitting of long text, classifier-free "
        "guidance (`--text-scale/--emotion-scale`) and duration control "
        "(`--speed/--seconds`)." % (sampling.temperature, sampling.top_p, cfg.data.seq_len,
                                     unit_seconds)]


def hf_llama_readme(name: str, cfg, vocab, *, dtype: str, has_codec: bool) -> str:
    """hf-llama/README.md: how to load it, how the ids map, where the codec is."""
    from emotive.infer.tts import DEFAULT_SAMPLING as sampling
    from emotive.infer.tts import MAX_PHONE_SECONDS

    ids = hf_llama_ids(vocab)
    data = ModelCardData(license=LICENSE, library_name="transformers",
                         pipeline_tag="text-to-speech",
                         tags=["emotive", "llasa", "llama", "text-to-speech", "emotion"])
    emotion = vocab.emotions[0] if vocab.emotions else None
    prompt_args = '"Hello there."' + (f', emotion="{emotion}"' if emotion else "")
    here = f"{name}/{HF_LLAMA_DIR}"
    phoneme = vocab.text_frontend == "phoneme"
    aligned = vocab.eop is not None
    load_vocab = (f'TTSVocab.load("{here}", phonemizer=phonemize)  # needs libespeak-ng'
                  if phoneme else f'TTSVocab.load("{here}")')
    codec = (f"The codec is the sibling folder `../{CODEC_DIR}/` (`{name}/{CODEC_DIR}/`), an "
             "emotive codec bundle" if has_codec else
             "This release holds no codec; the codes need the emotive codec bundle the model "
             "was trained with")
    bos = ("`<|begin_of_text|>` (id %d), as Llama 3 and Llasa" % ids["bos_token_id"]
           if ids["bos_token_id"] is not None else
           "none (`null`): emotive's prompts begin with no BOS token, so none is added")
    lines = [
        f"# {name}: the TTS language model as a transformers LlamaForCausalLM", "",
        f"The language model of the emotive TTS bundle `{name}`, exported as a Hugging Face "
        f"`LlamaForCausalLM` ({dtype} weights), in Llasa's layout"
        + (" with ELLA-V's phoneme alignment (see Decoding)" if aligned else "")
        + ": a Llama language model whose vocabulary is text ids, Llasa's 8 specials and one "
        "token per speech code, with the speech codec in a repository of its own. "
        f"{codec} (`emotive codec decode`), not an X-codec2 checkpoint; emotive loads it.", "",
        "A float32 export is tested to give emotive's logits within 1e-4 and, decoding "
        "greedily in transformers, emotive's tokens (emotive's "
        + ("tests/hub/test_hf_tts_export_aligned.py, with the code below)." if aligned else
           "tests/hub/test_hf_tts_export.py)."), "",
        "## Tokenizer", "",
        "There is no transformers tokenizer here. The vocabulary ships in emotive's format: "
        "`tts_vocab.json` (the layout) and `tokenizer.json` (the text part only"
        + ("; emotive's phoneme inventory, not a `tokenizers` file" if phoneme else
           "; `AutoTokenizer` may read it but does not know the id layout below: specials, "
           "speech codes and tags") + "). Build prompts with emotive's `TTSVocab`:", "",
        "```python",
        "import numpy as np, torch, transformers",
        "from emotive.codecs.text import TTSVocab"
        + ("\nfrom emotive.data.pipelines.ella import split_units" if aligned else "")
        + ("\nfrom emotive.data.speech.espeak import phonemize" if phoneme else ""),
        "",
        f'lm = transformers.LlamaForCausalLM.from_pretrained("{here}")',
        f"vocab = {load_vocab}",
        *(_aligned_usage(emotion, MAX_PHONE_SECONDS) if aligned else [
            f"prompt = torch.tensor([vocab.prompt_ids({prompt_args})])",
            "out = lm.generate(prompt)  # generation_config.json: emotive's sampling",
            "new = out[0, prompt.shape[1]:].tolist()",
            "new = new[:new.index(vocab.speech_end)] if vocab.speech_end in new else new",
            'np.save("codes.npy", vocab.ids_to_codes(new))']),
        "```", "",
        "```bash",
        f"emotive codec decode codes.npy --ckpt {name}/{CODEC_DIR if has_codec else 'CODEC'} "
        "--out out.wav",
        "```", "",
        "## Ids", "",
        f"`config.json`: `eos_token_id` {ids['eos_token_id']} is `<|SPEECH_GENERATION_END|>`, "
        f"where speech ends; `bos_token_id` is {bos}.", "",
        "| ids | meaning |", "| --- | --- |", *_id_lines(vocab), "",
        "A prompt (`TTSVocab.prompt_ids`): "
        + ("" if phoneme else "the instruction \"Convert the text to speech:\", ")
        + "`<|TEXT_UNDERSTANDING_START|>` text `<|TEXT_UNDERSTANDING_END|>` [emotion tag] "
        + ("[speaker tag] `<|SPEECH_GENERATION_START|>` and the text's first phoneme unit; "
           "the model continues with that unit's speech codes and `<|EOP|>` (see Decoding)."
           if aligned else
           "[speaker tag] `<|SPEECH_GENERATION_START|>` [a voice reference's codes]"
           + (", inside Llama 3's chat headers" if vocab.prompt_style == "llama3_chat" else "")
           + "; the model continues with speech codes and `<|SPEECH_GENERATION_END|>`."), "",
        "## Decoding", "",
        *(_aligned_decoding(vocab, cfg, sampling, MAX_PHONE_SECONDS) if aligned else [
            "`generation_config.json` holds emotive's default sampling (temperature "
            "%g, top-p %g), `max_length` %d (the training length, prompt included), pad = "
            "eos, and as `suppress_tokens` every id but the speech codes and the eos, as "
            "emotive restricts its draws. Not reproduced by transformers: emotive's "
            "per-sentence minimum length, sentence splitting of long text and classifier-free "
            "guidance (`emotive tts --text-scale/--emotion-scale`)." % (
                sampling.temperature, sampling.top_p, cfg.data.seq_len)]), "",
        "## Files", "",
        "- `config.json`, `generation_config.json`, `model.safetensors` (or shards and an "
        "index): the transformers model",
        "- `tts_vocab.json`, `tokenizer.json`: emotive's vocabulary (`TTSVocab.load`)",
        f"- checked by the release's `SHA256SUMS` (`emotive bundle verify {name}`)", ""]
    return str(model_card(data, "\n".join(lines), order=README_ORDER))


def check_hf_llama(cfg) -> None:
    """UserError unless `cfg` is a TTS run whose LM has a LlamaForCausalLM equivalent."""
    if cfg.task != "tts":
        raise UserError(f"--hf-llama exports a TTS language model; this is a {cfg.task} run")
    import importlib.util

    if importlib.util.find_spec("safetensors") is None:  # plain bundles do not; hf_llama does
        raise UserError("--hf-llama writes its weights with the safetensors package; install "
                        "the hf extra (pip install 'emotive[hf]')")
    from emotive.hub.hf_llama import hf_config_from_model
    from emotive.train.tasks.tts import model_vocab_size

    hf_config_from_model(cfg.model, model_vocab_size(cfg), cfg.tie_embeddings)


def write_hf_llama(root: pathlib.Path, name: str, cfg, vocab, *, dtype: str,
                   shard_bytes: int | None, counts: dict, has_codec: bool) -> pathlib.Path:
    """root/hf-llama/ of a bundle whose weights and config.json are written: the LM read
    back from them (numpy, this process alone) and exported by `export_hf_llama`."""
    from flax import nnx

    from emotive.hub.hf_llama import export_hf_llama

    _, params, rest = bundle.read_bundle(root, task="tts", verify=False)
    graphdef, params_state, rest_state = bundle.abstract_parts(cfg)
    nnx.replace_by_pure_dict(params_state, params)
    if jax.tree.leaves(rest):
        nnx.replace_by_pure_dict(rest_state, rest)
    model = nnx.merge(graphdef, params_state, rest_state)
    del params, rest
    hf_dir = root / HF_LLAMA_DIR
    total = counts["parameters"] * (2 if dtype == "bfloat16" else 4)
    export_hf_llama(model, hf_dir, dtype=dtype,
                    shard_size_bytes=shard_bytes if shard_bytes and total > shard_bytes
                    else None, extra_config=hf_llama_ids(vocab))
    del model
    (hf_dir / "generation_config.json").write_text(
        json.dumps(hf_generation_config(cfg, vocab), indent=2) + "\n")
    vocab.save(hf_dir)
    (hf_dir / bundle.CARD_FILE).write_text(hf_llama_readme(name, cfg, vocab, dtype=dtype,
                                                           has_codec=has_codec))
    return hf_dir

