"""What a bundle holds, as `emotive bundle info` prints it: the weights' summary, and the model
card's front matter and metrics read with huggingface_hub's `ModelCard`.

    summary("releases/ser-judge")        # task, parameter count and bytes, dtypes, files
    card_metrics("releases/ser-judge")   # [{task, dataset, split, type, name, value}]
"""

from __future__ import annotations

import json
import math
import pathlib

from emotive.errors import UserError
from emotive.infer.bundle.files import CARD_FILE, CONFIG_FILE, verify_bundle
from emotive.infer.bundle.reading import PARAMS, REST
from emotive.infer.bundle.weights import open_weights, weights_metadata


def summary(root) -> dict:
    """Family, parameter count and bytes, dtypes and files of a (verified) bundle."""
    root = pathlib.Path(root)
    files = verify_bundle(root)
    raw = json.loads((root / CONFIG_FILE).read_text())
    where = open_weights(root)
    counts = {PARAMS: 0, REST: 0}
    sizes = {PARAMS: 0, REST: 0}
    dtypes: dict[str, set] = {PARAMS: set(), REST: set()}
    for key, f in where.items():
        tensor = f.tensors[key]
        group = key.split("/", 1)[0]
        if group in counts:
            counts[group] += math.prod(tensor.shape)
            sizes[group] += tensor.nbytes
            dtypes[group].add(tensor.dtype)
    return {"task": raw.get("task"), "parameters": counts[PARAMS],
            "parameter_bytes": sizes[PARAMS], "rest_values": counts[REST],
            "rest_bytes": sizes[REST], "dtype": ",".join(sorted(dtypes[PARAMS])) or "none",
            "rest_dtype": ",".join(sorted(dtypes[REST])) or "none",
            "metadata": weights_metadata(root), "role": bundle_role(root),
            "files": {name: (root / name).stat().st_size for name in files}}


def _card(root):
    """The bundle's README.md parsed by huggingface_hub (None without one)."""
    # Imported here: huggingface_hub takes a tenth of a second to import, and only
    # `emotive bundle info` and the tests read cards.
    from huggingface_hub import ModelCard

    path = pathlib.Path(root) / CARD_FILE
    if not path.is_file():
        return None
    try:
        card = ModelCard.load(path)  # a Path that is a file: read locally, never downloaded
    except Exception as exc:  # noqa: BLE001 - YAML, model-index and decoding errors alike
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: unreadable model card front matter ({reason[:200]})") \
            from None
    if card.text.startswith("---\n") and not card.data.to_dict():
        raise UserError(f"{path}: the YAML front matter has no closing '---'")
    return card


def card_metadata(root) -> dict:
    """The front matter of the bundle's README.md as a dict ({} without one), as
    `ModelCardData.to_dict()` gives it (the model-index rebuilt from its eval results)."""
    card = _card(root)
    return card.data.to_dict() if card is not None else {}


ROLES = {
    "judge": "scores other models' output in evaluations (`eval tts`, `eval search`); never "
             "used in training, distillation or search, so nothing was optimised against it",
    "teacher": "teaches other models (the codec's semantic teacher, a student's teacher); "
               "may also guide search as a verifier",
    "verifier": "guides inference-time search (`emotive search --verifier`); its choices "
                "are judged by separately trained judges",
    "product": "a model for use in its own right",
}
ROLE_TAG = "role:"  # the card's tag `role:judge` names a bundle's role


def bundle_role(root) -> str | None:
    """The role its card states (`role:ROLE` among the tags; a key of ROLES), or None."""
    card = _card(root)
    tags = (card.data.tags if card is not None else None) or []
    roles = [t[len(ROLE_TAG):] for t in tags if isinstance(t, str) and t.startswith(ROLE_TAG)]
    return roles[0] if roles else None


def card_metrics(root) -> list[dict]:
    """[{task, dataset, split, type, name, value}] of the card's model-index, in its order."""
    card = _card(root)
    results = (card.data.eval_results if card is not None else None) or []
    return [{"task": r.task_type, "dataset": r.dataset_name, "split": r.dataset_split,
             "type": r.metric_type, "name": r.metric_name, "value": r.metric_value}
            for r in results]
