"""`emotive release`: a trained run -> a self-verifying bundle with a model card.

    release("runs/ser-base", "releases/ser-base", eval_reports=["runs/ser-base/eval-ser-test-3000"])
    release("runs/tts-small", "releases/tts-small", dtype="bfloat16", codec="runs/codec-base")

The bundle (format: emotive/infer/bundle.py) holds the released module's parameters and
non-parameter variables only (no optimiser or iterator state) as safetensors, sharded above
`shard_bytes`; config.json; a TTS run's vocabulary (tts_vocab.json, tokenizer.json); with
`codec=` a TTS pipeline bundle also holds the codec's bundle in codec/; README.md, a model
card whose Hugging Face YAML front matter (license, tags, pipeline tag, datasets,
model-index) takes every metric value from the eval report JSON files given (`emotive eval
KIND` writes them), never from typed numbers; and SHA256SUMS over everything (files in
codec/ and hf-llama/ included, so `emotive bundle verify OUT` checks them too).

A motion_ldm bundle holds the models its generator needs, each a bundle of its own: the
motion VAE in vae/, and the speaker encoder in speaker/ (when `style.speaker_ckpt` is set)
and the recogniser in asr/ (when `content.source` uses asr), released from the runs its
config records (resolved as `MotionGenerator.load` resolves them: relative to the working
directory, else to an ancestor of the run) or copied when they are bundles already. Its
config.json names them relative to the bundle ("vae", "speaker", "asr"), never by a path of
the machine that released it, and the top-level SHA256SUMS covers their files too.

`hf_llama=True` (TTS only) also writes hf-llama/: the language model as a transformers
`LlamaForCausalLM` folder in Llasa's layout (`write_hf_llama`): config.json with
bos/eos/pad ids from the vocabulary (eos = SPEECH_GENERATION_END), generation_config.json
with emotive's default sampling (and the speech-code restriction as suppress_tokens), the
vocabulary files and a README on the id layout. Its weights are read back from the bundle
just written, so they are exactly the bundle's (float32, or bfloat16 with dtype=bfloat16).

Memory and multi-host runs: the parameters are restored from the orbax checkpoint (sharded
over all devices when there are several processes), then gathered to the host one tensor at
a time (`process_allgather` per leaf; `device_get` on one process) and streamed into the
safetensors file, so the host holds one tensor, never a second copy of the model. Every
process runs the release (the gathers are collective); only process 0 writes, into
OUT.partial, renamed to OUT when complete, so a half-written bundle never looks finished.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import shlex
import shutil
import subprocess

import jax
import numpy as np
import yaml

from emotive import configs, registry
from emotive.configs import base
from emotive.errors import UserError
from emotive.infer import bundle
from emotive.train.checkpoint import latest_step_dir, read_config, restore_subset

DEFAULT_SHARD_BYTES = 2 * 10**9  # model-0000i-of-0000n.safetensors above this
HF_LLAMA_DIR = "hf-llama"  # the transformers LlamaForCausalLM export of a TTS bundle
CODEC_DIR = "codec"
VAE_DIR, SPEAKER_DIR, ASR_DIR = "vae", "speaker", "asr"  # a motion_ldm bundle's models
DTYPES = ("float32", "bfloat16")
LICENSE = "apache-2.0"  # the repository states no other licence


@dataclasses.dataclass(frozen=True)
class Card:
    """What a family's model card says beside the numbers."""

    title: str
    pipeline_tag: str | None
    task_type: str  # model-index task type
    tags: tuple[str, ...]
    # (metric type, display name, path of keys into the eval report JSON)
    metrics: tuple[tuple[str, str, tuple[str, ...]], ...]
    usage: tuple[str, ...]  # shell lines; {b} is the bundle path
    python: str  # one Python line; {b} is the bundle path
    limitations: str


_SYNTHETIC = ("Trained on the data listed under Data; with the embedded corpus that is synthetic "
              "eSpeak NG speech (a few dozen voices, emotions rendered by DSP presets), so "
              "it is not expected to work on natural recordings without further training.")
_EMOTION_METRICS = (("uar", "UAR (8 emotions)", ("overall", "uar")),
                    ("accuracy", "accuracy", ("overall", "accuracy")),
                    ("ccc_arousal", "CCC arousal", ("overall", "ccc", "arousal")),
                    ("ccc_dominance", "CCC dominance", ("overall", "ccc", "dominance")),
                    ("ccc_valence", "CCC valence", ("overall", "ccc", "valence")))

