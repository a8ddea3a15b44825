"""Render the kustomize overlays and validate what they produce.

    python -m deploy.render [--overlay local|gpu|all] [--out DIR] [--k8s-dir DIR]

For each overlay: `kubectl kustomize deploy/k8s/overlays/<overlay>`, written to
deploy/rendered/<overlay>.yaml (or --out), then checked three ways:

1. yamllint (relaxed) on the rendered text and on the kustomize sources;
2. kubernetes-validate --strict against the bundled schemas of K8S_VERSION
   (offline: the schemas ship inside the package);
3. the project's own rules (see `project_problems`): gRPC probes on the container
   port, headless Services, evaluator targets that name a real Service and port,
   server/evaluator args that the programs' own parsers accept, pinned images,
   a termination grace period longer than the drain, requests and limits on
   every container, hardened containers (non-root, read-only root filesystem,
   no privilege escalation, all capabilities dropped), and per model server a
   PodDisruptionBudget, a HorizontalPodAutoscaler and a NetworkPolicy.

Every problem is printed as `<overlay>: <Kind>/<name>: <message>`; the exit
status is 1 when any check fails, 2 when rendering itself fails.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S_DIR = ROOT / "deploy" / "k8s"
RENDERED = ROOT / "deploy" / "rendered"
OVERLAYS = ("local", "gpu")
# Schemas bundled with kubernetes-validate; 1.32 matches the kubectl used here
# and is the first release where every field used (preStop sleep, gRPC probes) is on by default.
K8S_VERSION = "1.32.0"
YAMLLINT_CONFIG = "extends: relaxed"

# Image repository -> console script that is its ENTRYPOINT (deploy/docker/Dockerfile.*).
IMAGE_ENTRYPOINTS = {
    "seedbench/model-server": "seedbench-model-server",
    "seedbench/clip-server": "seedbench-clip-server",
    "seedbench/evaluator": "seedbench",
}
SERVER_COMPONENTS = ("model-server", "clip-server")
COMPONENT_LABEL = "app.kubernetes.io/component"


class RenderError(RuntimeError):
    """kustomize could not render an overlay (or kubectl is missing)."""


@dataclass(frozen=True)
class Problem:
    check: str  # yamllint | schema | project
    where: str  # Kind/name or file:line
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.where}: {self.message}"


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


def load_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


# ----------------------------------------------------------------------------- yamllint

def lint_problems(text: str, where: str) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) from yamllint's relaxed config."""
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    conf = YamlLintConfig(YAMLLINT_CONFIG)
    errors, warnings = [], []
    for p in linter.run(text, conf):
        item = Problem("yamllint", f"{where}:{p.line}:{p.column}", f"{p.desc} ({p.rule})")
        (errors if p.level == "error" else warnings).append(item)
    return errors, warnings


def source_yaml_files(k8s_dir: Path) -> list[Path]:
    return sorted(p for p in k8s_dir.rglob("*") if p.suffix in (".yaml", ".yml"))


# ----------------------------------------------------------------------------- schema

def where(doc: dict) -> str:
    return f"{doc.get('kind', '?')}/{(doc.get('metadata') or {}).get('name', '?')}"


def schema_problems(docs: Iterable[dict], version: str = K8S_VERSION) -> list[Problem]:
    import kubernetes_validate

    out = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            # kubernetes_validate.ValidationError is a jsonschema.ValidationError.
            path = ".".join(str(p) for p in exc.absolute_path) or "(root)"
            out.append(Problem("schema", where(doc), f"{path}: {exc.message} (k8s {exc.version})"))
        except kubernetes_validate.SchemaNotFoundError as exc:
            out.append(Problem("schema", where(doc), exc.message))
    return out


# ----------------------------------------------------------------------------- project rules

def _pod_spec(doc: dict) -> dict | None:
    if doc.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
    return None


def _containers(pod: dict, init: bool = True) -> list[dict]:
    init_containers = list(pod.get("initContainers") or []) if init else []
    return list(pod.get("containers") or []) + init_containers


def _config_data(docs: list[dict]) -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: dict(d.get("data") or {}) for d in docs
            if d.get("kind") == "ConfigMap"}


