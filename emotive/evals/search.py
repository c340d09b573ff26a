"""Search strategies over held-out requests, judged by models the search never saw.

    emotive eval search --ckpt runs/tts --codec runs/codec \
        --verifier emotion=runs/ser-s2 --verifier intelligibility=runs/asr-s0 \
        --judge-ser runs/ser-judge --judge-asr runs/asr-judge \
        --strategies best_of_n,prm_orm --budgets 1,2,4,8,16,32 --limit 64 --split test

Requests are the split's clean clips (speakers and texts never trained on), spread evenly
over the emotions (`evals.tts.select_clips`): the clip's text in the clip's emotion.
For every strategy and budget the chosen audio is scored by
- the verifiers (what the search maximised) and
- the judges: a CTC recogniser (greedy decoding, corpus CER) and an emotion classifier
  (accuracy of its top category against the requested emotion, and its probability of the
  requested emotion), trained with other seeds than any verifier.
Per budget the report gives the verifier gain and the judge gain over budget 1 and their
difference, the gaming gap (a search that games its verifiers gains on them, not on the
judges). Best-of-N of every budget is read off one run at the largest budget: candidate j
of a request has the same seed at any budget, so best-of-b is the best of the first b
candidates (its compute is scaled to b rows). Beam strategies run once per budget.
Writes report.json, curves.png (judge scores against LM tokens) and curves.json.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Sequence

import numpy as np

from emotive.configs.common import SAMPLE_RATE
from emotive.data.speech.emotions import EMOTIONS
from emotive.evals.common import corpus_rates, write_report
from emotive.evals.tts import select_clips
from emotive.errors import UserError
from emotive.infer.predictor import pad_rows
from emotive.search.compute import Compute
from emotive.search.search import search_batch
from emotive.search.selection import Selection, choose
from emotive.search.strategies import STRATEGIES, Strategy
from emotive.search.verifiers import EmotionVerifier, IntelligibilityVerifier, Request

BUDGETS = (1, 2, 4, 8, 16, 32)
ROWS_PER_BATCH = 128  # decoding rows per search batch (requests x budget)


def parse_budgets(text: str) -> list[int]:
    try:
        budgets = sorted({int(b) for b in str(text).split(",") if b.strip()})
    except ValueError:
        raise UserError(f"--budgets must be comma-separated integers, got {text!r}") from None
    if not budgets or budgets[0] < 1:
        raise UserError(f"every budget must be >= 1, got {text!r}")
    return budgets


def requests_from_split(codec, data_dir, split: str, vocab, *, dataset: str, limit: int,
                        batch_size: int = 8) -> list[Request]:
    from emotive.infer import codec as codec_lib

    clips = select_clips(codec_lib.iterate_split(codec, data_dir, split, dataset=dataset,
                                                 batch_size=batch_size),
                         [e for e in EMOTIONS if e in vocab.emotions], limit)
    if not clips:
        raise UserError(f"split {split!r} of {data_dir} has no clean clips to build requests "
                        "from")
    return [Request(text=c["text"], emotion=EMOTIONS[c["emotion"]],
                    intensity=c["intensity"] if c["intensity"] in vocab.intensities
                    else vocab.intensities[-1]) for c in clips]


class Judges:
    """The held-out scorers: greedy CTC transcripts (CER) and emotion probabilities."""

    def __init__(self, recognizer, emotion_model, batch_size: int = 16):
        self.asr = IntelligibilityVerifier(recognizer)
        self.ser = EmotionVerifier(emotion_model)
        self.batch_size = batch_size

    def __call__(self, audios: Sequence[np.ndarray], requests: Sequence[Request]) -> dict:
        hyps, probs = [], []
        for s in range(0, len(audios), self.batch_size):
            batch, lengths = pad_rows(audios[s:s + self.batch_size])
            hyps += self.asr.transcribe(batch, lengths)
            probs.append(self.ser.predict(batch, lengths)["probs"])
        probs = np.concatenate(probs)
        want = np.array([EMOTIONS.index(r.emotion) for r in requests])
        rates = corpus_rates([r.text for r in requests], hyps)
        return {"cer": rates["cer"], "wer": rates["wer"],
                "emotion_accuracy": float(np.mean(np.argmax(probs, 1) == want)),
                "emotion_prob": float(np.mean(probs[np.arange(len(want)), want])),
                "heard": hyps}


def _summary(results, requests, judges: Judges, budget: int, compute: Compute) -> dict:
    audio = [r.audio for r in results]
    judged = judges(audio, requests)
    verifier = {k: float(np.mean([r.scores[k] for r in results]))
                for k in results[0].scores}
    return {"budget": budget, "verifier": verifier,
            "judge": {k: v for k, v in judged.items() if k != "heard"},
            "compute": compute.as_dict(),
            "vetoed": int(sum(bool(r.details["notes"]) for r in results)),
            "examples": [{"text": q.text, "emotion": q.emotion, "heard": h}
                         for q, h in zip(requests[:4], judged["heard"][:4])]}


def _batches(requests, budget: int):
    per = max(1, ROWS_PER_BATCH // budget)
    for s in range(0, len(requests), per):
        yield s, requests[s:s + per]


def run_strategy(lm, codec, requests, name: str, budgets: Sequence[int], *, verifiers,
                 judges: Judges, seed: int = 0, selection: Selection | None = None,
                 template: Strategy = Strategy(), log=print, **kwargs) -> list[dict]:
    """One strategy's rows of the report, one per budget; `template` gives the beam width
    (at most the budget), step tokens and PRM fraction."""
    rows = []
    if name == "best_of_n":
        top = max(budgets)
        results = []
        for s, group in _batches(requests, top):
            results += search_batch(lm, codec, group, verifiers=verifiers, strategy=name,
                                    budget=top, seed=seed + s, selection=selection, **kwargs)
            log(f"search eval: best_of_n x{top}: {len(results)}/{len(requests)} requests")
        total = Compute.total([r.compute for r in results])
        for b in budgets:
            picked = []
            for r in results:
                pool = r.candidates[0][:b]
                c = pool[choose(pool, selection or Selection())]
                picked.append(_Picked(c.audio, {**c.scores, "outcome": c.outcome}))
            scale = b / top
            part = total.scaled(scale)
            part.audio_seconds = sum(p.audio.size for p in picked) / SAMPLE_RATE
            rows.append(_summary(picked, requests, judges, b, part))
        return rows
    for b in budgets:
        results = []
        strategy = dataclasses.replace(template, name=name,
                                       beam_width=min(template.beam_width, b))
        for s, group in _batches(requests, b):
            results += search_batch(lm, codec, group, verifiers=verifiers, strategy=strategy,
                                    budget=b, seed=seed + s, selection=selection, **kwargs)
        log(f"search eval: {name} x{b}: {len(results)} requests")
        rows.append(_summary(results, requests, judges, b,
                             Compute.total([r.compute for r in results])))
    return rows


class _Picked:
    def __init__(self, audio, scores):
        self.audio, self.scores, self.details = audio, scores, {"notes": []}


def gains(rows: list[dict]) -> None:
    """Adds verifier gain, judge gain and the gaming gap over the first (budget 1) row."""
    base = rows[0]
    pairs = {"emotion": "emotion_prob", "intelligibility": "cer"}
    for row in rows:
        row["gain"] = {}
        for kind, judge_key in pairs.items():
            if kind not in row["verifier"]:
                continue
            v_gain = row["verifier"][kind] - base["verifier"][kind]
            sign = -1.0 if judge_key == "cer" else 1.0  # 1 - CER is the judge's score
            j_gain = sign * (row["judge"][judge_key] - base["judge"][judge_key])
            row["gain"][kind] = {"verifier": v_gain, "judge": j_gain, "gap": v_gain - j_gain}


def evaluate(lm, codec, verifiers, judges: Judges, data_dir, split: str = "test", *,
             strategies: Sequence[str] = ("best_of_n", "prm_orm"),
             budgets: Sequence[int] = BUDGETS, dataset: str = "emotive_speech",
             limit: int = 64, seed: int = 0, out_dir=None, selection=None,
             template: Strategy = Strategy(), models: dict | None = None, **kwargs) -> dict:
    """Returns (and writes under out_dir) the report of the module docstring. models: what
    to record about the verifiers and judges (e.g. their checkpoint paths)."""
    for name in strategies:
        if name not in STRATEGIES:
            raise UserError(f"unknown search strategy {name!r}; use one of "
                            f"{', '.join(STRATEGIES)}")
    requests = requests_from_split(codec, data_dir, split, lm.vocab, dataset=dataset,
                                   limit=limit)
    t0 = time.perf_counter()
    report = {"split": split, "requests": len(requests), "tts_step": lm.step,
              "codec_step": codec.step, "budgets": list(budgets), "models": dict(models or {}),
              "strategies": {}}
    for name in strategies:
        rows = run_strategy(lm, codec, requests, name, budgets, verifiers=verifiers,
                            judges=judges, seed=seed, selection=selection,
                            template=template, **kwargs)
        gains(rows)
        report["strategies"][name] = rows
    report["seconds"] = time.perf_counter() - t0
    if out_dir is not None:
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        plot_curves(report, out / "curves.png")
        write_report(out, {name: [{"budget": r["budget"], "lm_tokens": r["compute"]["lm_tokens"],
                                   **r["judge"]} for r in rows]
                           for name, rows in report["strategies"].items()}, "curves.json")
        report["curves"] = str(out / "curves.png")
        write_report(out, report)
    return report


def plot_curves(report: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("emotion_accuracy", "judge emotion accuracy"), ("cer", "judge CER"),
              ("emotion_prob", "judge p(requested emotion)")]
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for ax, (key, title) in zip(axes, panels):
        for name, rows in report["strategies"].items():
            tokens = [max(r["compute"]["lm_tokens"], 1) for r in rows]
            line, = ax.plot(tokens, [r["judge"][key] for r in rows], "o-", label=name)
            for t, r in zip(tokens, rows):
                ax.annotate(str(r["budget"]), (t, r["judge"][key]), fontsize=7)
            if key == "emotion_prob" and "emotion" in rows[0]["verifier"]:
                ax.plot(tokens, [r["verifier"]["emotion"] for r in rows], "--",
                        color=line.get_color(), alpha=0.6, label=f"{name} (verifier)")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("LM tokens sampled (log)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[-1].legend(fontsize=7)
    fig.suptitle(f"search on {report['requests']} held-out requests ({report['split']}); "
                 "labels: budget")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_report(report: dict) -> str:
    lines = [f"search eval on {report['split']}: {report['requests']} requests, tts step "
             f"{report['tts_step']}, codec step {report['codec_step']}",
             f"{'strategy':<12}{'N':>4}{'LM tok':>9}{'wall s':>8}{'judge acc':>10}"
             f"{'judge CER':>10}{'ver emo':>8}{'ver int':>8}{'emo gap':>8}{'int gap':>8}"]
    for name, rows in report["strategies"].items():
        for r in rows:
            v, g = r["verifier"], r.get("gain", {})
            lines.append(
                f"{name:<12}{r['budget']:>4}{r['compute']['lm_tokens']:>9.0f}"
                f"{r['compute']['wall_seconds']:>8.1f}{100 * r['judge']['emotion_accuracy']:>9.1f}%"
                f"{100 * r['judge']['cer']:>9.1f}%"
                f"{v.get('emotion', float('nan')):>8.3f}{v.get('intelligibility', float('nan')):>8.3f}"
                f"{g.get('emotion', {}).get('gap', float('nan')):>8.3f}"
                f"{g.get('intelligibility', {}).get('gap', float('nan')):>8.3f}")
    return "\n".join(lines)
