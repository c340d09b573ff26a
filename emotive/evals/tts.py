"""Judge a TTS model with the recognisers: intelligibility and emotion of what it speaks.

    emotive eval tts --ckpt runs/tts-small --codec runs/codec-base --asr runs/asr-base \
        --ser runs/ser-base --data-dir DATA_DIR --split test [--limit 48]

On held-out clips of `split` (speakers and texts never trained on), three versions of each
utterance are transcribed by the CTC recogniser: the original recording, its codec
resynthesis (encode + decode: the ceiling a TTS on this codec can reach) and the TTS output
for the clip's text in the clip's emotion (one sample, seeded; batches of --batch-size
texts decode together). Clips are clean recordings spread evenly over the emotions.
Reported: corpus CER/WER of each with its substitution/deletion/insertion rates, the judge's
chance level (CER against other clips' texts) and the content margin (chance minus CER:
babble scores near 0), and for the TTS output the emotion classifier's accuracy
per requested emotion (beside the classifier's accuracy on the originals and resyntheses of
the same clips, so a weak classifier is not mistaken for a weak TTS); the share of takes
that never stopped. Aligned (ELLA-V) models also report the share of phonemes ended by
force and the mean phoneme-duration error in frames against eSpeak's timings of the clip
(where the data carries them); `oracle_durations` fixes every phoneme to those timings (the
diagnostic row: what perfect durations would give); `speed` scales the aligned model's own
durations (the report's `seconds` then gives the length ratio against a speed-1 report). Writes report.json, the TTS wavs and
spectrograms.png (original, resynthesis and TTS of the first clips side by side).
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from emotive.configs.common import SAMPLE_RATE
from emotive.errors import UserError
from emotive.data.speech.emotions import EMOTIONS
from emotive.evals.common import corpus_rates, plot_mel_grid, write_report
from emotive.data.pipelines.ella import parse_phones, unit_frames
from emotive.metrics.recognition import character_operations, wrong_text_cer
from emotive.infer.predictor import pad_rows
from emotive.search.verifiers import EmotionVerifier, IntelligibilityVerifier

PLOTTED_CLIPS = 4  # rows of spectrograms.png: original | resynthesis | TTS


def select_clips(clips, emotions, limit: int) -> list[dict]:
    """Up to `limit` clips, as even across `emotions` as the split allows, in split order.

    Only clean recordings (or clips without a condition) count: the TTS is asked for
    clean speech, so distant or shouted originals would not be a fair comparison. Stops
    reading the split as soon as every emotion has its share.
    """
    quota = -(-limit // max(len(emotions), 1))
    picked = {e: [] for e in emotions}
    for c in clips:
        emotion = EMOTIONS[c["emotion"]]
        if c.get("condition", "") not in ("", "clean") or emotion not in picked:
            continue
        if len(picked[emotion]) < quota:
            picked[emotion].append(c)
        if all(len(v) >= quota for v in picked.values()):
            break
    rounds = [c for i in range(quota) for e in emotions if i < len(picked[e])
              for c in [picked[e][i]]]
    return rounds[:limit]


def evaluate(lm, codec, recognizer, emotion_model, data_dir, split: str = "test", *,
             dataset: str = "emotive_speech", limit: int = 48, seed: int = 0,
             out_dir=None, batch_size: int = 8, text_scale: float = 1.0,
             emotion_scale: float = 1.0, oracle_durations: bool = False,
             speed: float = 1.0, temperature: float | None = None) -> dict:
    """Returns (and writes under out_dir) the report described in the module docstring.

    `recognizer` and `emotion_model` are the judges' predictors; they score through the
    search verifiers (IntelligibilityVerifier, EmotionVerifier), as search does.
    """
    from emotive.codecs.audio import save_audio
    from emotive.infer import codec as codec_lib  # looked up at call time: tests stand in
    from emotive.infer.tts import DEFAULT_SAMPLING, synthesize_batch

    intelligibility = IntelligibilityVerifier(recognizer)
    emotion = EmotionVerifier(emotion_model)

    _, _, vocab, step = lm
    clips = select_clips(codec_lib.iterate_split(codec, data_dir, split, dataset=dataset,
                                       batch_size=batch_size, decode=True),
                         [e for e in EMOTIONS if e in vocab.emotions], limit)
    out = pathlib.Path(out_dir) if out_dir is not None else None
    if out is not None:
        (out / "wavs").mkdir(parents=True, exist_ok=True)
    versions = {"original": [c["audio"] for c in clips],
                "resynthesis": [c["decoded"] for c in clips], "tts": []}
    aligned = vocab.layout == "ella_v"
    reference = [_reference_frames(vocab, c) if aligned else None for c in clips]
    if oracle_durations and (not aligned or any(r is None for r in reference)):
        raise UserError("oracle durations need an aligned (ella_v) model and data whose clips "
                        "carry phone timings that match their text")
    details: list[dict] = []
    sampling = {} if temperature is None else {"sampling": dataclasses.replace(
        DEFAULT_SAMPLING, temperature=temperature)}
    for start in range(0, len(clips), batch_size):
        group = clips[start:start + batch_size]
        found: list[dict] = []
        # Clip i of the split is spoken with seed + i whatever the batch size.
        waves = synthesize_batch(
            lm, codec, [c["text"] for c in group],
            emotions=[EMOTIONS[c["emotion"]] for c in group],
            intensities=[c["intensity"] if c["intensity"] in vocab.intensities
                         else vocab.intensities[-1] for c in group],
            seed=seed + start,
            max_seconds=max(2.0 * c["audio"].size / SAMPLE_RATE + 1.0 for c in group),
            text_scale=text_scale, emotion_scale=emotion_scale, details=found,
            durations=reference[start:start + batch_size] if oracle_durations else None,
            speed=speed, **sampling)
        details += [dict(d, clip=start + d["text"]) for d in found]
        for c, (wave,) in zip(group, waves):
            versions["tts"].append(wave)
            if out is not None:
                save_audio(out / "wavs" / f"{c['id']}-tts.wav", wave, SAMPLE_RATE)
        print(f"tts eval: spoke {min(start + batch_size, len(clips))}/{len(clips)} clips",
              flush=True)
    refs = [c["text"] for c in clips]
    truth = np.array([c["emotion"] for c in clips])
    report = {"split": split, "tts_step": step, "codec_step": codec.step, "clips": len(clips),
              "guidance": {"text_scale": text_scale, "emotion_scale": emotion_scale},
              "layout": vocab.layout, "oracle_durations": oracle_durations, "speed": speed,
              "temperature": temperature,
              "seconds": {name: float(sum(a.size for a in audios) / SAMPLE_RATE)
                          for name, audios in versions.items()},
              "intelligibility": {}, "emotion_accuracy": {}, "per_emotion": {},
              "timing": _timing(details, reference)}
    preds = {}
    for name, audios in versions.items():
        hyps, labels = [], []
        for start in range(0, len(audios), batch_size):
            batch, lengths = pad_rows(audios[start:start + batch_size])
            hyps += intelligibility.transcribe(batch, lengths)
            labels += list(emotion.categories(batch, lengths))
        preds[name] = np.array(labels)
        report["intelligibility"][name] = {**corpus_rates(refs, hyps),
                                           **character_operations(refs, hyps)}
        if len(set(refs)) > 1:  # the judge's chance level: the same transcripts, wrong texts
            chance = wrong_text_cer(refs, hyps)
            report["intelligibility"][name]["wrong_text_cer"] = chance
            report["intelligibility"][name]["content_margin"] = \
                chance - report["intelligibility"][name]["cer"]
        report["emotion_accuracy"][name] = float(np.mean(preds[name] == truth)) if clips else 0.0
        if name == "tts":
            report["examples"] = [{"id": c["id"], "text": c["text"], "tts_heard": h}
                                  for c, h in zip(clips[:10], hyps)]
    for e in sorted(set(truth.tolist())):
        rows = truth == e
        report["per_emotion"][EMOTIONS[e]] = {
            "clips": int(rows.sum()),
            **{f"accuracy_{name}": float(np.mean(preds[name][rows] == e)) for name in preds}}
    if out is not None:
        shown = range(min(PLOTTED_CLIPS, len(clips)))
        plot_mel_grid([[(f"{name}: {EMOTIONS[clips[i]['emotion']]}, {clips[i]['text'][:32]}",
                         versions[name][i]) for name in versions] for i in shown],
                      SAMPLE_RATE, out / "spectrograms.png")
        report["spectrograms"] = str(out / "spectrograms.png")
        write_report(out, report)
    return report


def _reference_frames(vocab, clip) -> list[int] | None:
    """eSpeak's frames for each phoneme unit of a clip's text (None without usable timings):
    what the aligned model's durations are compared with, and the oracle's targets."""
    phones = parse_phones(clip.get("phones", ""))
    if not phones:
        return None
    frames = unit_frames(vocab, vocab.phone_units(vocab.encode_text(clip["text"])), phones)
    return None if frames is None else frames.tolist()


def _timing(details: list[dict], reference: list) -> dict:
    """No-stop share; aligned models: forced-EOP share and the duration error (frames per
    phoneme unit, mean absolute, over clips with eSpeak timings)."""
    out = {"takes": len(details),
           "no_stop_rate": float(np.mean([not d["stopped"] for d in details])) if details
           else 0.0}
    timed = [d for d in details if "frames" in d]
    if timed:
        units = sum(d["units"] for d in timed)
        out["forced_eop_rate"] = sum(d["forced"] for d in timed) / max(units, 1)
        # Over the units each take reached (all of them unless it was cut by the limit).
        errors = [abs(a - b) for d in timed if reference[d["clip"]] is not None
                  for a, b in zip(d["frames"], reference[d["clip"]])]
        out["duration_error_frames"] = float(np.mean(errors)) if errors else None
        out["duration_clips"] = sum(reference[d["clip"]] is not None for d in timed)
    return out


def format_report(report: dict) -> str:
    lines = [f"tts eval on {report['split']} ({report['clips']} held-out clips, tts step "
             f"{report['tts_step']}, codec step {report['codec_step']}, layout "
             f"{report.get('layout', 'llasa')}"
             + (", oracle durations" if report.get("oracle_durations") else "") + ")",
             f"{'version':<12}{'CER':>8}{'WER':>8}{'del':>7}{'ins':>7}{'emotion acc':>13}"
             f"{'CER vs wrong texts':>20}{'margin':>8}"]
    for name, r in report["intelligibility"].items():
        chance = r.get("wrong_text_cer")
        lines.append(f"{name:<12}{100 * r['cer']:>7.1f}%{100 * r['wer']:>7.1f}%"
                     f"{100 * r.get('deletions_rate', 0):>6.1f}%"
                     f"{100 * r.get('insertions_rate', 0):>6.1f}%"
                     f"{100 * report['emotion_accuracy'][name]:>12.1f}%"
                     + (f"{100 * chance:>19.1f}%{100 * r['content_margin']:>7.1f}"
                        if chance is not None else ""))
    timing = report.get("timing", {})
    if timing:
        line = f"takes that never stopped: {100 * timing['no_stop_rate']:.1f}%"
        if "forced_eop_rate" in timing:
            line += f"; phonemes ended by force: {100 * timing['forced_eop_rate']:.2f}%"
        if timing.get("duration_error_frames") is not None:
            line += (f"; duration error {timing['duration_error_frames']:.2f} frames a phoneme "
                     f"({timing['duration_clips']} clips with eSpeak timings)")
        lines.append(line)
    if "seconds" in report:
        sec = report["seconds"]
        lines.append(f"seconds spoken: tts {sec['tts']:.1f} (speed {report.get('speed', 1.0):g}), "
                     f"originals {sec['original']:.1f}")
    lines.append(f"{'emotion':<12}{'clips':>6}{'original':>10}{'resynth':>9}{'tts':>7}")
    for e, r in report["per_emotion"].items():
        lines.append(f"{e:<12}{r['clips']:>6}{100 * r['accuracy_original']:>9.0f}%"
                     f"{100 * r['accuracy_resynthesis']:>8.0f}%{100 * r['accuracy_tts']:>6.0f}%")
    return "\n".join(lines)
