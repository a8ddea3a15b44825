"""Kustomize overlays render, pass yamllint + kubernetes-validate --strict + project checks."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest

from deploy import manifests, policy, render

needs_kubectl = pytest.mark.skipif(manifests.kubectl() is None,
                                   reason="kubectl not on PATH: `kubectl kustomize` cannot render")


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    if manifests.kubectl() is None:
        pytest.skip("kubectl not on PATH: `kubectl kustomize` cannot render")
    return {o: manifests.render_overlay(manifests.K8S_DIR, o) for o in manifests.OVERLAYS}


def _docs(rendered, overlay):
    return manifests.load_docs(rendered[overlay])


def _get(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def _model(docs):
    return _get(docs, "Deployment", "model-llava")["spec"]["template"]["spec"]


def test_bundled_schema_version_is_present():
    import kubernetes_validate.utils as kv

    assert render.K8S_VERSION in kv.all_versions()


@pytest.mark.parametrize("overlay", manifests.OVERLAYS)
def test_overlay_passes_every_check(rendered, overlay):
    errors, _ = render.check_rendered(rendered[overlay], overlay)
    assert errors == [], "\n".join(map(str, errors))


@needs_kubectl
def test_cli_writes_both_overlays(tmp_path):
    assert render.main(["--out", str(tmp_path), "--quiet"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu.yaml", "local.yaml"]


def test_local_overlay_is_cpu_with_tiny_model(rendered):
    docs = _docs(rendered, "local")
    pod = _model(docs)
    assert _get(docs, "Deployment", "model-llava")["spec"]["replicas"] == 1
    init = pod["initContainers"][0]
    assert init["command"] + init["args"] == [
        "seedbench-model-server", "tiny", "--arch", "llava", "--out", "/models/tiny-llava"]
    assert "nvidia.com/gpu" not in rendered["local"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["MODEL_PATH"] == "/models/tiny-llava"


def test_gpu_overlay_requests_gpus_and_two_replicas(rendered):
    docs = _docs(rendered, "gpu")
    assert _get(docs, "Deployment", "model-llava")["spec"]["replicas"] == 2
    res = _model(docs)["containers"][0]["resources"]
    assert res["limits"]["nvidia.com/gpu"] == 1
    assert _get(docs, "PersistentVolumeClaim", "seedbench-models")["spec"]["accessModes"] == [
        "ReadOnlyMany"]


def test_evaluator_targets_headless_services(rendered):
    for overlay in manifests.OVERLAYS:
        docs = _docs(rendered, overlay)
        args = _get(docs, "Job", "seedbench-eval")["spec"]["template"]["spec"]["containers"][0]
        assert "--model=dns:///model-llava:50051" in args["args"]
        assert "--clip=dns:///clip-server:50061" in args["args"]
        for name in ("model-llava", "clip-server"):
            assert _get(docs, "Service", name)["spec"]["clusterIP"] == "None"


# --------------------------------------------------------------- the checks catch breakage

def _problems(docs):
    return [str(p) for p in policy.project_problems(docs)]


def test_missing_or_wrong_probes_fail(rendered):
    docs = copy.deepcopy(_docs(rendered, "local"))
    c = _model(docs)["containers"][0]
    del c["readinessProbe"]
    c["livenessProbe"] = {"tcpSocket": {"port": 50051}}
    c["startupProbe"]["grpc"]["port"] = 50052
    text = "\n".join(_problems(docs))
    assert "no readinessProbe" in text
    assert "livenessProbe is not a grpc probe" in text
    assert "startupProbe grpc port 50052 is not a container port" in text


def test_non_headless_service_fails(rendered):
    docs = copy.deepcopy(_docs(rendered, "gpu"))
    del _get(docs, "Service", "model-llava")["spec"]["clusterIP"]
    assert any("must be headless" in p for p in _problems(docs))


def test_wrong_evaluator_target_and_flags_fail(rendered):
    docs = copy.deepcopy(_docs(rendered, "local"))
    args = _get(docs, "Job", "seedbench-eval")["spec"]["template"]["spec"]["containers"][0]["args"]
    args[args.index("--model=dns:///model-llava:50051")] = "--model=dns:///model-qwen:50051"
    args[args.index("--clip=dns:///clip-server:50061")] = "--clip=dns:///clip-server:50051"
    args.append("--no-such-flag")
    text = "\n".join(_problems(docs))
    assert "no Service named 'model-qwen'" in text
    assert "Service clip-server has ports [50061], not 50051" in text
    assert "unrecognized arguments: --no-such-flag" in text


def test_server_flags_are_checked_as_the_server_checks_them(rendered):
    """A bad value, or a backend setting the backend does not have, fails the render check
    with the server's own one-line message."""
    docs = copy.deepcopy(_docs(rendered, "local"))
    _model(docs)["containers"][0]["args"] += ["--max-batch=0"]
    clip = _get(docs, "Deployment", "clip-server")["spec"]["template"]["spec"]["containers"][0]
    clip["args"] += ["--grace-s=soon"]
    text = "\n".join(_problems(docs))
    assert "seedbench-model-server rejects its args: seedbench-model-server serve: error: " \
        "argument --max-batch: 0 is not >= 1" in text
    assert "argument --grace-s: 'soon' is not a number" in text  # and no crash reading the grace
    docs = copy.deepcopy(_docs(rendered, "local"))
    _model(docs)["containers"][0]["args"] += ["--backend-arg=no_such_setting=1"]
    assert "the hf backend has no setting no_such_setting" in "\n".join(_problems(docs))


