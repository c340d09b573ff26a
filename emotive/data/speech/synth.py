"""Build the synthetic emotional speech corpus with eSpeak NG.

`build_corpus(out_dir, preset)` renders every planned clip (speaker x text x
emotion x intensity x acoustic condition), writes 16 kHz mono 16-bit WAVs and
describes them in two files:

    OUT/wavs/<split>/<clip_id>.wav
    OUT/metadata.jsonl   one JSON object per clip, in plan order: id, path
                         (relative to OUT), split, speaker, sex, accent, emotion,
                         intensity, arousal, dominance, valence, condition, text,
                         text_kind, seconds, sample_rate
    OUT/corpus.json      the summary build_corpus returns

Splits are disjoint by speaker (test and validation speakers are never heard
in training) and by text (each split speaks only its own texts). The preset
'heldout_voices' is a test split only: that of 'full' in Klatt voices that no
preset trains on (heldout.py). Each speaker
says each of its texts in every emotion, so within a speaker the words never
predict the label. Given a seed the WAV bytes are identical however many
worker processes run, because every clip draws its randomness from its own
seed and eSpeak runs each utterance from a fresh state (see espeak.py).
"""

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from emotive.data.speech import emotions as emo
from emotive.data.speech.espeak import SAMPLE_RATE, Synthesizer
from emotive.data.speech.texts import TEXTS
from emotive.data.speech.generated import frequent_words, generate_sentences, word_sequences
from emotive.data.speech.heldout import heldout_voice_jobs
from emotive.data.speech.voices import EXTRA_SPEAKERS, SPEAKERS, speaker_by_id
from emotive.errors import UserError

SPLITS = ('train', 'validation', 'test')
BASE_LEVEL_DB = -5.0  # headroom below eSpeak's level so loud emotions and shouting fit
_TEXT_SHARE = {'train': 0.7, 'validation': 0.1, 'test': 0.2}


@dataclass(frozen=True)
class CorpusPreset:
    """Size of a corpus build.

    speakers: how many of voices.SPEAKERS to use; test_speakers and
    val_speakers: held out per split (half female, half male); texts: texts per
    speaker; mild_texts: of those, how many are spoken at intensity 1 only
    (None = every text at both intensities); condition_texts: texts per speaker
    re-rendered under 'distance' and 'shout'; condition_splits: which splits
    get those renderings; extra_speakers: how many of voices.EXTRA_SPEAKERS join
    the train split to speak the generated sentences; generated_texts: how many generated sentences
    (generated.py) the train split adds, each spoken once by one train speaker
    (round robin) in a random emotion, intensity and condition (80% clean);
    word_texts and word_list: how many train clips of 4 to 8 words drawn from the
    word_list most frequent English words (generated.frequent_words) follow them,
    spoken the same way. The clips of the other settings are the same with or without the extras.
    """

    speakers: int
    test_speakers: int
    val_speakers: int
    texts: int
    mild_texts: int | None
    condition_texts: int
    condition_splits: tuple[str, ...]
    extra_speakers: int = 0
    generated_texts: int = 0
    word_texts: int = 0
    word_list: int = 0


PRESETS = {
    # About 400 short clips: every text at intensity 2 except one at intensity 1.
    'tiny': CorpusPreset(12, 2, 2, 4, 1, 1, ('test',)),
    # About 6,700 clips (about 5 hours) with both intensities and all conditions everywhere.
    'full': CorpusPreset(16, 4, 2, 22, None, 3, SPLITS),
    # 'full' plus 24 train-only speakers and 6,000 generated train sentences (about 3.9 h more),
    # for the recognisers: the same held-out splits, far more voices and words to learn from.
    'wide': CorpusPreset(16, 4, 2, 22, None, 3, SPLITS, extra_speakers=24, generated_texts=6000),
    # 'wide' plus 12,000 train clips of 4 to 8 words drawn from the 10,000 most frequent English
    # words (wordfreq), for the speech recogniser: far more spellings heard in training.
    'lexicon': CorpusPreset(16, 4, 2, 22, None, 3, SPLITS, extra_speakers=24, generated_texts=6000,
                            word_texts=12000, word_list=10000),
}
# Test-only presets: the test split of a preset above (the value) re-spoken by voices that no
# preset above uses (heldout.py): 'heldout_voices', 16 Klatt voices, 1,680 clips.
HELDOUT_PRESETS = {'heldout_voices': 'full'}
PRESET_NAMES = (*PRESETS, *HELDOUT_PRESETS)


