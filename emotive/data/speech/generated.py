"""Generated training sentences: a wide vocabulary for the recognisers.

The hand-written texts (`texts.py`) give about 150 training sentences, few enough that a
speech recogniser memorises them and then spells unseen words badly. `generate_sentences`
draws any number of further sentences from templates filled with a general English
vocabulary (about 900 common words: nouns, verbs with their past tenses, adjectives,
adverbs, names, places and times) and pronounceable pseudo-words. The corpus preset 'wide'
speaks them in the train split only (see synth.py), so the held-out texts stay unseen as
sentences, as in any real recogniser's training set, while common words recur.

The word lists were written for this project from general knowledge of English; they were
not picked from the held-out texts. Every sentence is plain ASCII; none equals a text of
`texts.TEXTS`. The same (n, seed) always gives the same list.
"""

from __future__ import annotations

import re

import numpy as np

from emotive.errors import UserError

_NOUNS = """
apple arm baby bag ball balloon band bank basket bath beach bean bear bed bee bell belt bench
bike bird biscuit blanket boat body bone book boot bottle bowl box boy branch bread brick
bridge brother brush bucket building bus butter button cake camera candle cap car card carpet
carrot castle cat chain chair cheese chicken child chimney church circle city clock cloud coat
coffee coin collar computer cookie corner cottage cousin cow crown cup curtain cushion daughter
desk diary dinner doctor dog doll door dragon drawer dress drum duck eagle egg elephant engine
envelope eye face factory farmer feather fence field finger fire fish flag flower fork fox
friend frog garage garden gate giraffe girl glass glove goat grape grass guitar hair hammer
hand hat heart helmet hill horse hospital hotel house island jacket jar jelly jug kettle key
king kitchen kite knee knife ladder lake lamp leaf lemon letter library lion lock lorry
machine magnet map market meadow mirror monkey moon mother mountain mouse mouth nail necklace
needle nest newspaper nose notebook ocean office onion orange owl painting pan paper parcel
park parrot pasta pebble pen pencil pepper piano picture pie pig pillow pilot plane plate
pocket pond potato pot prince puppy purse queen rabbit radio rainbow ribbon ring river road
robot rock roof room rope rose sailor salad sandwich scarf school scissors sheep shell ship
shirt shoe shop shoulder sister skirt sky snake sock sofa soldier spider spoon stair star
stone storm street sugar suitcase sun supper sweater table tail teacher telephone tent tiger
toast tomato tongue tooth towel tower town toy tractor train tree truck tunnel turtle
umbrella uncle valley van vase village violin wagon wall wallet watch water whale wheel
window wing wolf yard zebra ticket tablet battery cable ladle saucer teapot blender
microphone envelope calendar compass lantern anchor barrel cabin canoe harbour pier
statue fountain orchard vineyard stable barn chapel theatre museum stadium airport
"""

_PEOPLE = """
Anna Ben Carla David Emma Frank Grace Henry Iris Jack Karen Leo Maria Nina Oscar Peter Rosa
Sam Tina Victor Wendy Adam Bella Chris Daisy Eric Fiona George Helen Ivan Julia Kevin Lucy
Martin Nora Paul Ruth Simon Tom Vera William Zoe
"""

_ADJECTIVES = """
big small tall short long wide narrow heavy light old new young fresh clean dirty wet dry hot
cold warm cool soft hard smooth rough sharp quiet loud bright dark empty full rich poor cheap
expensive early late fast slow strong weak thick thin sweet bitter sour salty tidy messy busy
lazy brave shy kind clever silly funny serious gentle proud polite rude calm noisy lucky
famous strange simple tiny huge round square flat broken golden silver wooden plastic purple
pink yellow green blue red brown grey white black orange striped spotted shiny dusty rusty
sleepy hungry thirsty healthy lonely careful useful friendly pretty ugly favourite ordinary
modern ancient crowded peaceful windy sunny cloudy foggy snowy frozen
"""

