import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="module")
def api():
    """The OpenAI-compatible HTTP stand-in on loopback (tests/test_remote_api.FakeAPI), one per
    test module; tests `reset()` it to script its faults."""
    from tests.test_remote_api import FakeAPI

    fake = FakeAPI().start()
    yield fake
    fake.stop()
