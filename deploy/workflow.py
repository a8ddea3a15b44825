"""`make up | eval | down | status`: on a cluster when kubectl reaches one, as local processes otherwise.

    python -m deploy.workflow up     [--overlay local|gpu] [--model NAME] [--local]
    python -m deploy.workflow eval   [--overlay local|gpu] [--out DIR] [--local]
    python -m deploy.workflow status | down [--local]

Cluster (kubectl has a current context that answers): `up` validates the
overlay (deploy.render), applies everything but the evaluator Job and waits for
the rollouts; `eval` (re)creates the Job, waits for it and copies /results out
to --out through a short-lived pod that mounts the results volume; `down`
deletes what `up` applied (the volumes stay); `status` lists the objects.

No cluster: one line says so, and the same services run as local processes on
127.0.0.1 from the same rendered overlay (`kubectl kustomize` needs no
cluster): one model's Deployment (its container args with the settings
ConfigMap expanded, its tiny model built as its init container would) as
--replicas processes (default 2, so the evaluator's spreading is exercised), and
the CLIP server, health-gated, PIDs and ports in the deploy.local state file.
`eval` runs the evaluator Job's own args against them on the sample data.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from deploy import manifests, render
from deploy.local import launcher
from serving.processes import child_env, free_port
from serving.shutdown import DRAIN_GRACE_S

PART_OF = "app.kubernetes.io/part-of=seedbench"
JOB = "seedbench-eval"
COMPONENT = manifests.COMPONENT_LABEL
INSTANCE = "app.kubernetes.io/instance"


# ----------------------------------------------------------------------------- which mode

def cluster_problem(timeout_s: float = 5.0) -> str | None:
    """None when kubectl reaches a cluster; else why not, in a few words."""
    exe = manifests.kubectl()
    if exe is None:
        return "kubectl is not installed"
    ctx = subprocess.run([exe, "config", "current-context"], capture_output=True, text=True)
    if ctx.returncode != 0:
        return "kubectl has no current context"
    ready = subprocess.run([exe, "get", "--raw=/readyz", f"--request-timeout={timeout_s:g}s"],
                           capture_output=True, text=True)
    if ready.returncode != 0:
        why = (ready.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"context {ctx.stdout.strip()!r} does not answer ({why[:120]})"
    return None


# ----------------------------------------------------------------------------- the overlay's settings

@dataclass
class LocalPlan:
    """What the overlay runs, as local processes: read from its rendered objects."""

    model: str  # the instance label: llava
    model_args: list[str]  # serve args, settings expanded, without --host/--port
    model_path: str  # MODEL_PATH inside the pod
    tiny_args: list[str] | None  # the init container's `tiny ...` args, if it builds one
    clip_args: list[str]
    job_args: list[str]
    grace_s: float


def _serve_args(container: manifests.Container) -> list[str]:
    return [a for a in container.args[1:] if not a.startswith(("--host=", "--port="))]  # [0]: serve


def local_plan(overlay: str, model: str = "") -> LocalPlan:
    docs = manifests.load_docs(manifests.render_overlay(manifests.K8S_DIR, overlay))
    loads = manifests.workloads(docs)
    deployments = [w for w in loads if w.kind == "Deployment"]
    models = [w for w in deployments if w.doc["metadata"]["labels"].get(COMPONENT) == "model-server"]
    names = [w.doc["metadata"]["labels"].get(INSTANCE, w.doc["metadata"]["name"]) for w in models]
    if not models:
        raise SystemExit(f"overlay {overlay}: no model-server Deployment")
    if model and model not in names:
        raise SystemExit(f"overlay {overlay}: no model {model!r}; it has {', '.join(names)}")
    dep = models[names.index(model) if model else 0]
    server = dep.containers(init=False)[0]
    tiny = next((c.raw_args for c in dep.init_containers() if c.raw_args[:1] == ["tiny"]), None)
    clip = next(w for w in deployments if w.doc["metadata"]["labels"].get(COMPONENT) == "clip-server")
    job = next(w for w in loads if w.kind == "Job")
    return LocalPlan(
        model=names[names.index(model) if model else 0],
        model_args=_serve_args(server), model_path=server.env.get("MODEL_PATH", ""),
        tiny_args=tiny,
        clip_args=_serve_args(clip.containers(init=False)[0]),
        job_args=job.containers(init=False)[0].raw_args,
        grace_s=float(server.env.get("GRACE_S") or DRAIN_GRACE_S))


def _swap_model(args: list[str], path: str) -> list[str]:
    return [f"--model={path}" if a.startswith("--model=") else a for a in args]


def _own_metrics_port(args: list[str]) -> list[str]:
    """Pods each have port 9090; processes sharing 127.0.0.1 each need a free one."""
    return [f"--metrics-port={free_port()}" if a.startswith("--metrics-port=") else a for a in args]


def metrics_targets(state: dict) -> dict[str, str]:
    """{process name: host:port of its /metrics}, from the state file's recorded commands."""
    out = {}
    for p in state["procs"]:
        port = next((a.split("=", 1)[1] for a in p["cmd"] if a.startswith("--metrics-port=")), None)
        if port:
            out[p["name"]] = f"{p['host']}:{port}"
    return out


