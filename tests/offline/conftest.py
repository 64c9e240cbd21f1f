"""The offline twin of the Dev stage, started once per session on a free port."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from offline.cloud import OfflineCloud
from tests.offline.twin_helpers import LOCAL_ENVIRONMENT, sample_functions
from tests.twin_assembly import TWIN_STAGE

# Stage throttling and the per-connection rate limit are raised so the many tests sharing
# this twin never trip them; their refusals are tested on a twin of their own.
ROOMY = {"throttleRateLimit": 1000, "throttleBurstLimit": 2000, "messagesPerMinute": 100000}


@pytest.fixture(scope="session")
def record_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("records")


@pytest.fixture(scope="session")
def cloud(record_dir: Path, assemblies) -> Iterator[OfflineCloud]:
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


@pytest.fixture(autouse=True)
def _reset_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "cloud" in request.fixturenames:
        request.getfixturevalue("cloud").faults.reset()
