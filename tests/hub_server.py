"""A loopback Hugging Face Hub for tests that must not use the network, answering as the real Hub does today.

What huggingface_hub 2.x reads (``file_download.get_hf_file_metadata``, ``hf_hub_download``) is what this serves:

- ``HEAD``/``GET /{org}/{repo}/resolve/{revision}/{file}``, the revision ``main``, a tag or the commit hash (each repo
  has its own commit):
  - a small git-stored file (``config.json``): 200 with the body, ``ETag`` its git blob sha1, ``X-Repo-Commit``;
  - an LFS file (``.safetensors``, ``.pth``, ``.bin``): a 302 to a storage host on another origin, so the client stops
    there and reads the file's metadata off the redirect: ``X-Linked-Etag`` (the file's sha256, the name its repo
    blob gets), ``X-Linked-Size``, ``X-Repo-Commit``, and for a Xet-stored file (``xet=True``, how the Hub stores
    model files today) ``X-Xet-Hash`` and a ``Link: <...>; rel="xet-auth"`` to the token route;
  - 404 with the Hub's ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``).
- ``GET /api/models/{org}/{repo}/xet-read-token/{commit}``: ``X-Xet-Cas-Url`` (the storage host), an access token and
  its expiry, as the Hub hands them to the Xet client.
- On the storage host: ``GET /lfs/{sha256}`` (the signed URL of an LFS file; ``Range`` resumes) and
  ``GET /xet/{xet hash}`` (the bytes the Xet client reassembles from its chunks). ``/files/{name}`` on the Hub origin
  serves plain URLs (torchvision's ``.pth``).

hf_xet's chunk protocol is not spoken: :func:`use_xet_stand_in` replaces only hf_xet's download session with one
that fetches ``/xet/{hash}`` from the storage host. Everything around it is huggingface_hub's own code: the token
refresh, the download into a temporary file, and the move of the blob into the cache-wide shared store
(``<cache>/blobs/<xx>/<xet hash>``, with the repo's ``blobs/<sha256>`` a symlink to it).

``fault`` makes it misbehave: ``"500"`` (every Hub answer), ``"drop"`` (the storage host closes the connection
mid-body), ``"truncate"`` (sends fewer bytes than announced) or ``"corrupt"`` (other bytes under the announced hash).
``delay`` holds every answer back that many seconds; ``stall()`` holds every answer back until ``release()`` (or
``stop()``): a server that accepts connections and never answers, however slow the machine.
"""

import contextlib
import hashlib
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

LFS_SUFFIXES = (".safetensors", ".pth", ".bin")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def xet_hash(data: bytes) -> str:
    """A stand-in for a file's Xet hash: 64 hex characters, content-addressed, and not its sha256 (as the real one)."""
    return hashlib.sha256(b"xet merkle hash\0" + data).hexdigest()


def repo_commit(repo_id: str) -> str:
    return hashlib.sha1(repo_id.encode()).hexdigest()