def render(text: str, speaker_id: str, emotion: str, intensity: int = 2,
           condition: str = 'clean', seed: int = 0,
           synthesizer: Synthesizer | None = None, with_phones: bool = False):
    """Speak `text` as one corpus speaker in one emotion and condition.

    Returns float32 samples [T] at 16 kHz in [-1, 1]; the same arguments give
    the same samples. Pass a Synthesizer to reuse it across calls. with_phones: returns
    (samples, phones) instead, phones = [(IPA phoneme or '_' for a pause, start sample)]:
    eSpeak's phoneme events moved through every time change after it (the voice's tract
    resampling, the emotion's jitter warp; the reverb only adds a tail).
    """
    speaker = speaker_by_id(speaker_id)
    emo.check_emotion(emotion, intensity)
    emo.check_condition(condition)
    rng = np.random.default_rng([seed, 0xE5])
    settings = emo.espeak_settings(speaker, emotion, intensity, condition, rng)
    if speaker.tract_scale != 1.0:  # spoken slower, then played faster (voices.Speaker)
        settings['rate'] = int(np.clip(round(settings['rate'] / speaker.tract_scale), 80, 450))
    synthesizer = synthesizer or Synthesizer()
    x, events = synthesizer.synth_with_phonemes(
        text, speaker.voice, seed=int(rng.integers(1, 2**31 - 1)), **settings)
    starts = np.asarray([at for _, at in events], np.float64)
    if speaker.tract_scale != 1.0:
        down = round(100 * speaker.tract_scale)
        x = resample_poly(x, 100, down)
        starts = starts * 100 / down
    x = emo.gain(x, BASE_LEVEL_DB + speaker.gain_db)
    x, starts = emo.apply_emotion(x, SAMPLE_RATE, emotion, intensity, rng,
                                  positions=np.round(starts).astype(np.int64))
    x = emo.limit(emo.apply_condition(x, SAMPLE_RATE, condition, rng))
    if not with_phones:
        return x
    return x, [(name, int(min(at, x.size))) for (name, _), at in zip(events, starts)]


def _split_items(items: list, rng: np.random.Generator) -> dict[str, list]:
    """Shuffle items and cut them into train/validation/test by _TEXT_SHARE."""
    items = [items[i] for i in rng.permutation(len(items))]
    n_test = round(_TEXT_SHARE['test'] * len(items))
    n_val = round(_TEXT_SHARE['validation'] * len(items))
    return {'test': items[:n_test], 'validation': items[n_test:n_test + n_val],
            'train': items[n_test + n_val:]}


