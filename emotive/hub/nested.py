"""The models a bundle holds inside it, each a bundle of its own in a subfolder.

A TTS pipeline bundle holds its codec in codec/. A motion_ldm bundle holds the models its
generator needs: the motion VAE in vae/, and the speaker encoder in speaker/ (when
`style.speaker_ckpt` is set) and the recogniser in asr/ (when `content.source` uses asr),
found from the paths its config records (resolved as `MotionGenerator.load` resolves them:
relative to the working directory, else to an ancestor of the run). Its config.json names
them relative to the bundle ("vae", "speaker", "asr"), never by a path of the machine that
released it.

Here: the subfolder names, the motion_ldm models a run needs (`motion_models`), the config
with their paths replaced (`with_models`), and copying a model that is a bundle already
(`copy_bundle`). Releasing one that is still a run is `emotive.hub.release`'s job.
"""

from __future__ import annotations

import dataclasses
import pathlib
import shutil

from emotive.errors import UserError
from emotive.infer import bundle

CODEC_DIR = "codec"  # a TTS pipeline bundle's codec
VAE_DIR, SPEAKER_DIR, ASR_DIR = "vae", "speaker", "asr"  # a motion_ldm bundle's models

# A motion_ldm bundle's models: (config section, field, subfolder, task, what it is).
_MOTION_MODELS = (("vae", "ckpt", VAE_DIR, "motion_vae", "the motion VAE"),
                  ("style", "speaker_ckpt", SPEAKER_DIR, "speaker",
                   "the speaker encoder (style)"),
                  ("content", "asr_ckpt", ASR_DIR, "asr", "the recogniser (speech content)"))


def copy_bundle(source, where: pathlib.Path, task: str, label: str) -> None:
    """Copies the bundle `source` of `task` to `where`, verified first (a download's
    .cache/huggingface left out); UserError for a bundle of another task. `label` names the
    source in errors ("--codec", "vae.ckpt")."""
    bundle.verify_bundle(source)
    if bundle.read_config(pathlib.Path(source)).task != task:
        raise UserError(f"{label} {source} is not a {task} bundle")
    top = pathlib.Path(source).absolute()
    ignored = {top / d for d in bundle.IGNORED_DIRS}
    shutil.copytree(source, where, ignore=lambda d, names: [
        n for n in names if pathlib.Path(d).absolute() / n in ignored])


def motion_models(cfg, step_dir) -> list[tuple[str, str, str, pathlib.Path, str]]:
    """The models a motion_ldm run's generator loads, as (config key, subfolder, task,
    resolved path, description); each recorded path is resolved as `MotionGenerator.load`
    does (`resolve_beside`) and checked to be a run or bundle of its task. UserError for a
    missing or wrong one, before any work."""
    from emotive.infer.motion import resolve_beside
    from emotive.infer.motion_conditions import run_config

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


def with_models(cfg, paths: dict[str, str]):
    """`cfg` with the motion models' config keys set to `paths` (others emptied)."""
    values = {f"{s}.{f}": "" for s, f, *_ in _MOTION_MODELS} | paths
    for section, field, *_ in _MOTION_MODELS:
        part = dataclasses.replace(getattr(cfg, section),
                                   **{field: values[f"{section}.{field}"]})
        cfg = dataclasses.replace(cfg, **{section: part})
    return cfg
