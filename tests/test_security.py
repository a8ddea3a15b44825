"""TLS, mutual TLS and bearer tokens over real server processes and a real `seedbench run`.

Certificates are made in the test with openssl (tests/certs.py). Each mode is
accepted with the right material and refused, with one clear line and no
traceback, without it or in plaintext; the token appears in no log or output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from serving.processes import ROOT, child_env, health, stop, wait_serving
from serving.security import ClientSecurity
from tests.certs import make_certs
from tests.evaluator_runs import run_argv as run_args
from tests.evaluator_runs import write_sample
from tests.procs import metrics_port, start_listening
from tests.test_metrics import scrape, value
from tests.waiting import wait_until

TOKEN = "tok-5f1d9c2e-never-logged"
SYNTHETIC = ["--backend", "synthetic", "--model", "m1", "--log-level", "INFO"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("data"), per_dim=2)


@pytest.fixture(scope="module")
def token_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("secret") / "token"
    p.write_text(TOKEN + "\n")
    return p


def serve(tmp: Path, extra: list[str], security: ClientSecurity):
    proc = start_listening("model_server.cli", [*SYNTHETIC, *extra], log=tmp / "server.log")
    try:
        wait_serving(proc, 120, security=security)
    except Exception:
        stop(proc)
        raise
    return proc


def seedbench(data, target: str, out: Path, *extra: str,
              connect_timeout_s: float = 3) -> subprocess.CompletedProcess:
    ann, roots = data
    args = run_args(ann, roots, target, out, "--dimensions", "1,2", *extra,
                    connect_timeout_s=connect_timeout_s)
    return subprocess.run([sys.executable, "-m", "evaluator.cli", *args], env=child_env(),
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def refused_run(data, target: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """A run that cannot connect: a TLS mismatch waits out the whole connect timeout (the
    channel keeps retrying the handshake) before naming the cause, so a short one."""
    return seedbench(data, target, out, *extra, connect_timeout_s=1)


def answered(out: Path) -> int:
    return json.loads((out / "summary.json").read_text())["counts"]["answered"]


def refused(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    line = next(x for x in r.stderr.splitlines() if x.startswith("error:"))
    for n in needles:
        assert n in line, line


def secure_files(certs, *, client_cert: bool = True) -> list[str]:
    out = ["--tls-ca", str(certs.ca)]
    if client_cert:
        out += ["--tls-cert", str(certs.client_cert), "--tls-key", str(certs.client_key)]
    return out


def test_tls_accepted_with_the_ca_refused_without(certs, data, tmp_path):
    ca = ClientSecurity(ca=certs.ca.read_bytes())
    proc = serve(tmp_path, ["--tls-cert", str(certs.server_cert), "--tls-key",
                            str(certs.server_key)], ca)
    try:
        assert health(proc.target, security=ca) == "SERVING"
        assert health(proc.target) == "UNREACHABLE"  # plaintext probe gets nothing
        r = seedbench(data, proc.target, tmp_path / "ok", *secure_files(certs, client_cert=False))
        assert r.returncode == 0, r.stderr
        assert answered(tmp_path / "ok") == 4
        refused(refused_run(data, proc.target, tmp_path / "plain"), proc.target,
                "may require TLS (--tls-ca")
        refused(refused_run(data, proc.target, tmp_path / "other",
                            "--tls-ca", str(certs.other_ca)),
                f"TLS handshake with {proc.target} failed: certificate not trusted (--tls-ca)")
        # localhost is in the certificate too
        r = seedbench(data, f"localhost:{proc.port}", tmp_path / "dns",
                      *secure_files(certs, client_cert=False))
        assert r.returncode == 0, r.stderr
    finally:
        stop(proc)
    assert "(TLS, no auth)" in (tmp_path / "server.log").read_text()


def test_tls_client_against_plaintext_server_is_named(data, tmp_path, certs):
    proc = serve(tmp_path, [], ClientSecurity())
    try:
        refused(refused_run(data, proc.target, tmp_path / "x", *secure_files(certs)),
                f"TLS handshake with {proc.target} failed: the server speaks plaintext")
    finally:
        stop(proc)


def test_mutual_tls_needs_a_client_certificate(certs, data, tmp_path):
    full = ClientSecurity(ca=certs.ca.read_bytes(), cert=certs.client_cert.read_bytes(),
                          key=certs.client_key.read_bytes())
    proc = serve(tmp_path, ["--tls-cert", str(certs.server_cert), "--tls-key",
                            str(certs.server_key), "--tls-client-ca", str(certs.ca)], full)
    try:
        r = seedbench(data, proc.target, tmp_path / "ok", *secure_files(certs))
        assert r.returncode == 0, r.stderr
        assert answered(tmp_path / "ok") == 4
        refused(refused_run(data, proc.target, tmp_path / "nocert",
                            *secure_files(certs, client_cert=False)),
                f"TLS handshake with {proc.target} failed", "client certificate")
        refused(refused_run(data, proc.target, tmp_path / "plain"), "may require TLS")
    finally:
        stop(proc)
    assert "(mutual TLS, no auth)" in (tmp_path / "server.log").read_text()


@pytest.fixture(scope="module")
def token_server(tmp_path_factory, token_file):
    """One token-auth server for the token tests; its log is checked for the token."""
    proc = serve(tmp_path_factory.mktemp("token-server"),
                 ["--auth-token-file", str(token_file), "--metrics-port", "0"], ClientSecurity())
    try:
        yield proc
    finally:
        stop(proc)


def test_token_auth_accepts_the_token_and_never_shows_it(data, tmp_path, token_file, token_server):
    proc = token_server
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token")
    assert health(proc.target) == "SERVING"  # health stays open for probes
    r_ok = seedbench(data, proc.target, tmp_path / "ok", "--auth-token-file", str(token_file))
    assert r_ok.returncode == 0, r_ok.stderr
    assert answered(tmp_path / "ok") == 4
    r_none = refused_run(data, proc.target, tmp_path / "none")
    refused(r_none, proc.target, "authentication failed (sent no token")
    r_bad = refused_run(data, proc.target, tmp_path / "bad", "--auth-token-file", str(wrong))
    refused(r_bad, "authentication failed (sent a token that the server refused")
    # Refusals are counted like any other status; an aborted call's status can reach the
    # client just before the server counts it, so poll for the count.
    wait_until(lambda: value(scrape(metrics_port(proc)), "seedbench_requests_total", 0.0,
                             service="ModelService", method="Info", code="UNAUTHENTICATED") >= 2,
               timeout=10, what="2 refused Info calls counted")
    log = Path(proc.log).read_text()  # each refusal is logged before it is answered
    assert "refused /seedbench.v1.ModelService/Info: no bearer token" in log
    assert "wrong bearer token" in log and "not-the-token" not in log
    outputs = [log, r_ok.stdout, r_ok.stderr, r_none.stderr, r_bad.stderr]
    for f in (tmp_path / "ok").rglob("*"):
        if f.is_file():
            outputs.append(f.read_bytes().decode("utf-8", "replace"))
    assert len(outputs) > 6  # the run wrote its files
    assert not [o for o in outputs if TOKEN in o]


def test_token_from_the_environment(data, tmp_path, token_server):
    ann, roots = data
    args = run_args(ann, roots, token_server.target, tmp_path / "ok", "--dimensions", "1",
                    connect_timeout_s=3)
    r = subprocess.run([sys.executable, "-m", "evaluator.cli", *args], cwd=ROOT,
                       env=child_env(SEEDBENCH_AUTH_TOKEN=TOKEN), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert TOKEN not in r.stdout + r.stderr + Path(token_server.log).read_text()


def test_unusable_material_is_one_line(tmp_path, certs):
    r = subprocess.run([sys.executable, "-m", "model_server.cli", "serve", *SYNTHETIC,
                        "--port", "0", "--tls-cert", str(certs.server_cert)],
                       env=child_env(), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "--tls-cert and --tls-key go together" in r.stderr
    assert "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "model_server.cli", "serve", *SYNTHETIC,
                        "--port", "0", "--auth-token-file", str(tmp_path / "missing")],
                       env=child_env(), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "--auth-token-file" in r.stderr and "cannot read" in r.stderr
    assert "Traceback" not in r.stderr


def test_local_launcher_passes_mutual_tls_and_token_to_its_servers(certs, data, tmp_path,
                                                                   token_file):
    from deploy.local import launcher

    run = tmp_path / "run"

    def local(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "deploy.local", *args, "--run-dir", str(run)],
                              cwd=ROOT, env=child_env(), capture_output=True, text=True,
                              timeout=120)

    up = local("up", "--backend", "synthetic", "--model-dir", "m1", "--grace-s", "5",
               "--timeout-s", "60", "--tls-cert", str(certs.server_cert), "--tls-key",
               str(certs.server_key), "--tls-client-ca", str(certs.ca), "--auth-token-file",
               str(token_file), "--tls-ca", str(certs.ca), "--client-cert",
               str(certs.client_cert), "--client-key", str(certs.client_key))
    state = json.loads((run / "state.json").read_text()) if up.returncode == 0 else {}
    try:
        assert up.returncode == 0, up.stderr
        assert TOKEN not in (run / "state.json").read_text()  # paths only
        st = local("status", "--json")
        assert st.returncode == 0, st.stdout + st.stderr
        assert [r["health"] for r in json.loads(st.stdout)["processes"]] == ["SERVING"]
        hint = next(x for x in up.stdout.splitlines() if x.startswith("next:"))
        assert "--tls-ca" in hint and "--auth-token-file" in hint and TOKEN not in up.stdout
        target = state["targets"]["model"]
        r = seedbench(data, target, tmp_path / "ok", *secure_files(certs), "--auth-token-file",
                      str(token_file))
        assert r.returncode == 0, r.stderr
        refused(refused_run(data, target, tmp_path / "notoken", *secure_files(certs)),
                "authentication failed")
        assert local("down").returncode == 0
    finally:
        launcher.stop([launcher.Proc(**p) for p in state.get("procs", [])], 5)
    log = (run / "logs" / "model-0.log").read_text()
    assert "(mutual TLS, token auth)" in log and TOKEN not in log


def test_launcher_tls_without_a_ca_for_its_checks_is_one_line(certs, tmp_path):
    r = subprocess.run([sys.executable, "-m", "deploy.local", "up", "--backend", "synthetic",
                        "--model-dir", "m1", "--run-dir", str(tmp_path / "run"), "--tls-cert",
                        str(certs.server_cert), "--tls-key", str(certs.server_key)],
                       cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--tls-cert needs --tls-ca" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_clip_server_takes_the_same_tls_and_token(certs, tmp_path, token_file):
    import asyncio

    from evaluator.run.clip_client import ClipClient, ClipUnavailable
    from protos import seedbench_pb2 as pb
    from tests.images import png

    full = ClientSecurity(ca=certs.ca.read_bytes(), cert=certs.client_cert.read_bytes(),
                          key=certs.client_key.read_bytes(), token=TOKEN)
    proc = start_listening("clip_server.cli", [
        "--model", "tiny", "--tls-cert", str(certs.server_cert), "--tls-key",
        str(certs.server_key), "--tls-client-ca", str(certs.ca), "--auth-token-file",
        str(token_file)], log=tmp_path / "clip.log")

    async def embed(security: ClientSecurity, info_timeout_s: float = 3):
        client = ClipClient(proc.target, security=security)
        try:
            await client.connect(info_timeout_s=info_timeout_s)
            return await client.embed_images([pb.Image(data=png(1))])
        finally:
            await client.close()

    try:
        wait_serving(proc, 180, security=full)
        [vector] = asyncio.run(embed(full))
        assert len(vector) > 0
        no_token = ClientSecurity(ca=full.ca, cert=full.cert, key=full.key)
        with pytest.raises(ClipUnavailable, match="authentication failed"):
            asyncio.run(embed(no_token))
        with pytest.raises(ClipUnavailable, match="may require TLS"):  # waits out the timeout
            asyncio.run(embed(ClientSecurity(token=TOKEN), info_timeout_s=0.5))
    finally:
        stop(proc)
    log = (tmp_path / "clip.log").read_text()
    assert "(mutual TLS, token auth)" in log and "refused /seedbench.v1.ClipService/Info" in log
    assert TOKEN not in log


def test_servers_bind_loopback_unless_told_and_images_bind_all_interfaces():
    from clip_server.cli import build_parser as clip_parser
    from model_server.cli import build_parser as model_parser

    assert model_parser().parse_args(["serve", "--backend", "synthetic"]).host == "127.0.0.1"
    assert clip_parser().parse_args(["serve", "--model", "tiny"]).host == "127.0.0.1"
    for image in ("model-server", "clip-server"):
        cmd = (ROOT / "deploy" / "docker" / f"Dockerfile.{image}").read_text()
        assert '"--host", "0.0.0.0"' in cmd
