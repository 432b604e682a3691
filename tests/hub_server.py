"""A small local Hub-compatible HTTP server for tests: just what huggingface_hub and datasets send.

Classic LFS only (clients must set ``HF_HUB_DISABLE_XET=1``), 127.0.0.1 only, state in memory. It keeps a
request log so tests can assert what a client did, and it can inject failures (429/5xx) or hold a
request until released (to kill a client mid-push). REFERENCE.md section 6 lists the routes.

Example (in-process):
    >>> hub = HubServer(tokens={"hf_write": "write", "hf_read": "read"}).start()
    >>> hub.url.startswith("http://127.0.0.1:")
    True
    >>> hub.stop()

As a subprocess: ``python tests/hub_server.py --port 0 --token hf_write:write`` prints its URL.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

URL_PREFIXES = {"dataset": "datasets/", "space": "spaces/", "model": ""}
LFS_EXTENSIONS = (".parquet", ".arrow", ".tar", ".zip", ".gz", ".png", ".jpg", ".jpeg", ".webp", ".bin", ".npy")
LFS_MIN_SIZE = 10 * 1024 * 1024
GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.tar filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Blob:
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.data)}\n".encode()

    @property
    def oid(self) -> str:
        """The git blob id, of the pointer file for LFS files (as git stores them)."""
        return git_blob_sha1(self.pointer if self.lfs else self.data)


@dataclass
class Commit:
    oid: str
    title: str
    parent: str | None
    files: dict[str, Blob]
    date: str = field(default_factory=_now)


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    gated: Any = False
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        oid = self.branches.get(revision, revision)
        return self.commits.get(oid)

    def add_commit(self, branch: str, title: str, files: dict[str, Blob]) -> Commit:
        parent = self.branches.get(branch)
        seed = f"{self.repo_id}{branch}{parent}{title}{len(self.commits)}{time.time()}"
        oid = hashlib.sha1(seed.encode()).hexdigest()
        commit = Commit(oid, title, parent, files)
        self.commits[oid] = commit
        self.branches[branch] = oid
        return commit


@dataclass
class Rule:
    """Answer ``status`` instead of serving requests matching ``method`` and ``fragment`` (a regex).

    ``skip`` matching requests are served first; then ``times`` are refused. With ``hold`` set, a refused
    request first waits until ``release()`` (``arrived`` is set when it comes in). With ``after`` set, the
    request is served but its answer is replaced by the failure (a commit that lands, its reply lost). With
    ``echo_auth`` set, the error body echoes the request's ``Authorization`` header (as careless servers do).
    """

    method: str
    fragment: str
    status: int = 503
    times: int = 1
    skip: int = 0
    hold: bool = False
    after: bool = False
    echo_auth: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


@dataclass(frozen=True)
class Logged:
    method: str
    path: str
    status: int


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


class HubServer:
    """In-memory Hub: repos, commits, LFS store, tokens (``{token: "write" | "read"}``), request log.

    Every token belongs to the user ``user``: ``whoami-v2`` names it and a repo created without a
    namespace lands in it, as on the Hub.
    """

    def __init__(self, tokens: dict[str, str] | None = None, port: int = 0, user: str = "tester"):
        self.tokens = dict(tokens or {})
        self.user = user
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_store: dict[str, bytes] = {}
        self.tickets: dict[str, str] = {}
        self.log: list[Logged] = []
        self.rules: list[Rule] = []
        self.lock = threading.RLock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(self))
        self.httpd.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        for rule in self.rules:
            rule.release()
        self.httpd.shutdown()
        self.httpd.server_close()

    # ----- test helpers
    def fail(self, method: str, fragment: str, status: int = 503, times: int = 1, skip: int = 0,
             after: bool = False, headers: dict[str, str] | None = None, echo_auth: bool = False) -> Rule:
        rule = Rule(method, fragment, status, times, skip, after=after, headers=headers or {}, echo_auth=echo_auth)
        self.rules.append(rule)
        return rule

    def hold(self, method: str, fragment: str, skip: int = 0) -> Rule:
        rule = Rule(method, fragment, 503, 1, skip, hold=True)
        self.rules.append(rule)
        return rule

    def requests(self, method: str | None = None, contains: str = "") -> list[Logged]:
        with self.lock:
            return [r for r in self.log if (method is None or r.method == method) and contains in r.path]

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "dataset") -> dict[str, bytes]:
        """The files of a repo at a revision, LFS content included."""
        commit = self.repos[(repo_type, repo_id)].resolve(revision)
        return {path: blob.data for path, blob in commit.files.items()}

    def commits(self, repo_id: str, revision: str = "main", repo_type: str = "dataset") -> list[Commit]:
        repo = self.repos[(repo_type, repo_id)]
        out, commit = [], repo.resolve(revision)
        while commit is not None:
            out.append(commit)
            commit = repo.commits.get(commit.parent) if commit.parent else None
        return out

    def create_repo(self, repo_id: str, repo_type: str = "dataset", private: bool = False) -> Repo:
        repo = Repo(repo_type, repo_id, private)
        repo.add_commit("main", "initial commit", {".gitattributes": Blob(GITATTRIBUTES, lfs=False)})
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def put_files(self, repo_id: str, files: dict[str, bytes], repo_type: str = "dataset") -> None:
        """Commit files directly (server side), LFS by the same rule as preupload."""
        repo = self.repos.get((repo_type, repo_id)) or self.create_repo(repo_id, repo_type)
        snapshot = dict(repo.resolve("main").files)
        snapshot.update({p: Blob(d, lfs=_wants_lfs(p, len(d), d[:512])) for p, d in files.items()})
        repo.add_commit("main", "server-side upload", snapshot)


def _wants_lfs(path: str, size: int, sample: bytes) -> bool:
    return path.lower().endswith(LFS_EXTENSIONS) or size >= LFS_MIN_SIZE or b"\0" in sample


def _entry(path: str, blob: Blob | None, commit: Commit, expand: bool) -> dict:
    if blob is None:
        entry = {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}
    else:
        entry = {"type": "file", "oid": blob.oid, "size": len(blob.data), "path": path}
        if blob.lfs:
            entry["lfs"] = {"oid": blob.sha256, "size": len(blob.data), "pointerSize": len(blob.pointer)}
    if expand:
        entry["lastCommit"] = {"id": commit.oid, "title": commit.title, "date": commit.date}
    return entry


def _children(files: dict[str, Blob], prefix: str, recursive: bool) -> list[tuple[str, Blob | None]]:
    """(path, blob or None for a folder) under ``prefix``, folders first as the Hub lists them."""
    base = f"{prefix}/" if prefix else ""
    folders: set[str] = set()
    out: list[tuple[str, Blob | None]] = []
    for path in sorted(files):
        if not path.startswith(base):
            continue
        parts = path[len(base):].split("/")
        for depth in range(1, len(parts)):
            if depth > 1 and not recursive:
                break
            folders.add(base + "/".join(parts[:depth]))
        if recursive or len(parts) == 1:
            out.append((path, files[path]))
    return [(f, None) for f in sorted(folders)] + out


class _Handler(BaseHTTPRequestHandler):
    """The routes; :func:`_make_handler` binds a subclass to one :class:`HubServer` (``hub``)."""

    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    # ----- plumbing
    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None,
              content_type: str = "application/json", length: int | None = None) -> None:
        if self._lost_reply:
            status, body, headers, content_type, length = self._lost_reply, b"{}", {}, "application/json", None
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        with self.hub.lock:
            self.hub.log.append(Logged(self.command, self._path, status))

    def _json(self, status: int, payload: Any, headers: dict | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def _handle(self) -> None:
        split = urlsplit(self.path)
        self._path = unquote(split.path)
        self._query = parse_qs(split.query)
        self._segments = [unquote(s) for s in split.path.strip("/").split("/")]
        body = self._body() if self.command in ("POST", "PUT") else b""
        self._lost_reply = None
        try:
            self._apply_rules()
            self._route(body)
        except HubError as err:
            headers = dict(err.headers)
            if err.code:
                headers["X-Error-Code"] = err.code
            headers["X-Error-Message"] = err.message
            self._json(err.status, {"error": err.message}, headers)

    def _apply_rules(self) -> None:
        for rule in list(self.hub.rules):
            if rule.method != self.command or not re.search(rule.fragment, self._path):
                continue
            with self.hub.lock:
                if rule.skip > 0:
                    rule.skip -= 1
                    return
                if rule.times <= 0:
                    continue
                rule.times -= 1
            if rule.after:
                self._lost_reply = rule.status
                return
            if rule.hold:
                rule.arrived.set()
                rule.released.wait(60)
            echo = f" (request had Authorization: {self.headers.get('Authorization')})" if rule.echo_auth else ""
            raise HubError(rule.status, "injected failure" + echo, headers=rule.headers)

    def _token_role(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if not auth:
            return None
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.hub.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.hub.tokens[token]

    def _repo(self, repo_type: str, repo_id: str, write: bool = False) -> Repo:
        role = self._token_role()
        repo = self.hub.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and role is None):
            status = 401 if role is None else 404
            raise HubError(status, "Repository not found", "RepoNotFound")
        if write and role is None:
            raise HubError(401, "You must be authenticated to write")
        if write and role != "write":
            raise HubError(403, "You don't have the rights to write to this repository")
        return repo

    def _commit(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    # ----- routing
    def _route(self, body: bytes) -> None:
        seg, method = self._segments, self.command
        if seg[:3] == ["api", "repos", "create"] and method == "POST":
            return self._create_repo(json.loads(body))
        if seg[:2] == ["api", "whoami-v2"] and method == "GET":
            return self._whoami()
        if seg[:2] == ["api", "validate-yaml"] and method == "POST":
            return self._validate_yaml(json.loads(body))
        if seg[0] == "lfs-upload" and method == "PUT":
            return self._lfs_put(seg[1], body)
        if seg[0] == "lfs-verify" and method == "POST":
            return self._lfs_verify(seg[1])
        if seg[0] == "api" and len(seg) >= 4 and seg[1].rstrip("s") in URL_PREFIXES:
            repo_type, repo_id, rest = seg[1][:-1], f"{seg[2]}/{seg[3]}", seg[4:]
            return self._api(method, repo_type, repo_id, rest, body)
        repo_type = next((t for t, p in URL_PREFIXES.items() if p and seg[0] == p[:-1]), "model")
        seg = seg[1:] if URL_PREFIXES[repo_type] else seg
        if len(seg) == 6 and seg[1].endswith(".git") and seg[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(repo_type, f"{seg[0]}/{seg[1][:-4]}", json.loads(body))
        if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(repo_type, f"{seg[0]}/{seg[1]}", seg[3], "/".join(seg[4:]))
        raise HubError(404, f"no route for {method} {self._path}")

    def _api(self, method: str, repo_type: str, repo_id: str, rest: list[str], body: bytes) -> None:
        action = rest[0] if rest else ""
        if method == "GET" and action in ("", "revision"):
            return self._repo_info(repo_type, repo_id, rest[1] if len(rest) > 1 else "main")
        if method == "PUT" and action == "settings":
            return self._settings(self._repo(repo_type, repo_id, write=True), json.loads(body or b"{}"))
        if method == "POST" and action == "preupload":
            return self._preupload(repo_type, repo_id, rest[1], json.loads(body))
        if method == "POST" and action == "commit":
            return self._commit_post(repo_type, repo_id, rest[1], body)
        if method == "GET" and action == "tree":
            return self._tree(repo_type, repo_id, rest[1], "/".join(rest[2:]))
        if method == "POST" and action == "paths-info":
            return self._paths_info(repo_type, repo_id, rest[1], parse_qs(body.decode()))
        if method == "GET" and action == "refs":
            repo = self._repo(repo_type, repo_id)
            branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": c} for b, c in repo.branches.items()]
            return self._json(200, {"branches": branches, "tags": [], "converts": []})
        if method == "POST" and action == "branch":
            return self._create_branch(repo_type, repo_id, rest[1], json.loads(body or b"{}"))
        if method == "GET" and action == "commits":
            return self._commits(repo_type, repo_id, rest[1])
        raise HubError(404, f"no route for {method} {self._path}")

    # ----- repos
    def _create_repo(self, payload: dict) -> None:
        role = self._token_role()
        if role is None:
            raise HubError(401, "You must be authenticated to create a repo")
        if role != "write":
            raise HubError(403, "You don't have the rights to create a repo in this namespace")
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.hub.user}/{payload['name']}"
        url = f"{self.hub.url}/{URL_PREFIXES[repo_type]}{repo_id}"
        with self.hub.lock:
            if (repo_type, repo_id) in self.hub.repos:
                return self._json(409, {"error": "You already created this repo", "url": url})
            private = payload.get("private") or payload.get("visibility") == "private"
            self.hub.create_repo(repo_id, repo_type, bool(private))
        self._json(200, {"url": url, "name": repo_id})

    def _whoami(self) -> None:
        role = self._token_role()
        if role is None:
            raise HubError(401, "Invalid username or password.")
        self._json(200, {"type": "user", "name": self.hub.user, "orgs": [],
                         "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": role}}})

    def _settings(self, repo: Repo, settings: dict) -> None:
        """``PUT /api/{type}s/{id}/settings``: gating (a property of the whole repo) and visibility."""
        if "gated" in settings:
            if settings["gated"] not in ("auto", "manual", False):
                raise HubError(400, f"gated must be 'auto', 'manual' or false, not {settings['gated']!r}")
            repo.gated = settings["gated"]
        if "private" in settings or "visibility" in settings:
            repo.private = settings.get("private", settings.get("visibility") == "private")
        self._json(200, {})

    def _repo_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self._repo(repo_type, repo_id)
        commit = self._commit(repo, revision)
        self._json(200, {
            "id": repo_id, "author": repo_id.split("/")[0], "sha": commit.oid, "private": repo.private,
            "gated": repo.gated, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
            "lastModified": commit.date, "createdAt": commit.date,
            "siblings": [{"rfilename": p} for p in sorted(commit.files)],
        })

    def _create_branch(self, repo_type: str, repo_id: str, branch: str, payload: dict) -> None:
        repo = self._repo(repo_type, repo_id, write=True)
        start = self._commit(repo, payload.get("startingPoint") or "main")
        with self.hub.lock:
            if branch in repo.branches:
                raise HubError(409, f"Branch {branch} already exists")
            repo.branches[branch] = start.oid
        self._json(200, {})

    def _validate_yaml(self, payload: dict) -> None:
        text = payload.get("content", "")
        match = re.match(r"^---\s*\n(.*?)\n---\s*\n", text, re.S)
        try:
            if match:
                yaml.safe_load(match.group(1))
        except yaml.YAMLError as exc:
            return self._json(400, {"errors": [{"message": str(exc)}], "warnings": []})
        self._json(200, {"errors": [], "warnings": []})

    def _commits(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self._repo(repo_type, repo_id)
        self._commit(repo, revision)
        out = [
            {"id": c.oid, "title": c.title, "message": "", "authors": [{"user": "test"}], "date": c.date}
            for c in self.hub.commits(repo_id, revision, repo_type)
        ]
        self._json(200, out)

    # ----- reading files
    def _tree(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self._repo(repo_type, repo_id)
        commit = self._commit(repo, revision)
        recursive = self._query.get("recursive", ["false"])[0].lower() in ("1", "true")
        expand = self._query.get("expand", ["false"])[0].lower() in ("1", "true")
        if path and path in commit.files:
            raise HubError(400, f"{path} is a file, not a folder")
        entries = _children(commit.files, path, recursive)
        if path and not entries:
            raise HubError(404, f"{path} does not exist", "EntryNotFound")
        self._json(200, [_entry(p, b, commit, expand) for p, b in entries])

    def _paths_info(self, repo_type: str, repo_id: str, revision: str, form: dict) -> None:
        repo = self._repo(repo_type, repo_id)
        commit = self._commit(repo, revision)
        expand = form.get("expand", ["false"])[0].lower() in ("1", "true")
        out = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in commit.files:
                out.append(_entry(path, commit.files[path], commit, expand))
            elif _children(commit.files, path, False):
                out.append(_entry(path, None, commit, expand))
        self._json(200, out)

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self._repo(repo_type, repo_id)
        if repo.gated and self._token_role() is None:
            raise HubError(401, "Access to this gated repo is restricted", "GatedRepo")
        commit = self._commit(repo, revision)
        blob = commit.files.get(path)
        if blob is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound",
                           {"X-Repo-Commit": commit.oid})
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{blob.oid}"', "Accept-Ranges": "bytes"}
        if blob.lfs:
            headers.update({"ETag": f'"{blob.sha256}"', "X-Linked-Etag": f'"{blob.sha256}"',
                            "X-Linked-Size": str(len(blob.data))})
        data, status = blob.data, 200
        if self.command == "GET" and (match := re.match(r"bytes=(\d*)-(\d*)$", self.headers.get("Range", ""))):
            start, end = match.groups()
            size = len(data)
            first = int(start) if start else max(size - int(end), 0)
            last = min(int(end), size - 1) if start and end else size - 1
            if first >= size or first > last:
                raise HubError(416, "Range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
            data, status = data[first:last + 1], 206
        self._send(status, data, headers, "application/octet-stream", length=len(data))

    # ----- writing
    def _preupload(self, repo_type: str, repo_id: str, revision: str, payload: dict) -> None:
        repo = self._repo(repo_type, repo_id, write=True)
        commit = self._commit(repo, revision)
        out = []
        for item in payload["files"]:
            sample = base64.b64decode(item.get("sample", ""))
            lfs = _wants_lfs(item["path"], int(item["size"]), sample)
            existing = commit.files.get(item["path"])
            oid = (existing.sha256 if existing.lfs else existing.oid) if existing else None
            out.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular",
                        "shouldIgnore": False, "oid": oid})
        self._json(200, {"files": out, "commitOid": commit.oid})

    def _lfs_batch(self, repo_type: str, repo_id: str, payload: dict) -> None:
        self._repo(repo_type, repo_id, write=payload.get("operation") == "upload")
        objects = []
        for obj in payload["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.hub.lfs_store:
                ticket = secrets.token_hex(8)
                with self.hub.lock:
                    self.hub.tickets[ticket] = obj["oid"]
                entry["actions"] = {
                    "upload": {"href": f"{self.hub.url}/lfs-upload/{obj['oid']}?ticket={ticket}", "header": {}},
                    "verify": {"href": f"{self.hub.url}/lfs-verify/{obj['oid']}", "header": {}},
                }
            objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_put(self, oid: str, body: bytes) -> None:
        ticket = self._query.get("ticket", [""])[0]
        if self.hub.tickets.get(ticket) != oid:
            raise HubError(403, "invalid upload ticket")
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, "content does not match its sha256 oid")
        with self.hub.lock:
            self.hub.lfs_store[oid] = body
        self._send(200)

    def _lfs_verify(self, oid: str) -> None:
        self._token_role()
        if oid not in self.hub.lfs_store:
            raise HubError(404, f"LFS object {oid} was not uploaded")
        self._json(200, {"success": True})

    def _commit_post(self, repo_type: str, repo_id: str, revision: str, body: bytes) -> None:
        repo = self._repo(repo_type, repo_id, write=True)
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0]["key"] != "header":
            raise HubError(400, "commit payload must start with a header line")
        header = lines[0]["value"]
        with self.hub.lock:
            commit = self._commit(repo, revision)
            if revision not in repo.branches:
                raise HubError(400, f"{revision} is not a branch")
            if header.get("parentCommit") and header["parentCommit"] != commit.oid:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(commit.files)
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                if key == "file":
                    files[value["path"]] = Blob(base64.b64decode(value["content"]), lfs=False)
                elif key == "lfsFile":
                    if value["oid"] not in self.hub.lfs_store:
                        raise HubError(422, f"LFS object {value['oid']} is missing for {value['path']}")
                    files[value["path"]] = Blob(self.hub.lfs_store[value["oid"]], lfs=True)
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    files = {p: b for p, b in files.items() if not p.startswith(prefix)}
                else:
                    raise HubError(400, f"unsupported commit operation {key}")
            new = repo.add_commit(revision, header.get("summary", ""), files)
        url = f"{self.hub.url}/{URL_PREFIXES[repo_type]}{repo_id}/commit/{new.oid}"
        self._json(200, {"success": True, "commitOid": new.oid, "commitUrl": url, "pullRequestUrl": None})



def _make_handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"hub": hub})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the local Hub-compatible test server.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", action="append", default=[], metavar="TOKEN:ROLE", help="ROLE is write or read")
    args = parser.parse_args(argv)
    hub = HubServer(dict(t.split(":", 1) for t in args.token), port=args.port)
    print(hub.url, flush=True)
    try:
        hub.httpd.serve_forever()
    except KeyboardInterrupt:
        hub.httpd.server_close()


if __name__ == "__main__":
    main()
