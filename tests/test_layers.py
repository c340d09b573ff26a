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
import re
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
        "the motion LDM's frozen VAE is a trained model, loaded only when a run starts",
    ("emotive.train.tasks.motion_ldm", "emotive.infer.motion_conditions"):
        "the motion LDM's condition encoders (recogniser, speaker encoder) are trained "
        "models, loaded only when a run starts",
    ("emotive.infer.motion_conditions", "emotive.infer.asr"):
        "the recogniser is loaded only for content.source=asr",
    ("emotive.infer.motion_conditions", "emotive.infer.speaker"):
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


# ------------------------------------------------------------------ rooms inside emotive/data
# data/ holds four jobs; a corpus never needs a builder or a pipeline, a builder never needs a
# pipeline. Within data/, a subpackage may import its own and those ranked below it.
DATA_RANKS = {"speech": 0, "motion": 1, "builders": 2, "pipelines": 3}


def test_data_subpackages_follow_their_direction():
    data = ROOT / "data"
    rooms = {p.name for p in data.iterdir() if (p / "__init__.py").exists()}
    assert rooms == set(DATA_RANKS)
    assert [p.name for p in data.glob("*.py")] == ["__init__.py"]  # every module has a room
    bad = []
    for path in sorted(data.rglob("*.py")):
        own = path.relative_to(data).parts[0]
        for imported, _ in _imports(path):
            parts = imported.split(".")
            if parts[:2] == ["emotive", "data"] and len(parts) > 2 and parts[2] in DATA_RANKS:
                if DATA_RANKS[parts[2]] > DATA_RANKS.get(own, -1):
                    bad.append(f"{_module_name(path)} imports {imported}")
    assert bad == []


# ------------------------------------------------------------------------ size and circles
MAX_LINES = 450  # a module a newcomer reads in one sitting


def test_no_module_is_longer_than_a_sitting():
    long = {str(p.relative_to(ROOT.parent)): n for p in ROOT.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def _module_graph() -> dict[str, set[str]]:
    """Module -> the emotive modules it imports at module level. `from pkg import name` is an
    edge to pkg.name when that is a module, else to pkg."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        edges = set()
        for node in tree.body:
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    edges.add(sub if sub in modules else node.module)
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle():
    assert _cycles(_module_graph()) == []


def test_the_circle_check_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


# --------------------------------------------------------------- third-party packages declared
def _declared() -> set[str]:
    import tomllib
    project = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    return {_normal(re.split(r"[<>=!~ \[;]", s, maxsplit=1)[0]) for s in specs}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_third_party_package_is_declared():
    import importlib.metadata
    dists = importlib.metadata.packages_distributions()
    declared = _declared()
    missing = set()
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top in sys.stdlib_module_names or top == "emotive":
                    continue
                names = {_normal(d) for d in dists.get(top, [top])}
                if not names & declared:
                    missing.add(f"{top} ({', '.join(sorted(names))}) in "
                                f"{path.relative_to(ROOT.parent)}")
    assert sorted(missing) == []