def container_env(container: dict, configmaps: dict[str, dict[str, str]]) -> dict[str, str]:
    """The container's environment as the kubelet builds it (envFrom, then env)."""
    env: dict[str, str] = {}
    for src in container.get("envFrom") or []:
        ref = (src.get("configMapRef") or {}).get("name")
        if ref in configmaps:
            env.update({f"{src.get('prefix', '')}{k}": v for k, v in configmaps[ref].items()})
    for e in container.get("env") or []:
        if "value" in e:
            env[e["name"]] = _expand(str(e["value"]), env)
        elif (ref := ((e.get("valueFrom") or {}).get("configMapKeyRef"))) is not None:
            env[e["name"]] = configmaps.get(ref.get("name"), {}).get(ref.get("key"), "")
    return env


def _expand(s: str, env: dict[str, str]) -> str:
    # Kubernetes $(VAR) expansion; $$ escapes; unknown references stay as written.
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), s)


def image_repo_tag(image: str) -> tuple[str, str | None]:
    if "@" in image:
        return image.split("@", 1)[0], "@digest"
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = image.rsplit(":", 1)
        return repo, tag
    return image, None


def _entry_repo(repo: str) -> str | None:
    """seedbench/model-server for registry.example.com/team/seedbench/model-server too."""
    for known in IMAGE_ENTRYPOINTS:
        if repo == known or repo.endswith("/" + known):
            return known
    return None


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
    """None if `script argv` parses with the program's own argparse parser."""
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


def _probe_problems(c: dict, ports: set[int]) -> list[str]:
    out = []
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = c.get(kind)
        if probe is None:
            if kind != "startupProbe":
                out.append(f"container {c['name']}: no {kind}")
            continue
        grpc = probe.get("grpc")
        if grpc is None:
            out.append(f"container {c['name']}: {kind} is not a grpc probe")
        elif grpc.get("port") not in ports:
            out.append(f"container {c['name']}: {kind} grpc port {grpc.get('port')} "
                       f"is not a container port {sorted(ports)}")
    return out


