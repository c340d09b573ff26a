"""How to sample from a CausalLM: SamplingConfig, and the Knobs that carry its values into
the compiled program.

The sampling stack, bottom up: this module (the config); `infer.logits`, the processing of
next-token logits (allowed ids, repetition penalty, temperature, top-k, top-p, guidance)
and the draw; `infer.decode_loop`, the jitted prefill and `lax.while_loop` over a KV cache
with per-row seeds and stopping; `infer.decoder`, Decoder (start / advance / select /
result) for step-wise search, and generate.

Classifier-free guidance (Koel-TTS-style, per condition): with cfg.guidance = (w_1, ..., w_K)
the rows come in groups of G = K + 1 consecutive rows: the conditional prompt first, then K
prompts each lacking one condition (the text, the emotion tag, ...). Every step the group's
logits become l_0 + sum_k w_k (l_0 - l_k) (w_k = scale_k - 1; 0 turns a condition's guidance
off), one token is drawn from them with the first row's seed, and every row of the group is
fed that token, so all G caches follow the same speech. `Generated` then holds G identical
rows per group; callers keep the first.

Compiles: one per (batch, prompt bucket P, program_key(cfg)); temperature, top_p, the
penalty, the pad id, the stop ids and the guidance weights are runtime values. Callers that
sample repeatedly pass `decoder.prepare(model)` (the module split once) instead of the
module.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import numpy as np

from emotive.errors import UserError

MAX_STOPS = 4  # stop ids travel as a fixed-size array, so changing them does not recompile


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """How to sample. Hashable: `program_key(cfg)` is a static argument of the program.

    repetition_penalty follows Hugging Face: a token already in the row has its logit
    divided by the penalty if positive, multiplied if negative. `penalize_prompt=True`
    counts the prompt's tokens as already in the row, as Hugging Face does; False counts
    only the new ones (for a voice prompt whose reference codes should not be discouraged).
    allowed_range=(lo, hi) restricts draws to ids lo..hi-1 plus the stop ids (at most
    MAX_STOPS), e.g. the speech codes and SPEECH_GENERATION_END after SPEECH_GENERATION_START.
    top_k keeps exactly the k highest logits (ties broken by the lower id); top_p keeps the
    smallest set of highest-probability tokens whose probability reaches top_p.
    """

    temperature: float = 1.0  # 0: greedy
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1.0: off
    repetition_penalty: float = 1.0  # 1.0: off
    penalize_prompt: bool = True
    max_new_tokens: int = 256
    min_new_tokens: int = 0  # stop ids cannot be drawn before this many new tokens
    stop_ids: tuple[int, ...] = ()
    pad_id: int = 0
    allowed_range: tuple[int, int] | None = None
    guidance: tuple[float, ...] = ()  # classifier-free guidance weights, one per extra row
    # Phoneme-synchronous decoding (ELLA-V; infer.decode_loop): the end-of-phoneme id (-1:
    # off). stop_ids are then (stop token, EOP), both outside allowed_range (the codes).
    eop_id: int = -1
    max_unit_frames: int = 0  # frames a unit may last before EOP is forced (0: no limit)

    def __post_init__(self):  # lists would make the config unhashable
        object.__setattr__(self, "stop_ids", tuple(int(i) for i in self.stop_ids))
        object.__setattr__(self, "guidance", tuple(float(w) for w in self.guidance))
        if self.allowed_range is not None:
            object.__setattr__(self, "allowed_range", tuple(int(i) for i in self.allowed_range))

    def validate(self, vocab_size: int) -> None:
        """UserError for a value out of range, or an id outside the vocabulary."""
        if self.temperature < 0:
            raise UserError(f"temperature must be >= 0 (0 is greedy), got {self.temperature}")
        if self.top_k < 0:
            raise UserError(f"top_k must be >= 0 (0 turns it off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise UserError(f"top_p must lie in (0, 1] (1 turns it off), got {self.top_p}")
        if self.repetition_penalty <= 0:
            raise UserError("repetition_penalty must be positive (1 turns it off), got "
                            f"{self.repetition_penalty}")
        if self.max_new_tokens < 1:
            raise UserError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise UserError(f"min_new_tokens must lie in [0, max_new_tokens={self.max_new_tokens}]"
                            f", got {self.min_new_tokens}")
        if len(self.stop_ids) > MAX_STOPS:
            raise UserError(f"at most {MAX_STOPS} stop ids are supported, got {self.stop_ids}")
        ids = tuple(self.stop_ids) + (self.pad_id,)
        if any(not 0 <= i < vocab_size for i in ids):
            raise UserError(f"stop ids {self.stop_ids} and pad id {self.pad_id} must lie in "
                            f"[0, {vocab_size}), the model's vocabulary")
        if self.eop_id >= 0 and (self.allowed_range is None or len(self.stop_ids) != 2
                                 or self.stop_ids[1] != self.eop_id):
            raise UserError("phoneme-synchronous decoding needs allowed_range (the codes) and "
                            "stop_ids (stop token, EOP)")
        if self.max_unit_frames < 0:
            raise UserError(f"max_unit_frames must be >= 0 (0: no limit), got "
                            f"{self.max_unit_frames}")
        if any(not np.isfinite(w) for w in self.guidance):
            raise UserError(f"guidance weights must be finite, got {self.guidance}")
        if self.allowed_range is not None:
            lo, hi = self.allowed_range
            if not 0 <= lo < hi <= vocab_size:
                raise UserError(f"allowed_range {self.allowed_range} must satisfy 0 <= lo < hi "
                                f"<= {vocab_size}")


class Knobs(NamedTuple):
    """The config's values as arrays: changing them reuses the compiled program."""

    temperature: jax.Array  # f32 []
    top_p: jax.Array  # f32 []
    penalty: jax.Array  # f32 []
    pad_id: jax.Array  # int32 []
    stop_ids: jax.Array  # int32 [MAX_STOPS], -1 = unused slot
    min_new: jax.Array  # int32 [] or [B] (per row)
    guidance: jax.Array  # f32 [K]: weights of the K condition-dropped rows of each group
    unit_cap: jax.Array  # int32 []: frames a phoneme unit may last (phoneme-synchronous)


def make_knobs(cfg: SamplingConfig) -> Knobs:
    """The config's runtime values as Knobs (stop ids padded to MAX_STOPS with -1)."""
    stops = np.full(MAX_STOPS, -1, np.int32)
    stops[:len(cfg.stop_ids)] = cfg.stop_ids
    return Knobs(np.float32(cfg.temperature or 1.0), np.float32(cfg.top_p),
                 np.float32(cfg.repetition_penalty), np.int32(cfg.pad_id), stops,
                 np.int32(cfg.min_new_tokens), np.asarray(cfg.guidance, np.float32),
                 np.int32(cfg.max_unit_frames or cfg.max_new_tokens))


def program_key(cfg: SamplingConfig) -> SamplingConfig:
    """The config reduced to what shapes the compiled program (greedy or not, top_k,
    whether top-p and the penalty are on, allowed_range, max_new_tokens); the values travel
    as Knobs, so another temperature or stop id does not recompile."""
    return dataclasses.replace(
        cfg, temperature=0.0 if cfg.temperature == 0 else 1.0,
        top_p=1.0 if cfg.top_p == 1.0 else 0.5,
        repetition_penalty=1.0 if cfg.repetition_penalty == 1.0 else 2.0,
        stop_ids=(), pad_id=0, min_new_tokens=0, guidance=(0.0,) * len(cfg.guidance),
        max_unit_frames=0)
