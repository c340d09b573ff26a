"""Phoneme front end of TTS: text normalisation and a tokenizer over eSpeak's IPA phonemes.

    normalise("Dr. Smith paid $42.")   # ("doctor smith paid forty two dollars.", ())
    tok = PhonemeTokenizer(emotive.data.speech.espeak.phonemize)   # voice en-us
    tok.encode("The cat sat.").tokens  # ð ə ' ' k ˈ æ t ' ' s ˈ æ t '.', decoded ð_ə k_ˈæ_t s_ˈæ_t.

Normalisation (`normalise`), in this order:
- NFKC; curly quotes made straight.
- Abbreviations as written: Mr. Mrs. Ms. Dr. Prof. St. Jr. Sr. Mt. Capt. Col. Gen. Lt. Sgt. Rev.
  Gov. Inc. Ltd. Co. Corp. Ave. Rd. Blvd., Jan. .. Dec., vs. etc. approx. dept. e.g. i.e., No.
  before a number. Dr./St. are doctor/saint before a capitalised word, else drive/street; Mr
  Mrs Ms Dr St also without the period. A period that ends the text (only quotes after it)
  still ends the sentence. "U.S.A." -> "USA", "J. K." -> "J K", "a.b" -> "a dot b". Roman
  numerals: "Chapter XII" -> "chapter twelve" (after chapter, book, part, act, war, type, ...),
  "Henry VIII" -> "henry the eighth" (I, V, X only, after a capitalised word).
- Symbols: & and, % percent, @ at, + plus, = equals, ° degrees, # number (before a number);
  $ £ € ¥ before an amount: "$3.50" -> "three dollars fifty cents", "£2 million" -> "two
  million pounds".
- Numbers (ASCII digits) as words, no "and": "42" -> "forty two", "3rd" -> "third", "1990s"
  -> "nineteen nineties", "3:05" -> "three oh five", "2-1" -> "two to one", "3.14" -> "three
  point one four", "-5" -> "minus five"; a bare four-digit 1100-1999 or 2010-2099 is a year
  ("1905" -> "nineteen oh five"), "1,234" a cardinal; over 15 digits or a leading zero, digit
  by digit. Digits glued to letters split off ("mp3" -> "mp three").
- Pauses: , ; : ( ) [ ] { } and dashes (— – -- and a spaced -) are a clause pause ","; a run of
  . ! ? ends a sentence: "?" if it holds one, else "!" if it holds one, else "."; an ellipsis is
  a clause pause ("." at the end). Hyphens in words and "/" are spaces. Not spoken, so dropped
  without a note: quotes (" and ' outside a word, « » „ ‹ ›) and * _ ~ ^ | ` \\.
- Case: lower-cased, except ALL-CAPS words of 2-5 letters in text that has lower case too:
  eSpeak spells those it knows as abbreviations or cannot say (BBC, FBI, US, IT) and reads the
  rest as words (NASA).
- Anything else that is not a Latin letter (other scripts: 你好, привет; emoji; symbols such
  as © →) is skipped and returned (the tokenizer warns, naming it); text left with no Latin
  letter is a UserError naming the characters.

Tokens (`INVENTORY`, ids in this order): <pad> <unk>, the word boundary " ", the pauses ","
(clause) "." (statement end) "?" (question end) "!" (exclamation end), the stress marks ˈ ˌ
(before their vowel), then eSpeak's IPA phonemes of its English voices (`PHONEMES`, length
marks and diphthongs whole). A pause stands in place of the word boundary.
"""

from __future__ import annotations

import json
import pathlib
import re
import unicodedata
import warnings
from typing import Callable, NamedTuple, Sequence

from emotive.errors import UserError

