"""A real Label Studio server for tests and benchmarks, and the REST calls a user's scripts (or
its UI) make: create a project, add local-files storage, import tasks, annotate, export.

Label Studio lives in its own virtual environment (``.venv-ls``, made by ``.ci/run``), so its
pins never meet alsys's; ``$ALSYS_LABEL_STUDIO`` may name another ``label-studio`` executable.
The server runs in a session of its own on 127.0.0.1 with its data in a temporary folder, and
is stopped by its process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.servers import free_port

REPO = Path(__file__).resolve().parent.parent
# Made afresh for each test session: the server listens on 127.0.0.1 only, for minutes.
TOKEN = secrets.token_hex(20)
PASSWORD = secrets.token_urlsafe(16)
USER = "tester@example.com"


def label_studio_executable() -> Path:
    return Path(os.environ.get("ALSYS_LABEL_STUDIO") or REPO / ".venv-ls" / "bin" / "label-studio")


@dataclass
class LabelStudio:
    """A running server: its URL, process, the seconds it took to answer, and its log."""

    url: str
    process: subprocess.Popen[bytes]
    start_seconds: float
    log: Path

    def call(self, method: str, path: str, body: Any = None, raw: bool = False) -> Any:
        """One REST call with the user's token; the JSON answer (or bytes when ``raw``)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Token {TOKEN}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:2000]
            raise AssertionError(f"{method} {path}: HTTP {error.code}: {detail}") from None
        return payload if raw else json.loads(payload or b"null")

    def get_status(self, path: str) -> tuple[int, bytes]:
        """The status and body of a GET (an image URL), without raising on 404."""
        request = urllib.request.Request(self.url + path)
        request.add_header("Authorization", f"Token {TOKEN}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, b""

    def create_project(self, title: str, config: str) -> int:
        project = self.call("POST", "/api/projects", {"title": title, "label_config": config})
        return int(project["id"])

    def add_local_storage(self, project: int, folder: Path) -> None:
        """A Local Files source storage for the images folder (tasks imported, not synced)."""
        body = {"project": project, "path": str(folder), "title": folder.name}
        self.call("POST", "/api/storages/localfiles", {**body, "use_blob_urls": False})

    def import_tasks(self, project: int, tasks_file: Path) -> int:
        tasks = json.loads(tasks_file.read_text(encoding="utf-8"))
        answer = self.call("POST", f"/api/projects/{project}/import", tasks)
        return int(answer["task_count"])

    def tasks(self, project: int) -> list[dict[str, Any]]:
        answer = self.call("GET", f"/api/tasks?project={project}&page_size=1000&fields=all")
        tasks: list[dict[str, Any]] = answer["tasks"] if isinstance(answer, dict) else answer
        return tasks

    def annotate(self, task: int, label: str) -> None:
        result = {"from_name": "label", "to_name": "image", "type": "choices"}
        body = {"result": [{**result, "value": {"choices": [label]}}]}
        self.call("POST", f"/api/tasks/{task}/annotations", body)

    def export(self, project: int, kind: str, all_tasks: bool) -> bytes:
        """The project's export in ``kind`` (JSON, JSON_MIN, CSV, TSV), as the UI downloads it."""
        query = f"exportType={kind}&download_all_tasks={'true' if all_tasks else 'false'}"
        payload: bytes = self.call("GET", f"/api/projects/{project}/export?{query}", raw=True)
        return payload


def start(folder: Path, document_root: Path, timeout: float = 300) -> LabelStudio:
    """``label-studio start`` on 127.0.0.1 serving local files below ``document_root``, with
    a user and a legacy API token made on the command line; returns once /health answers."""
    port = free_port()
    data = folder / "label-studio-data"
    data.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),  # nothing under the user's home
        "LATEST_VERSION_CHECK": "false",  # no call home: the machine may have no network
        "COLLECT_ANALYTICS": "false",
        "PYTHONUNBUFFERED": "1",
    }
    argv = [str(label_studio_executable()), "start", "--no-browser", "--data-dir", str(data)]
    argv += ["--internal-host", "127.0.0.1", "--port", str(port)]
    argv += ["--username", USER, "--password", PASSWORD, "--user-token", TOKEN]
    argv += ["--enable-legacy-api-token"]
    log = folder / "label-studio.log"
    began = time.monotonic()
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = LabelStudio(f"http://127.0.0.1:{port}", process, 0.0, log)
    while True:
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() - began > timeout:
                stop(server)
                raise RuntimeError(
                    f"Label Studio did not start:\n{log.read_text()[-3000:]}"
                ) from None
            time.sleep(0.5)
    server.start_seconds = time.monotonic() - began
    return server


def stop(server: LabelStudio) -> None:
    """SIGTERM to the server's process group, SIGKILL after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
    time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)  # anything of its group still there


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def serve(folder: Path, document_root: Path) -> Iterator[LabelStudio]:
    server = start(folder, document_root)
    try:
        yield server
    finally:
        stop(server)
