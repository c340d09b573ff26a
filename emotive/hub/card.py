"""The model card (README.md) of a bundle: what each family's card says, its Hugging Face
front matter and its body.

The front matter (license, tags, pipeline tag, datasets, model-index) is written by
`huggingface_hub` (`ModelCardData` with one `EvalResult` per metric), and every metric
value comes from the eval report JSON files given (`emotive eval KIND` writes them;
`read_report`), never from typed numbers. The body: how to use the bundle, the results
table, the training command (the nearest preset and the keys that differ: the config does
not record the command), the run and git commit it came from, its data, limitations and
files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import shlex
import subprocess

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from emotive import configs, registry
from emotive.configs import base
from emotive.errors import UserError
from emotive.infer import bundle

LICENSE = "apache-2.0"  # the repository states no other licence
# Front matter keys in the order the cards have always had them; model-index comes last.
FRONT_MATTER_ORDER = ("license", "library_name", "tags", "pipeline_tag", "datasets")


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
        "ser = emotive.load({b!r}); out = ser.predict(audio, sample_rate=sr)  # label, "
        "probabilities, arousal, dominance, valence",
        _SYNTHETIC + " Eight emotion categories and arousal/dominance/valence."),
    "student": Card(
        "distilled speech emotion student (Wav2Small)", "audio-classification",
        "audio-classification", ("audio-classification", "speech-emotion-recognition",
                                 "distillation"),
        _EMOTION_METRICS + tuple(
            (f"ccc_vs_teacher_{d}", f"CCC vs teacher {d}", ("overall", "ccc_vs_teacher", d))
            for d in ("arousal", "dominance", "valence")),
        ("emotive classify in.wav --ckpt {b}",),
        "student = emotive.load({b!r}); out = student.predict(audio, sample_rate=sr)",
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
    dataset = report.get("dataset") or "unspecified"
    if report.get("dataset_label"):  # `emotive eval --label`: e.g. the held-out voices
        dataset = f"{dataset}/{report['dataset_label']}"
    return {"file": str(p), "dataset": dataset,
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


def _portable(path: pathlib.Path) -> str:
    """A run path as the card states it: relative to the working directory when inside it,
    else the run's last three path parts (never a machine's absolute path)."""
    path = pathlib.Path(path).absolute()
    try:
        return path.relative_to(pathlib.Path.cwd()).as_posix()
    except ValueError:
        return pathlib.Path(*path.parts[-3:]).as_posix()


def model_card(data: ModelCardData, body: str,
               order: tuple[str, ...] = FRONT_MATTER_ORDER) -> ModelCard:
    """A ModelCard of `data` as the YAML front matter (keys in `order`, then the rest, then
    model-index) and `body` (Markdown) below it; built by parsing, so it reads back."""
    return ModelCard(f"---\n{data.to_yaml(original_order=list(order))}\n---\n\n{body}")


def card_data(name: str, family: str, cfg, reports: list[dict],
              role: str | None = None) -> ModelCardData:
    """The card's front matter: licence, library, tags, pipeline tag, the datasets trained
    and evaluated on, and a model-index named `name` holding each report's metrics (one
    EvalResult a metric: the family's task, the report's dataset and split). `role` (a key
    of bundle.ROLES) becomes the tag `role:ROLE`."""
    card = CARDS[family]
    trained_on = getattr(getattr(cfg, "data", None), "dataset", None)
    datasets = {r["dataset"] for r in reports if r["dataset"] != "unspecified"}
    datasets = sorted(datasets | ({trained_on} if isinstance(trained_on, str) else set()))
    results = [EvalResult(task_type=card.task_type, task_name=card.title,
                          dataset_type=r["dataset"], dataset_name=f"{r['dataset']} ({r['split']})",
                          dataset_split=r["split"], metric_type=kind, metric_name=label,
                          metric_value=value)
               for r in reports for kind, label, value in r["metrics"]]
    return ModelCardData(license=LICENSE, library_name="emotive",
                         tags=["emotive", "jax", "flax", *card.tags,
                               *([bundle.ROLE_TAG + role] if role else [])],
                         pipeline_tag=card.pipeline_tag, datasets=datasets or None,
                         model_name=name if results else None, eval_results=results or None)


def write_card(path: pathlib.Path, name: str, family: str, cfg, *, step: int, dtype: str,
               counts: dict, reports: list[dict], source: pathlib.Path,
               codec_note: str = "", extra_files: tuple[str, ...] = (),
               note: str = "", role: str | None = None) -> None:
    """Writes the model card of bundle `name` (a `family` model, config `cfg`, released from
    checkpoint `source` at `step`, `counts` from write_weights) to `path`: front matter from
    `card_data`, the body from CARDS[family] and `reports` (read_report's dicts).
    `codec_note`/`note` extend the summary; `extra_files` are lines of its Files list;
    `role` (bundle.ROLES) adds a Role section and its tag."""
    card = CARDS[family]
    b = name
    lines = [f"# {name}: {card.title}", "",
             f"An emotive `{family}` model at training step {step}: {counts['parameters']:,} "
             f"parameters stored as {dtype} ({counts['bytes'] / 2**20:.2f} MiB of weights)."
             + codec_note + note, ""]
    if role:
        seed = getattr(getattr(cfg, "train", None), "seed", None)
        lines += ["## Role", "", f"**{role}**" + (f" (training seed {seed})" if seed is not None
                                                   else "") + f": {bundle.ROLES[role]}.", ""]
    lines += ["## Use", "", "```bash", f"emotive bundle verify {b}"]
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
    model_card(card_data(name, family, cfg, reports, role), "\n".join(lines)).save(path)