SPECIALS = ("<pad>", "<unk>", " ", ",", ".", "?", "!")
PAD, UNK, WORD = 0, 1, 2
PAUSES = {",": 3, ".": 4, "?": 5, "!": 6}
_BOUNDARIES = {WORD, *PAUSES.values()}
STRESS = ("ˈ", "ˌ")
# eSpeak NG 1.52's IPA for en, en-us, en-gb-scotland, en-029, en-gb-x-rp, en-us-nyc,
# en-gb-x-gbclan and en-gb-x-gbcwmd over some 5,000 words (stress marks split off).
PHONEMES = tuple("""a aa aɪ aɪə aɪɚ aʊ aː b d dʒ e ei eə eɪ eʲ eː f h i iə iː j k l m n n̩ o oə
    oɪ oʊ oː p r s t tʃ t̪ u uː v w x z æ æʊ ð ŋ ɐ ɑə ɑː ɑːɹ ɒ ɔ ɔə ɔɪ ɔː ɔːɹ ə əl əu əɪ əɹ əʊ
    ɚ ɛ ɛə ɛɹ ɜ ɜː ɡ ɪ ɪɹ ɬ ɹ ɾ ʃ ʉ ʉɹ ʉː ʊ ʊə ʊɹ ʌ ʌɹ ʌʉ ʌʊ ʍ ʒ ʔ θ ᵻ""".split())
INVENTORY = SPECIALS + STRESS + PHONEMES
FORMAT = "emotive.phonemes/1"

# (texts, voice) -> eSpeak IPA per text: "_" between phonemes, " " between words.
Phonemizer = Callable[[Sequence[str], str], list[str]]

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand"))
_ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
             "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}