CARDS: dict[str, Card] = {
    "codec": Card(
        "speech codec", "audio-to-audio", "audio-to-audio",
        ("audio", "speech-codec", "fsq"),
        (("stoi", "STOI", ("stoi",)), ("pesq_wb", "PESQ WB", ("pesq_wb",)),
         ("pesq_nb", "PESQ NB", ("pesq_nb",)), ("mel_distance", "mel distance",
                                                ("mel_distance",)),
         ("si_sdr", "SI-SDR (dB)", ("si_sdr",)),
         ("codebook_usage", "codebook usage", ("codebook_usage",))),
        ("emotive codec encode in.wav --ckpt {b} --out codes.npy",
         "emotive codec decode codes.npy --ckpt {b} --out out.wav"),
        "codec = emotive.load({b!r}); audio = codec.decode(codec.encode(x_BxT)[0])",
        _SYNTHETIC + " Single-codebook FSQ at 50 codes per second of 16 kHz audio."),
    "tts": Card(
        "emotional TTS language model", "text-to-speech", "text-to-speech",
        ("text-to-speech", "llasa", "emotion"),
        (("cer", "CER (TTS, judged by ASR)", ("intelligibility", "tts", "cer")),
         ("wer", "WER (TTS, judged by ASR)", ("intelligibility", "tts", "wer")),
         ("emotion_accuracy", "emotion accuracy (judged by SER)",
          ("emotion_accuracy", "tts"))),
        ('emotive tts "Hello there." --ckpt {b} --codec CODEC_BUNDLE --emotion happy '
         '--out out.wav',),
        "tts = emotive.load({b!r}, codec='CODEC_BUNDLE'); waves = tts.synthesize('Hello.', "
        "emotion='happy')",
        _SYNTHETIC + " Speaks through the codec it was trained on only; the CER and emotion "
        "accuracy are judged by the project's own recognisers, not by people."),
    "ser": Card(
        "speech emotion recogniser", "audio-classification", "audio-classification",
        ("audio-classification", "speech-emotion-recognition", "wav2vec2"), _EMOTION_METRICS,
        ("emotive classify in.wav --ckpt {b}",),
        "ser = emotive.load({b!r}); out = ser.predict(audio_BxT)  # adv, probs",
        _SYNTHETIC + " Eight emotion categories and arousal/dominance/valence."),
    "student": Card(
        "distilled speech emotion student (Wav2Small)", "audio-classification",
        "audio-classification", ("audio-classification", "speech-emotion-recognition",
                                 "distillation"),
        _EMOTION_METRICS + tuple(
            (f"ccc_vs_teacher_{d}", f"CCC vs teacher {d}", ("overall", "ccc_vs_teacher", d))
            for d in ("arousal", "dominance", "valence")),
        ("emotive classify in.wav --ckpt {b}",),
        "student = emotive.load({b!r}); out = student.predict(audio_BxT)",
        _SYNTHETIC + " Distilled from a SER teacher, which bounds its accuracy."),
    "speaker": Card(
        "speaker encoder", None, "speaker-verification",
        ("audio", "speaker-verification", "speaker-embedding"),
        (("eer", "EER (cosine, all pairs)", ("overall", "eer")),),
        (),
        "enc = emotive.load({b!r}); emb_BxD = enc.embed(audio_BxT)",
        _SYNTHETIC + " Unit-length embeddings scored by cosine; the EER is over all pairs "
        "of held-out speakers' utterances."),
    "asr": Card(
        "CTC speech recogniser", "automatic-speech-recognition",
        "automatic-speech-recognition", ("automatic-speech-recognition", "ctc"),
        (("cer", "CER (greedy)", ("overall", "cer")), ("wer", "WER (greedy)",
                                                      ("overall", "wer"))),
        ("emotive transcribe in.wav --ckpt {b}",),
        "asr = emotive.load({b!r}); texts = asr.transcribe(audio_BxT)",
        _SYNTHETIC + " Lower-case characters without punctuation; the figures are greedy "
        "decoding unless the report says otherwise."),
    "motion_vae": Card(
        "motion VAE", None, "motion-autoencoding", ("motion", "smpl-x", "vae"), (), (),
        "vae = emotive.load({b!r})",
        "Trained on the motion corpus named below (the embedded corpus is procedural motion "
        "planted on synthetic speech)."),
    # No Hugging Face pipeline tag fits speech -> body and face motion; none is claimed.
    "motion_ldm": Card(
        "speech-driven motion latent diffusion", None, "speech-to-motion",
        ("audio", "motion", "smpl-x", "arkit", "co-speech-gesture", "talking-head",
         "latent-diffusion", "emotion"),
        (("fgd", "FGD", ("rows", "model", "fgd", "value")),
         ("beat_alignment", "beat alignment", ("rows", "model", "beat_alignment", "value")),
         ("emotion_accuracy", "emotion accuracy (motion probe)",
          ("rows", "model", "emotion_accuracy", "value")),
         ("lip_sync_lve", "lip-sync LVE", ("rows", "model", "lip_sync_lve", "value")),
         ("seam_jerk_ratio", "seam / in-window jerk", ("rows", "model", "seam_jerk_ratio",
                                                       "value"))),
        ("emotive motion --audio in.wav --ckpt {b} --emotion happy --out motion.npz "
         "--bvh motion.bvh --arkit face.csv",),
        "gen = emotive.load({b!r}); out = gen.generate(audio_T, emotion='happy', seed=0)  "
        "# out.frames [T, 385] at 30 fps",
        "Trained on the motion corpus named below (the embedded corpus is procedural motion "
        "planted on synthetic eSpeak NG speech), so it is not expected to move like people "
        "on natural recordings without further training. FGD and the emotion accuracy are "
        "judged by the project's own feature extractor and motion probe, not by people."),
}


