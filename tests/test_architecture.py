"""The package's shape: imports run one way, modules stay small, every command declares its
inputs and outputs, and the code versions of the rules see every module a command imports."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ferxai.cli import COMMANDS, _entry
from ferxai.core.code_version import (
    all_modules,
    closure,
    code_version,
    direct_imports,
    find_cycle,
    import_graph,
    module_path,
)

MAX_LINES = 600
MAX_TOP_LEVEL_MODULES = 10
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "src" / "ferxai"
RULES_DIR = Path(__file__).resolve().parents[1] / "workflow" / "rules"
# The study's stages in the order data flows through them: a stage imports the base (core), the
# root package (for __version__) and earlier stages, never a later one.
STAGES = (
    "data",
    "networks",
    "attribution",
    "normalization",
    "heatmaps",
    "comparison",
    "sanity",
    "quality",
    "report",
)
# Above every stage: the command-line entry and the Python API. Inside the base, the configuration's
# validation asks the stages which networks and dataset formats exist.
ENTRY_POINTS = {"ferxai", "ferxai.cli"}
BASE_MAY_IMPORT = {"ferxai.core.config": {"data", "networks"}}


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def test_at_most_ten_modules_at_the_top():
    top = sorted(p.name for p in PACKAGE_DIR.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, f"{len(top)} modules under src/ferxai/: {top}"


def test_one_package_per_rule_file():
    rule_files = {p.stem for p in RULES_DIR.glob("*.smk")} - {"common"}
    packages = {
        p.name for p in PACKAGE_DIR.iterdir() if (p / "__init__.py").is_file()
    } - {"core"}
    assert rule_files == packages, (
        f"rule files without a package: {sorted(rule_files - packages)}; "
        f"packages without a rule file: {sorted(packages - rule_files)}"
    )
    assert packages <= set(STAGES), f"stages missing from STAGES: {sorted(packages - set(STAGES))}"


def test_stages_import_only_the_base_and_earlier_stages():
    wrong = []
    for module, imported in import_graph().items():
        if module in ENTRY_POINTS:
            continue
        stage = _stage(module)
        for target in imported:
            to = _stage(target)
            if to is None:
                if target in ENTRY_POINTS - {"ferxai"}:
                    wrong.append(f"{module} → {target} (the entry point)")
                continue
            if stage is None:  # the base
                if to not in BASE_MAY_IMPORT.get(module, set()):
                    wrong.append(f"{module} → {target} (base importing a stage)")
            elif STAGES.index(to) > STAGES.index(stage):
                wrong.append(f"{module} → {target} (a later stage)")
    assert not wrong, "imports against the stage order:\n" + "\n".join(sorted(wrong))


def test_import_ferxai_is_light():
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import ferxai, sys; print('torch' in sys.modules)"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    assert out.stdout.strip() == "False", "import ferxai imported torch"
    total_us = max(
        int(line.split("|")[1]) for line in out.stderr.splitlines()
        if line.startswith("import time:") and line.rstrip().endswith(" ferxai")
    )
    assert total_us < 300_000, f"import ferxai took {total_us / 1e6:.2f} s"


def test_the_api_names_resolve_lazily():
    import ferxai

    for name in ferxai._API:
        value = getattr(ferxai, name)
        assert callable(value) or name.isupper(), name
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        ferxai.nothing  # noqa: B018


def test_imports_run_one_way():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_find_cycle_finds_one():
    graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": frozenset({"b"}), "b": frozenset()}) is None


@pytest.mark.parametrize("module", all_modules())
def test_no_module_is_too_long(module):
    lines = len(module_path(module).read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module}: {lines} lines; split it by responsibility"


def test_graph_sees_imports_inside_functions_and_registries():
    # cli_sanity's figure functions and the explainers are imported inside functions or by name
    assert "ferxai.core.plots" in direct_imports("ferxai.sanity.check")
    assert "ferxai.attribution.lime" in direct_imports("ferxai.attribution")
    assert "ferxai.networks.pretrained" in direct_imports("ferxai.networks")
    # the logger name "ferxai.attribution" in a submodule is not an import of the package
    assert "ferxai.attribution" not in direct_imports("ferxai.attribution.common")
    assert {"ferxai", "ferxai.comparison", "ferxai.heatmaps.heatmap"} <= set(
        closure("ferxai.comparison.compare")
    )


def test_code_version_follows_the_source(tmp_path, monkeypatch):

    before = code_version("ferxai.comparison.tables")
    assert before == code_version("ferxai.comparison.tables")  # deterministic
    assert before != code_version("ferxai.comparison.cluster")


_RUNTIME_IMPORTS = """
import json, sys, importlib
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules if m == "ferxai" or m.startswith("ferxai."))))
"""


@pytest.mark.parametrize(
    "module", ["ferxai.cli", "ferxai.sanity.check", "ferxai.networks.training", "ferxai.normalization.normalize"]
)
def test_static_graph_covers_what_python_imports(module):
    """What importing a module loads at run time is inside its static closure (the closure may be
    larger: imports inside functions are there before they run)."""
    out = subprocess.run(
        [sys.executable, "-c", _RUNTIME_IMPORTS, module], capture_output=True, text=True,
        check=True, timeout=120,
    )
    loaded = set(json.loads(out.stdout))
    assert loaded <= set(closure(module)), sorted(loaded - set(closure(module)))


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_declares_its_inputs_and_outputs(command):
    add_args, _ = _entry(command)
    parser = argparse.ArgumentParser()
    add_args(parser)
    dests = {action.dest for action in parser._actions}
    inputs = parser.get_default("provenance_inputs")
    outputs = parser.get_default("provenance_outputs")
    assert inputs is not None and outputs is not None, f"{command}: no provenance declaration"
    for flag in (*inputs, *outputs):
        assert callable(flag) or flag in dests, f"{command}: declares unknown flag {flag!r}"


def test_no_formatter_markers():
    """No formatter runs in `make lint`, so nothing may ask one to skip a line (the markers were
    dropped rather than adopting a formatter's output wholesale)."""
    root = PACKAGE_DIR.parents[1]
    marker = "fmt: " + "skip"
    marked = [
        str(path.relative_to(root))
        for folder in ("src", "tests", "bench")
        for path in (root / folder).rglob("*.py")
        if marker in path.read_text(encoding="utf-8")
    ]
    assert not marked, f"formatter markers in {marked}"