# ----------------------------------------------------------------------------- local mode

def local_up(args: argparse.Namespace) -> int:
    with launcher.starting(args.run_dir) as ok:
        return _local_up(args) if ok else 2


def _local_up(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir
    if launcher.already_running(run_dir):
        return 2
    plan = local_plan(args.overlay, args.model)
    model_dir = run_dir / "models" / Path(plan.model_path).name
    if plan.tiny_args and not (model_dir / "config.json").exists():
        i = plan.tiny_args.index("--out")
        tiny = plan.tiny_args[:i] + plan.tiny_args[i + 2:]  # the same model, written here
        print(f"building the tiny model ({' '.join(tiny)}) in {model_dir}", flush=True)
        built = subprocess.run([sys.executable, "-m", "model_server.cli", *tiny, "--out",
                                str(model_dir)], env=child_env())
        if built.returncode != 0:
            print(f"error: building the tiny model failed (exit {built.returncode})", file=sys.stderr)
            return 1
    elif not plan.tiny_args and not model_dir.is_dir():
        print(f"error: the {args.overlay} overlay serves {plan.model_path} from its weights volume; "
              f"without a cluster put that model directory at {model_dir} (or use OVERLAY=local)",
              file=sys.stderr)
        return 2
    model_args = _swap_model(plan.model_args, str(model_dir))
    specs = [launcher.Spec(f"model-{i}", "model", _own_metrics_port(model_args))
             for i in range(args.replicas)]
    specs.append(launcher.Spec("clip-0", "clip", _own_metrics_port(plan.clip_args)))
    settings = {"overlay": args.overlay, "model": plan.model, "grace_s": plan.grace_s,
                "job_args": plan.job_args}
    state = launcher.start_all(run_dir, specs, "127.0.0.1", args.timeout_s, settings)
    if state is None:
        return 1
    metrics = ", ".join(f"{name} http://{t}/metrics" for name, t in metrics_targets(state).items())
    print(f"model {plan.model}: {state['targets']['model']}; clip: {state['targets']['clip']}\n"
          f"metrics: {metrics}\n"
          f"state: {run_dir / launcher.STATE_FILE}\nnext:  make eval OUT=DIR; make status; make down")
    return 0


def local_eval(args: argparse.Namespace) -> int:
    state = launcher.load_state(args.run_dir)
    if state is None or not all(launcher.alive(p) for p in state["procs"]):
        print("error: the local services are not running: `make up` first", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    data = args.run_dir / "data"
    if not (data / "SEED-Bench_v2_level1_2_3.json").exists():
        from evaluator.data import sample_data

        sample_data.write_v2(data, per_dim=1)
    targets = state["targets"]
    local = []
    for a in state["settings"]["job_args"]:  # the Job's own args, pointed at these processes
        a = a.replace("=/data", f"={data}").replace("/results", str(out))
        if a.startswith("--model="):
            a = f"--model={targets['model']}"
        elif a.startswith("--clip="):
            a = f"--clip={targets['clip']}"
        local.append(a)
    print("evaluating: seedbench " + " ".join(local), flush=True)
    return evaluate_job_args(local)


def evaluate_job_args(job_args: list[str]) -> int:
    """The evaluator Job's command line, read into the library's RunConfig and run here."""
    from evaluator.cli import build_parser
    from evaluator.cli.common import config_error
    from evaluator.cli.run import run_and_show
    from evaluator.run.config import ConfigError, RunConfig

    try:
        config = RunConfig.from_args(build_parser().parse_args(job_args))
    except ConfigError as exc:
        return config_error(exc)
    return run_and_show(config)


# ----------------------------------------------------------------------------- cluster mode

def _kubectl(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    exe = manifests.kubectl() or "kubectl"
    r = subprocess.run([exe, *args], input=stdin, text=True, capture_output=True)
    if check and r.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed:\n{r.stderr.strip()}")
    return r


def _rendered(overlay: str, keep) -> str:
    docs = manifests.load_docs(manifests.render_overlay(manifests.K8S_DIR, overlay))
    return yaml.safe_dump_all([d for d in docs if keep(d)], sort_keys=False)


def cluster_up(args: argparse.Namespace) -> int:
    if render.main(["--overlay", args.overlay]) != 0:
        return 1
    _kubectl("apply", "-f", "-", stdin=_rendered(args.overlay, lambda d: d["kind"] != "Job"))
    print(f"waiting for the rollouts (up to {args.timeout_s:g}s) ...", flush=True)
    _kubectl("rollout", "status", "deployment", "-l", PART_OF, f"--timeout={args.timeout_s:g}s")
    print(_kubectl("get", "services", "-l", PART_OF, "-o", "wide").stdout)
    return 0


def job_for(doc: dict, model: str) -> dict:
    """The overlay's evaluator Job, pointed at model-<model> (its own name and results dir)."""
    if not model:
        return doc
    c = doc["spec"]["template"]["spec"]["containers"][0]
    c["args"] = [f"--model=dns:///model-{model}:50051" if a.startswith("--model=")
                 else f"--out=/results/{model}" if a.startswith("--out=") else a for a in c["args"]]
    doc["metadata"]["name"] = f"{JOB}-{model}"
    return doc


def cluster_eval(args: argparse.Namespace) -> int:
    docs = manifests.load_docs(manifests.render_overlay(manifests.K8S_DIR, args.overlay))
    job = job_for(next(d for d in docs if d["kind"] == "Job"), args.model)
    name = job["metadata"]["name"]
    _kubectl("delete", "job", name, "--ignore-not-found", "--wait=true")
    _kubectl("apply", "-f", "-", stdin=yaml.safe_dump(job, sort_keys=False))
    print(f"job/{name} started; waiting (up to {args.timeout_s:g}s) ...", flush=True)
    done = _kubectl("wait", f"job/{name}", "--for=condition=complete",
                    f"--timeout={args.timeout_s:g}s", check=False)
    print(_kubectl("logs", f"job/{name}", "--tail=60", check=False).stdout)
    if done.returncode != 0:
        print(f"error: job/{name} did not complete: {done.stderr.strip()}", file=sys.stderr)
        return 1
    return copy_results(Path(args.out))


def copy_results(out: Path) -> int:
    """kubectl cp from a short-lived pod that mounts the results volume read-only."""
    pod = "seedbench-results-reader"
    spec = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod, "labels": {"app.kubernetes.io/part-of": "seedbench"}},
            "spec": {"restartPolicy": "Never",
                     "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                     "containers": [{"name": "reader", "image": "seedbench/evaluator:0.1.0",
                                     "command": ["sleep", "600"],
                                     "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                                   "limits": {"cpu": "200m", "memory": "128Mi"}},
                                     "volumeMounts": [{"name": "results", "mountPath": "/results",
                                                       "readOnly": True}]}],
                     "volumes": [{"name": "results", "persistentVolumeClaim": {
                         "claimName": "seedbench-results", "readOnly": True}}]}}
    _kubectl("delete", "pod", pod, "--ignore-not-found", "--wait=true")
    _kubectl("apply", "-f", "-", stdin=json.dumps(spec))
    try:
        _kubectl("wait", f"pod/{pod}", "--for=condition=Ready", "--timeout=120s")
        out.mkdir(parents=True, exist_ok=True)
        _kubectl("cp", f"{pod}:/results", str(out))
    finally:
        _kubectl("delete", "pod", pod, "--ignore-not-found", "--wait=false", check=False)
    print(f"results copied to {out}")
    return 0


