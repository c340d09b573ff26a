"""The dependency direction, read from the imports of every module under emotive/.

    configs <- codecs <- models <- data <- train, infer <- search <- evals, hub <- commands <- cli

A module may import its own area and the areas to its left. codecs sit below models (the
design card drew them above): the models' front ends (STFT, mel) and the codec's FSQ
bottleneck are codecs, and nothing in codecs needs a model. `train` and `infer` share a
rank, with infer above train: inference reads checkpoints through train/checkpoint.py and
builds models with a task's own factory, while a task never needs a predictor at import
time. `metrics` (numbers from arrays) sits with codecs; `errors` and `registry` (the family
table, module names only) may be imported from anywhere. Imports deferred into a function
for a reason are listed in DEFERRED with that reason; any other import against the
direction fails.
"""

import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "emotive"

RANKS = {"configs": 0, "codecs": 1, "metrics": 1, "models": 2, "data": 3, "train": 4,
         "infer": 4.5, "search": 5, "evals": 6, "hub": 6, "commands": 7, "cli": 8, "__main__": 9}
ANYWHERE = {"errors", "registry", "__init__"}

# (importing module, imported module): why the import waits inside a function.
DEFERRED = {
    ("emotive.train.tasks.codec", "emotive.infer.loading"):
        "the codec's semantic teacher is a trained model, loaded only when a run starts",
    ("emotive.train.tasks.student", "emotive.infer.emotion"):
        "the student's teacher is a trained SER predictor, loaded only when a run starts",
    ("emotive.train.tasks.motion_ldm", "emotive.infer.motion"):
        "the motion LDM's frozen VAE and condition encoders (recogniser, speaker encoder) are "
        "trained models, loaded only when a run starts",
    ("emotive.infer.motion", "emotive.infer.asr"):
        "the recogniser is loaded only for content.source=asr",
    ("emotive.infer.motion", "emotive.infer.speaker"):
        "the speaker encoder is loaded only when the run has a style model",
    ("emotive.infer.motion", "emotive.infer.emotion"):
        "the SER model is loaded only for an emotion reference",
}


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: pathlib.Path):
    """(imported module, deferred?) for every `emotive` import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    top = set(map(id, tree.body))
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.startswith("emotive."):
                found.append((name, id(node) not in top))
    return found


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _violations():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        importer = _module_name(path)
        own = _area(importer)
        for imported, deferred in _imports(path):
            area = _area(imported)
            if area in ANYWHERE or own in ANYWHERE or area not in RANKS:
                continue  # a name imported from a package's __init__, or a submodule name
            if RANKS[area] <= RANKS[own]:
                continue
            key = (importer, imported)
            if deferred and any(key[0] == a and key[1].startswith(b) for a, b in DEFERRED):
                continue
            bad.append(f"{importer} imports {imported}{' (deferred)' if deferred else ''}")
    return bad


def test_every_area_of_the_package_has_a_rank():
    areas = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    areas |= {p.stem for p in ROOT.glob("*.py")}
    assert areas - set(RANKS) - ANYWHERE == set()


def test_imports_follow_the_dependency_direction():
    assert _violations() == []


def test_deferred_imports_listed_still_exist():
    # A listed exception that no longer happens should be removed from DEFERRED.
    seen = {(_module_name(p), name) for p in ROOT.rglob("*.py") for name, deferred
            in _imports(p) if deferred}
    for importer, imported in DEFERRED:
        assert any(a == importer and b.startswith(imported) for a, b in seen), (importer,
                                                                                   imported)


@pytest.mark.parametrize("source, expected", [
    ("from emotive.commands import eval\n", ["emotive.x.y imports emotive.commands"]),
    ("def f():\n    import emotive.evals.common\n",
     ["emotive.x.y imports emotive.evals.common (deferred)"]),
])
def test_the_check_catches_an_upward_import(tmp_path, monkeypatch, source, expected):
    pkg = tmp_path / "emotive"
    (pkg / "models").mkdir(parents=True)
    (pkg / "models" / "bad.py").write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", pkg)
    found = [v.replace("emotive.models.bad", "emotive.x.y") for v in _violations()]
    assert found and found[0] == expected[0]
