import pytest

from serving import environment

environment.apply()  # before any test module imports transformers, torch or grpc


@pytest.fixture(scope="module")
def api():
    """The OpenAI-compatible HTTP stand-in on loopback (tests/test_remote_api.FakeAPI), one per
    test module; tests `reset()` it to script its faults."""
    from tests.test_remote_api import FakeAPI

    fake = FakeAPI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def tiny_clip():
    """One CLIP server (the tiny model) shared by every test of this worker that only needs
    embeddings (its import of torch and open_clip costs seconds per start); tests of the CLIP
    server itself, its flags or its security start their own."""
    from tests.procs import server_process

    with server_process("clip_server.cli", ["--model", "tiny", "--log-level", "WARNING"]) as (
            target, _):
        yield target


# The longest test files (measured: `pytest --durations=0`), started first so that no worker
# is left finishing a long file alone at the end (longest-first scheduling of pytest-xdist's
# file units). Only the order changes; a stale list costs time, never a test.
LONGEST_FIRST = ["test_bad_requests.py", "test_reference_llava.py", "test_remote_run.py",
                 "test_reports.py", "test_model_server_scoring.py", "test_make_local.py",
                 "test_security.py", "test_l3_grpc.py", "test_clip_backpressure.py",
                 "test_presets_grpc.py", "test_raw_prompt.py", "test_prefix_sharing.py",
                 "test_import_rules.py", "test_parity.py", "test_batched_generation.py"]


def pytest_collection_modifyitems(items):
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept
