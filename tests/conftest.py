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
