"""Real servers for tests, each in a session of its own and ended by its pid."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mlflow(folder: Path, port: int, backend: str | None = None) -> subprocess.Popen[bytes]:
    """`mlflow server` on 127.0.0.1:port over ``backend`` (default: folder/server.db), in a
    session of its own; returns once /health answers. One worker process, not the default 4:
    a test's server answers one sweep, and each worker costs a start of MLflow's server
    (measured on 2 cores: healthy after 8 s and 19 core-s with one, 16 s and 34 core-s with
    four)."""
    mlflow = Path(sys.executable).parent / "mlflow"
    argv = [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    argv += ["--backend-store-uri", backend or f"sqlite:///{folder / 'server.db'}"]
    argv += ["--artifacts-destination", str(folder / "artifacts")]
    log_file = folder / "mlflow-server.log"
    with log_file.open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_mlflow(proc)
                raise RuntimeError(f"no mlflow server:\n{log_file.read_text()}") from None
            time.sleep(0.5)


def stop_mlflow(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, SIGKILL after 30 s, then its helpers too."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # helpers (uvicorn workers) of its group


@contextlib.contextmanager
def serve_mlflow(folder: Path, backend: str | None = None) -> Iterator[str]:
    """A running server's URL for the ``with`` block; stopped afterwards."""
    port = free_port()
    proc = start_mlflow(folder, port, backend)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_mlflow(proc)