def test_latest_image_and_short_grace_fail(rendered):
    docs = copy.deepcopy(_docs(rendered, "local"))
    pod = _model(docs)
    pod["containers"][0]["image"] = "seedbench/model-server:latest"
    pod["initContainers"][0]["image"] = "seedbench/model-server"
    pod["terminationGracePeriodSeconds"] = 30
    text = "\n".join(_problems(docs))
    assert "'seedbench/model-server:latest' needs a pinned tag" in text
    assert "'seedbench/model-server' needs a pinned tag" in text
    assert "terminationGracePeriodSeconds 30 must exceed" in text


def test_strict_schema_rejects_unknown_fields(rendered):
    docs = copy.deepcopy(_docs(rendered, "local"))
    _model(docs)["containers"][0]["readinesProbe"] = {}
    probs = [str(p) for p in render.schema_problems(docs)]
    assert len(probs) == 1 and "'readinesProbe' was unexpected" in probs[0]


@needs_kubectl
def test_broken_source_tree_fails_the_cli(tmp_path, capsys):
    """A copy of deploy/k8s whose model Deployment lost its readiness probe: exit 1."""
    k8s = tmp_path / "k8s"
    shutil.copytree(manifests.K8S_DIR, k8s)
    dep = k8s / "base" / "model-server" / "deployment.yaml"
    text = dep.read_text()
    start = text.index("          readinessProbe:")
    end = text.index("          livenessProbe:")
    dep.write_text(text[:start] + text[end:])
    rc = render.main(["--k8s-dir", str(k8s), "--out", str(tmp_path / "out"), "--overlay", "local"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "Deployment/model-llava: container model-server: no readinessProbe" in err
    assert "local: FAILED" in err


@needs_kubectl
def test_render_failure_is_reported(tmp_path, capsys):
    k8s = tmp_path / "k8s"
    shutil.copytree(manifests.K8S_DIR, k8s)
    (k8s / "base" / "pvc.yaml").unlink()
    rc = render.main(["--k8s-dir", str(k8s), "--out", str(tmp_path / "out"), "--overlay", "gpu"])
    assert rc == 2
    assert "render failed" in capsys.readouterr().err


def test_source_yaml_passes_yamllint():
    for f in render.source_yaml_files(manifests.K8S_DIR):
        errors, _ = render.lint_problems(f.read_text(), str(f))
        assert errors == [], "\n".join(map(str, errors))
    assert Path(manifests.K8S_DIR / "base" / "kustomization.yaml").is_file()
