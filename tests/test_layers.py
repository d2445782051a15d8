"""The architecture, checked: layers imported one way only (lazy imports included), MLflow called from the
tracking layer alone, one place that registers the Keras classes, and files of seqlab 0.2 that still load."""

import ast
import json
import subprocess
import sys

import pytest

from seqlab.testing import REPO

SRC = REPO / "src" / "seqlab"
# Lowest first: a module may import its own layer and the layers before it, never one after it.
LAYERS = ["errors", "runtime", "config", "data", "task", "crf", "model", "saving", "training", "evaluation",
          "tracking", "compare", "jobs", "export", "testing", "__init__"]
# Beside the order: the model side never reads corpora, so a saved tagger needs only its task.
NEVER = {"crf": ("data", "task"), "model": ("data", "task")}
ONLY_HERE = {"mlflow": ("tracking",), "keras_tuner": ("jobs",)}  # third-party packages and the one layer that uses them


def layer_of(path) -> str:
    """The layer of a source file: its folder under src/seqlab/, or its own name in the package root."""
    parts = path.relative_to(SRC).parts
    return parts[0] if len(parts) > 1 else parts[0][:-3]


def imports(path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, at any depth (functions' lazy imports included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "seqlab":  # `from seqlab import tracking`
                found += [(node.lineno, f"seqlab.{a.name}") for a in node.names]
    return found


def imported_layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "seqlab" or len(parts) == 1:
        return None
    return parts[1]


def test_layers_are_imported_one_way_only():
    upward, sideways = [], []
    for path in sorted(SRC.rglob("*.py")):
        here = layer_of(path)
        assert here in LAYERS, f"{path.relative_to(REPO)}: layer {here!r} is not in LAYERS"
        for line, module in imports(path):
            there = imported_layer(module)
            if there is None or there == here:
                continue
            assert there in LAYERS, f"{path.relative_to(REPO)}:{line}: imports {module}, in no layer"
            if LAYERS.index(there) > LAYERS.index(here):
                upward.append(f"{path.relative_to(REPO)}:{line}: {here} imports {module}")
            if there in NEVER.get(here, ()):
                sideways.append(f"{path.relative_to(REPO)}:{line}: {here} imports {module}")
    assert upward == [] and sideways == []


def test_third_party_frameworks_are_called_from_their_one_layer():
    stray = []
    for path in sorted(SRC.rglob("*.py")):
        for line, module in imports(path):
            allowed = ONLY_HERE.get(module.split(".")[0])
            if allowed and layer_of(path) not in allowed:
                stray.append(f"{path.relative_to(REPO)}:{line}: {module}")
    assert stray == []


def test_the_package_root_holds_only_what_users_import():
    root = sorted(p.name for p in SRC.glob("*.py"))
    assert len(root) <= 8, root


def test_every_keras_class_is_registered_by_the_one_list_in_seqlab_saving():
    from seqlab.saving import MODULES

    defined = set()
    for path in SRC.rglob("*.py"):
        if "register_keras_serializable" in path.read_text() and path.name != "saving.py":
            defined.add(".".join(("seqlab", *path.relative_to(SRC).with_suffix("").parts)))
    assert defined == set(MODULES)


def test_scripts_and_tests_share_helpers_through_seqlab_testing_only():
    for path in (REPO / "scripts").glob("*.py"):
        text = path.read_text()
        assert "conftest" not in text and "from tests" not in text and "import tests" not in text, path


@pytest.mark.parametrize("head", ["crf", "softmax"])
def test_a_keras_file_of_seqlab_0_2_loads_and_tags_as_it_did(head):
    import seqlab

    folder = REPO / "tests" / "fixtures" / "v0.2"
    expected = json.loads((folder / f"expected-0.2-{head}.json").read_text())
    tagger = seqlab.load_tagger(folder / f"tagger-0.2-{head}.keras")
    assert tagger.tag(expected["sentences"]) == expected["tags"]


def test_a_truncated_or_missing_keras_file_says_so_in_one_line(tmp_path):
    import seqlab
    from seqlab.saving import ModelFileError

    whole = (REPO / "tests" / "fixtures" / "v0.2" / "tagger-0.2-crf.keras").read_bytes()
    half = tmp_path / "half.keras"
    half.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ModelFileError, match=r"half\.keras: not a complete \.keras file \(\d+ bytes; truncated"):
        seqlab.load_tagger(half)
    with pytest.raises(ModelFileError, match=r"none\.keras: no such file"):
        seqlab.load_tagger(tmp_path / "none.keras")


@pytest.mark.slow
def test_a_pyfunc_model_logged_by_seqlab_0_2_loads_and_predicts(tmp_path):
    """MLflow loads 0.2's model with 0.2's own code (it travels inside the model), in a fresh process."""
    import tarfile

    folder = REPO / "tests" / "fixtures" / "v0.2"
    expected = json.loads((folder / "expected-0.2-crf.json").read_text())
    with tarfile.open(folder / "pyfunc-0.2-crf.tar.gz") as archive:  # a whole MLflow model folder, 0.2's code inside
        archive.extractall(tmp_path, filter="data")
    code = ("import json, sys, mlflow.pyfunc\n"
            "m = mlflow.pyfunc.load_model(sys.argv[1])\n"
            "print(json.dumps(m.predict(json.loads(sys.argv[2]))))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "pyfunc-0.2-crf"), json.dumps(expected["sentences"])],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == expected["tags"]