# ------------------------------------------------------------------------ eval reports

def _lookup(report: dict, path: tuple[str, ...]):
    value = report
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def read_report(path, family: str) -> dict:
    """An eval report (report.json, or a folder holding one) of `family`, as
    {"file", "dataset", "split", "step", "metrics": [(type, name, value)]}; UserError if it
    is unreadable, of another family or holds none of the family's card metrics."""
    card = CARDS[family]
    eval_kind = registry.eval_kind(family)  # what `emotive eval` calls the family
    p = pathlib.Path(path)
    if p.is_dir():
        p = p / "report.json"
    if not p.is_file():
        raise UserError(f"--eval {path}: no report.json there; pass the output folder of "
                        f"`emotive eval {eval_kind}`")
    try:
        report = json.loads(p.read_text())
        if not isinstance(report, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise UserError(f"--eval {p}: unreadable report ({str(exc)[:120]})") from None
    if "task" in report and report["task"] not in (family, eval_kind):
        raise UserError(f"--eval {p} is a report of {report['task']!r}, not {family!r}")
    metrics = []
    for kind, name, keys in card.metrics:
        value = _lookup(report, keys)
        if isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value):
            metrics.append((kind, name, value))
    if not metrics:
        wanted = ", ".join(".".join(k) for _, _, k in card.metrics) or "none defined"
        raise UserError(f"--eval {p} holds none of the metrics of a {family} card ({wanted}); "
                        f"pass a report of `emotive eval {eval_kind}`")
    return {"file": str(p), "dataset": report.get("dataset") or "unspecified",
            "split": report.get("split") or "unspecified",
            "step": report.get("step", report.get("tts_step")), "metrics": metrics}


# ------------------------------------------------------------------------ the card

def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _set_text(value) -> str | None:
    """A config value as --set writes it (None when --set cannot express it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        if any(isinstance(v, (dict, list, tuple)) for v in value):
            return None
        return ",".join(_set_text(v) for v in value)
    return str(value)


def training_command(cfg) -> str:
    """`emotive train FAMILY --preset P --set ...`: the nearest preset and the keys in which
    the run's config differs from it (the config does not record the command itself)."""
    flat = _flat(base.to_dict(cfg))
    best = None
    for name, make in configs.presets(cfg.task).items():
        try:
            preset = _flat(base.to_dict(make()))
        except UserError:
            continue
        diff = [k for k in flat if preset.get(k, object()) != flat[k]]
        if best is None or len(diff) < len(best[1]):
            best = (name, diff)
    name, diff = best
    sets, unset = [], []
    for key in diff:
        text = _set_text(flat[key])
        if text is None:
            unset.append(key)
        else:
            sets.append(f"{key}={text}")
    words = ["emotive", "train", cfg.task, "--preset", name] + (["--set", *sets] if sets else [])
    command = shlex.join(words)
    if unset:
        command += f"  # and {', '.join(unset)} as in config.json (not expressible by --set)"
    return command


def git_commit() -> str:
    """The commit of the emotive source tree writing the bundle ("unknown" outside git)."""
    where = pathlib.Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain",
                                "--untracked-files=no"], check=True, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (" (with uncommitted changes)" if dirty else "") if head else "unknown"