class HubServer:
    def __init__(self, xet: bool = True) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.tags: dict[str, set[str]] = {}
        self.files: dict[str, bytes] = {}
        self.xet = xet
        self.fault: str | None = None
        self.delay = 0.0
        self._answering = threading.Event()
        self._answering.set()
        self.requests: list[tuple[str, str]] = []
        self._servers: list[ThreadingHTTPServer] = []

    @property
    def url(self) -> str:
        host, port = self._servers[0].server_address[:2]
        return f"http://{host}:{port}"

    @property
    def storage_url(self) -> str:
        host, port = self._servers[1].server_address[:2]
        return f"http://{host}:{port}"

    def add_repo(self, repo_id: str, files: dict[str, bytes], tags: tuple[str, ...] = ()) -> None:
        self.repos[repo_id] = dict(files)
        self.tags[repo_id] = set(tags)

    def commit(self, repo_id: str) -> str:
        return repo_commit(repo_id)

    def stall(self) -> None:
        """Hold every answer back until ``release()``."""
        self._answering.clear()

    def release(self) -> None:
        self._answering.set()

    def storage_gets(self) -> int:
        """How many file bodies the storage host sent (LFS downloads and Xet reconstructions)."""
        return sum(1 for method, path in self.requests if method == "GET" and path.startswith(("/lfs/", "/xet/")))

    def _by_hash(self, kind: str, digest: str) -> bytes | None:
        for files in self.repos.values():
            for data in files.values():
                if (hashlib.sha256(data).hexdigest() if kind == "lfs" else xet_hash(data)) == digest:
                    return data
        return None

    def _resolve(self, path: str) -> tuple[int, bytes | None, dict[str, str]]:
        """The Hub origin's answer: status, body (None: no body) and headers."""
        if path.startswith("/files/"):
            data = self.files.get(path[len("/files/") :])
            return (200, data, {}) if data is not None else (404, None, {})
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "xet-read-token":
            if "/".join(parts[2:4]) not in self.repos:
                return 404, None, {"X-Error-Code": "RepoNotFound"}
            return (
                200,
                b"{}",
                {
                    "X-Xet-Cas-Url": self.storage_url,
                    "X-Xet-Access-Token": "loopback-token",
                    "X-Xet-Token-Expiration": str(int(time.time()) + 3600),
                },
            )
        if len(parts) < 5 or parts[2] != "resolve":
            return 404, None, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}
        repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        if repo_id not in self.repos:
            return 404, None, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}
        commit = self.commit(repo_id)
        if revision not in {"main", commit, *self.tags[repo_id]}:
            return 404, None, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"}
        data = self.repos[repo_id].get(filename)
        if data is None:
            return 404, None, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}
        if not filename.endswith(LFS_SUFFIXES):
            return 200, data, {"X-Repo-Commit": commit, "ETag": f'"{git_blob_sha1(data)}"'}
        sha256 = hashlib.sha256(data).hexdigest()
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(data)}\n".encode()
        headers = {
            "X-Repo-Commit": commit,
            "ETag": f'"{git_blob_sha1(pointer)}"',
            "X-Linked-Etag": f'"{sha256}"',
            "X-Linked-Size": str(len(data)),
            "Location": f"{self.storage_url}/lfs/{sha256}",
        }
        if self.xet:
            headers["X-Xet-Hash"] = xet_hash(data)
            headers["Link"] = f'<{self.url}/api/models/{repo_id}/xet-read-token/{commit}>; rel="xet-auth"'
        return 302, b"", headers

    def start(self) -> "HubServer":
        hub = self

        class Handler(BaseHTTPRequestHandler):
            storage = False

            def log_message(self, *args):  # keep test output clean
                pass

            def handle(self):
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up waiting
                    super().handle()

            def _answer(self, with_body: bool) -> None:
                path = self.path.split("?")[0]
                hub.requests.append((self.command, path))
                if hub.delay:
                    time.sleep(hub.delay)
                hub._answering.wait()
                if hub.fault == "500" and not self.storage:
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.storage:
                    kind, _, digest = path.strip("/").partition("/")
                    data = hub._by_hash(kind, digest) if kind in ("lfs", "xet") else None
                    status, headers = (200, {}) if data is not None else (404, {})
                else:
                    status, data, headers = hub._resolve(path)
                body = data or b""
                start = 0
                requested = self.headers.get("Range", "")
                if status == 200 and requested.startswith("bytes=") and requested.endswith("-"):
                    start = int(requested[len("bytes=") : -1])  # resuming, as the Hub's storage allows
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body) - start))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if not with_body or not body:
                    return
                if self.storage and hub.fault == "corrupt":
                    body = bytes(b ^ 0xFF for b in body[:64]) + body[64:]
                if self.storage and hub.fault in ("drop", "truncate"):
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

        class StorageHandler(Handler):
            storage = True

        self._servers = [ThreadingHTTPServer(("127.0.0.1", 0), h) for h in (Handler, StorageHandler)]
        for server in self._servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release()  # stalled answers end, so their threads do too
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []


class _XetDownloadGroup:
    """What hf_xet's download group does for huggingface_hub, over plain HTTP: fetch a file by its Xet hash."""

    def __init__(self, endpoint: str, token: str, **_: object) -> None:
        self.endpoint, self.token = endpoint, token

    def __enter__(self) -> "_XetDownloadGroup":
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def start_download_file(self, file_info, destination: str) -> None:
        request = urllib.request.Request(
            f"{self.endpoint}/xet/{file_info.hash}", headers={"Authorization": f"Bearer {self.token}"}
        )
        from huggingface_hub import constants

        written = 0
        timeout = constants.HF_HUB_DOWNLOAD_TIMEOUT  # a silent storage host fails the download, as with hf_xet
        with urllib.request.urlopen(request, timeout=timeout) as response, open(destination, "wb") as out:
            # written as it arrives, as hf_xet does; http.client raises IncompleteRead on a body cut short
            for block in iter(lambda: response.read(1 << 20), b""):
                written += out.write(block)
        if file_info.file_size is not None and written != file_info.file_size:
            raise RuntimeError(f"Xet download of {file_info.hash}: {written} of {file_info.file_size} bytes")


class _XetSession:
    def new_file_download_group(self, **kwargs: object) -> _XetDownloadGroup:
        return _XetDownloadGroup(**kwargs)


def client_shares_xet_blobs() -> bool:
    """Whether the installed huggingface_hub downloads with Xet into its shared blob store (2.x); older ones ignore
    the Xet headers and download plain LFS."""
    import importlib.util

    return importlib.util.find_spec("huggingface_hub.utils._shared_blobs") is not None


def use_xet_stand_in(monkeypatch=None) -> None:
    """Make huggingface_hub's Xet downloads fetch from the loopback storage host instead of hf_xet's CAS client."""
    try:
        from huggingface_hub.utils import _xet
    except ImportError:
        return  # a huggingface_hub without Xet support: nothing to replace
    if not hasattr(_xet, "get_xet_session"):
        return
    if monkeypatch is not None:
        monkeypatch.setattr(_xet, "get_xet_session", _XetSession)
        # huggingface_hub caches the storage host per token route; a later test's Hub may reuse this one's port
        monkeypatch.setattr(_xet, "XET_CONNECTION_INFO_CACHE", {}, raising=False)
    else:
        _xet.get_xet_session = _XetSession
