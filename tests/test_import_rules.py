"""Import rules between the packages, checked in fresh interpreters.

clip_server stands on serving and protos alone (its image ships nothing else);
the evaluator installs without the server extras, so it may import neither
server package nor torch; the shared serving core is torch-free.
"""

from __future__ import annotations

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
RULES = {
    "clip_server": ["model_server", "evaluator"],
    "evaluator": ["model_server", "clip_server", *SERVER_EXTRAS],
    "serving": ["torch", "model_server", "clip_server", "evaluator"],
}
# Modules each package must have, so an empty walk cannot pass.
EXPECTED = {
    "clip_server": {"clip_server.cli", "clip_server.servicer", "clip_server.embedder"},
    "evaluator": {"evaluator.cli", "evaluator.run.client", "evaluator.demo", "evaluator.run.runner"},
    "serving": {"serving.lifecycle", "serving.errors", "serving.batching", "serving.images",
                "serving.processes"},
}


def probe(package: str, forbidden: list[str]) -> dict:
    r = subprocess.run([sys.executable, "-c", PROBE, package, ",".join(forbidden)], env=child_env(),
                       cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_imports_none_of_its_forbidden_packages(package):
    result = probe(package, RULES[package])
    assert EXPECTED[package] <= set(result["modules"])
    assert result["found"] == {}, f"{package}: forbidden import (package: first module) {result['found']}"


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
    result = probe("model_server", ["torch"])
    assert "torch" in result["found"]
