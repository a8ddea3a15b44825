"""The rendered manifests as objects: `kubectl kustomize` output read into workloads and
containers, each container with the environment and $(VAR)-expanded args the kubelet
would give it.

deploy.policy checks these objects, deploy.render drives rendering and every check,
and deploy.workflow reads the servers' settings from them to run an overlay locally.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S_DIR = ROOT / "deploy" / "k8s"
OVERLAYS = ("local", "gpu")

# Image repository -> console script that is its ENTRYPOINT (deploy/docker/Dockerfile.*).
IMAGE_ENTRYPOINTS = {
    "seedbench/model-server": "seedbench-model-server",
    "seedbench/clip-server": "seedbench-clip-server",
    "seedbench/evaluator": "seedbench",
}
SERVER_COMPONENTS = ("model-server", "clip-server")
COMPONENT_LABEL = "app.kubernetes.io/component"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


class RenderError(RuntimeError):
    """kustomize could not render an overlay (or kubectl is missing)."""


# ----------------------------------------------------------------------------- rendering

def kubectl() -> str | None:
    return shutil.which("kubectl")


def kustomize(directory: Path) -> str:
    exe = kubectl()
    if exe is None:
        raise RenderError("kubectl not found on PATH (needed for `kubectl kustomize`)")
    proc = subprocess.run([exe, "kustomize", str(directory)], capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0:
        raise RenderError(f"kubectl kustomize {directory} failed:\n{proc.stderr.strip()}")
    return proc.stdout


def render_overlay(k8s_dir: Path, overlay: str) -> str:
    path = k8s_dir / "overlays" / overlay
    if not (path / "kustomization.yaml").is_file():
        raise RenderError(f"no overlay {overlay!r} at {path}")
    return kustomize(path)


def load_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


# ----------------------------------------------------------------------------- reading objects

def where(doc: dict) -> str:
    """Kind/name, how every problem names its object."""
    return f"{doc.get('kind', '?')}/{(doc.get('metadata') or {}).get('name', '?')}"


def config_maps(docs: list[dict]) -> dict[str, dict[str, str]]:
    """{ConfigMap name: its data}."""
    return {d["metadata"]["name"]: dict(d.get("data") or {}) for d in docs
            if d.get("kind") == "ConfigMap"}


def expand(s: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion; $$ escapes; unknown references stay as written."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), s)


def container_env(container: dict, configmaps: dict[str, dict[str, str]]) -> dict[str, str]:
    """The container's environment as the kubelet builds it (envFrom, then env)."""
    env: dict[str, str] = {}
    for src in container.get("envFrom") or []:
        ref = (src.get("configMapRef") or {}).get("name")
        if ref in configmaps:
            env.update({f"{src.get('prefix', '')}{k}": v for k, v in configmaps[ref].items()})
    for e in container.get("env") or []:
        if "value" in e:
            env[e["name"]] = expand(str(e["value"]), env)
        elif (ref := ((e.get("valueFrom") or {}).get("configMapKeyRef"))) is not None:
            env[e["name"]] = configmaps.get(ref.get("name"), {}).get(ref.get("key"), "")
    return env


def image_repo_tag(image: str) -> tuple[str, str | None]:
    if "@" in image:
        return image.split("@", 1)[0], "@digest"
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = image.rsplit(":", 1)
        return repo, tag
    return image, None


def project_image(repo: str) -> str | None:
    """seedbench/model-server for registry.example.com/team/seedbench/model-server too."""
    for known in IMAGE_ENTRYPOINTS:
        if repo == known or repo.endswith("/" + known):
            return known
    return None


@dataclass
class Container:
    """A container spec with the environment the kubelet builds for it."""

    spec: dict
    env: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def image(self) -> str:
        return self.spec.get("image", "")

    @property
    def args(self) -> list[str]:
        """The args, $(VAR)-expanded."""
        return [expand(str(a), self.env) for a in self.spec.get("args") or []]

    @property
    def raw_args(self) -> list[str]:
        return [str(a) for a in self.spec.get("args") or []]

    @property
    def ports(self) -> set[int]:
        return {p["containerPort"] for p in self.spec.get("ports") or []}

    def program(self) -> tuple[str | None, list[str]]:
        """(console script, its argv) when it runs one of the project's images, else (None, [])."""
        known = project_image(image_repo_tag(self.image)[0])
        if known is None:
            return None, []
        command = [expand(str(a), self.env) for a in self.spec.get("command") or []]
        script = command[0] if command else IMAGE_ENTRYPOINTS[known]
        return script, command[1:] + self.args


@dataclass
class Workload:
    """A Deployment, StatefulSet, DaemonSet or Job, and the ConfigMaps its containers read."""

    doc: dict
    configmaps: dict[str, dict[str, str]]

    @property
    def kind(self) -> str:
        return self.doc["kind"]

    @property
    def pod(self) -> dict:
        return ((self.doc.get("spec") or {}).get("template") or {}).get("spec") or {}

    @property
    def labels(self) -> dict:
        """The pod template's labels (what Services and policies select)."""
        return ((self.doc["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}

    @property
    def component(self) -> str | None:
        return self.labels.get(COMPONENT_LABEL)

    def containers(self, init: bool = True) -> list[Container]:
        """The main containers, then (init) the init containers."""
        return self._read("containers") + (self.init_containers() if init else [])

    def init_containers(self) -> list[Container]:
        return self._read("initContainers")

    def _read(self, key: str) -> list[Container]:
        return [Container(c, container_env(c, self.configmaps)) for c in self.pod.get(key) or []]


def workloads(docs: list[dict]) -> list[Workload]:
    configmaps = config_maps(docs)
    return [Workload(d, configmaps) for d in docs if d.get("kind") in WORKLOAD_KINDS]