def plan_corpus(preset: str = 'tiny', seed: int = 0) -> tuple[list[dict], dict[str, str]]:
    """Return (jobs, speaker_split): every clip to render, in order, and each speaker's split.

    A job is a dict with id, split, speaker, emotion, intensity, condition,
    text_index (into texts.TEXTS; None for a generated sentence, whose words
    are in 'text') and seed.
    """
    if preset in HELDOUT_PRESETS:
        return heldout_voice_jobs(plan_corpus(HELDOUT_PRESETS[preset], seed)[0], seed)
    if preset not in PRESETS:
        raise UserError(f"unknown corpus preset {preset!r}; use one of {', '.join(PRESET_NAMES)}")
    cfg = PRESETS[preset]
    rng = np.random.default_rng([seed, 0xC0])
    speakers = SPEAKERS[:cfg.speakers]
    speaker_split: dict[str, str] = {}
    for sex in ('female', 'male'):
        ids = [s.id for s in speakers if s.sex == sex]
        ids = [ids[i] for i in rng.permutation(len(ids))]
        n_test, n_val = cfg.test_speakers // 2, cfg.val_speakers // 2
        for i, sid in enumerate(ids):
            speaker_split[sid] = 'test' if i < n_test else 'validation' if i < n_test + n_val else 'train'

    # Texts are split by kind so each split gets sentences, neutral texts and nonsense.
    pools = {split: {} for split in SPLITS}
    for kind in ('sentence', 'neutral', 'nonsense'):
        indices = [i for i, (_, k) in enumerate(TEXTS) if k == kind]
        for split, chosen in _split_items(indices, rng).items():
            pools[split][kind] = chosen
    n_side = max(1, round(0.15 * cfg.texts))  # neutral and nonsense texts per speaker
    quota = {'neutral': n_side, 'nonsense': n_side, 'sentence': cfg.texts - 2 * n_side}

    jobs = []
    for speaker in speakers:
        split = speaker_split[speaker.id]
        texts = []
        for kind, n in quota.items():
            pool = pools[split][kind]
            texts += [pool[i] for i in rng.choice(len(pool), size=n, replace=False)]
        texts = [texts[i] for i in rng.permutation(len(texts))]
        for t, text_index in enumerate(texts):
            if cfg.mild_texts is None:
                levels = (1, 2)
            else:
                levels = (1,) if t >= cfg.texts - cfg.mild_texts else (2,)
            conditions = ['clean']
            if t < cfg.condition_texts and split in cfg.condition_splits:
                conditions += ['distance', 'shout']
            for condition in conditions:
                for emotion in emo.EMOTIONS:
                    for intensity in ((1,) if emotion == 'neutral' else levels):
                        clip_id = f'{speaker.id}-{emotion}-{intensity}-{condition}-t{text_index:03d}'
                        jobs.append(dict(id=clip_id, split=split, speaker=speaker.id, emotion=emotion,
                                         intensity=intensity, condition=condition,
                                         text_index=text_index,
                                         seed=zlib.crc32(f'{seed}/{clip_id}'.encode())))
    jobs += _generated_jobs(cfg, speakers, speaker_split, seed)
    return jobs, speaker_split


def _generated_jobs(cfg: CorpusPreset, speakers, speaker_split: dict[str, str],
                    seed: int) -> list[dict]:
    """The train-only clips of generated sentences, then of frequent-word sequences (none
    unless the preset asks). Adding word clips leaves the sentence clips as they were."""
    if not cfg.generated_texts and not cfg.word_texts:
        return []
    extra = EXTRA_SPEAKERS[:cfg.extra_speakers]
    for speaker in extra:
        speaker_split[speaker.id] = 'train'
    voices = [s.id for s in speakers if speaker_split[s.id] == 'train'] + [s.id for s in extra]
    jobs = []
    sources = [('generated', 'g', 0x6E7,
                generate_sentences(cfg.generated_texts, seed, exclude={t for t, _ in TEXTS}))]
    if cfg.word_texts:
        sources.append(('wordlist', 'w', 0x3D7,
                        word_sequences(cfg.word_texts, frequent_words(cfg.word_list), seed)))
    for kind, tag, stream, texts in sources:
        rng = np.random.default_rng([seed, stream])
        for g, text in enumerate(texts):
            speaker = voices[len(jobs) % len(voices)]
            emotion = emo.EMOTIONS[int(rng.integers(len(emo.EMOTIONS)))]
            intensity = 1 if emotion == 'neutral' else int(rng.integers(1, 3))
            condition = str(rng.choice(emo.CONDITIONS, p=[0.8, 0.1, 0.1]))
            clip_id = f'{speaker}-{emotion}-{intensity}-{condition}-{tag}{g:05d}'
            jobs.append(dict(id=clip_id, split='train', speaker=speaker, emotion=emotion,
                             intensity=intensity, condition=condition, text_index=None,
                             text=text, text_kind=kind,
                             seed=zlib.crc32(f'{seed}/{clip_id}'.encode())))
    return jobs


# ------------------------------------------------------------------ workers

_WORKER: dict = {}


def _init_worker(out_dir: str) -> None:
    _WORKER['synth'] = Synthesizer()  # one initialised eSpeak per process
    _WORKER['out'] = Path(out_dir)


