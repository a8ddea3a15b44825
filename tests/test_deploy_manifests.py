"""The rendered overlays as a cluster would receive them: two models, each with its own
PDB, HPA and NetworkPolicy; hardened containers with requests and limits; metrics ports."""

from __future__ import annotations

import copy

import pytest

from deploy import manifests, policy, render

MODELS = ("model-llava", "model-qwen2-vl")


@pytest.fixture(scope="module")
def docs() -> dict[str, list[dict]]:
    if manifests.kubectl() is None:
        pytest.skip("kubectl not on PATH: `kubectl kustomize` cannot render")
    return {o: manifests.load_docs(manifests.render_overlay(manifests.K8S_DIR, o))
            for o in manifests.OVERLAYS}


def get(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def pods(docs):
    return [(d, d["spec"]["template"]["spec"]) for d in docs if d["kind"] in ("Deployment", "Job")]


@pytest.mark.parametrize("overlay", manifests.OVERLAYS)
def test_two_models_each_with_service_pdb_hpa_and_network_policy(docs, overlay):
    d = docs[overlay]
    for name in MODELS:
        dep = get(d, "Deployment", name)
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert get(d, "Service", name)["spec"]["clusterIP"] == "None"
        pdb = get(d, "PodDisruptionBudget", name)
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] == name[6:]
        hpa = get(d, "HorizontalPodAutoscaler", name)
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                 "name": name}
        pol = get(d, "NetworkPolicy", name)
        assert pol["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        # Only the evaluator on gRPC, only Prometheus on metrics.
        rules = {r["ports"][0]["port"]: r["from"][0] for r in pol["spec"]["ingress"]}
        assert set(rules) == {50051, 9090}
        assert rules[50051]["podSelector"]["matchExpressions"] == [
            {"key": "app.kubernetes.io/component", "operator": "In", "values": ["evaluator"]}]
        assert "namespaceSelector" in rules[9090]
    # Scaling one model touches no other: the selectors of the two never overlap.
    sel = [get(d, "PodDisruptionBudget", n)["spec"]["selector"]["matchLabels"] for n in MODELS]
    assert sel[0]["app.kubernetes.io/instance"] != sel[1]["app.kubernetes.io/instance"]


def test_hpa_scales_on_in_flight_calls_and_on_cpu_locally(docs):
    for name in MODELS:
        gpu = get(docs["gpu"], "HorizontalPodAutoscaler", name)["spec"]["metrics"]
        assert gpu[0]["type"] == "Pods"
        assert gpu[0]["pods"]["metric"]["name"] == "seedbench_in_flight_requests"
        local = get(docs["local"], "HorizontalPodAutoscaler", name)["spec"]["metrics"]
        assert local == [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    assert get(docs["gpu"], "HorizontalPodAutoscaler", "model-llava")["spec"]["minReplicas"] == 2
    assert get(docs["gpu"], "HorizontalPodAutoscaler", "model-qwen2-vl")["spec"]["minReplicas"] == 1


@pytest.mark.parametrize("overlay", manifests.OVERLAYS)
def test_every_container_is_hardened_with_requests_and_limits(docs, overlay):
    seen = set()
    for doc, pod in pods(docs[overlay]):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in pod["containers"] + pod.get("initContainers", []):
            seen.add(c["name"])
            res = c["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]) and {"cpu", "memory"} <= set(res["limits"])
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"]
            writable = {m["mountPath"] for m in c.get("volumeMounts", []) if not m.get("readOnly")}
            assert writable <= {"/tmp", "/results", "/data", "/models"}, (doc["metadata"]["name"], writable)
    assert "evaluator" in seen  # the Job too
    if overlay == "local":
        assert {"make-tiny-model", "sample-data"} <= seen


def test_gpu_limits_only_in_the_gpu_overlay(docs):
    for overlay in manifests.OVERLAYS:
        for doc, pod in pods(docs[overlay]):
            for c in pod["containers"] + pod.get("initContainers", []):
                has_gpu = "nvidia.com/gpu" in c["resources"].get("limits", {})
                server = c["name"] in ("model-server", "clip-server")
                assert has_gpu == (overlay == "gpu" and server), (overlay, doc["metadata"]["name"])


@pytest.mark.parametrize("overlay", manifests.OVERLAYS)
def test_servers_expose_metrics_and_read_weights_read_only(docs, overlay):
    for doc, pod in pods(docs[overlay]):
        if doc["kind"] != "Deployment":
            continue
        c = pod["containers"][0]
        assert "--metrics-port=9090" in c["args"]
        assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in c["ports"]
        assert doc["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9090"
        assert all(p["grpc"]["port"] in (50051, 50061)
                   for p in (c["startupProbe"], c["readinessProbe"], c["livenessProbe"]))
        models = [m for m in c["volumeMounts"] if m["mountPath"] == "/models"]
        assert models and all(m["readOnly"] for m in models)


def test_the_checks_catch_a_missing_limit_a_writable_root_and_a_missing_pdb(docs):
    d = copy.deepcopy(docs["local"])
    job = get(d, "Job", "seedbench-eval")["spec"]["template"]["spec"]
    del job["containers"][0]["resources"]["limits"]
    get(d, "Deployment", "clip-server")["spec"]["template"]["spec"]["containers"][0][
        "securityContext"]["readOnlyRootFilesystem"] = False
    d = [x for x in d if not (x["kind"] == "PodDisruptionBudget"
                              and x["metadata"]["name"] == "model-qwen2-vl")]
    text = "\n".join(str(p) for p in policy.project_problems(d))
    assert "Job/seedbench-eval: container evaluator: no limits for cpu, memory" in text
    assert "Deployment/clip-server: container clip-server: readOnlyRootFilesystem must be true" in text
    assert "Deployment/model-qwen2-vl: no PodDisruptionBudget selects its pods" in text
    assert "model-llava: no PodDisruptionBudget" not in text


def test_remote_api_model_takes_its_key_from_a_secret(tmp_path):
    """An overlay that adds the optional openai model: valid, key from the Secret, no GPU."""
    if manifests.kubectl() is None:
        pytest.skip("kubectl not on PATH")
    import shutil

    k8s = tmp_path / "k8s"
    shutil.copytree(manifests.K8S_DIR, k8s)
    overlay = k8s / "overlays" / "with-openai"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources:\n  - ../gpu\n  - ../../base/models-optional/openai\n")
    text = manifests.render_overlay(k8s, "with-openai")
    errors, _ = render.check_rendered(text, "with-openai")
    assert errors == [], "\n".join(map(str, errors))
    d = manifests.load_docs(text)
    c = get(d, "Deployment", "model-openai")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert env["OPENAI_API_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "seedbench-api-keys", "key": "openai"}}
    assert "--backend=openai" in c["args"] and "nvidia.com/gpu" not in c["resources"]["limits"]
    for kind in ("Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"):
        get(d, kind, "model-openai")
    assert not any(d_["kind"] == "Secret" for d_ in d)  # the key is never in the manifests


@pytest.mark.parametrize("overlay", manifests.OVERLAYS)
def test_servers_and_evaluator_take_the_auth_token_from_a_secret(docs, overlay):
    """Token auth turns on for every hop once the seedbench-auth Secret exists; no token
    value is ever written in a manifest, and servers bind all interfaces explicitly."""
    seen = set()
    for doc, spec in pods(docs[overlay]):
        for c in spec["containers"]:
            env = {e["name"]: e for e in c.get("env", [])}
            ref = env["SEEDBENCH_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "seedbench-auth", "key": "token", "optional": True}
            assert "value" not in env["SEEDBENCH_AUTH_TOKEN"]
            if doc["kind"] == "Deployment":
                assert "--host=0.0.0.0" in c["args"]
            seen.add(doc["metadata"]["name"])
    assert {*MODELS, "clip-server", "seedbench-eval"} <= seen
