"""Import rules between the packages, checked in fresh interpreters.

clip_server stands on serving and protos alone (its image ships nothing else); the
model server may import the evaluator's torch-free data and preset modules only;
the evaluator installs without the server extras, so it may import neither
server package nor torch; the shared serving core is torch-free.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import pytest

from serving.processes import ROOT, child_env

# Every module of the package is imported, one after another; after each, any
# forbidden module (or one below it) that has appeared is charged to that module.
PROBE = """
import importlib, json, pkgutil, sys
package, forbidden = sys.argv[1], set(sys.argv[2].split(","))
pkg = importlib.import_module(package)
names = [package] + sorted(m.name for m in pkgutil.walk_packages(pkg.__path__, package + "."))
found = {}
for name in names:
    importlib.import_module(name)
    for bad in sorted(forbidden):
        if any(m == bad or m.startswith(bad + ".") for m in sys.modules):
            found.setdefault(bad, name)
print(json.dumps({"modules": names, "found": found}))
"""

# The server extras: what an evaluator-only install lacks. (grpc itself imports the
# empty top-level grpc_reflection package when it is installed, so its service is named.)
SERVER_EXTRAS = ["torch", "torchvision", "transformers", "open_clip", "openai", "prometheus_client",
                 "grpc_reflection.v1alpha"]
# The model server may use the evaluator's torch-free data and preset modules (its parity
# check builds Score requests exactly as a run does, from the evaluator's own presets), never
# the evaluator's client, runner, store or reports; its Docker image copies evaluator/ for that.
MODEL_SERVER_MAY_NOT = ["clip_server", "evaluator.cli", "evaluator.demo", "evaluator.run.client",
                        "evaluator.run.runner", "evaluator.run.plan", "evaluator.run.handlers",
                        "evaluator.results", "evaluator.reports"]
RULES = {
    "clip_server": ["model_server", "evaluator"],
    "model_server": MODEL_SERVER_MAY_NOT,
    "evaluator": ["model_server", "clip_server", *SERVER_EXTRAS],
    "serving": ["torch", "model_server", "clip_server", "evaluator"],
}
# Modules each package must have, so an empty walk cannot pass.
EXPECTED = {
    "clip_server": {"clip_server.cli", "clip_server.servicer", "clip_server.embedder"},
    "evaluator": {"evaluator.cli", "evaluator.run.client", "evaluator.demo", "evaluator.run.runner"},
    "model_server": {"model_server.cli", "model_server.parity", "model_server.servicer"},
    "serving": {"serving.lifecycle", "serving.errors", "serving.batching", "serving.images",
                "serving.processes"},
}


# Also looked for in every probe, for the probe's own check below (one import walk per
# package serves both).
KNOWN_PRESENT = {"model_server": ["torch"]}


@functools.cache
def probe(package: str) -> dict:
    forbidden = RULES[package] + KNOWN_PRESENT.get(package, [])
    r = subprocess.run([sys.executable, "-c", PROBE, package, ",".join(forbidden)], env=child_env(),
                       cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_imports_none_of_its_forbidden_packages(package):
    result = probe(package)
    assert EXPECTED[package] <= set(result["modules"])
    found = {bad: first for bad, first in result["found"].items() if bad in RULES[package]}
    assert found == {}, f"{package}: forbidden import (package: first module) {found}"


def test_the_evaluator_light_serving_modules_need_no_server_extra():
    """What the evaluator and the process toolkit use imports without grpc_reflection or torch."""
    code = ("import sys, serving.processes, serving.images, serving.errors, serving.batching\n"
            "print(sorted(b for b in sys.argv[1].split(',')\n"
            "             if any(m == b or m.startswith(b + '.') for m in sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code, ",".join(SERVER_EXTRAS)], env=child_env(), cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "[]"


def test_probe_sees_a_forbidden_import():
    """The probe itself: model_server's torch backends do show up as torch."""
    result = probe("model_server")
    assert "torch" in result["found"]


# --------------------------------------------------------------------------- evaluator layers
# The evaluator's sub-packages, bottom to top: a module may import its own package and the
# packages below it, never above. Reports draw results; they never reach into the run.
LAYERS = ["evaluator.data", "evaluator.results", "evaluator.run", "evaluator.reports"]
NOT_BELOW = {"evaluator.reports": {"evaluator.run"}}


def evaluator_imports() -> dict[str, set[str]]:
    """module -> the evaluator modules it imports (anywhere in the file, TYPE_CHECKING too)."""
    import ast

    modules = {}
    for path in sorted((ROOT / "evaluator").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                           else node.module for a in node.names]
            else:
                continue
            for t in targets:
                # the longest known module the name lies in (`from evaluator.run import plan`)
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name and t.startswith("evaluator"):
                    found.add(t)
        graph[name] = found
    return graph


def layer_of(module: str) -> int:
    for i, prefix in enumerate(LAYERS):
        if module == prefix or module.startswith(prefix + "."):
            return i
    return len(LAYERS)  # the top: the package itself, api, cli, demo


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for mod, targets in graph.items():
        for t in targets:
            if t == "evaluator" and layer_of(mod) < len(LAYERS):
                out.append(f"{mod} imports the top-level package (its public API) from below")
            elif t != "evaluator" and layer_of(t) > layer_of(mod):
                out.append(f"{mod} imports {t}, a layer above it")
            elif layer_of(mod) < len(LAYERS) and any(
                    t.startswith(p) for p in NOT_BELOW.get(LAYERS[layer_of(mod)], ())):
                out.append(f"{mod} imports {t}, which its layer must not use")
    return sorted(out)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_evaluator_layers_hold_and_nothing_imports_in_a_cycle():
    graph = evaluator_imports()
    assert {"evaluator.data.dataset", "evaluator.results.store", "evaluator.run.plan",
            "evaluator.reports.html"} <= set(graph)
    assert layer_violations(graph) == []
    assert cycles(graph) == []


def test_the_layer_and_cycle_checks_see_a_planted_violation():
    graph = evaluator_imports()
    planted = {k: set(v) for k, v in graph.items()}
    planted["evaluator.data.dataset"].add("evaluator.run.plan")  # upward, and a cycle through plan
    planted["evaluator.reports.html"].add("evaluator.run.client")  # reports reaching into the run
    assert "evaluator.data.dataset imports evaluator.run.plan, a layer above it" in layer_violations(planted)
    assert any("evaluator.run.client" in v for v in layer_violations(planted))
    assert any({"evaluator.data.dataset", "evaluator.run.plan"} <= set(c) for c in cycles(planted))


def test_the_evaluator_top_level_stays_small():
    """At most about a dozen modules beside the sub-packages."""
    top = [p for p in (ROOT / "evaluator").glob("*.py")]
    assert len(top) <= 12, sorted(p.name for p in top)