# (base, past) pairs; base forms follow "to", "will", "did", "can" and commands.
_VERBS = """
bake baked borrow borrowed bring brought build built buy bought carry carried catch caught
change changed check checked choose chose clean cleaned climb climbed close closed collect
collected cook cooked count counted cover covered cut cut deliver delivered draw drew drop
dropped dry dried fill filled find found fix fixed fold folded follow followed forget forgot
hide hid hold held hang hung keep kept kick kicked knock knocked lift lifted lose lost make
made mend mended mix mixed move moved open opened order ordered pack packed paint painted
pick picked plant planted pour poured pull pulled push pushed reach reached read read repair
repaired return returned ring rang sell sold send sent shake shook share shared show showed
sign signed sort sorted steal stole sweep swept take took throw threw tie tied touch touched
turn turned visit visited wash washed watch watched wrap wrapped write wrote drive drove
feed fed grab grabbed lend lent measure measured paint painted polish polished rescue rescued
test tested weigh weighed wipe wiped
"""

# intransitive (base, past) pairs
_ACTIONS = """
arrive arrived laugh laughed cry cried sing sang dance danced jump jumped swim swam run ran
walk walked sleep slept wait waited shout shouted smile smiled whisper whispered travel
travelled rest rested hurry hurried fall fell listen listened play played work worked
study studied wander wandered sneeze sneezed cough coughed shiver shivered yawn yawned
complain complained celebrate celebrated disappear disappeared return returned
"""

_ADVERBS = """
quickly slowly quietly loudly carefully gently happily sadly suddenly finally nearly almost
always never often sometimes usually rarely easily badly politely proudly softly bravely
calmly clearly eagerly honestly lazily neatly patiently secretly silently warmly
"""

_TIMES = """
today|yesterday|tomorrow|tonight|this morning|this evening|last night|last week|next week|
next month|last summer|every day|every weekend|on Monday|on Tuesday|on Wednesday|on Thursday|
on Friday|on Saturday|on Sunday|in January|in February|in March|in April|in June|in July|
in August|in September|in November|in December|at noon|at midnight|before breakfast|after lunch|
after dinner|in the afternoon|in the spring|in the winter|at dawn|at sunset|soon|later|
right now|once a year|twice a week
"""

_NUMBERS = """
two three four five six seven eight nine ten eleven twelve thirteen fifteen twenty thirty
forty fifty sixty a hundred
"""

# Plural forms written out so no spelling rule can go wrong.
_PLURALS = """
apple apples book books box boxes bottle bottles chair chairs child children cup cups egg eggs
flower flowers glass glasses key keys knife knives leaf leaves letter letters minute minutes
mouse mice orange oranges page pages pencil pencils person people potato potatoes sheep sheep
shoe shoes stone stones tomato tomatoes tooth teeth window windows year years
"""

_SUBJECTS = "I|you|we|they|he|she|my friend|our teacher|the old man|the little girl|everyone|nobody"
_PREPOSITIONS = "in|on|under|behind|near|beside|above|below|inside|outside|next to|across"
_POSSESSIVES = "the|my|your|his|her|our|their|this|that"

# "a" -> "an" before a vowel letter, except where the vowel sounds /ju/ ("a useful").
_A_BEFORE_VOWEL = re.compile(r' a (?=[aeiou])(?!use)')

_ONSETS = ['b', 'bl', 'br', 'd', 'dr', 'f', 'fl', 'g', 'gl', 'gr', 'k', 'l', 'm', 'n', 'p',
           'pl', 'pr', 'r', 's', 'sl', 'sn', 'sp', 'st', 't', 'tr', 'v', 'z', 'sh', 'ch', 'th']
_VOWELS = ['a', 'e', 'i', 'o', 'u', 'ee', 'oo', 'ai', 'oa']
_CODAS = ['', '', 'n', 'm', 'l', 'r', 'st', 'nd', 'mp', 'nk', 'ck', 't', 'p', 'sh']