def _data_lines(cfg) -> list[str]:
    data = _flat(base.to_dict(cfg.data)) if hasattr(cfg, "data") else {}
    shown = {k: v for k, v in data.items() if isinstance(v, str) and v}
    lines = [f"- `data.{k}`: `{v}`" for k, v in shown.items()]
    if any(v == "emotive_speech" for v in shown.values()) or cfg.task == "tts":
        lines.append("- the embedded corpus: `emotive data synth --preset tiny|full|wide|lexicon "
                     "--out CORPUS`, then `emotive data build emotive_speech --src CORPUS --out "
                     "DATA_DIR`" + (" and `emotive codec encode-split` per split (the TTS "
                                    "training tables)" if cfg.task == "tts" else ""))
    return lines or ["- see config.json"]


def front_matter(name: str, family: str, cfg, reports: list[dict]) -> dict:
    card = CARDS[family]
    trained_on = getattr(getattr(cfg, "data", None), "dataset", None)
    datasets = {r["dataset"] for r in reports if r["dataset"] != "unspecified"}
    datasets = sorted(datasets | ({trained_on} if isinstance(trained_on, str) else set()))
    meta = {"license": LICENSE, "library_name": "emotive",
            "tags": ["emotive", "jax", "flax", *card.tags]}
    if card.pipeline_tag:
        meta["pipeline_tag"] = card.pipeline_tag
    if datasets:
        meta["datasets"] = datasets
    results = []
    for r in reports:
        results.append({
            "task": {"type": card.task_type, "name": card.title},
            "dataset": {"type": r["dataset"], "name": f"{r['dataset']} ({r['split']})",
                        "split": r["split"]},
            "metrics": [{"type": kind, "name": label, "value": value}
                        for kind, label, value in r["metrics"]]})
    if results:
        meta["model-index"] = [{"name": name, "results": results}]
    return meta


def write_card(path: pathlib.Path, name: str, family: str, cfg, *, step: int, dtype: str,
               counts: dict, reports: list[dict], source: pathlib.Path,
               codec_note: str = "", extra_files: tuple[str, ...] = (),
               note: str = "") -> None:
    card = CARDS[family]
    meta = front_matter(name, family, cfg, reports)
    b = name
    lines = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(), "---",
             "", f"# {name}: {card.title}", "",
             f"An emotive `{family}` model at training step {step}: {counts['parameters']:,} "
             f"parameters stored as {dtype} ({counts['bytes'] / 2**20:.2f} MiB of weights)."
             + codec_note + note, "", "## Use", "", "```bash", f"emotive bundle verify {b}"]
    usage, python = card.usage, card.python
    if codec_note:  # a TTS bundle that holds its codec speaks alone
        usage = ('emotive tts "Hello there." --bundle {b} --emotion happy --out out.wav',)
        python = "tts = emotive.load({b!r}); waves = tts.synthesize('Hello.', emotion='happy')"
    lines += [u.format(b=b) for u in usage]
    lines += ["```", "", "```python", "import emotive", "", python.format(b=b), "```", "",
              "Loading checks every file against SHA256SUMS first and every tensor against the "
              "model config.json builds; nothing is unpickled. Every `--ckpt` takes the "
              "bundle as it takes a training run.", ""]
    lines += ["## Results", ""]
    if reports:
        lines += ["| metric | value | dataset | split | report step |",
                  "| --- | --- | --- | --- | --- |"]
        for r in reports:
            lines += [f"| {label} | {value:.6g} | {r['dataset']} | {r['split']} | {r['step']} |"
                      for _, label, value in r["metrics"]]
        lines += ["", "Read from the eval reports given to `emotive release --eval` "
                  f"({', '.join(pathlib.Path(r['file']).parent.name for r in reports)})."]
    else:
        lines += ["No eval report was given to `emotive release --eval`; no figures are "
                  "claimed."]
    lines += ["", "## Training", "", "```bash", training_command(cfg), "```", "",
              f"- released from `{_portable(source)}` (step {step})",
              f"- code: git commit {git_commit()}", "", "## Data", ""] + _data_lines(cfg)
    lines += ["", "## Limitations", "", card.limitations, "",
              "## Files", "", "- `model.safetensors` (or shards and an index): `params/<path>` "
              "parameters, `rest/<path>` batch-norm statistics and other non-parameter state",
              "- `config.json`: the resolved experiment config",
              "- `SHA256SUMS`: checked by `emotive bundle verify` and on every load",
              *extra_files, ""]
    path.write_text("\n".join(lines))


