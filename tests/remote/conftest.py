"""Fixtures of the remote-FM suite (fm.kind = "remote" and `dne serve`): tests/pylib on sys.path,
and factories that start the independent reference OIP server or `dne serve` on a free port
(port 0; the URL comes from the first stdout line) and stop every server they started at teardown."""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pylib"))
import pytest  # noqa: E402

from dne_testing import dne_bin  # noqa: E402,F401  (fixture)
from oip_reference_server import ServerProcess, start_reference_server  # noqa: E402

SERVE_URL = r"listening on (http://[0-9.]+:\d+)"


def start_dne_serve(dne_bin, config, *args, env=None, timeout=60.0):
    """`dne serve --config CONFIG ARGS` (port 0 unless ARGS name one): a ServerProcess once it listens.
    env: extra environment variables."""
    full_env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", **(env or {}))
    port = [] if "--port" in map(str, args) else ["--port", "0"]
    return ServerProcess([dne_bin, "serve", "--config", config, *port, *args], SERVE_URL, env=full_env,
                         timeout=timeout)


class _Started:
    """A factory that remembers what it started, for teardown."""

    def __init__(self, start):
        self._start, self.servers = start, []

    def __call__(self, *args, **kwargs):
        server = self._start(*args, **kwargs)
        self.servers.append(server)
        return server

    def stop_all(self):
        for server in self.servers:
            server.stop()


@pytest.fixture
def reference_server():
    """reference_server(image_size=32, dim=12, **start_reference_server options) -> ServerProcess."""
    def start(image_size=32, dim=12, **kwargs):
        return start_reference_server(image_size, dim, **kwargs)
    started = _Started(start)
    yield started
    started.stop_all()


@pytest.fixture
def dne_serve(dne_bin):
    """dne_serve(config, *serve args, env=None) -> ServerProcess, stopped with SIGTERM at teardown."""
    started = _Started(lambda config, *args, env=None: start_dne_serve(dne_bin, config, *args, env=env))
    yield started
    started.stop_all()


@pytest.fixture(scope="module")
def dne_serve_shared(dne_bin):
    """As dne_serve, for servers shared by the tests of a module."""
    started = _Started(lambda config, *args, env=None: start_dne_serve(dne_bin, config, *args, env=env))
    yield started
    started.stop_all()
