"""The held-out voice family: the corpus's test split spoken again by voices no preset uses.

The corpus's speakers (voices.SPEAKERS) use eSpeak NG's harmonic synthesiser; so do the
train-only EXTRA_SPEAKERS of 'wide' and 'lexicon', but for five that use its Klatt
synthesiser with glottal sources 5 and 6. The preset 'heldout_voices' keeps the test split
of 'full' (the same as that of 'wide' and 'lexicon': the held-out texts, each in all eight
emotions at both intensities, some in the 'distance' and 'shout' conditions too) and gives
every clip to a speaker of voices.KLATT_SPEAKERS: the Klatt synthesiser with glottal sources
1-4, which no training speaker uses (16 speakers, 4 per source, 2 of each sex). A model's
score on it, beside its score on the test split, says how much of what it learnt holds for
voices it never heard: a synthesis method never heard for a model trained on 'tiny' or
'full'; for one trained on 'wide' or 'lexicon', glottal sources never heard.

`heldout_voice_jobs(test_jobs, seed)` does the recasting: each (speaker, text) pair of the
test split goes, in plan order, to the next Klatt speaker of the same sex that does not say
that text yet, so every Klatt variant hears both sexes' share of texts and each Klatt
speaker says each of its texts in every emotion (the words never predict the label). The
clips keep their emotion, intensity and condition; only the voice (and so the clip id and
its seed) changes.
"""

from __future__ import annotations

import zlib

from emotive.data.speech.voices import KLATT_SPEAKERS, speaker_by_id
from emotive.errors import UserError


def heldout_voice_jobs(test_jobs: list[dict], seed: int) -> tuple[list[dict], dict[str, str]]:
    """(jobs, speaker_split) of the held-out voice family for a plan's test-split jobs.

    test_jobs: synth.plan_corpus jobs (those outside the test split are ignored); seed:
    the corpus seed, which with the new clip id fixes each clip's own seed. Every job is in
    the 'test' split and keeps its text_index, emotion, intensity and condition.
    """
    voices = {sex: [s.id for s in KLATT_SPEAKERS if s.sex == sex] for sex in ('female', 'male')}
    turn = dict.fromkeys(voices, 0)  # per sex: the speaker whose turn is next
    said: dict[str, set] = {s.id: set() for s in KLATT_SPEAKERS}
    voice_of: dict[tuple[str, int], str] = {}
    jobs = []
    for job in test_jobs:
        if job['split'] != 'test':
            continue
        pair = (job['speaker'], job['text_index'])
        if pair not in voice_of:
            sex = speaker_by_id(job['speaker']).sex
            ring = voices[sex]
            order = [ring[(turn[sex] + k) % len(ring)] for k in range(len(ring))]
            voice = next((v for v in order if job['text_index'] not in said[v]), None)
            if voice is None:
                raise UserError(f"text {job['text_index']} has more {sex} test speakers than "
                                f"there are {sex} Klatt speakers")
            turn[sex] = (ring.index(voice) + 1) % len(ring)
            said[voice].add(job['text_index'])
            voice_of[pair] = voice
        voice = voice_of[pair]
        clip_id = (f"{voice}-{job['emotion']}-{job['intensity']}-{job['condition']}"
                   f"-t{job['text_index']:03d}")
        jobs.append(dict(job, id=clip_id, split='test', speaker=voice,
                         seed=zlib.crc32(f'{seed}/{clip_id}'.encode())))
    return jobs, {s.id: 'test' for s in KLATT_SPEAKERS if said[s.id]}