# ------------------------------------------------------------------------ hf-llama

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
    """Every id but the speech codes and SPEECH_GENERATION_END: emotive's TTS decoding draws
    from those only (its allowed_range), and transformers does the same with these as
    generation_config.json's suppress_tokens."""
    lo, hi = vocab.speech_offset, vocab.speech_offset + vocab.codebook_size
    return [i for i in range(vocab.vocab_size) if not lo <= i < hi and i != vocab.speech_end]


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
    lines = [f"| `[0, {t})` | text: {front}; ids the tokenizer lacks are reserved |"]
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


def hf_llama_readme(name: str, cfg, vocab, *, dtype: str, has_codec: bool) -> str:
    """hf-llama/README.md: how to load it, how the ids map, where the codec is."""
    from emotive.infer.tts import DEFAULT_SAMPLING as sampling

    ids = hf_llama_ids(vocab)
    meta = {"license": LICENSE, "library_name": "transformers", "pipeline_tag": "text-to-speech",
            "tags": ["emotive", "llasa", "llama", "text-to-speech", "emotion"]}
    emotion = vocab.emotions[0] if vocab.emotions else None
    prompt_args = '"Hello there."' + (f', emotion="{emotion}"' if emotion else "")
    here = f"{name}/{HF_LLAMA_DIR}"
    phoneme = vocab.text_frontend == "phoneme"
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
        "---", yaml.safe_dump(meta, sort_keys=False).rstrip(), "---", "",
        f"# {name}: the TTS language model as a transformers LlamaForCausalLM", "",
        f"The language model of the emotive TTS bundle `{name}`, exported as a Hugging Face "
        f"`LlamaForCausalLM` ({dtype} weights), in Llasa's layout: a Llama language model "
        "whose vocabulary is text ids, Llasa's 8 specials and one token per speech code, "
        "with the speech codec in a repository of its own. "
        f"{codec} (`emotive codec decode`), not an X-codec2 checkpoint; emotive loads it.", "",
        "A float32 export is tested to give emotive's logits within 1e-4 and, decoding "
        "greedily in transformers, emotive's tokens (emotive's "
        "tests/hub/test_hf_tts_export.py).", "",
        "## Tokenizer", "",
        "There is no transformers tokenizer here. The vocabulary ships in emotive's format: "
        "`tts_vocab.json` (the layout) and `tokenizer.json` (the text part only"
        + ("; emotive's phoneme inventory, not a `tokenizers` file" if phoneme else
           "; `AutoTokenizer` may read it but does not know the id layout below: specials, "
           "speech codes and tags") + "). Build prompts with emotive's `TTSVocab`:", "",
        "```python",
        "import numpy as np, torch, transformers",
        "from emotive.codecs.text import TTSVocab"
        + ("\nfrom emotive.data.speech.espeak import phonemize" if phoneme else ""),
        "",
        f'lm = transformers.LlamaForCausalLM.from_pretrained("{here}")',
        f"vocab = {load_vocab}",
        f"prompt = torch.tensor([vocab.prompt_ids({prompt_args})])",
        "out = lm.generate(prompt)  # generation_config.json: emotive's sampling",
        "new = out[0, prompt.shape[1]:].tolist()",
        "new = new[:new.index(vocab.speech_end)] if vocab.speech_end in new else new",
        'np.save("codes.npy", vocab.ids_to_codes(new))',
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
        + ("" if phoneme else f"the instruction \"Convert the text to speech:\", ")
        + "`<|TEXT_UNDERSTANDING_START|>` text `<|TEXT_UNDERSTANDING_END|>` [emotion tag] "
        "[speaker tag] `<|SPEECH_GENERATION_START|>` [a voice reference's codes]"
        + (", inside Llama 3's chat headers" if vocab.prompt_style == "llama3_chat" else "")
        + "; the model continues with speech codes and `<|SPEECH_GENERATION_END|>`.", "",
        "## Decoding", "",
        "`generation_config.json` holds emotive's default sampling (temperature "
        "%g, top-p %g), `max_length` %d (the training length, prompt included), pad = eos, "
        "and as `suppress_tokens` every id but the speech codes and the eos, as emotive "
        "restricts its draws. Not reproduced by transformers: emotive's per-sentence minimum "
        "length, sentence splitting of long text and classifier-free guidance "
        "(`emotive tts --text-scale/--emotion-scale`)." % (
            sampling.temperature, sampling.top_p, cfg.data.seq_len), "",
        "## Files", "",
        "- `config.json`, `generation_config.json`, `model.safetensors` (or shards and an "
        "index): the transformers model",
        "- `tts_vocab.json`, `tokenizer.json`: emotive's vocabulary (`TTSVocab.load`)",
        f"- checked by the release's `SHA256SUMS` (`emotive bundle verify {name}`)", ""]
    return "\n".join(lines)


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


