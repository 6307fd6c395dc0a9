"""A local HTTP server on 127.0.0.1 that serves the real data files under the manifest's URL
paths, as a mirror (``<base>/<host>/<path>``), for download tests without network.

Files are read in place from a data root (never copied): a direct source serves the file's bytes;
an archive source (``extract``) serves a zip/tar built in memory from the files that name it; a
hub conversion serves the hub's layout rebuilt with ``datasets`` (e.g. MedMCQA's parquet). It
honours ``Range: bytes=N-`` (206), and can drop a host (close the connection unanswered), cut a
body short, flip a byte, or send slowly, per path.
"""

from __future__ import annotations

import io
import json
import socket
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from medssr_nemo.data.convert import MEDMCQA_COLUMNS
from medssr_nemo.data.manifest import Manifest


def mirror_path(url: str) -> str:
    parts = urlsplit(url)
    return f"/{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")


def medmcqa_hub_parquet(jsonl: bytes) -> bytes:
    """MedMCQA's JSONL as the hub stores it: parquet written by ``datasets``, its columns in the
    hub's order and ``cop`` a 0-based ClassLabel."""
    import datasets

    rows = [json.loads(line) for line in jsonl.splitlines() if line.strip()]
    features = datasets.Features({
        "id": datasets.Value("string"), "question": datasets.Value("string"),
        **{k: datasets.Value("string") for k in ("opa", "opb", "opc", "opd")},
        "cop": datasets.ClassLabel(names=["a", "b", "c", "d"]), "choice_type": datasets.Value("string"),
        "exp": datasets.Value("string"), "subject_name": datasets.Value("string"),
        "topic_name": datasets.Value("string")})
    assert set(features) == set(MEDMCQA_COLUMNS)
    hub_rows = [{**{k: r[k] for k in features if k != "cop"}, "cop": r["cop"] - 1} for r in rows]
    out = io.BytesIO()
    datasets.Dataset.from_list(hub_rows, features=features).to_parquet(out)
    return out.getvalue()


REVERSE_CONVERSIONS: dict[str, Callable[[bytes], bytes]] = {"medmcqa_parquet_to_jsonl": medmcqa_hub_parquet}


def _archive(url: str, members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    if url.endswith(".tar"):
        with tarfile.open(fileobj=out, mode="w") as tf:
            for name, data in sorted(members.items()):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    else:
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in sorted(members.items()):
                zf.writestr(name, data)
    return out.getvalue()


def build_routes(manifest: Manifest, data_root: Path) -> dict[str, Callable[[], bytes]]:
    """mirror path -> bytes provider, for every source the data root can back."""
    routes: dict[str, Callable[[], bytes]] = {}
    archives: dict[str, dict[str, Path]] = {}
    for entry in manifest.files:
        path = data_root / entry.path
        if not path.is_file():
            continue
        for source in entry.sources:
            url = source.resolved_url()
            if source.extract:
                member = source.extract if "/" in source.extract else f"data/{source.extract}"
                archives.setdefault(url, {})[member] = path
            elif source.convert:
                reverse = REVERSE_CONVERSIONS[source.convert]
                routes[mirror_path(url)] = (lambda p=path, f=reverse: f(p.read_bytes()))
            else:
                routes[mirror_path(url)] = (lambda p=path: p.read_bytes())
    for url, members in archives.items():
        routes[mirror_path(url)] = (lambda u=url, m=members: _archive(u, {k: v.read_bytes() for k, v in m.items()}))
    return routes


class DataServer:
    """``with DataServer(manifest, root) as server:`` then ``server.base`` is the mirror URL."""

    def __init__(self, manifest: Manifest, data_root: Path, extra: dict[str, bytes] | None = None) -> None:
        self.routes = build_routes(manifest, data_root)
        for path, data in (extra or {}).items():
            self.routes[path] = (lambda d=data: d)
        self.blocked_hosts: set[str] = set()
        self.corrupt: set[str] = set()            # mirror paths served with one byte flipped
        self.cut_once: dict[str, int] = {}        # mirror path -> bytes sent before dropping (first request)
        self.delay_per_chunk: dict[str, float] = {}
        self.no_range: set[str] = set()           # mirror paths answered 200 (whole body) to a Range request
        self.requests: list[tuple[str, str | None]] = []   # (path, Range header)
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def body(self, path: str) -> bytes | None:
        with self._lock:
            if path not in self._cache and path in self.routes:
                self._cache[path] = self.routes[path]()
            data = self._cache.get(path)
        if data is not None and path in self.corrupt:
            data = bytes([data[0] ^ 0x01]) + data[1:]
        return data

    def __enter__(self) -> "DataServer":
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                owner.requests.append((self.path, self.headers.get("Range")))
                host = self.path.lstrip("/").split("/", 1)[0]
                if host in owner.blocked_hosts:        # unreachable: no answer at all
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                data = owner.body(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start, status = 0, 200
                ranged = self.headers.get("Range")
                if ranged and ranged.startswith("bytes=") and ranged.endswith("-") and self.path not in owner.no_range:
                    start = int(ranged[6:-1])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    status = 206
                self.send_response(status)
                self.send_header("Content-Length", str(len(data) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                cut = owner.cut_once.pop(self.path, None)
                delay = owner.delay_per_chunk.get(self.path, 0.0)
                body = data[start:] if cut is None else data[start:start + cut]
                try:
                    for i in range(0, len(body), 16384):
                        self.wfile.write(body[i:i + 16384])
                        if delay:
                            self.wfile.flush()
                            time.sleep(delay)
                except (BrokenPipeError, ConnectionResetError):
                    return
                if cut is not None:
                    self.close_connection = True
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
