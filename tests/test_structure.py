"""The package's shape: no import circle, one user-error type, flags from configs, packaging."""

import argparse
import ast
import shutil
import subprocess
import sys
import zipfile
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

import nas
from nas import cli
from nas.arch import ArchError
from nas.config import DataConfig, FinalConfig, ProfileConfig, SearchConfig, TrainConfig
from nas.data import DataError
from nas.errors import UsageError, UserError
from nas.export import ExportError
from nas.final import FinalError
from nas.latency import measure
from nas.latency.table import TableError
from nas.latency.target import BACKENDS, Target
from nas.model import ModelConfig
from nas.run import RunError
from nas.search import SearchStalled
from nas.space import SpaceError
from nas.storage import StorageError

ROOT = Path(__file__).resolve().parent.parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _nas_imports(path: Path, modules: set[str]) -> set[str]:
    """The nas modules ``path`` imports anywhere in it (in functions and under TYPE_CHECKING
    too): ``import nas.x``, ``from nas.x import y``, ``from nas import x`` and relative forms.
    ``from package import name`` counts as the submodule ``name`` where there is one, else as
    the package."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) + 1 - node.level]
                base = ".".join([*anchor, base] if base else anchor)
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                      for a in node.names}
    return found & modules


def _import_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports in ``graph`` (module -> modules it imports), first module
    repeated at the end, or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        for imported in sorted(graph[module]):
            circle = visit(imported, [*path, module])
            if circle:
                return circle
        done.add(module)
        return None

    return next(filter(None, (visit(m, []) for m in sorted(graph))), None)


def test_no_nas_modules_import_each_other_in_a_circle():
    paths = {_module_name(p): p for p in (ROOT / "nas").rglob("*.py")}
    graph = {name: _nas_imports(path, set(paths)) for name, path in paths.items()}
    assert graph["nas.latency.measure"] >= {"nas.latency.target", "nas.bundle_timer"}  # sees them
    circle = _import_circle(graph)
    assert circle is None, "import circle: " + " -> ".join(circle or [])


def test_the_circle_finder_names_a_circle():
    graph = {"nas.a": {"nas.b"}, "nas.b": {"nas.c"}, "nas.c": {"nas.b"}, "nas.d": set()}
    assert _import_circle(graph) == ["nas.b", "nas.c", "nas.b"]
    assert _import_circle({**graph, "nas.c": {"nas.d"}}) is None


def test_every_backend_a_target_accepts_has_a_runner():
    assert tuple(measure._RUNNERS) == BACKENDS  # the table's, from nas.latency.target


def test_no_module_imports_the_command_line():
    for path in (ROOT / "nas").rglob("*.py"):
        if path.name in ("cli.py", "__main__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert "nas.cli" not in names, f"{path} imports nas.cli"
    code = ("import sys, nas.commands.search, nas.commands.export, nas.commands.report, "
            "nas.commands.profile, nas.commands.train; "
            "print(any(m == 'nas.cli' for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("error", [DataError, SpaceError, TableError, ExportError, RunError,
                                   SearchStalled, UsageError, ArchError, StorageError,
                                   FinalError])
def test_every_user_error_derives_from_the_one_base(error):
    assert issubclass(error, UserError) and not issubclass(error, ValueError)


def test_cli_turns_user_errors_into_one_line_and_keeps_tracebacks_for_bugs(monkeypatch, capsys):
    import nas.commands.report as report

    def user_error(args):
        raise SpaceError("the space is wrong; fix it")

    monkeypatch.setattr(report, "run", user_error)
    assert cli.main(["report", "somewhere"]) == 2
    assert capsys.readouterr().err == "error: the space is wrong; fix it\n"

    def bug(args):
        raise KeyError("internal")

    monkeypatch.setattr(report, "run", bug)
    with pytest.raises(KeyError):
        cli.main(["report", "somewhere"])


def _actions(command: str) -> dict[str, argparse.Action]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices[command]._actions}


@pytest.mark.parametrize("command, configs", [
    ("search", (SearchConfig, TrainConfig, DataConfig, Target)),
    ("profile", (ProfileConfig, ModelConfig, Target)),
    ("train", (FinalConfig,))])
def test_flags_take_their_defaults_and_help_from_the_configs(command, configs):
    actions = _actions(command)
    for config in configs:
        for f in fields(config):
            if "flag" not in f.metadata:
                assert f.name not in actions or f.name == "seed", (config, f.name)
                continue
            action = actions[f.name]
            assert action.help.replace("%%", "%").startswith(f.metadata["flag"].help)
            if f.name == "input_size":
                assert action.default is None  # the space's resolution
            elif f.name == "cores":
                assert action.default is None  # the first --threads cores, found at run time
            elif f.default is MISSING:
                assert action.required
            else:
                assert action.default == f.default, (config, f.name)
    assert "dataset" not in _actions("profile")  # only where it is used


def test_a_wheel_carries_every_module_and_shipped_space_and_builds_without_warnings(tmp_path):
    source = tmp_path / "src"  # a copy, so the build leaves nothing in the checkout
    for name in ("nas", "search_spaces"):
        shutil.copytree(ROOT / name, source / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", source)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-q", "-w", str(tmp_path), str(source)],
                           check=True, capture_output=True, text=True)
    assert "Warning:" not in build.stderr  # setuptools' (pip's own say "WARNING:")
    wheel = next(tmp_path.glob("nas-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    spaces = {f"nas/search_spaces/{p.name}" for p in (ROOT / "search_spaces").glob("*.yaml")}
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "nas").rglob("*.py")}
    assert "nas/search_spaces/mobilenetv3.yaml" in spaces and "nas/cli.py" in modules
    assert spaces | modules <= names


def test_public_names_load_on_first_use_from_the_modules_that_define_them():
    code = ("import sys, nas; loaded = sorted(m for m in sys.modules if m.startswith('nas.') "
            "or m == 'torch'); print(loaded, nas.Arch is sys.modules['nas.arch'].Arch)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "True"]  # `import nas` alone loads nothing
    for name in nas.__all__:
        public = getattr(nas, name)
        if callable(public):  # a class or function, under its own name
            assert public.__module__.startswith("nas.") and public.__name__ == name
        else:  # a constant (the reference networks): an instance of one of ours
            assert type(public).__module__.startswith("nas."), name
    with pytest.raises(AttributeError):
        nas.not_a_name