# ------------------------------------------------------------------------ release

def _portable(path: pathlib.Path) -> str:
    """A run path as the card states it: relative to the working directory when inside it,
    else the run's last three path parts (never a machine's absolute path)."""
    path = pathlib.Path(path).absolute()
    try:
        return path.relative_to(pathlib.Path.cwd()).as_posix()
    except ValueError:
        return pathlib.Path(*path.parts[-3:]).as_posix()


def _source_paths(family: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Where the released module's params and rest sit in the saved train state."""
    if family == "codec":
        return ("params", "generator", "codec"), ("rest", "codec")
    return ("params", "model"), ("rest",)


def _nest(path: tuple[str, ...], tree) -> dict:
    for key in reversed(path):
        tree = {key: tree}
    return tree


def _pluck(tree, path: tuple[str, ...]):
    for key in path:
        tree = tree[key]
    return tree


def _release_mesh():
    """All devices on one axis: each leaf is sharded where it divides (multi-host only)."""
    from emotive.configs.common import MeshConfig
    from emotive.train.mesh import make_mesh

    return make_mesh(MeshConfig(data=1, fsdp=-1, tensor=1))


def _targets(state, mesh):
    """ShapeDtypeStructs of an abstract nnx.State (with shardings on `mesh`)."""
    shapes = state.to_pure_dict()
    if mesh is None:
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), shapes)
    from emotive.train.mesh import state_shardings

    shardings = state_shardings(state, mesh).to_pure_dict()
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                        shapes, shardings)


def _to_host(x) -> np.ndarray:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True)).reshape(x.shape)
    return np.asarray(jax.device_get(x))


def _read_run(run) -> tuple[pathlib.Path, object]:
    step_dir = latest_step_dir(pathlib.Path(run).absolute())
    raw = read_config(step_dir)
    family = raw.get("task")
    if family not in CARDS:
        have = ", ".join(CARDS)
        raise UserError(f"{run} is a {family!r} run; `emotive release` takes runs of {have}")
    if registry.family(family).predictor is None:
        raise UserError(f"family {family!r} has no predictor to load a bundle with")
    return step_dir, base.from_dict(bundle.config_class(family), raw)


def _prepare_out(out: pathlib.Path) -> pathlib.Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not empty; pass a new folder (bundles "
                        "are never overwritten)")
    partial = out.with_name(out.name + ".partial")
    if jax.process_index() == 0:
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
    return partial