def cluster_down(args: argparse.Namespace) -> int:
    keep = _rendered(args.overlay, lambda d: d["kind"] != "PersistentVolumeClaim")
    _kubectl("delete", "-f", "-", "--ignore-not-found", stdin=keep)
    _kubectl("delete", "jobs", "-l", f"{PART_OF},{COMPONENT}=evaluator", "--ignore-not-found")
    print("deleted the services and the Job; the volumes (weights, results) stay")
    return 0


def cluster_status(args: argparse.Namespace) -> int:
    print(_kubectl("get", "deployments,services,hpa,pdb,jobs,pods", "-l", PART_OF, "-o", "wide").stdout)
    return 0


# ----------------------------------------------------------------------------- CLI

LOCAL = {"up": local_up, "eval": local_eval,
         "status": lambda a: launcher.cmd_status(argparse.Namespace(run_dir=a.run_dir, json=False)),
         "down": lambda a: launcher.cmd_down(argparse.Namespace(run_dir=a.run_dir, timeout_s=None))}
CLUSTER = {"up": cluster_up, "eval": cluster_eval, "status": cluster_status, "down": cluster_down}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deploy.workflow", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=sorted(CLUSTER))
    p.add_argument("--overlay", default="local", choices=manifests.OVERLAYS)
    p.add_argument("--model", default="", help="which model (llava, qwen2-vl, ...): no cluster, the "
                   "one `up` runs (default: the first); cluster, the one `eval` evaluates "
                   "(default: the Job's own)")
    p.add_argument("--out", default="results", help="eval: where the results go")
    p.add_argument("--replicas", type=int, default=2, help="no cluster: model server processes")
    p.add_argument("--local", action="store_true", help="local processes even if a cluster answers")
    p.add_argument("--timeout-s", type=float, default=600.0)
    p.add_argument("--run-dir", type=Path, default=launcher.default_run_dir(),
                   help="no cluster: state file, logs, tiny models, sample data")
    args = p.parse_args(argv)
    problem = "--local" if args.local else cluster_problem()
    if problem is None:
        return CLUSTER[args.command](args)
    print(f"no cluster ({problem}): the {args.overlay} overlay's services as local processes "
          f"on 127.0.0.1 (state in {args.run_dir})", flush=True)
    t0 = time.monotonic()
    try:
        rc = LOCAL[args.command](args)
    except manifests.RenderError as exc:  # kubectl missing or the overlay broken: no settings to read
        print(f"error: cannot read the {args.overlay} overlay's settings: {exc}", file=sys.stderr)
        return 2
    if args.command in ("up", "eval") and rc == 0:
        print(f"{args.command} done in {time.monotonic() - t0:.0f}s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