_TEMPLATES = (
    "{Subj} {past} {det} {adj} {noun} {time}.",
    "{Subj} {past} {det} {noun} {prep} the {noun2}.",
    "{Person} {past_action} {adverb} {time}.",
    "{Person} wants to {verb} {det} {noun} before {time_short}.",
    "Did you {verb} {det} {adj} {noun}?",
    "Can you {verb} the {noun} {prep} the {noun2}, please?",
    "Please {verb} the {adj} {noun} {adverb}.",
    "Why did {person} {verb} the {noun}?",
    "Where is {det} {adj} {noun}?",
    "The {adj} {noun} is {prep} the {noun2}.",
    "There are {number} {plural} {prep} the {noun}.",
    "{Person} has {number} {plural} and a {adj} {noun}.",
    "We waited for {number} minutes {prep} the {noun}.",
    "{Det} {noun} looks {adj} {time}.",
    "{Subj} will {verb} the {noun} {time}.",
    "{Person} {past_action} because the {noun} was {adj}.",
    "{Subj} {past} the {noun}, but the {noun2} was too {adj}.",
    "What a {adj} {noun}!",
    "Look at that {adj} {noun}!",
    "Never {verb} {det} {noun} {prep} the {noun2}.",
    "{Person} and {person2} {past_action} {prep} the {noun} {time}.",
    "Is the {noun} {adj} or {adj2}?",
    "How many {plural} did {person} {verb}?",
    "{Person} told me the {noun} was {adverb} {adj}.",
    "I think the {adj} {noun} belongs to {person}.",
    "The {noun} {prep} the {noun2} {past_action} {adverb}.",
    "{Person} {past} a {adj} {noun} for {person2}.",
    "Meet me {prep} the {noun} {time}.",
    "{Pseudo} {past} the {adj} {noun} {time}.",
    "The {pseudo} {past_action} {prep} the {noun}.",
    "{Person} found a {pseudo} {prep} {det} {noun}.",
    "Have you seen the {pseudo} {prep} the {noun}?",
)


def _words(block: str) -> list[str]:
    return block.split()


def _phrases(block: str) -> list[str]:
    return [p.strip() for p in block.replace('\n', ' ').split('|') if p.strip()]


def _pairs(block: str) -> list[tuple[str, str]]:
    words = block.split()
    return list(zip(words[0::2], words[1::2]))


NOUNS = tuple(dict.fromkeys(_words(_NOUNS)))
PEOPLE = tuple(_words(_PEOPLE))
ADJECTIVES = tuple(dict.fromkeys(_words(_ADJECTIVES)))
VERBS = tuple(dict.fromkeys(_pairs(_VERBS)))
ACTIONS = tuple(dict.fromkeys(_pairs(_ACTIONS)))
ADVERBS = tuple(_words(_ADVERBS))
TIMES = tuple(_phrases(_TIMES))
NUMBERS = tuple(_words(_NUMBERS))
PLURALS = tuple(dict.fromkeys(p for _, p in _pairs(_PLURALS)))
SUBJECTS = tuple(_phrases(_SUBJECTS))
PREPOSITIONS = tuple(_phrases(_PREPOSITIONS))
POSSESSIVES = tuple(_phrases(_POSSESSIVES))


def pseudo_word(rng: np.random.Generator) -> str:
    """A pronounceable made-up word of one to three syllables, spelled simply."""
    syllables = int(rng.integers(1, 4))
    parts = []
    for s in range(syllables):
        onset = _ONSETS[rng.integers(len(_ONSETS))]
        vowel = _VOWELS[rng.integers(len(_VOWELS))]
        coda = _CODAS[rng.integers(len(_CODAS))] if s == syllables - 1 else ''
        parts.append(onset + vowel + coda)
    return ''.join(parts)


def vocabulary() -> set[str]:
    """Every word the templates can use, pseudo-words aside (lower case)."""
    words = set(NOUNS) | {p.lower() for p in PEOPLE} | set(ADJECTIVES) | set(ADVERBS)
    words |= {w for pair in VERBS + ACTIONS for w in pair} | set(NUMBERS) | set(PLURALS)
    for phrase in TIMES + SUBJECTS + PREPOSITIONS + POSSESSIVES:
        words |= set(phrase.lower().split())
    for template in _TEMPLATES:
        for token in template.replace('?', ' ').replace('!', ' ').replace('.', ' ').split():
            if '{' not in token:
                words.add(token.strip(',').lower())
    return words


