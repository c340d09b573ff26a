"""The synthetic speakers of the emotional speech corpus.

A speaker is an eSpeak NG accent (the language file) combined with a voice
variant (formant and pitch settings, the part after '+'), plus its own base
pitch, pitch range, speaking rate and level. Every speaker uses a different
variant and no two share both accent and variant, so speakers differ in timbre
as well as in prosody. Emotion presets are applied relative to these bases.

The base pitch stays within 35..62 on eSpeak's 0..100 scale so that the
strongest emotional raise (about +30) and lowering (about -16) stay in range.
"""

from dataclasses import dataclass

from emotive.errors import UserError


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker.

    id: stable identifier used in clip ids and metadata; voice: eSpeak voice
    name 'language+variant'; sex: 'female' or 'male'; accent: a readable
    accent label; pitch, pitch_range: eSpeak 0..100 bases; rate: base words
    per minute; gain_db: level offset applied after synthesis; tract_scale: above 1,
    a shorter vocal tract: the clip is spoken that much slower and played that much
    faster (synth.render), so every frequency, formants and pitch, rises by it.
    """

    id: str
    voice: str
    sex: str
    accent: str
    pitch: int
    pitch_range: int
    rate: int
    gain_db: float
    tract_scale: float = 1.0


SPEAKERS: tuple[Speaker, ...] = (
    Speaker('spk01', 'en+m1', 'male', 'british', 50, 50, 170, 0.0),
    Speaker('spk02', 'en-us+f1', 'female', 'american', 48, 55, 175, -1.0),
    Speaker('spk03', 'en-us+m2', 'male', 'american', 42, 45, 180, 1.0),
    Speaker('spk04', 'en-gb-scotland+f2', 'female', 'scottish', 55, 48, 165, 0.5),
    Speaker('spk05', 'en-gb-scotland+m3', 'male', 'scottish', 58, 52, 160, -0.5),
    Speaker('spk06', 'en+f3', 'female', 'british', 45, 60, 185, 0.0),
    Speaker('spk07', 'en-029+m4', 'male', 'caribbean', 45, 58, 175, 1.5),
    Speaker('spk08', 'en-029+f5', 'female', 'caribbean', 52, 45, 170, -1.5),
    Speaker('spk09', 'en-gb-x-rp+m5', 'male', 'received-pronunciation', 54, 42, 165, 0.0),
    Speaker('spk10', 'en-gb-x-rp+f4', 'female', 'received-pronunciation', 40, 50, 180, 1.0),
    Speaker('spk11', 'en-us-nyc+m6', 'male', 'new-york', 38, 55, 190, -1.0),
    Speaker('spk12', 'en-us-nyc+linda', 'female', 'new-york', 50, 52, 175, 0.5),
    Speaker('spk13', 'en-gb-x-gbclan+m7', 'male', 'lancastrian', 60, 48, 170, 0.0),
    Speaker('spk14', 'en-gb-x-gbcwmd+steph', 'female', 'west-midlands', 46, 58, 165, -0.5),
    Speaker('spk15', 'en-gb-x-gbcwmd+m8', 'male', 'west-midlands', 48, 46, 185, 0.5),
    Speaker('spk16', 'en-us+belinda', 'female', 'american', 58, 50, 170, -1.0),
)

# Train-only speakers of the 'wide' corpus preset (synth.py), never in a held-out split.
# Their eSpeak variants differ from every variant above, so no held-out speaker shares a
# voice variant with any of them; their sex is the variant's own.
EXTRA_SPEAKERS: tuple[Speaker, ...] = (
    Speaker('spk17', 'en+Alicia', 'female', 'british', 52, 50, 175, 0.0),
    Speaker('spk18', 'en-us+Andrea', 'female', 'american', 47, 56, 170, 0.5),
    Speaker('spk19', 'en-gb-scotland+Annie', 'female', 'scottish', 55, 45, 180, -0.5),
    Speaker('spk20', 'en-029+anika', 'female', 'caribbean', 50, 60, 165, 1.0),
    Speaker('spk21', 'en-gb-x-rp+aunty', 'female', 'received-pronunciation', 44, 52, 175, 0.0),
    Speaker('spk22', 'en-us-nyc+grandma', 'female', 'new-york', 53, 47, 160, -1.0),
    Speaker('spk23', 'en-gb-x-gbclan+steph2', 'female', 'lancastrian', 49, 55, 185, 0.5),
    Speaker('spk24', 'en-gb-x-gbcwmd+steph3', 'female', 'west-midlands', 57, 50, 170, -0.5),
    Speaker('spk25', 'en-us+Alex', 'male', 'american', 45, 50, 175, 0.0),
    Speaker('spk26', 'en+Andy', 'male', 'british', 50, 46, 170, 0.5),
    Speaker('spk27', 'en-gb-scotland+Denis', 'male', 'scottish', 40, 55, 180, -0.5),
    Speaker('spk28', 'en-029+Gene', 'male', 'caribbean', 55, 48, 165, 1.0),
    Speaker('spk29', 'en-gb-x-rp+Hugo', 'male', 'received-pronunciation', 48, 52, 185, 0.0),
    Speaker('spk30', 'en-us-nyc+Lee', 'male', 'new-york', 42, 58, 170, -1.0),
    Speaker('spk31', 'en-gb-x-gbclan+Michael', 'male', 'lancastrian', 52, 44, 175, 0.5),
    Speaker('spk32', 'en-gb-x-gbcwmd+Mike', 'male', 'west-midlands', 46, 50, 160, 0.0),
    Speaker('spk33', 'en-us+adam', 'male', 'american', 38, 52, 180, -0.5),
    Speaker('spk34', 'en+benjamin', 'male', 'british', 56, 47, 170, 1.0),
    Speaker('spk35', 'en-gb-scotland+caleb', 'male', 'scottish', 44, 60, 175, 0.0),
    Speaker('spk36', 'en-029+david', 'male', 'caribbean', 50, 45, 185, -1.0),
    Speaker('spk37', 'en-gb-x-rp+edward', 'male', 'received-pronunciation', 58, 50, 165, 0.5),
    Speaker('spk38', 'en-us-nyc+ian', 'male', 'new-york', 47, 54, 175, 0.0),
    Speaker('spk39', 'en-gb-x-gbclan+john', 'male', 'lancastrian', 41, 48, 170, -0.5),
    Speaker('spk40', 'en-gb-x-gbcwmd+max', 'male', 'west-midlands', 53, 56, 180, 0.5),
)

# The held-out voice family (the 'heldout_voices' corpus preset, heldout.py): eSpeak's Klatt
# synthesiser (a cascade-parallel formant filter bank, not the harmonic synthesis of the
# speakers above) with the glottal sources 1-4 (+klatt impulsive, +klatt2 natural, +klatt3
# and +klatt4 sampled), which no training speaker uses. (Five EXTRA_SPEAKERS variants are
# Klatt voices with sources 5 and 6: edward, adam, benjamin, caleb, david; so +klatt5 and
# +klatt6 are left out, and the filter bank itself is not new to 'wide' and 'lexicon'.)
# These variants have eSpeak's male formant tables only: a female speaker here is that voice
# with a vocal tract 22% shorter (tract_scale) at a higher base pitch: about 140 Hz when
# neutral, a low female voice (the f1..f5 speakers above are nearer 180-200 Hz; the Klatt men
# about 95 Hz).
KLATT_SPEAKERS: tuple[Speaker, ...] = (
    Speaker('klt01', 'en-us+klatt', 'male', 'american', 44, 50, 175, 8.0),
    Speaker('klt02', 'en-gb-x-rp+klatt', 'female', 'received-pronunciation', 64, 55, 170, 8.5,
            1.22),
    Speaker('klt03', 'en-gb-scotland+klatt', 'male', 'scottish', 50, 46, 165, 7.5),
    Speaker('klt04', 'en-029+klatt', 'female', 'caribbean', 60, 58, 180, 8.0, 1.22),
    Speaker('klt05', 'en-us+klatt2', 'female', 'american', 66, 50, 175, 7.5, 1.22),
    Speaker('klt06', 'en+klatt2', 'male', 'british', 40, 52, 180, 8.0),
    Speaker('klt07', 'en-us-nyc+klatt2', 'female', 'new-york', 62, 48, 185, 7.0, 1.22),
    Speaker('klt08', 'en-gb-x-gbclan+klatt2', 'male', 'lancastrian', 47, 56, 170, 7.5),
    Speaker('klt09', 'en-gb-x-gbcwmd+klatt3', 'male', 'west-midlands', 42, 48, 170, 1.0),
    Speaker('klt10', 'en-gb-scotland+klatt3', 'female', 'scottish', 68, 50, 165, 1.5, 1.22),
    Speaker('klt11', 'en-029+klatt3', 'male', 'caribbean', 48, 55, 175, 0.5),
    Speaker('klt12', 'en+klatt3', 'female', 'british', 63, 52, 180, 1.0, 1.22),
    Speaker('klt13', 'en-gb-x-gbclan+klatt4', 'female', 'lancastrian', 65, 54, 170, -2.0, 1.22),
    Speaker('klt14', 'en-us-nyc+klatt4', 'male', 'new-york', 38, 50, 185, -2.5),
    Speaker('klt15', 'en-gb-x-gbcwmd+klatt4', 'female', 'west-midlands', 61, 46, 175, -1.5,
            1.22),
    Speaker('klt16', 'en-gb-x-rp+klatt4', 'male', 'received-pronunciation', 45, 50, 165, -2.0),
)

SPEAKERS_BY_ID = {s.id: s for s in SPEAKERS + EXTRA_SPEAKERS + KLATT_SPEAKERS}


def speaker_by_id(speaker_id: str) -> Speaker:
    """Return the Speaker with this id; raise UserError for an unknown one."""
    try:
        return SPEAKERS_BY_ID[speaker_id]
    except KeyError:
        raise UserError(f'unknown speaker {speaker_id!r}; use one of '
                        f'{SPEAKERS[0].id}..{EXTRA_SPEAKERS[-1].id} or '
                        f'{KLATT_SPEAKERS[0].id}..{KLATT_SPEAKERS[-1].id}') from None
