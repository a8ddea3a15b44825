"""Backend settings: declared once per backend, converted in one place, unknown keys refused."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from model_server.backends import base
from model_server.backends.local_settings import HFSettings
from model_server.backends.settings import SettingsError, describe, parse
from serving.processes import ROOT, child_env


def test_strings_convert_by_declared_type():
    s = parse(HFSettings, {"threads": "3", "prefix_sharing": "false", "prepare_ahead": "auto",
                           "device": "cuda:1", "dtype": "bfloat16"})
    assert (s.threads, s.prefix_sharing, s.prepare_ahead) == (3, False, None)
    assert (s.device, s.dtype) == ("cuda:1", "bfloat16")
    assert parse(HFSettings, {}) == HFSettings()


def test_typed_values_from_code_are_checked_not_reparsed():
    s = parse(HFSettings, {"threads": 2, "prefix_sharing": True})
    assert (s.threads, s.prefix_sharing) == (2, True)
    with pytest.raises(SettingsError, match="threads"):
        parse(HFSettings, {"threads": 2.5})


@pytest.mark.parametrize("key,value,words", [
    ("threads", "many", "expected an integer"),
    ("prefix_sharing", "maybe", "expected true or false"),
    ("device", "gpu0", "expected cpu, cuda"),
    ("dtype", "float64", "float32, bfloat16, float16"),
])
def test_bad_values_name_the_setting(key, value, words):
    with pytest.raises(SettingsError, match=key) as err:
        parse(HFSettings, {key: value}, backend="hf")
    assert words in str(err.value) and "the hf backend" in str(err.value)


def test_unknown_key_names_the_valid_ones():
    with pytest.raises(SettingsError) as err:
        base.parse_settings("synthetic", {"latency": "5"})
    msg = str(err.value)
    assert "no setting latency" in msg
    assert "valid settings: generate_image, latency_ms, load_delay_s, max_images" in msg


def test_every_backend_declares_typed_settings_with_help():
    for key in base.available():
        cls = base.settings_class(key)
        assert dataclasses.is_dataclass(cls)
        for name, kind, _default, help_line in describe(cls):
            assert help_line, f"{key}.{name} has no help line"
            assert kind in ("bool", "auto|bool", "int", "float", "str", "device", "dtype")


def test_remote_settings_refuse_nonsense_values():
    with pytest.raises(SettingsError, match="score_mode must be one of"):
        base.parse_settings("openai", {"score_mode": "logits"})
    assert base.parse_settings("vllm", {}).echo_max_tokens == 1


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "model_server.cli", *args], cwd=ROOT,
                          env=child_env(), capture_output=True, text=True, timeout=120)


def test_serve_refuses_unknown_backend_arg_at_once_in_one_line():
    """At parse time, before any model code loads: exit 2, not the load failure's exit 1 (the
    model path does not exist) and no "listening" line."""
    out = _cli("serve", "--backend", "hf", "--model", "/nonexistent", "--port", "0",
               "--backend-arg", "nosuchkey=1")
    assert out.returncode == 2
    lines = [line for line in (out.stderr + out.stdout).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "Traceback" not in out.stderr
    assert "nosuchkey" in lines[0] and "valid settings:" in lines[0] and "prefix_sharing" in lines[0]


def test_serve_refuses_a_bad_value_in_one_line():
    out = _cli("serve", "--backend", "synthetic", "--port", "0", "--backend-arg", "latency_ms=fast")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == ("seedbench-model-server serve: error: --backend-arg: the synthetic "
                                  "backend: setting latency_ms: expected a number, got 'fast' (see --help)")


def test_backends_command_lists_settings_with_defaults_and_help():
    out = _cli("backends")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for key in base.available():
        assert f"\n{key}: " in "\n" + text
    assert "  prefix_sharing (auto|bool, default auto): " in text
    assert "  max_retries (int, default 4): " in text
    assert "  echo_max_tokens (int, default 1): " in text  # vllm's own default
