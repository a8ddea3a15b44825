"""Dockerfiles: entry points are this project's console scripts; the evaluator image has no torch."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from deploy.policy import console_scripts

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "deploy" / "docker"
IMAGES = {"model-server": "seedbench-model-server", "clip-server": "seedbench-clip-server",
          "evaluator": "seedbench"}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for line in path.read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        buf += line.rstrip("\\").strip() + " " if line.rstrip().endswith("\\") else line.strip()
        if not line.rstrip().endswith("\\"):
            word, _, rest = buf.partition(" ")
            out.append((word.upper(), rest.strip()))
            buf = ""
    return out


@pytest.mark.parametrize("image,script", sorted(IMAGES.items()))
def test_entrypoint_is_a_console_script(image, script):
    ins = instructions(DOCKER / f"Dockerfile.{image}")
    entry = [json.loads(a) for k, a in ins if k == "ENTRYPOINT"]
    assert len(entry) == 1, "exactly one ENTRYPOINT, in exec (JSON) form"
    assert entry[0] == [script]
    assert script in console_scripts()
    cmd = [json.loads(a) for k, a in ins if k == "CMD"]
    assert len(cmd) == 1 and isinstance(cmd[0], list)


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_base_image_is_pinned_and_runs_unprivileged(image):
    ins = instructions(DOCKER / f"Dockerfile.{image}")
    for k, a in ins:
        if k == "FROM":
            ref = a.split()[0]
            assert ":" in ref and not ref.endswith(":latest"), ref
    users = [a for k, a in ins if k == "USER"]
    assert users and users[-1] not in ("root", "0")
    ignore = DOCKER / f"Dockerfile.{image}.dockerignore"
    lines = ignore.read_text().splitlines()
    assert "**" in lines, "the ignore file starts from nothing and lists what is sent"
    assert not any(".venv" in ln and ln.startswith("!") for ln in lines)


@pytest.mark.parametrize("image,extra", [("model-server", "server"), ("clip-server", "clip")])
def test_server_images_install_pinned_torch_and_server_extra(image, extra):
    runs = " ".join(a for k, a in instructions(DOCKER / f"Dockerfile.{image}") if k == "RUN")
    assert "torch==2.14.1" in runs and "torchvision==0.29.1" in runs
    assert re.search(rf"\.\[{extra}\]", runs)
    assert "ENV" in {k for k, _ in instructions(DOCKER / f"Dockerfile.{image}")}
    assert "HF_HUB_OFFLINE=1" in (DOCKER / f"Dockerfile.{image}").read_text()


def test_evaluator_image_has_no_torch_or_server_extra():
    text = (DOCKER / "Dockerfile.evaluator").read_text()
    runs = " ".join(a for k, a in instructions(DOCKER / "Dockerfile.evaluator") if k == "RUN")
    assert "pip install" in runs
    assert "[server" not in runs and "torch" not in runs.lower()
    assert "nvidia" not in text.lower()


# What each image ships: its own package, the shared serving core and the protos; nothing else.
SHIPS = {"model-server": {"protos", "serving", "model_server"},
         "clip-server": {"protos", "serving", "clip_server"},
         "evaluator": {"protos", "serving", "evaluator"}}


@pytest.mark.parametrize("image", sorted(SHIPS))
def test_image_ships_only_its_own_packages(image):
    copied = {a.split()[0].rstrip("/") for k, a in instructions(DOCKER / f"Dockerfile.{image}")
              if k == "COPY" and a.split()[0].endswith("/")}
    assert copied == SHIPS[image]
    sent = {ln[1:].rstrip("/") for ln in (DOCKER / f"Dockerfile.{image}.dockerignore").read_text()
            .splitlines() if ln.startswith("!") and ln.endswith("/")}
    assert sent == SHIPS[image]


def test_clip_image_installs_no_transformers():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runs = " ".join(a for k, a in instructions(DOCKER / "Dockerfile.clip-server") if k == "RUN")
    extras = re.findall(r"\.\[([\w,]+)\]", runs)
    assert extras == ["clip"]
    wanted = project["dependencies"] + project["optional-dependencies"]["clip"]
    assert not any(dep.lower().startswith("transformers") for dep in wanted)
    assert any(dep.startswith("open_clip_torch") for dep in wanted)
