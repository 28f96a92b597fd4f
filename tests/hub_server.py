"""A loopback HTTP server that speaks the Hugging Face Hub's file protocol, for tests that must not use the network.

It answers ``HEAD``/``GET`` on ``/{org}/{repo}/resolve/{revision}/{file}`` with ``X-Repo-Commit``, ``ETag``
(the sha256 for weight files, as the Hub does for LFS files) and ``Content-Length``, 404 with the Hub's error
codes for a missing repo or file, and serves plain files (a torchvision-style ``.pth`` URL) at ``/files/{name}``.
``fault`` makes it misbehave: ``"500"``, ``"drop"`` (closes the connection mid-body), ``"truncate"`` (sends fewer
bytes than announced) or ``"corrupt"`` (serves other bytes under the announced hash). ``delay`` holds every answer
back that many seconds (a slow server, or one that overlapping clients reach at the same time).
"""

import contextlib
import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_SUFFIXES = (".safetensors", ".pth", ".bin")


class HubServer:
    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.files: dict[str, bytes] = {}
        self.fault: str | None = None
        self.delay = 0.0
        self.requests: list[tuple[str, str]] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add_repo(self, repo_id: str, files: dict[str, bytes]) -> None:
        self.repos[repo_id] = dict(files)

    def start(self) -> "HubServer":
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def handle(self):
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up waiting
                    super().handle()

            def _lookup(self) -> tuple[int, bytes | None, dict[str, str]]:
                path = self.path.split("?")[0]
                if path.startswith("/files/"):
                    data = hub.files.get(path[len("/files/") :])
                    return (200, data, {}) if data is not None else (404, None, {})
                parts = path.strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return 404, None, {"X-Error-Code": "RepoNotFound"}
                repo_id, filename = "/".join(parts[:2]), "/".join(parts[4:])
                if repo_id not in hub.repos:
                    return 404, None, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}
                data = hub.repos[repo_id].get(filename)
                if data is None:
                    return 404, None, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"}
                if filename.endswith(LFS_SUFFIXES):
                    etag = hashlib.sha256(data).hexdigest()
                else:
                    etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                return 200, data, {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"'}

            def _answer(self, with_body: bool) -> None:
                hub.requests.append((self.command, self.path))
                if hub.delay:
                    time.sleep(hub.delay)
                if hub.fault == "500":
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, data, headers = self._lookup()
                body = data or b""
                start = 0
                requested = self.headers.get("Range", "")
                if data is not None and requested.startswith("bytes=") and requested.endswith("-"):
                    start = int(requested[len("bytes=") : -1])  # resuming, as the Hub's storage allows
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body) - start))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if not with_body or data is None:
                    return
                if hub.fault == "corrupt":
                    body = bytes(b ^ 0xFF for b in body[:64]) + body[64:]
                if hub.fault in ("drop", "truncate"):
                    # the server never gets past the middle of the file, however often the client resumes
                    self.wfile.write(body[start : max(start, len(body) // 2)])
                    self.wfile.flush()
                    self.close_connection = True
                    if hub.fault == "drop":
                        self.connection.shutdown(2)
                    return
                self.wfile.write(body[start:])

            def do_HEAD(self):
                self._answer(with_body=False)

            def do_GET(self):
                self._answer(with_body=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