def number_words(n: int) -> str:
    """A non-negative integer in words: 42 -> "forty two", 1200 -> "one thousand two hundred"."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + (f" {_ONES[n % 10]}" if n % 10 else "")
    if n < 1000:
        return f"{_ONES[n // 100]} hundred" + (f" {number_words(n % 100)}" if n % 100 else "")
    scale, name = next((s, w) for s, w in _SCALES if n >= s)
    head, rest = divmod(n, scale)
    return f"{number_words(head)} {name}" + (f" {number_words(rest)}" if rest else "")


def _last_word(words: str, change) -> str:
    head, _, last = words.rpartition(" ")
    return f" {head} {change(last)} "


def _ordinal(words: str) -> str:
    return _last_word(words, lambda w: _ORDINALS.get(w) or (
        w[:-1] + "ieth" if w.endswith("y") else w + "th"))


def _roman(numeral: str) -> int:
    values = [{"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}[c]
              for c in numeral.upper()]
    return sum(-v if v < w else v for v, w in zip(values, values[1:] + [0]))


def _digits(digits: str) -> str:
    return " ".join(_ONES[int(d)] for d in digits)


def _integer(digits: str, years: bool = True) -> str:
    years, digits = years and "," not in digits, digits.replace(",", "")
    if len(digits) > 15 or (len(digits) > 1 and digits[0] == "0"):
        return _digits(digits)
    n = int(digits)
    if years and len(digits) == 4 and (1100 <= n <= 1999 or 2010 <= n <= 2099):
        return f"{number_words(n // 100)} {_pair(n % 100, 'hundred')}"
    return number_words(n)


def _pair(n: int, zero: str) -> str:
    """The second half of a year or a time: 0 -> `zero`, 5 -> "oh five", 42 -> "forty two"."""
    return zero if n == 0 else f"oh {_ONES[n]}" if n < 10 else number_words(n)


_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
             "£": ("pound", "pounds", "penny", "pence"), "¥": ("yen", "yen", "", "")}
_MONEY = re.compile(r"([$£€¥])\s?([0-9][0-9,]*)(?:\.([0-9]+))?"
                    r"(\s+(?:thousand|million|billion|trillion)\b)?")
_NUMBER = re.compile(r"(?<![\w.])(-)?(?:([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.([0-9]+))?"
                     r"|\.([0-9]+))")


def _money(m: re.Match) -> str:
    symbol, whole, cents, scale = m.group(1), m.group(2), m.group(3), m.group(4) or ""
    one, many, cent, cents_name = _CURRENCY[symbol]
    amount = _integer(whole, years=False)
    if scale or (cents and (len(cents) != 2 or not cent)):  # "3.5 million dollars"
        return f" {amount}{f' point {_digits(cents)}' if cents else ''}{scale} {many} "
    out = f" {amount} {one if whole.replace(',', '') == '1' else many} "
    n = int(cents or 0)
    return out + (f"{number_words(n)} {cent if n == 1 else cents_name} " if n else "")


def _number(m: re.Match) -> str:
    sign, whole, frac, only = m.groups()
    words = (_integer(whole, years=not frac) if whole else "") + (
        f" point {_digits(frac or only)}" if frac or only else "")
    return f" {'minus ' if sign else ''}{words.strip()} "


_NUMBER_RULES = (
    (_MONEY, _money),
    (re.compile(r"(?<![0-9])([0-9]+)(st|nd|rd|th)\b", re.I),  # 3rd: third
     lambda m: _ordinal(_integer(m.group(1), years=False))),
    (re.compile(r"(?<![0-9])'?([0-9]*0)s\b"),  # 1990s: nineteen nineties
     lambda m: _last_word(_integer(m.group(1)), lambda w: w[:-1] + "ies" if w.endswith("y")
                          else w + ("es" if w.endswith(("s", "x")) else "s"))),
    (re.compile(r"(?<=[^\W\d_])(?=[0-9])|(?<=[0-9])(?=[^\W\d_])"), lambda m: " "),
    (re.compile(r"(?<=[0-9])-(?=[0-9])"), lambda m: " to "),
    (re.compile(r"(?<![0-9:])([0-9]{1,2}):([0-9]{2})(?![0-9])"),  # 3:05: three oh five
     lambda m: f" {number_words(int(m.group(1)))} " + _pair(int(m.group(2)), "o'clock") + " "),
    (re.compile(r"#(?=\s?[0-9])"), lambda m: " number "),
    (_NUMBER, _number),
)

_ABBREVIATIONS = {
    "Mr": "mister", "Mrs": "missus", "Ms": "miz", "Prof": "professor", "Jr": "junior",
    "Sr": "senior", "Mt": "mount", "Capt": "captain", "Col": "colonel", "Gen": "general",
    "Lt": "lieutenant", "Sgt": "sergeant", "Rev": "reverend", "Gov": "governor", "Co": "company",
    "Inc": "incorporated", "Ltd": "limited", "Corp": "corporation", "Ave": "avenue", "Rd": "road",
    "Blvd": "boulevard", "vs": "versus", "etc": "et cetera", "approx": "approximately",
    "dept": "department", "e.g": "for example", "i.e": "that is"}
_ABBREVIATIONS.update({m[:3].title(): m for m in "january february march april june july "
                       "august september october november december".split()}, Sept="september")
_TITLES = {"Mr": "mister", "Mrs": "missus", "Ms": "miz", "Dr": "doctor", "St": "saint"}
_STREETS = {"Dr": "drive", "St": "street"}
_END = r'(?=["\')\]]*\s*$)'  # only closing quotes or brackets follow: the text ends here
_ABBREVIATION = re.compile(r"(?<![\w.])(" + "|".join(
    re.escape(k) for k in sorted(_ABBREVIATIONS, key=len, reverse=True)) + r")\.(" + _END + ")?")
_TITLE = re.compile(r"(?<![\w.])(Mr|Mrs|Ms|Dr|St)\.?(?=\s+[A-Z])")
_STREET = re.compile(r"(?<![\w.])(Dr|St)\.(" + _END + ")?")
_ROMAN = r"(?=[MDCLXVI]{2,}\b|I\b)M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})\b"
_NUMBERED = re.compile(r"\b(chapter|book|part|volume|act|scene|section|canto|psalm|war|type|"
                       r"phase|class|grade|level|stage|series)\s+(" + _ROMAN + ")", re.I)
_REGNAL = re.compile(r"\b([A-Z][a-z]+) ((?=[IVX]{2,}\b)X{0,3}(?:IX|IV|V?I{0,3}))\b")
_INITIALS = re.compile(r"(?<![\w.])((?:[A-Za-z]\.){2,})(" + _END + ")?")
_SYMBOLS = {"&": " and ", "%": " percent ", "@": " at ", "+": " plus ", "=": " equals ",
            "°": " degrees ", "/": " ", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'}
_QUIET = set("\"«»„‹›*_~^|`\\")
_CLAUSE_MARKS = set(",;:()[]{}—–")


def _end(m: re.Match) -> str:
    """"." where the match's last group (an _END) matched: its period also ended the text."""
    return "." if m.group(m.re.groups) is not None else ""


