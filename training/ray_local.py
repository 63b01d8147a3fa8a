"""The Ray instance the project starts on this machine, and what every driver sets first.

A local Ray (no `--address`) is held to loopback: its node IP is 127.0.0.1, so Ray binds its
GCS, raylet, object manager, dashboard, agents and metrics endpoint to 127.0.0.1. Ray 2.60 has
one switch for that, `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` (it stops Ray from rewriting
127.0.0.1 to the machine's routable address); a driver that attaches to a cluster on
127.0.0.1 (infra/ray/local_cluster.sh, `ray.cluster_utils.Cluster`) needs it too. The
dashboard listens on 127.0.0.1:8265 (or the next free port) and the Prometheus metrics on a
fixed port, 8080 unless taken (`ROBERTA_RAY_METRICS_PORT` picks another), so a scrape config
or a browser knows where to look. Ray's token authentication (on by default for a Ray that
`ray.init()` starts) guards the dashboard and the control plane, not the metrics endpoint.

Every driver turns on Ray Train's state tracking, so the run shows in the dashboard's Train
API (`/api/train/v2/runs/v1`) with its workers, status and attempts.
"""
from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlsplit

LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
STATE_TRACKING = "RAY_TRAIN_ENABLE_STATE_TRACKING"
# The state actor polls the dashboard every 30 s to mark dead runs; without a dashboard it
# only logs connection errors.
STATE_RECONCILIATION = "RAY_TRAIN_ENABLE_STATE_ACTOR_RECONCILIATION"
DASHBOARD_ENV = "ROBERTA_RAY_DASHBOARD"              # "0": no dashboard (the tests)
DASHBOARD_PORT_ENV = "ROBERTA_RAY_DASHBOARD_PORT"    # default: 8265 or the next free port
METRICS_PORT_ENV = "ROBERTA_RAY_METRICS_PORT"
METRICS_PORT = 8080
LOOPBACK = "127.0.0.1"
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def cluster_address(address: str | None) -> str | None:
    """The cluster a driver attaches to: `address`, else `RAY_ADDRESS` (which `ray.init()`
    honours too); None: start a local Ray."""
    return address or os.environ.get("RAY_ADDRESS") or None


def is_loopback_address(address: str) -> bool:
    """Whether a Ray address (`host:port`, `ray://host:port`, `http://...`) is on loopback."""
    host = urlsplit(address if "://" in address else f"ray://{address}").hostname or ""
    return host in _LOOPBACK_HOSTS


def prepare_driver(address: str | None, dashboard: bool = True) -> None:
    """What this process sets before `ray.init`: loopback for a local Ray or a loopback
    cluster, and Ray Train state tracking (read by the driver when `fit()` starts)."""
    target = cluster_address(address)
    if target is None or is_loopback_address(target):
        hold_to_loopback()
    track_train_state(dashboard=target is not None or dashboard)


def track_train_state(dashboard: bool = True) -> None:
    """Ray Train state tracking on, unless the user turned it off: the driver reads it when
    `fit()` starts. Without a dashboard, no reconciliation against it."""
    os.environ.setdefault(STATE_TRACKING, "1")
    if not dashboard:
        os.environ.setdefault(STATE_RECONCILIATION, "0")


def hold_to_loopback() -> None:
    """Keep Ray's node IP at 127.0.0.1 in this process and the Ray processes it starts. Ray
    reads the switch when it is imported; if it already was, its constant is set as well."""
    os.environ[LOOPBACK_SWITCH] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False


def dashboard_wanted() -> bool:
    return os.environ.get(DASHBOARD_ENV, "1") != "0"


def local_init_kwargs(**overrides) -> dict:
    """`ray.init` keyword arguments for a local Ray: the dashboard on loopback (unless
    ROBERTA_RAY_DASHBOARD=0) and the metrics endpoint on its fixed port; `overrides` win."""
    kw: dict = {"include_dashboard": dashboard_wanted(), "dashboard_host": LOOPBACK,
                "_metrics_export_port": metrics_port()}
    if os.environ.get(DASHBOARD_PORT_ENV):
        kw["dashboard_port"] = int(os.environ[DASHBOARD_PORT_ENV])
    kw.update(overrides)
    return kw


def metrics_port() -> int:
    """ROBERTA_RAY_METRICS_PORT, else 8080, else (taken, e.g. by a second local run) a free
    port: Ray would otherwise start without its metrics endpoint."""
    if os.environ.get(METRICS_PORT_ENV):
        return int(os.environ[METRICS_PORT_ENV])
    return METRICS_PORT if _port_free(METRICS_PORT) else _free_port()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def where_to_watch(context) -> str:
    """One line for the logs: the dashboard (and its token), the metrics endpoint."""
    info = getattr(context, "address_info", {}) or {}
    parts = []
    if getattr(context, "dashboard_url", None):
        token = (" (token: `ray get-auth-token`)"
                 if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else "")
        parts.append(f"Ray dashboard http://{context.dashboard_url}{token}, Train runs at "
                     f"/api/train/v2/runs/v1")
    if info.get("metrics_export_port"):
        parts.append(f"Prometheus metrics http://{LOOPBACK}:{info['metrics_export_port']}"
                     "/metrics")
    return "; ".join(parts) or "Ray started without dashboard"


__all__ = ["prepare_driver", "hold_to_loopback", "track_train_state", "local_init_kwargs",
           "cluster_address", "is_loopback_address", "metrics_port", "where_to_watch",
           "dashboard_wanted"]
