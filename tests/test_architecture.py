"""The package's layering and its documented defaults."""

import ast
import inspect
import re
from pathlib import Path

import pytest

import skmeta
from skmeta import MAMLClassifier, PrototypicalClassifier

PACKAGE = Path(skmeta.__file__).parent

# Pure maths: torch and numpy only, never skorch, scikit-learn or pandas.
MATHS = [
    "_functional",
    "_objectives",
    "fairness",
    "_episodes",
    "_heads",
    "_mixture",
    "modules",
]
FORBIDDEN = {"skorch", "sklearn", "pandas", "fairlearn"}


def _imports(module):
    """Top-level names of what ``module`` imports, relative imports resolved."""
    path = PACKAGE / (module.replace(".", "/") + ".py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                name = ".".join([*base, node.module] if node.module else base)
                found.add("skmeta." + name if name else "skmeta")
            else:
                found.add(node.module)
    return found


def _closure(module):
    """Everything ``module`` imports, following skmeta's own modules."""
    seen, todo, external = set(), [module], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for name in _imports(current):
            if name.startswith("skmeta."):
                inner = name[len("skmeta.") :]
                if (PACKAGE / (inner.replace(".", "/") + ".py")).exists():
                    todo.append(inner)
                elif (PACKAGE / inner.replace(".", "/")).is_dir():
                    todo.append(inner + ".__init__")
            else:
                external.add(name.split(".")[0])
    return external


@pytest.mark.parametrize("module", MATHS)
def test_maths_modules_import_neither_skorch_nor_sklearn(module):
    assert not _closure(module) & FORBIDDEN


@pytest.mark.parametrize("module", ["datasets._base", "datasets._generators"])
def test_datasets_never_import_the_estimators(module):
    closure = _closure(module)
    assert "skorch" not in closure


@pytest.mark.parametrize(
    "module", ["metrics._scorers", "metrics._display", "datasets._base"]
)
def test_side_packages_do_not_import_estimator_modules(module):
    names = _imports(module)
    assert not {n for n in names if re.match(r"skmeta\.(_base|_maml|_proto)", n)}


def test_private_sklearn_imports_go_through_compat():
    for path in PACKAGE.rglob("*.py"):
        if path.name == "_compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("sklearn")
            ):
                private = [a.name for a in node.names if a.name.startswith("_")]
                private_module = any(
                    part.startswith("_") for part in node.module.split(".")
                )
                assert not private and not private_module, (path, node.module)


@pytest.mark.parametrize("klass", [MAMLClassifier, PrototypicalClassifier])
def test_documented_defaults_match_the_signature(klass):
    signature = inspect.signature(klass.__init__).parameters
    documented = re.findall(
        r"^    (\w+) : [^\n]*?default=([^\n]+)$", klass.__doc__, flags=re.M
    )
    assert len(documented) >= 20
    for name, default in documented:
        assert name in signature, name
        value = signature[name].default
        text = default.strip().rstrip(".")
        if inspect.isclass(value):
            assert text.endswith(value.__name__), (name, text, value)
        else:
            assert ast.literal_eval(text) == value, (name, text, value)
    undocumented = set(signature) - {n for n, _ in documented} - {"self", "kwargs"}
    assert not undocumented


@pytest.mark.parametrize("klass", [MAMLClassifier, PrototypicalClassifier])
def test_every_parameter_has_a_constraint(klass):
    signature = set(inspect.signature(klass.__init__).parameters)
    skorch_owned = {
        "self",
        "kwargs",
        "module",
        "criterion",
        "optimizer",
        "batch_size",
        "train_split",
        "callbacks",
        "device",
        "verbose",
        "iterator_train",
        "iterator_valid",
        "dataset",
    }
    assert signature - skorch_owned <= set(klass._parameter_constraints)