def _finish(partial: pathlib.Path, out: pathlib.Path) -> None:
    if out.exists():
        out.rmdir()  # empty (checked before)
    os.replace(partial, out)


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def write_weights(root: pathlib.Path | None, step_dir: pathlib.Path, cfg, *, dtype: str,
                  shard_bytes: int | None, step: int, sharded: bool | None = None) -> dict:
    """Streams the released module's tensors from the checkpoint into `root` (None: a
    process other than 0, which gathers but writes nothing); returns counts and bytes.
    `sharded` (default: with several processes) restores over all devices first."""
    family = cfg.task
    _, params, rest = bundle.abstract_parts(cfg)
    sharded = jax.process_count() > 1 if sharded is None else sharded
    mesh = _release_mesh() if sharded else None
    params_at, rest_at = _source_paths(family)
    item = _nest(params_at[1:], _targets(params, mesh))
    item = {"params": item}
    rest_targets = _targets(rest, mesh)
    if jax.tree.leaves(rest_targets):
        item["rest"] = _nest(rest_at[1:], rest_targets)
    restored = restore_subset(step_dir, item)
    leaves = dict(bundle.flat_keys(bundle.PARAMS, _pluck(restored, params_at)))
    if "rest" in item:
        leaves.update(bundle.flat_keys(bundle.REST, _pluck(restored, rest_at)))
    del restored  # `leaves` holds the only references; each is dropped once written

    def stored_code(key, leaf) -> str:
        floating = np.issubdtype(np.dtype(leaf.dtype), np.floating)
        if dtype == "bfloat16" and floating and key.startswith(bundle.PARAMS + "/"):
            return "BF16"
        return bundle.dtype_code(leaf.dtype)

    entries = [(key, tuple(leaf.shape), stored_code(key, leaf)) for key, leaf in
               sorted(leaves.items())]
    codes = {key: code for key, _, code in entries}

    def fetch(key):
        host = _to_host(leaves.pop(key))
        return host.astype(bundle.DTYPES[codes[key]]) if root is not None else None

    shards = bundle.plan_shards(entries, shard_bytes)
    names = bundle.shard_names(len(shards))
    metadata = {"format": "pt", "task": family, "step": str(step), "dtype": dtype}
    for name, shard in zip(names, shards):
        bundle.write_safetensors(root / name if root is not None else None, shard, fetch,
                                 metadata)
    if root is not None and len(shards) > 1:
        index = {"metadata": {"total_size": sum(bundle.nbytes(s, c) for _, s, c in entries)},
                 "weight_map": {key: name for name, shard in zip(names, shards)
                                for key, _, _ in shard}}
        (root / bundle.INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    params_entries = [(s, c) for k, s, c in entries if k.startswith(bundle.PARAMS + "/")]
    return {"parameters": sum(math.prod(s) for s, _ in params_entries),
            "bytes": sum(bundle.nbytes(s, c) for s, c in params_entries)}


def _add_nested(root, where: pathlib.Path, source, task: str, label: str, reports, dtype,
                shard_bytes) -> None:
    """A model a bundle holds in subfolder `where`: a bundle of `task` copied (verified; a
    download's .cache/huggingface left out), or a run of `task` released there. `label`
    names the source in errors ("--codec", "vae.ckpt=...")."""
    if bundle.is_bundle(source):
        if root is not None:
            bundle.verify_bundle(source)
            if bundle.read_config(pathlib.Path(source)).task != task:
                raise UserError(f"{label} {source} is not a {task} bundle")
            top = pathlib.Path(source).absolute()
            ignored = {top / d for d in bundle.IGNORED_DIRS}
            shutil.copytree(source, where, ignore=lambda d, names: [
                n for n in names if pathlib.Path(d).absolute() / n in ignored])
        return
    step_dir = latest_step_dir(pathlib.Path(source).absolute())
    if read_config(step_dir).get("task") != task:
        raise UserError(f"{label} {source} is not a {task} run or bundle")
    release(source, where, eval_reports=reports, dtype=dtype, shard_bytes=shard_bytes)


def _add_codec(root, codec_dir: pathlib.Path, codec, reports, dtype, shard_bytes) -> None:
    """A TTS pipeline bundle's codec/: a codec bundle copied (verified), or a codec run
    released there."""
    _add_nested(root, codec_dir, codec, "codec", "--codec", reports, dtype, shard_bytes)


# A motion_ldm bundle's models: (config section, field, subfolder, task, what it is).
_MOTION_MODELS = (("vae", "ckpt", VAE_DIR, "motion_vae", "the motion VAE"),
                  ("style", "speaker_ckpt", SPEAKER_DIR, "speaker",
                   "the speaker encoder (style)"),
                  ("content", "asr_ckpt", ASR_DIR, "asr", "the recogniser (speech content)"))


def motion_models(cfg, step_dir) -> list[tuple[str, str, str, pathlib.Path, str]]:
    """The models a motion_ldm run's generator loads, as (config key, subfolder, task,
    resolved path, description); each recorded path is resolved as `MotionGenerator.load`
    does (`resolve_beside`) and checked to be a run or bundle of its task. UserError for a
    missing or wrong one, before any work."""
    from emotive.infer.motion import resolve_beside, run_config

    uses = {"vae": True, "style": bool(cfg.style.speaker_ckpt),
            "content": cfg.content.source in ("asr", "asr+mel")}
    out = []
    for section, field, sub, task, what in _MOTION_MODELS:
        recorded = getattr(getattr(cfg, section), field)
        if not uses[section]:
            continue
        key = f"{section}.{field}"
        if not recorded:
            raise UserError(f"the motion_ldm run at {step_dir} records no {key}; it cannot be "
                            f"released without {what}")
        path = resolve_beside(recorded, step_dir)
        if not path.exists():
            raise UserError(f"{key}={recorded} (recorded by the run at {step_dir}) is not found "
                            "relative to the working directory nor beside the run; release "
                            "from the directory it was trained in")
        run_config(path, task)  # a run or bundle of the task, else a one-line UserError
        out.append((key, sub, task, path.absolute(), what))
    return out


def _with_models(cfg, paths: dict[str, str]):
    """`cfg` with the motion models' config keys set to `paths` (others emptied)."""
    values = {f"{s}.{f}": "" for s, f, *_ in _MOTION_MODELS} | paths
    for section, field, *_ in _MOTION_MODELS:
        part = dataclasses.replace(getattr(cfg, section),
                                   **{field: values[f"{section}.{field}"]})
        cfg = dataclasses.replace(cfg, **{section: part})
    return cfg


def release(run, out, *, eval_reports=(), dtype: str = "float32",
            shard_bytes: int | None = DEFAULT_SHARD_BYTES, codec=None,
            codec_eval_reports=(), hf_llama: bool = False) -> pathlib.Path:
    """Writes the bundle of `run`'s newest checkpoint to `out` (a new folder); returns it.

    `eval_reports`: report.json files (or their folders) of `emotive eval FAMILY` whose
    figures the card states. `dtype="bfloat16"` stores floating parameters as BF16 (loading
    casts them back). `codec` (TTS only): a codec run or codec bundle copied into codec/, so
    the bundle speaks alone (`emotive.load(bundle)`, `emotive tts --bundle`). `hf_llama`
    (TTS only) adds hf-llama/, the LM as a transformers LlamaForCausalLM (write_hf_llama),
    stored in `dtype`.
    """
    if dtype not in DTYPES:
        raise UserError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    step_dir, cfg = _read_run(run)
    family = cfg.task
    if codec is not None and family != "tts":
        raise UserError(f"a codec goes into TTS bundles only; {run} is a {family} run")
    if hf_llama:
        check_hf_llama(cfg)  # before any work: a TTS LM of Llama's shape
    step = int(step_dir.name) if step_dir.name.isdigit() else 0
    reports = [read_report(p, family) for p in eval_reports]  # bad input before any work
    for r in reports:
        if r["step"] is not None and r["step"] != step:
            raise UserError(f"--eval {r['file']} evaluated step {r['step']}, but the released "
                            f"checkpoint is step {step}; evaluate the checkpoint released")
    vocab = None
    if family == "tts":
        from emotive.data.pipelines.tts import read_checkpoint_vocab

        vocab = read_checkpoint_vocab(step_dir)
    models = motion_models(cfg, step_dir) if family == "motion_ldm" else []
    recorded = saved_cfg = cfg  # as the run recorded it; what config.json holds
    if models:  # the run's paths build the model here; the bundle names its subfolders
        cfg = _with_models(cfg, {key: str(path) for key, _, _, path, _ in models})
        saved_cfg = _with_models(cfg, {key: sub for key, sub, *_ in models})
    out = pathlib.Path(out).absolute()
    partial = _prepare_out(out)
    root = partial if jax.process_index() == 0 else None
    try:
        counts = write_weights(root, step_dir, cfg, dtype=dtype, shard_bytes=shard_bytes,
                               step=step)
        codec_note = ""
        if codec is not None:
            _add_codec(root, partial / CODEC_DIR, codec, codec_eval_reports, dtype,
                       shard_bytes)
            codec_note = " The codec it speaks through is in `codec/` (a bundle of its own)."
        note, extra_files = "", ()
        for key, sub, task, path, what in models:
            _add_nested(root, partial / sub, path, task, key, (), dtype, shard_bytes)
        if models:
            note = (" It holds the models it needs, each a bundle of its own: "
                    + ", ".join(f"{what} in `{sub}/`" for _, sub, _, _, what in models) + ".")
            extra_files = tuple(f"- `{sub}/`: {what}, a `{task}` bundle (config.json's "
                                f"`{key}` names it)" for key, sub, task, _, what in models)
        if root is not None:
            (root / bundle.CONFIG_FILE).write_text(base.to_json(saved_cfg) + "\n")
            if vocab is not None:
                vocab.save(root)
            if hf_llama:  # process 0 alone: it reads back the weights it just wrote
                write_hf_llama(root, out.name, cfg, vocab, dtype=dtype,
                               shard_bytes=shard_bytes, counts=counts,
                               has_codec=codec is not None)
                extra_files = (f"- `{HF_LLAMA_DIR}/`: the language model as a transformers "
                               "`LlamaForCausalLM` in Llasa's layout, with this vocabulary; "
                               f"see `{HF_LLAMA_DIR}/README.md`",)
            write_card(root / bundle.CARD_FILE, out.name, family, recorded, step=step,
                       dtype=dtype, counts=counts, reports=reports, source=step_dir,
                       codec_note=codec_note, extra_files=extra_files, note=note)
            bundle.write_sums(root)
            _finish(partial, out)
    finally:
        if root is not None and partial.exists():
            shutil.rmtree(partial)  # a failed release leaves nothing that looks like a bundle
    _sync("emotive_release_done")
    return out