def _make_clip(job: dict) -> dict:
    """Render one job, write its WAV and return its metadata record."""
    if job['text_index'] is None:
        text, kind = job['text'], job['text_kind']
    else:
        text, kind = TEXTS[job['text_index']]
    x, phones = render(text, job['speaker'], job['emotion'], job['intensity'],
                       job['condition'], job['seed'], _WORKER['synth'], with_phones=True)
    rel = Path('wavs') / job['split'] / f"{job['id']}.wav"
    pcm = np.round(np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)
    sf.write(_WORKER['out'] / rel, pcm, SAMPLE_RATE, subtype='PCM_16')
    speaker = speaker_by_id(job['speaker'])
    arousal, dominance, valence = emo.affect_targets(job['emotion'], job['intensity'])
    return dict(id=job['id'], path=rel.as_posix(), split=job['split'], speaker=speaker.id,
                sex=speaker.sex, accent=speaker.accent, emotion=job['emotion'],
                intensity=job['intensity'], arousal=arousal, dominance=dominance, valence=valence,
                condition=job['condition'], text=text, text_kind=kind,
                seconds=pcm.size / SAMPLE_RATE, sample_rate=SAMPLE_RATE,
                phones=[[name, at] for name, at in phones])


def _subset(jobs: list[dict], limit: int) -> list[dict]:
    """Pick `limit` jobs spread evenly over the plan, with every condition represented."""
    groups = [[i for i, j in enumerate(jobs) if j['condition'] == c] for c in emo.CONDITIONS]
    groups = [g for g in groups if g]
    rare = [max(1, round(limit * len(g) / len(jobs))) for g in groups[1:]]
    sizes = [max(1, limit - sum(rare))] + rare
    keep = []
    for group, size in zip(groups, sizes):
        picks = np.linspace(0, len(group) - 1, min(size, len(group))).round().astype(int)
        keep += [group[k] for k in np.unique(picks)]
    return [jobs[i] for i in sorted(keep)[:limit]]


def _prepare_out_dir(out: Path) -> None:
    """Create out, or clear a previous corpus there; refuse anything else."""
    if out.exists() and not out.is_dir():
        raise UserError(f'--out {out} is a file; pass a new or empty directory')
    if out.is_dir() and any(out.iterdir()):
        if not ((out / 'corpus.json').is_file() or (out / 'metadata.jsonl').is_file()):
            raise UserError(f'--out {out} is a non-empty directory that is not a corpus; '
                            f'pass a new or empty directory')
        shutil.rmtree(out / 'wavs', ignore_errors=True)
        for name in ('metadata.jsonl', 'corpus.json'):
            (out / name).unlink(missing_ok=True)
    for split in SPLITS:
        (out / 'wavs' / split).mkdir(parents=True, exist_ok=True)


def _summarise(records: list[dict], speaker_split: dict, preset: str, seed: int,
               limit: int | None, seconds: float) -> dict:
    def count(key, rows=records):  # string keys, so the summary survives a JSON round trip
        return {str(k): v for k, v in sorted(Counter(r[key] for r in rows).items())}

    def hours(rows):
        return round(sum(r['seconds'] for r in rows) / 3600, 4)

    splits = {}
    for split in SPLITS:
        rows = [r for r in records if r['split'] == split]
        splits[split] = dict(clips=len(rows), hours=hours(rows),
                             speakers=sorted({r['speaker'] for r in rows}),
                             texts=len({r['text'] for r in rows}))
    return dict(preset=preset, seed=seed, limit=limit, clips=len(records), hours=hours(records),
                sample_rate=SAMPLE_RATE, emotions=list(emo.EMOTIONS), splits=splits,
                per_emotion=count('emotion'), per_speaker=count('speaker'),
                per_condition=count('condition'), per_intensity=count('intensity'),
                per_text_kind=count('text_kind'), speaker_split=dict(sorted(speaker_split.items())),
                build_seconds=round(seconds, 2))