def _expand_words(text: str) -> str:
    text = _TITLE.sub(lambda m: _TITLES[m.group(1)], text)
    text = _STREET.sub(lambda m: _STREETS[m.group(1)] + _end(m), text)
    text = re.sub(r"\bNo\.(?=\s?[0-9])", "number", text)
    text = _NUMBERED.sub(lambda m: f"{m.group(1)} {number_words(_roman(m.group(2)))}", text)
    text = _REGNAL.sub(lambda m: f"{m.group(1)} the {_ordinal(number_words(_roman(m.group(2))))}",
                       text)
    text = _ABBREVIATION.sub(lambda m: _ABBREVIATIONS[m.group(1)] + _end(m), text)
    text = _INITIALS.sub(lambda m: m.group(1).replace(".", "").upper() + (_end(m) or " "), text)
    text = re.sub(r"(?<![\w.])([A-Z])\.(?=\s+[A-Z])", r"\1", text)
    return re.sub(r"(?<=[A-Za-z])\.(?=[A-Za-z])", " dot ", text)


def _keep_or_skip(text: str) -> tuple[str, list[str]]:
    """Latin letters, apostrophes in words, pause marks and spaces kept; the rest skipped."""
    out, skipped = [], []
    for c in text:
        if c.isspace() or c in _QUIET or c == "-":
            out.append(" ")
        elif c in _CLAUSE_MARKS:
            out.append(" , ")
        elif c in ".!?'" or (unicodedata.category(c)[0] == "L"
                            and "LATIN" in unicodedata.name(c, "")):
            out.append(c)
        elif unicodedata.category(c)[0] == "M" and out and out[-1].isalpha():
            out.append(c)  # a combining accent on a kept letter
        else:
            skipped.append(c)
            out.append(" ")
    return "".join(out), skipped


def normalise(text: str) -> tuple[str, tuple[str, ...]]:
    """Text -> (lower-case words and the pause marks , . ? !, the characters it skipped), by
    the rules of the module docstring; UserError naming them when no Latin letter is left."""
    clean = unicodedata.normalize("NFKC", text)
    clean = "".join(_SYMBOLS.get(c, c) for c in clean)
    clean = _expand_words(clean)
    for pattern, replace in _NUMBER_RULES:
        clean = pattern.sub(replace, clean)
    clean = re.sub(r"\s*--+\s*|\s-\s", " , ", clean)
    clean = re.sub(r"\.{2,}(" + _END + ")?", lambda m: _end(m) or ",", clean)
    clean = re.sub(r"(?<![^\W\d_])'|'(?![^\W\d_])", " ", clean)  # a quote, not in a word
    clean, skipped = _keep_or_skip(clean)
    shouting = not any(c.islower() for c in clean)
    words = [w if not shouting and w.isalpha() and w.isupper() and 2 <= len(w) <= 5
             else w.lower() for w in clean.split()]
    clean = re.sub(r"\s*([,.?!](?:\s*[,.?!])*)\s*", lambda m: next(  # the strongest mark
        (p for p in "?!." if p in m.group(1)), ",") + " ", " ".join(words))
    clean = re.sub(r"^[,.?!]\s*", "", clean).strip()
    skipped = tuple(dict.fromkeys(skipped))
    if not any(c.isalpha() for c in clean):
        what = f"drops {list(skipped)}" if skipped else "has only punctuation or symbols"
        raise UserError(f"text {text[:40]!r} has nothing the phoneme front end can voice (it "
                        f"{what}); write it in Latin letters")
    return clean, skipped


