"""Every flag of both servers is checked while the command line is parsed: a bad value
exits 2 with one line naming the flag, before anything is loaded."""

from __future__ import annotations

import subprocess
import sys

import pytest

from clip_server import cli as clip_cli
from model_server import cli as model_cli
from serving import environment
from serving.processes import ROOT, child_env

# (bad args, what the one line must name)
COMMON = [
    (["--port", "65536"], "argument --port: 65536 is not <= 65535"),
    (["--port", "http"], "argument --port: 'http' is not a port number"),
    (["--metrics-port", "-1"], "argument --metrics-port: -1 is not >= 0"),
    (["--max-batch", "0"], "argument --max-batch: 0 is not >= 1"),
    (["--max-batch", "2.5"], "argument --max-batch: '2.5' is not a whole number"),
    (["--max-wait-ms", "-1"], "argument --max-wait-ms: -1 is not >= 0"),
    (["--max-wait-ms", "inf"], "argument --max-wait-ms: 'inf' is not a finite number"),
    (["--max-queue", "0"], "argument --max-queue: 0 is not >= 1"),
    (["--max-message-mb", "0"], "argument --max-message-mb: 0 is not > 0"),
    (["--max-message-mb", "4096"], "argument --max-message-mb: 4096 is not <= 2047"),
    (["--grace-s", "-5"], "argument --grace-s: -5 is not >= 0"),
    (["--grace-s", "nan"], "argument --grace-s: 'nan' is not a finite number"),
    (["--stuck-after-s", "soon"], "argument --stuck-after-s: 'soon' is not a number"),
    (["--log-level", "loud"], "argument --log-level: 'loud' is not one of DEBUG, INFO, WARNING"),
]
MODEL = COMMON + [
    (["--max-new-tokens", "0"], "argument --max-new-tokens: 0 is not >= 1"),
    (["--device", "gpu"], "argument --device: 'gpu' is not cpu, cuda, cuda:N, mps or auto"),
    (["--dtype", "int8"], "argument --dtype: invalid choice: 'int8'"),
    (["--backend-arg", "threads"], "argument --backend-arg: expects KEY=VALUE, got 'threads'"),
    (["--backend-arg", "nosuch=1"], "--backend-arg: the hf backend has no setting nosuch"),
    (["--backend-arg", "threads=many"], "--backend-arg: the hf backend: setting threads: expected an "
     "integer, got 'many'"),
    (["--backend", "nope"], "argument --backend: invalid choice: 'nope'"),
]
CLIP = COMMON + [
    (["--device", "auto"], "argument --device: 'auto' is not cpu, cuda, cuda:N or mps"),
    (["--cache-size", "-1"], "argument --cache-size: -1 is not >= 0"),
    (["--max-items", "0"], "argument --max-items: 0 is not >= 1"),
]


def _refused(capsys, main, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def nothing_runs(monkeypatch):
    """Serving itself fails the test: a refused flag must stop the program before it."""
    def never(args):
        raise AssertionError("serve ran although a flag was bad")

    monkeypatch.setattr(model_cli, "cmd_serve", never)
    monkeypatch.setattr(clip_cli, "cmd_serve", never)


@pytest.mark.parametrize(("bad", "named"), MODEL, ids=[" ".join(b) for b, _ in MODEL])
def test_model_server_refuses_a_bad_flag_in_one_line(capsys, nothing_runs, tmp_path, bad, named):
    line = _refused(capsys, model_cli.main,
                    ["serve", "--backend", "hf", "--model", str(tmp_path / "missing"), *bad])
    assert line.startswith("seedbench-model-server serve: error: ")
    assert named in line


@pytest.mark.parametrize(("bad", "named"), CLIP, ids=[" ".join(b) for b, _ in CLIP])
def test_clip_server_refuses_a_bad_flag_in_one_line(capsys, nothing_runs, bad, named):
    line = _refused(capsys, clip_cli.main, ["serve", "--model", "tiny", *bad])
    assert line.startswith("seedbench-clip-server serve: error: ") and named in line


def test_a_backend_that_needs_a_model_is_refused_without_one(capsys, nothing_runs):
    line = _refused(capsys, model_cli.main, ["serve", "--backend", "hf"])
    assert "--backend hf needs --model" in line


def test_good_values_parse_and_settings_are_converted_once():
    args = model_cli.build_parser().parse_args([
        "serve", "--backend", "hf", "--model", "/m", "--port", "0", "--metrics-port", "0",
        "--max-wait-ms", "0", "--grace-s", "0", "--device", "auto", "--dtype", "bfloat16",
        "--log-level", "debug", "--backend-arg", "prefix-sharing=false", "--backend-arg", "threads=2"])
    assert (args.port, args.metrics_port, args.max_wait_ms, args.grace_s) == (0, 0, 0.0, 0.0)
    assert args.log_level == "DEBUG"
    assert (args.settings.device, args.settings.dtype) == ("auto", "bfloat16")
    assert (args.settings.prefix_sharing, args.settings.threads) == (False, 2)
    assert not hasattr(args, "check")  # the check ran during parsing and is gone
    clip = clip_cli.build_parser().parse_args(["serve", "--model", "tiny", "--device", "cuda:1",
                                               "--cache-size", "0"])
    assert (clip.device, clip.cache_size, clip.grace_s) == ("cuda:1", 0, 30.0)


@pytest.mark.parametrize("module", ["model_server.cli", "clip_server.cli"])
def test_a_real_server_process_exits_2_before_loading(module, tmp_path):
    """The process itself: --max-batch 0 with a model that would fail to load (exit 1, 'no
    config.json') shows the flag was refused first, in one line on stderr, nothing listening."""
    model = ["--backend", "hf", "--model", str(tmp_path / "missing")] if module == "model_server.cli" \
        else ["--model", "tiny", "--checkpoint", str(tmp_path / "missing.pt")]
    r = subprocess.run([sys.executable, "-m", module, "serve", *model, "--port", "0",
                        "--max-batch", "0"], cwd=ROOT, env=child_env(), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""  # no "listening on": not even the port was bound
    assert r.stderr.splitlines() == [
        f"seedbench-{module.split('_')[0]}-server serve: error: argument --max-batch: 0 is not >= 1 "
        "(see --help)"]


def test_environment_defaults_fill_gaps_and_keep_what_is_set(monkeypatch):
    for key in environment.DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # an operator's own value wins
    expected = {**environment.DEFAULTS, "OMP_WAIT_POLICY": "ACTIVE"}
    child = child_env()  # what every server the toolkit starts gets
    assert {k: child[k] for k in expected} == expected
    env: dict[str, str] = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert environment.apply(env) is env and env == expected
