"""Settings every test shares: no test may reach a real AWS account."""

import os

import pytest

# Fake credentials and a fixed region: boto3 clients in tests only ever talk to local servers.
for key, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "18,20,22",
}.items():
    os.environ[key] = value
os.environ.pop("AWS_PROFILE", None)


def pytest_sessionstart(session) -> None:
    """Refuse to start, in plain words, where the local llama.cpp build cannot run."""
    from tests.cpu_check import CHECKED, check

    if os.environ.get(CHECKED) == "1":
        return

    problem = check()
    if problem:
        pytest.exit(problem, returncode=3)


@pytest.fixture(scope="session")
def assemblies(tmp_path_factory: pytest.TempPathFactory):
    """`assemblies.get(overrides)`: the twin's stage, synthesized with those settings."""
    from tests.twin_assembly import Assemblies

    return Assemblies(tmp_path_factory.mktemp("assemblies"))


# Stage throttling and the rate limit are raised so the many tests sharing the session's
# twin never trip them; their refusals are tested on a twin of their own.
ROOMY = {"throttleRateLimit": 1000, "throttleBurstLimit": 2000, "messagesPerMinute": 100000}


@pytest.fixture(scope="session")
def record_dir(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("records")


@pytest.fixture(scope="session")
def cloud(record_dir, assemblies):
    """The offline twin of the Dev stage, started once per session on a free port and
    shared by the offline and terminal tests."""
    import logging

    from offline.cloud import OfflineCloud
    from tests.offline.twin_helpers import LOCAL_ENVIRONMENT, sample_functions
    from tests.twin_assembly import TWIN_STAGE

    logging.getLogger("offline").setLevel(logging.INFO)
    twin = OfflineCloud(
        assembly=assemblies.get(ROOMY),
        stage=TWIN_STAGE,
        extra_functions=sample_functions(),
        environment={**LOCAL_ENVIRONMENT, "RECORD_DIR": str(record_dir)},
    )
    twin.start()
    try:
        yield twin
    finally:
        twin.stop()
