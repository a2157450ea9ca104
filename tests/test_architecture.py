"""The layers hold: import-linter's contracts pass, and each fails when broken on purpose; imports sit at the top
of a file except the deferred ones workbench.DEFERRED lists; nothing outside the engine reaches past its public
entry; the map in docs/architecture.md is the tree; files and functions stay small."""

import ast
import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import workbench

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "workbench"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(where: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(where)}  # the tree at `where`, not the installed one
    return subprocess.run([str(LINT_IMPORTS), str(where / "pyproject.toml"), "--no-cache"], cwd=where,
                          env=env, capture_output=True, text=True, timeout=300)


def test_the_layer_contracts_hold():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout


BREAKS = {  # contract id: (a module, an import that breaks the contract when added to it, the contract's last word)
    "layers": ("engine/loss.py", "import workbench.records.store", "vocabulary"),  # the engine reaching up
    "acyclic": ("records/layout.py", "import workbench.records.store", "round"),  # store imports layout: a circle
    "engine-knows-no-ui": ("paper/config.py", "import rich", "mlflow"),  # the vocabulary drawing a table
}


@pytest.mark.parametrize("contract", sorted(BREAKS))
def test_each_contract_fails_when_broken(tmp_path, contract):
    shutil.copytree(PACKAGE, tmp_path / "workbench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    module, line, last_word = BREAKS[contract]
    target = tmp_path / "workbench" / module
    target.write_text(target.read_text() + f"\n{line}\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout
    assert f"{last_word} BROKEN" in done.stdout  # the contract's name ends its line of the report


@functools.cache
def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def imported(module: str, node: ast.AST) -> list[str]:
    """The modules an import statement names, as absolute names."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # from the module's package, one level up per dot after the first
        package = module if modules()[module].name == "__init__.py" else module.rsplit(".", 1)[0]
        package = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        base = f"{package}.{base}" if base else package
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def top_level_imports(tree: ast.Module) -> list[ast.AST]:
    nodes = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            nodes.append(node)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue  # type hints only
        elif isinstance(node, (ast.If, ast.Try)):
            nodes += [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
    return nodes


def deferred_libraries() -> dict[str, set[str]]:
    """For each workbench module, the DEFERRED libraries importing it loads (through its top-level imports)."""
    found = modules()
    trees = {name: ast.parse(path.read_text()) for name, path in found.items()}
    direct: dict[str, set[str]] = {}
    for name, tree in trees.items():
        names = {n for node in top_level_imports(tree) for n in imported(name, node)}
        parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        direct[name] = {n for n in names | parents if n in found and n != name} | {
            n.split(".")[0] for n in names if n.split(".")[0] in workbench.DEFERRED}
    loads: dict[str, set[str]] = {}

    def visit(name: str, seen: frozenset) -> set[str]:
        if name in loads:
            return loads[name]
        out = {n for n in direct[name] if n in workbench.DEFERRED}
        for n in direct[name] - out:
            if n not in seen:
                out |= visit(n, seen | {n})
        loads[name] = out
        return out

    for name in found:
        visit(name, frozenset({name}))
    return loads


# the one module whose import waits on purpose: the command's signal handlers go in before anything loads
LATE_BY_DESIGN = {"workbench.cli.launch"}


def test_imports_sit_at_the_top_but_for_the_deferred_libraries():
    loads = deferred_libraries()
    found = modules()
    wrong = []
    for name, path in found.items():
        tree = ast.parse(path.read_text())
        at_top = {id(n) for n in top_level_imports(tree)}
        guarded = {id(n) for node in tree.body if isinstance(node, ast.If) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in at_top | guarded:
                continue
            targets = [t for t in imported(name, node) if t in found or t.split(".")[0] in workbench.DEFERRED]
            pulls = set().union(*(loads.get(t, {t.split(".")[0]} & set(workbench.DEFERRED)) for t in targets))
            if not pulls - loads[name] and name not in LATE_BY_DESIGN:  # nothing deferred it does not already load
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert wrong == [], "imports that belong at the top of their file:\n" + "\n".join(wrong)


def test_the_check_catches_an_import_hidden_in_a_function(monkeypatch):
    """A light import inside a function (the kind that hid the old circle around the run record) is caught."""
    real = Path.read_text

    def with_a_hidden_import(self, *args, **kwargs):
        text = real(self, *args, **kwargs)
        if self.name == "notebook.py" and self.parent.name == "records":
            text += "\n\ndef hidden():\n    from workbench.records import store\n    return store\n"
        return text

    monkeypatch.setattr(Path, "read_text", with_a_hidden_import)
    with pytest.raises(AssertionError, match=r"records/notebook.py:\d+: from workbench.records import store"):
        test_imports_sit_at_the_top_but_for_the_deferred_libraries()


def test_nothing_outside_the_engine_reaches_past_its_public_entry():
    reaching = []
    for name, path in modules().items():
        if name.startswith("workbench.engine"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in imported(name, node):
                    if target.startswith("workbench.engine.") and target.removeprefix("workbench.engine.") in {
                            p.stem for p in (PACKAGE / "engine").glob("*.py")}:
                        reaching.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert reaching == []


def test_the_map_is_the_tree():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"^\| `([a-z_/]+\.py)` \|", text, flags=re.MULTILINE))
    tree = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
            if p.name != "__init__.py" or p.parent.name == "engine"}
    assert sorted(tree - named) == [], "modules the map does not name"
    assert sorted(named - tree) == [], "modules the map names that are not there"
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages <= set(re.findall(r"^### `([a-z_]+)/`", text, flags=re.MULTILINE))


def test_files_and_functions_stay_small_and_the_top_stays_short():
    top = [p.name for p in PACKAGE.glob("*.py")]
    assert len(top) <= 8, top
    long_files, long_functions = [], []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        if len(text.splitlines()) > 400:
            long_files.append(str(path.relative_to(ROOT)))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long_functions.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert long_files == [] and long_functions == []