def clauses(normalised: str) -> list[tuple[str, str]]:
    """Normalised text -> [(words, pause mark or "")], split at its pause marks."""
    pieces = re.split(r"([,.?!])", normalised)
    pairs = zip(pieces[0::2], pieces[1::2] + [""])
    return [(words.strip(), mark) for words, mark in pairs if words.strip()]


class Encoding(NamedTuple):
    """What `PhonemeTokenizer.encode` returns: ids and their symbols (like tokenizers')."""
    ids: list[int]
    tokens: list[str]


class _Result(NamedTuple):
    ids: tuple[int, ...]
    skipped: tuple[str, ...]  # input characters the normaliser could not voice
    unknown: tuple[str, ...]  # phoneme characters outside the inventory (encoded as <unk>)


class PhonemeTokenizer:
    """Text -> ids over a fixed phoneme inventory, through `normalise` and eSpeak's IPA.

    phonemizer: (texts, voice) -> eSpeak IPA strings, normally `emotive.data.speech.espeak.phonemize`
    (codecs sit below data, so it is passed in; a tokenizer read back without one decodes and
    sizes a vocabulary but cannot encode). voice: the eSpeak voice that phonemises. It has
    the parts of a `tokenizers.Tokenizer` that `TTSVocab` calls (encode, decode, id_to_token,
    token_to_id, get_vocab_size, to_str, save), so it takes the BPE's place in the layout.
    """

    def __init__(self, phonemizer: Phonemizer | None = None, voice: str = "en-us",
                 symbols: Sequence[str] = INVENTORY):
        self.phonemizer, self.voice, self.symbols = phonemizer, str(voice), tuple(symbols)
        if self.symbols[:len(SPECIALS)] != SPECIALS or len(set(self.symbols)) != len(symbols):
            raise UserError(f"a phoneme inventory must be distinct symbols starting {SPECIALS}")
        self._ids = {s: i for i, s in enumerate(self.symbols)}
        self._spoken = {s: i for s, i in self._ids.items() if i >= len(SPECIALS)}
        # The longest inventory symbol first, else any one character (an unknown one).
        self._split = re.compile("|".join(map(re.escape, sorted(
            self._spoken, key=len, reverse=True))) + "|.", re.S)
        self._cache: dict[str, _Result | UserError] = {}

    def get_vocab_size(self, with_added_tokens: bool = True) -> int:
        return len(self.symbols)

    def token_to_id(self, token: str) -> int | None:
        return self._ids.get(token)

    def id_to_token(self, i: int) -> str | None:
        return self.symbols[i] if 0 <= i < len(self.symbols) else None

    def encode(self, text: str, add_special_tokens: bool = False) -> Encoding:
        """Text -> Encoding; UserError if nothing is voiced, a warning naming what is skipped."""
        key = " ".join(str(text).split())
        result = self._cache.get(key) or self._encode_all([key])[0]
        if isinstance(result, UserError):
            raise result
        if result.skipped:
            warnings.warn(f"the phoneme front end skipped {list(result.skipped)} in "
                          f"{key[:40]!r}: it voices Latin letters only", stacklevel=2)
        if result.unknown:
            warnings.warn(f"eSpeak gave phonemes {list(result.unknown)} outside the inventory "
                          f"for {key[:40]!r}; they are encoded as <unk>", stacklevel=2)
        return Encoding(list(result.ids), [self.symbols[i] for i in result.ids])

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Ids -> eSpeak-style IPA: "_" between phonemes, " " between words, pause marks."""
        out, stress = [], ""
        for i in ids:
            symbol = self.id_to_token(int(i)) or "<|reserved|>"
            if symbol in STRESS:
                stress += symbol
            elif symbol == " " or symbol in PAUSES:
                out.append(symbol if symbol == " " else symbol + " ")
            elif symbol != SPECIALS[PAD]:
                glue = "_" if out and out[-1][-1] != " " else ""
                out.append(glue + stress + symbol)
                stress = ""
        return ("".join(out) + stress).strip()

    def to_str(self) -> str:
        return json.dumps({"type": FORMAT, "voice": self.voice, "symbols": list(self.symbols)})

    def save(self, path) -> None:
        pathlib.Path(path).write_text(self.to_str())

    def prefetch(self, texts: Sequence[str]) -> None:
        """Phonemises `texts` in one batch for the next `encode` calls (replacing the last
        batch); a text that cannot be encoded raises when it is encoded."""
        keys = list(dict.fromkeys(" ".join(str(t).split()) for t in texts))
        self._cache = dict(zip(keys, self._encode_all(keys)))

    def _encode_all(self, texts: list[str]) -> list[_Result | UserError]:
        normalised = [_or_error(normalise, text) for text in texts]
        parts = [[] if isinstance(n, UserError) else clauses(n[0]) for n in normalised]
        words = [words for p in parts for words, _ in p]
        if words and self.phonemizer is None:
            raise UserError("this phoneme vocabulary has no phonemiser to encode text; load it "
                            "with emotive.data.pipelines.tts.read_checkpoint_vocab, or pass "
                            "phonemizer=emotive.data.speech.espeak.phonemize")
        ipa = iter(self.phonemizer(words, self.voice) if words else [])
        out = []
        for text, found, pieces in zip(texts, normalised, parts):
            ids, unknown = [], []
            for _, mark in pieces:
                for word in next(ipa).split():
                    word_ids = self._word_ids(word, unknown)
                    if word_ids and ids and ids[-1] not in _BOUNDARIES:
                        ids.append(WORD)
                    ids += word_ids
                if mark and ids and ids[-1] not in _BOUNDARIES:
                    ids.append(PAUSES[mark])  # in place of the word boundary
            if not isinstance(found, UserError) and not any(i >= len(SPECIALS) for i in ids):
                found = UserError(f"eSpeak gave no phonemes for {text[:40]!r}; write the words "
                                  "out in English")
            out.append(found if isinstance(found, UserError) else
                       _Result(tuple(ids), found[1], tuple(dict.fromkeys(unknown))))
        return out

    def split_symbols(self, name: str) -> list[str]:
        """One eSpeak phone name -> its symbols, the longest inventory symbols first (a
        character none covers stays as it is)."""
        return self._split.findall(name)

    def _word_ids(self, word: str, unknown: list[str]) -> list[int]:
        """One word of eSpeak IPA -> ids: each "_"-separated name split greedily into the
        longest inventory symbols; characters none covers become <unk> (and are noted)."""
        names = word.replace(":", "ː").split("_")
        symbols = [s for name in names for s in self._split.findall(name)]
        unknown += [s for s in symbols if s not in self._spoken]
        return [self._spoken.get(s, UNK) for s in symbols]


def _or_error(fn, *args):
    try:
        return fn(*args)
    except UserError as exc:
        return exc


def tokenizer_from_str(text: str, phonemizer: Phonemizer | None = None):
    """A text tokenizer read back from its JSON: a PhonemeTokenizer's (`to_str`) or else a
    `tokenizers.Tokenizer`'s; `phonemizer` goes to a PhonemeTokenizer."""
    if f'"{FORMAT}"' not in text[:100]:
        from tokenizers import Tokenizer

        return Tokenizer.from_str(text)
    data = json.loads(text)
    return PhonemeTokenizer(phonemizer, data["voice"], data["symbols"])