def _sentence(rng: np.random.Generator) -> str:
    def pick(seq):
        return seq[int(rng.integers(len(seq)))]

    verb, past = pick(VERBS)
    _, past_action = pick(ACTIONS)
    subject = pick(SUBJECTS)
    person, person2 = (PEOPLE[i] for i in rng.choice(len(PEOPLE), 2, replace=False))
    noun, noun2 = (NOUNS[i] for i in rng.choice(len(NOUNS), 2, replace=False))
    adj, adj2 = (ADJECTIVES[i] for i in rng.choice(len(ADJECTIVES), 2, replace=False))
    det = pick(POSSESSIVES)
    pseudo = pseudo_word(rng)
    fields = dict(
        subj=subject, past=past, det=det, adj=adj, adj2=adj2, noun=noun, noun2=noun2,
        prep=pick(PREPOSITIONS), time=pick(TIMES), time_short=pick(TIMES), person=person,
        person2=person2, past_action=past_action, adverb=pick(ADVERBS), verb=verb,
        number=pick(NUMBERS), plural=pick(PLURALS), pseudo=pseudo)
    fields.update(Subj=subject[0].upper() + subject[1:], Person=person, Det=det.capitalize(),
                  Pseudo=pseudo.capitalize())
    text = pick(_TEMPLATES).format(**fields)
    text = _A_BEFORE_VOWEL.sub(' an ', text)
    return text[0].upper() + text[1:]


def generate_sentences(n: int, seed: int = 0, exclude: set[str] | frozenset[str] = frozenset()
                       ) -> list[str]:
    """Return n distinct generated sentences, the same for the same (n, seed, exclude).

    `exclude`: texts never to return (compared in lower case without final punctuation),
    e.g. the hand-written corpus texts, so no held-out text can appear.
    """
    if n < 0:
        raise UserError(f"the number of generated sentences must be 0 or more, got {n}")

    def key(text):
        return text.lower().rstrip('.?!')

    banned = {key(t) for t in exclude}
    rng = np.random.default_rng([seed, 0x6E])
    out: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise UserError(f"could not generate {n} distinct sentences; ask for fewer")
        text = _sentence(rng)
        if key(text) in seen or key(text) in banned:
            continue
        seen.add(key(text))
        out.append(text)
    return out


# ------------------------------------------------------------------ frequent-word lists

# Two-letter (and shorter) words worth speaking; the other short entries of a web word list are
# mostly abbreviations ("mr", "tv", "uk") that a voice would spell out letter by letter.
_SHORT_WORDS = frozenset('a i am an as at be by do go he if in is it me my no of oh on or so to '
                         'up us we'.split())
_PLAIN_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_VOWEL = re.compile('[aeiouy]')


def frequent_words(k: int) -> tuple[str, ...]:
    """The k most frequent English words that a voice reads as one word, most frequent first.

    From the `wordfreq` package's English list (an optional dependency: the 'corpus' extra),
    keeping lower-case ASCII words (an inner apostrophe allowed) with a vowel, and of the
    words of two letters or fewer only common ones (`_SHORT_WORDS`). The ranking comes from
    general text frequency, not from this corpus, so it cannot be tuned to the held-out texts.
    """
    if k < 1:
        raise UserError(f"the word list size must be 1 or more, got {k}")
    try:
        from wordfreq import top_n_list
    except ImportError:
        raise UserError("frequent-word clips need the wordfreq package; "
                        "install it with: pip install -e '.[corpus]'") from None
    words = [w for w in top_n_list('en', 4 * k)
             if _PLAIN_WORD.fullmatch(w) and _VOWEL.search(w)
             and (len(w) > 2 or w in _SHORT_WORDS)]
    if len(words) < k:
        raise UserError(f"wordfreq lists only {len(words)} usable English words; ask for fewer")
    return tuple(words[:k])


def word_sequences(n: int, words: tuple[str, ...] | list[str], seed: int = 0,
                   lengths: tuple[int, int] = (4, 8)) -> list[str]:
    """n texts of `lengths[0]..lengths[1]` distinct words drawn uniformly from `words`.

    Uniform over the list (not by frequency), so rare words recur as often as common ones:
    each word appears about n * mean_length / len(words) times. Same arguments, same texts.
    """
    lo, hi = lengths
    if n < 0:
        raise UserError(f"the number of word sequences must be 0 or more, got {n}")
    if not 1 <= lo <= hi <= len(words):
        raise UserError(f"word sequence lengths {lengths} must satisfy 1 <= min <= max <= "
                        f"{len(words)} (the word list size)")
    rng = np.random.default_rng([seed, 0x3D5])
    texts = []
    for _ in range(n):
        picks = rng.choice(len(words), size=int(rng.integers(lo, hi + 1)), replace=False)
        texts.append(' '.join(words[i] for i in picks))
    return texts