def build_corpus(out_dir, preset: str = 'tiny', seed: int = 0, workers: int | None = None,
                 progress: bool = True, limit: int | None = None) -> dict:
    """Render the corpus into out_dir and return its summary (also written to corpus.json).

    preset: 'tiny' (about 400 clips, well under a minute), 'full' (about
    6,700 clips), 'wide' (full + 6,000 generated train clips), 'lexicon' (wide + 12,000
    frequent-word train clips; needs wordfreq) or 'heldout_voices' (the test split of 'full'
    in Klatt voices, heldout.py); seed: fixes every choice and every sample; workers: processes
    (None = all cores, 1 = in this process); progress: show a tqdm bar; limit:
    build only this many clips spread evenly over the plan (quick checks).
    """
    if workers is not None and workers < 1:
        raise UserError(f'--workers must be at least 1, got {workers}')
    if seed < 0:
        raise UserError(f'--seed must be 0 or more, got {seed}')
    if limit is not None and limit < 1:
        raise UserError(f'limit must be at least 1, got {limit}')
    start = time.perf_counter()
    jobs, speaker_split = plan_corpus(preset, seed)
    if limit is not None and limit < len(jobs):
        jobs = _subset(jobs, limit)
    out = Path(out_dir)
    _prepare_out_dir(out)
    workers = min(workers or os.cpu_count() or 1, len(jobs))

    from tqdm import tqdm
    bar = tqdm(total=len(jobs), unit='clip', desc=f'synth {preset}', disable=not progress)
    if workers == 1:
        _init_worker(str(out))
        records = []
        for job in jobs:
            records.append(_make_clip(job))
            bar.update()
    else:
        # eSpeak is process-global: parallel synthesis needs processes, started fresh
        # (forkserver/spawn) so they do not inherit the caller's threads or state.
        method = 'forkserver' if 'forkserver' in multiprocessing.get_all_start_methods() else 'spawn'
        ctx = multiprocessing.get_context(method)
        with ctx.Pool(workers, initializer=_init_worker, initargs=(str(out),)) as pool:
            records = []
            for record in pool.imap(_make_clip, jobs, chunksize=4):
                records.append(record)
                bar.update()
    bar.close()

    with open(out / 'metadata.jsonl', 'w') as f:
        for record in records:
            f.write(json.dumps(record) + '\n')
    summary = _summarise(records, speaker_split, preset, seed, limit, time.perf_counter() - start)
    (out / 'corpus.json').write_text(json.dumps(summary, indent=2) + '\n')
    return summary


def format_summary(summary: dict) -> str:
    """Return a short human-readable report of a build_corpus summary."""
    lines = [f"corpus: preset={summary['preset']} seed={summary['seed']} clips={summary['clips']} "
             f"hours={summary['hours']:.2f} built in {summary['build_seconds']:.1f} s"]
    for split, info in summary['splits'].items():
        lines.append(f"  {split:<10} {info['clips']:>6} clips {info['hours']:>7.3f} h  "
                     f"{len(info['speakers'])} speakers  {info['texts']} texts")
    for key in ('per_emotion', 'per_condition', 'per_intensity', 'per_text_kind'):
        lines.append(f"  {key[4:]:<10} " + ', '.join(f'{k}={v}' for k, v in summary[key].items()))
    return '\n'.join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `data synth` options to an argparse parser."""
    parser.add_argument('--preset', choices=sorted(PRESET_NAMES), default='tiny',
                        help='corpus size: tiny (~400 clips), full (~6,700 clips), wide '
                             '(full + 6,000 train clips of generated sentences, 24 more voices), '
                             'lexicon (wide + 12,000 train clips of frequent words; needs '
                             "the 'corpus' extra), or heldout_voices (test split only: full's "
                             "1,680 test clips in 16 Klatt voices that no preset trains on)")
    parser.add_argument('--out', required=True, help='output directory (new, empty, or an old corpus)')
    parser.add_argument('--seed', type=int, default=0, help='seed for every random choice (default 0)')
    parser.add_argument('--workers', type=int, default=None,
                        help='worker processes (default: all cores; 1 = no subprocesses)')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')


def run(args: argparse.Namespace) -> int:
    """Build the corpus described by parsed arguments, print its summary, return 0."""
    summary = build_corpus(args.out, preset=args.preset, seed=args.seed, workers=args.workers,
                           progress=not args.no_progress)
    print(format_summary(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line: `emotive data synth --preset NAME --out DIR [--seed S] [--workers N]`."""
    parser = argparse.ArgumentParser(prog='emotive data synth', description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
