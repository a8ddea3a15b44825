"""The project's own rules for the rendered manifests (deploy.manifests objects).

gRPC probes on the container port, headless Services, evaluator targets that name
a real Service and port, server/evaluator args that the programs' own parsers
accept, pinned images, a termination grace period longer than the drain, requests
and limits on every container, hardened containers (non-root, read-only root
filesystem, no privilege escalation, all capabilities dropped), and per model
server a PodDisruptionBudget, a HorizontalPodAutoscaler and a NetworkPolicy.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass

from deploy.manifests import (
    ROOT,
    SERVER_COMPONENTS,
    Container,
    Workload,
    image_repo_tag,
    project_image,
    where,
    workloads,
)
from serving.shutdown import DRAIN_GRACE_S


@dataclass(frozen=True)
class Problem:
    check: str  # yamllint | schema | project
    where: str  # Kind/name or file:line
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.where}: {self.message}"


# ----------------------------------------------------------------------------- the programs' args

def console_scripts() -> dict[str, str]:
    """[project.scripts] of pyproject.toml: console script -> module:function."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: the installed distribution's entry points
        from importlib.metadata import entry_points

        return {e.name: e.value for e in entry_points(group="console_scripts")
                if e.value.split(".", 1)[0] in ("evaluator", "model_server", "clip_server")}
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return dict(data["project"]["scripts"])


def _parser_for(script: str) -> Callable[[], argparse.ArgumentParser] | None:
    target = console_scripts().get(script)
    if target is None:
        return None
    module = target.split(":", 1)[0]
    mod = __import__(module, fromlist=["build_parser"])
    return getattr(mod, "build_parser", None)


def parse_args_problem(script: str, argv: list[str]) -> str | None:
    """None if `script argv` parses with the program's own argparse parser (every flag and,
    for the servers, the backend settings checked as the program itself checks them)."""
    try:
        build = _parser_for(script)
    except ImportError as exc:
        return f"cannot import the parser of {script}: {exc}"
    if build is None:
        return f"{script} is not a console script of this project"
    buf = io.StringIO()
    try:
        with contextlib.redirect_stderr(buf), contextlib.redirect_stdout(io.StringIO()):
            build().parse_args(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):
            msg = buf.getvalue().strip().splitlines()
            return f"{script} rejects its args: {msg[-1] if msg else exc}"
    return None


# ----------------------------------------------------------------------------- one container

def _probe_problems(c: Container) -> list[str]:
    out = []
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = c.spec.get(kind)
        if probe is None:
            if kind != "startupProbe":
                out.append(f"container {c.name}: no {kind}")
            continue
        grpc = probe.get("grpc")
        if grpc is None:
            out.append(f"container {c.name}: {kind} is not a grpc probe")
        elif grpc.get("port") not in c.ports:
            out.append(f"container {c.name}: {kind} grpc port {grpc.get('port')} "
                       f"is not a container port {sorted(c.ports)}")
    return out


