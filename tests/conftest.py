"""Test environment: isolated Prefect home, no telemetry, a shared local Ray.

Environment variables are set at import time so that Prefect and Ray read them
before their first import anywhere in the suite.
"""
import os
import tempfile

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-home-"))
os.environ["DO_NOT_TRACK"] = "1"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["ROBERTA_RAY_DASHBOARD"] = "0"  # every Ray a test starts, in-process or CLI
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# Keep torch from oversubscribing the 2-core CI box alongside Ray workers.
os.environ.setdefault("OMP_NUM_THREADS", "2")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SAMPLE_WARC = REPO / "corpus" / "sample" / "sample.warc.gz"


# What `flows.cli.main` sets in os.environ when a test calls it in-process.
CLI_ENV = ("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "ROBERTA_RAY_LOG_TO_DRIVER")


@pytest.fixture(autouse=True)
def _cli_env_stays_in_its_test():
    """An in-process `main()` quiets Prefect's console through os.environ; left there, it
    reached every later test's subprocesses (a `--verbose` CLI run then printed nothing)."""
    saved = {k: os.environ.get(k) for k in CLI_ENV}
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def sample_warc() -> Path:
    assert SAMPLE_WARC.exists(), "run `make sample` to regenerate the bundled crawl"
    return SAMPLE_WARC


@pytest.fixture(scope="session")
def ray_local():
    """One real local Ray instance for the whole session, dashboard off, shut down after."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def one_thread():
    """One intra-op torch thread: tiny models on a busy 2-core box run 3-10x faster on one
    thread than with two spinning OpenMP threads."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