def _grace_problem(pod: dict, c: dict, env: dict[str, str], args: list[str]) -> str | None:
    grace_s = 30.0  # the servers' default --grace-s
    for i, a in enumerate(args):
        if a.startswith("--grace-s="):
            grace_s = float(a.split("=", 1)[1])
        elif a == "--grace-s" and i + 1 < len(args):
            grace_s = float(args[i + 1])
    pre_stop = (((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {})
    need = grace_s + float(pre_stop.get("seconds", 0))
    period = pod.get("terminationGracePeriodSeconds", 30)
    if period <= need:
        return (f"terminationGracePeriodSeconds {period} must exceed preStop sleep + "
                f"--grace-s ({need:g}s), or draining is cut short by SIGKILL")
    return None


def _parse_target(target: str) -> tuple[str, int] | None:
    """dns:///name:port, dns:///name.ns.svc.cluster.local:port or name:port -> (name, port)."""
    m = re.fullmatch(r"(?:dns:(?://[^/]*)?/)?([A-Za-z0-9.-]+):(\d+)", target.strip())
    if not m:
        return None
    return m.group(1).split(".", 1)[0], int(m.group(2))


def _flag_values(args: list[str], flag: str) -> list[str]:
    out = []
    for i, a in enumerate(args):
        if a.startswith(flag + "="):
            out.append(a.split("=", 1)[1])
        elif a == flag and i + 1 < len(args):
            out.append(args[i + 1])
    return [t for v in out for t in v.split(",") if t.strip()]


def project_problems(docs: list[dict]) -> list[Problem]:
    out: list[Problem] = []
    configmaps = _config_data(docs)
    workloads = [d for d in docs if _pod_spec(d) is not None]
    services = [d for d in docs if d.get("kind") == "Service"]

    def add(doc: dict, msg: str) -> None:
        out.append(Problem("project", where(doc), msg))

    def pod_labels(doc: dict) -> dict:
        return ((doc["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}

    for doc in workloads:
        pod = _pod_spec(doc)
        for c in _containers(pod):
            for msg in _hardening_problems(pod, c):
                add(doc, msg)
            image = c.get("image", "")
            repo, tag = image_repo_tag(image)
            if tag is None or tag == "latest":
                add(doc, f"container {c['name']}: image {image!r} needs a pinned tag, not latest")
            env = container_env(c, configmaps)
            args = [_expand(str(a), env) for a in c.get("args") or []]
            command = [_expand(str(a), env) for a in c.get("command") or []]
            known = _entry_repo(repo)
            script = command[0] if command else IMAGE_ENTRYPOINTS.get(known or "")
            argv = (command[1:] if command else []) + args
            if known and script:
                if msg := parse_args_problem(script, argv):
                    add(doc, f"container {c['name']}: {msg}")
        if doc["kind"] != "Deployment":
            continue
        for c in _containers(pod, init=False):
            ports = {p["containerPort"] for p in c.get("ports") or []}
            if not ports:
                add(doc, f"container {c['name']}: no containerPort")
                continue
            for msg in _probe_problems(c, ports):
                add(doc, msg)
            env = container_env(c, configmaps)
            args = [_expand(str(a), env) for a in c.get("args") or []]
            if msg := _grace_problem(pod, c, env, args):
                add(doc, msg)
            if pod_labels(doc).get(COMPONENT_LABEL) in SERVER_COMPONENTS:
                if env.get("HF_HUB_OFFLINE") != "1":
                    add(doc, f"container {c['name']}: HF_HUB_OFFLINE=1 is not set")
                for m in c.get("volumeMounts") or []:
                    if m.get("mountPath") == "/models" and not m.get("readOnly"):
                        add(doc, f"container {c['name']}: /models must be mounted readOnly")

    # Services: headless, selecting a workload, on a port the pods expose.
    svc_index: dict[str, tuple[dict, str | None]] = {}
    for svc in services:
        spec = svc.get("spec") or {}
        selector = spec.get("selector") or {}
        backing = [d for d in workloads if d["kind"] == "Deployment" and selector
                   and all(pod_labels(d).get(k) == v for k, v in selector.items())]
        if not backing:
            add(svc, f"selector {selector} matches no Deployment's pods")
        component = pod_labels(backing[0]).get(COMPONENT_LABEL) if backing else None
        if component in SERVER_COMPONENTS and spec.get("clusterIP") != "None":
            add(svc, "gRPC server Service must be headless (clusterIP: None) so dns:/// "
                     "targets with round_robin reach every replica")
        pod_ports = {}
        for d in backing:
            for c in _containers(_pod_spec(d), init=False):
                for p in c.get("ports") or []:
                    pod_ports[p["containerPort"]] = p
                    if "name" in p:
                        pod_ports[p["name"]] = p
        for p in spec.get("ports") or []:
            tp = p.get("targetPort", p.get("port"))
            if backing and tp not in pod_ports:
                add(svc, f"port {p.get('port')}: targetPort {tp!r} is not a container port")
        svc_index[svc["metadata"]["name"]] = (svc, component)

    # Evaluator targets: --model names model-server Services, --clip the clip-server's.
    for doc in workloads:
        for c in _containers(_pod_spec(doc), init=False):
            if _entry_repo(image_repo_tag(c.get("image", ""))[0]) != "seedbench/evaluator":
                continue
            args = [str(a) for a in c.get("args") or []]
            for flag, component in (("--model", "model-server"), ("--clip", "clip-server")):
                for target in _flag_values(args, flag):
                    parsed = _parse_target(target)
                    if parsed is None:
                        add(doc, f"{flag} {target!r} is not NAME:PORT or dns:///NAME:PORT")
                        continue
                    name, port = parsed
                    if name not in svc_index:
                        add(doc, f"{flag} {target!r}: no Service named {name!r} "
                                 f"(Services: {', '.join(sorted(svc_index)) or 'none'})")
                        continue
                    svc, comp = svc_index[name]
                    svc_ports = [p.get("port") for p in svc["spec"].get("ports") or []]
                    if port not in svc_ports:
                        add(doc, f"{flag} {target!r}: Service {name} has ports {svc_ports}, "
                                 f"not {port}")
                    if comp != component:
                        add(doc, f"{flag} {target!r}: Service {name} fronts {comp!r} pods, "
                                 f"expected {component!r}")
                    if not target.startswith("dns:"):
                        add(doc, f"{flag} {target!r}: use dns:///{name}:{port} so the client "
                                 "resolves every replica of the headless Service")
    return out + companion_problems(docs)


def _hardening_problems(pod: dict, c: dict) -> list[str]:
    """Requests + limits (cpu, memory) and a locked-down security context."""
    out = []
    res = c.get("resources") or {}
    for kind in ("requests", "limits"):
        missing = [r for r in ("cpu", "memory") if r not in (res.get(kind) or {})]
        if missing:
            out.append(f"container {c['name']}: no {kind} for {', '.join(missing)}")
    sc, pod_sc = c.get("securityContext") or {}, pod.get("securityContext") or {}
    if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")) \
            or 0 in (sc.get("runAsUser"), pod_sc.get("runAsUser")):
        out.append(f"container {c['name']}: must run as non-root (runAsNonRoot: true)")
    if sc.get("allowPrivilegeEscalation") is not False:
        out.append(f"container {c['name']}: allowPrivilegeEscalation must be false")
    if sc.get("readOnlyRootFilesystem") is not True:
        out.append(f"container {c['name']}: readOnlyRootFilesystem must be true")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        out.append(f"container {c['name']}: capabilities must drop ALL")
    return out


def _selects(selector: dict, labels: dict) -> bool:
    match = selector.get("matchLabels") or {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def companion_problems(docs: list[dict]) -> list[Problem]:
    """Each model-server Deployment has a PDB, an HPA and a NetworkPolicy of its own."""
    out = []
    for dep in docs:
        if dep.get("kind") != "Deployment":
            continue
        labels = ((dep["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
        if labels.get(COMPONENT_LABEL) != "model-server":
            continue
        name = dep["metadata"]["name"]
        if not any(d.get("kind") == "PodDisruptionBudget"
                   and _selects(d["spec"].get("selector") or {}, labels) for d in docs):
            out.append(Problem("project", where(dep), "no PodDisruptionBudget selects its pods"))
        if not any(d.get("kind") == "HorizontalPodAutoscaler"
                   and (d["spec"].get("scaleTargetRef") or {}).get("name") == name for d in docs):
            out.append(Problem("project", where(dep), "no HorizontalPodAutoscaler scales it"))
        if not any(d.get("kind") == "NetworkPolicy"
                   and _selects(d["spec"].get("podSelector") or {}, labels) for d in docs):
            out.append(Problem("project", where(dep), "no NetworkPolicy selects its pods"))
    return out


# ----------------------------------------------------------------------------- driver

def check_rendered(text: str, name: str) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) for one rendered overlay."""
    errors, warnings = lint_problems(text, f"{name}.yaml")
    docs = load_docs(text)
    if not docs:
        errors.append(Problem("project", name, "rendered no objects"))
    errors += schema_problems(docs)
    errors += project_problems(docs)
    return errors, warnings


def render_overlay(k8s_dir: Path, overlay: str) -> str:
    path = k8s_dir / "overlays" / overlay
    if not (path / "kustomization.yaml").is_file():
        raise RenderError(f"no overlay {overlay!r} at {path}")
    return kustomize(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deploy.render", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--overlay", choices=[*OVERLAYS, "all"], default="all")
    p.add_argument("--out", type=Path, default=RENDERED,
                   help="directory for <overlay>.yaml (default: deploy/rendered)")
    p.add_argument("--k8s-dir", type=Path, default=K8S_DIR,
                   help="kustomize tree with base/ and overlays/ (default: deploy/k8s)")
    p.add_argument("--quiet", action="store_true", help="print problems only")
    args = p.parse_args(argv)

    overlays = OVERLAYS if args.overlay == "all" else (args.overlay,)
    failed = False
    for f in source_yaml_files(args.k8s_dir):
        errs, _ = lint_problems(f.read_text(encoding="utf-8"), str(f))
        for e in errs:
            print(f"source: {e}", file=sys.stderr)
        failed |= bool(errs)
    args.out.mkdir(parents=True, exist_ok=True)
    for overlay in overlays:
        try:
            text = render_overlay(args.k8s_dir, overlay)
        except RenderError as exc:
            print(f"{overlay}: render failed: {exc}", file=sys.stderr)
            return 2
        dest = args.out / f"{overlay}.yaml"
        dest.write_text(text, encoding="utf-8")
        errors, warnings = check_rendered(text, overlay)
        for w in warnings:
            if not args.quiet:
                print(f"{overlay}: warning: {w}", file=sys.stderr)
        for e in errors:
            print(f"{overlay}: {e}", file=sys.stderr)
        n = len(load_docs(text))
        if errors:
            failed = True
            print(f"{overlay}: FAILED with {len(errors)} problem(s) ({dest})", file=sys.stderr)
        elif not args.quiet:
            print(f"{overlay}: ok, {n} objects, yamllint + kubernetes-validate --strict "
                  f"(k8s {K8S_VERSION}) + project checks -> {dest}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