def _grace_problem(pod: dict, c: Container) -> str | None:
    values = _flag_values(c.args, "--grace-s", split=False)
    try:
        grace_s = float(values[-1]) if values else DRAIN_GRACE_S
    except ValueError:  # the args check names the bad value
        return None
    pre_stop = (((c.spec.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {})
    need = grace_s + float(pre_stop.get("seconds", 0))
    period = pod.get("terminationGracePeriodSeconds", 30)  # the Kubernetes default
    if period <= need:
        return (f"terminationGracePeriodSeconds {period} must exceed preStop sleep + "
                f"--grace-s ({need:g}s), or draining is cut short by SIGKILL")
    return None


def _hardening_problems(pod: dict, c: Container) -> list[str]:
    """Requests + limits (cpu, memory) and a locked-down security context."""
    out = []
    res = c.spec.get("resources") or {}
    for kind in ("requests", "limits"):
        missing = [r for r in ("cpu", "memory") if r not in (res.get(kind) or {})]
        if missing:
            out.append(f"container {c.name}: no {kind} for {', '.join(missing)}")
    sc, pod_sc = c.spec.get("securityContext") or {}, pod.get("securityContext") or {}
    if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")) \
            or 0 in (sc.get("runAsUser"), pod_sc.get("runAsUser")):
        out.append(f"container {c.name}: must run as non-root (runAsNonRoot: true)")
    if sc.get("allowPrivilegeEscalation") is not False:
        out.append(f"container {c.name}: allowPrivilegeEscalation must be false")
    if sc.get("readOnlyRootFilesystem") is not True:
        out.append(f"container {c.name}: readOnlyRootFilesystem must be true")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        out.append(f"container {c.name}: capabilities must drop ALL")
    return out


def _container_problems(w: Workload, c: Container) -> list[str]:
    """Every container, init containers too: hardened, a pinned image, args its program takes."""
    out = _hardening_problems(w.pod, c)
    tag = image_repo_tag(c.image)[1]
    if tag is None or tag == "latest":
        out.append(f"container {c.name}: image {c.image!r} needs a pinned tag, not latest")
    script, argv = c.program()
    if script and (msg := parse_args_problem(script, argv)):
        out.append(f"container {c.name}: {msg}")
    return out


def _serving_problems(w: Workload, c: Container) -> list[str]:
    """A Deployment's main containers: ports, gRPC probes, the drain fits the grace period;
    a server reads /models read-only and never downloads."""
    if not c.ports:
        return [f"container {c.name}: no containerPort"]
    out = _probe_problems(c)
    if msg := _grace_problem(w.pod, c):
        out.append(msg)
    if w.component in SERVER_COMPONENTS:
        if c.env.get("HF_HUB_OFFLINE") != "1":
            out.append(f"container {c.name}: HF_HUB_OFFLINE=1 is not set")
        for m in c.spec.get("volumeMounts") or []:
            if m.get("mountPath") == "/models" and not m.get("readOnly"):
                out.append(f"container {c.name}: /models must be mounted readOnly")
    return out


# ----------------------------------------------------------------------------- Services and targets

def _parse_target(target: str) -> tuple[str, int] | None:
    """dns:///name:port, dns:///name.ns.svc.cluster.local:port or name:port -> (name, port)."""
    m = re.fullmatch(r"(?:dns:(?://[^/]*)?/)?([A-Za-z0-9.-]+):(\d+)", target.strip())
    if not m:
        return None
    return m.group(1).split(".", 1)[0], int(m.group(2))


def _flag_values(args: list[str], flag: str, split: bool = True) -> list[str]:
    """Every value given to `flag` (--flag=V or --flag V); split: comma lists as items."""
    out = []
    for i, a in enumerate(args):
        if a.startswith(flag + "="):
            out.append(a.split("=", 1)[1])
        elif a == flag and i + 1 < len(args):
            out.append(args[i + 1])
    if not split:
        return out
    return [t for v in out for t in v.split(",") if t.strip()]


def _service_problems(svc: dict, deployments: list[Workload]) -> tuple[list[str], str | None]:
    """(problems, the component of the pods it fronts): headless, selecting a workload, on a
    port the pods expose."""
    out = []
    spec = svc.get("spec") or {}
    selector = spec.get("selector") or {}
    backing = [w for w in deployments
               if selector and all(w.labels.get(k) == v for k, v in selector.items())]
    if not backing:
        out.append(f"selector {selector} matches no Deployment's pods")
    component = backing[0].component if backing else None
    if component in SERVER_COMPONENTS and spec.get("clusterIP") != "None":
        out.append("gRPC server Service must be headless (clusterIP: None) so dns:/// "
                   "targets with round_robin reach every replica")
    pod_ports = {}
    for w in backing:
        for c in w.containers(init=False):
            for p in c.spec.get("ports") or []:
                pod_ports[p["containerPort"]] = p
                if "name" in p:
                    pod_ports[p["name"]] = p
    for p in spec.get("ports") or []:
        tp = p.get("targetPort", p.get("port"))
        if backing and tp not in pod_ports:
            out.append(f"port {p.get('port')}: targetPort {tp!r} is not a container port")
    return out, component


def _target_problems(args: list[str], services: dict[str, tuple[dict, str | None]]) -> list[str]:
    """Evaluator targets: --model names model-server Services, --clip the clip-server's."""
    out = []
    for flag, component in (("--model", "model-server"), ("--clip", "clip-server")):
        for target in _flag_values(args, flag):
            parsed = _parse_target(target)
            if parsed is None:
                out.append(f"{flag} {target!r} is not NAME:PORT or dns:///NAME:PORT")
                continue
            name, port = parsed
            if name not in services:
                out.append(f"{flag} {target!r}: no Service named {name!r} "
                           f"(Services: {', '.join(sorted(services)) or 'none'})")
                continue
            svc, comp = services[name]
            svc_ports = [p.get("port") for p in svc["spec"].get("ports") or []]
            if port not in svc_ports:
                out.append(f"{flag} {target!r}: Service {name} has ports {svc_ports}, not {port}")
            if comp != component:
                out.append(f"{flag} {target!r}: Service {name} fronts {comp!r} pods, "
                           f"expected {component!r}")
            if not target.startswith("dns:"):
                out.append(f"{flag} {target!r}: use dns:///{name}:{port} so the client "
                           "resolves every replica of the headless Service")
    return out


# ----------------------------------------------------------------------------- every rule

def project_problems(docs: list[dict]) -> list[Problem]:
    out: list[Problem] = []

    def add(doc: dict, messages: list[str]) -> None:
        out.extend(Problem("project", where(doc), m) for m in messages)

    loads = workloads(docs)
    deployments = [w for w in loads if w.kind == "Deployment"]
    for w in loads:
        for c in w.containers():
            add(w.doc, _container_problems(w, c))
        if w.kind == "Deployment":
            for c in w.containers(init=False):
                add(w.doc, _serving_problems(w, c))

    services: dict[str, tuple[dict, str | None]] = {}
    for svc in (d for d in docs if d.get("kind") == "Service"):
        problems, component = _service_problems(svc, deployments)
        add(svc, problems)
        services[svc["metadata"]["name"]] = (svc, component)

    for w in loads:
        for c in w.containers(init=False):
            if project_image(image_repo_tag(c.image)[0]) == "seedbench/evaluator":
                add(w.doc, _target_problems(c.raw_args, services))
    return out + companion_problems(docs)


def _selects(selector: dict, labels: dict) -> bool:
    match = selector.get("matchLabels") or {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def companion_problems(docs: list[dict]) -> list[Problem]:
    """Each model-server Deployment has a PDB, an HPA and a NetworkPolicy of its own."""
    out = []
    for w in workloads(docs):
        if w.kind != "Deployment" or w.component != "model-server":
            continue
        name, labels = w.doc["metadata"]["name"], w.labels
        if not any(d.get("kind") == "PodDisruptionBudget"
                   and _selects(d["spec"].get("selector") or {}, labels) for d in docs):
            out.append(Problem("project", where(w.doc), "no PodDisruptionBudget selects its pods"))
        if not any(d.get("kind") == "HorizontalPodAutoscaler"
                   and (d["spec"].get("scaleTargetRef") or {}).get("name") == name for d in docs):
            out.append(Problem("project", where(w.doc), "no HorizontalPodAutoscaler scales it"))
        if not any(d.get("kind") == "NetworkPolicy"
                   and _selects(d["spec"].get("podSelector") or {}, labels) for d in docs):
            out.append(Problem("project", where(w.doc), "no NetworkPolicy selects its pods"))
    return out
