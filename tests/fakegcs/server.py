#!/usr/bin/python3
"""fakegcs - a local fake of the Google services orchestrator-agent uses.

One loopback HTTP/1.1 server fakes, on the same port:
  * the Cloud Storage JSON API (resumable/media/multipart uploads, list, get,
    alt=media download, delete, testIamPermissions),
  * the GCE metadata server (GCE_METADATA_HOST=127.0.0.1:PORT),
  * the OAuth2 token endpoint for service-account JWTs (POST /token),
  * Secret Manager versions:access,
plus a /_fake/ control API for tests (config, fault injection, request log).

    /usr/bin/python3 tests/fakegcs/server.py --port 0 --port-file FILE \\
        [--data-dir DIR] [--verbose] [--auth] [--bucket NAME ...]

See README.md beside this file for every endpoint, the control API and the
fault kinds. Python 3 standard library plus Debian's python3-crcmod (fast
CRC32C; a slow pure-Python fallback is used without it) and
python3-cryptography (RS256 verification; only POST /token needs it).
"""

import argparse
import base64
import email.utils
import hashlib
import http.server
import json
import os
import re
import secrets as pysecrets
import shutil
import signal
import socket
import socketserver
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
if HERE not in sys.path:
    sys.path.insert(0, HERE)

QUANTUM = 256 * 1024          # resumable chunk granularity
IO_BLOCK = 1 << 20            # read/write block size
SPOOL_MEMORY = 8 << 20        # request bodies above this spill to --data-dir/tmp
SMALL_BODY_LIMIT = 64 << 20   # JSON/form/multipart bodies are read into memory up to this
MAX_SKEW = 300                # JWT iat/exp clock-skew tolerance (s)
MAX_JWT_LIFETIME = 3600
LOG_LIMIT = 100000

SCOPE_CP = "https://www.googleapis.com/auth/cloud-platform"
SCOPE_CP_RO = "https://www.googleapis.com/auth/cloud-platform.read-only"
SCOPE_GCS_FULL = "https://www.googleapis.com/auth/devstorage.full_control"
SCOPE_GCS_RW = "https://www.googleapis.com/auth/devstorage.read_write"
SCOPE_GCS_RO = "https://www.googleapis.com/auth/devstorage.read_only"
SCOPES_FOR = {
    "write": {SCOPE_CP, SCOPE_GCS_FULL, SCOPE_GCS_RW},
    "read": {SCOPE_CP, SCOPE_CP_RO, SCOPE_GCS_FULL, SCOPE_GCS_RW, SCOPE_GCS_RO},
    "secret": {SCOPE_CP},
}

OPS = ("upload_init", "upload_chunk", "upload_media", "status_query", "upload_cancel", "download",
       "get", "list", "delete", "patch", "iam", "bucket", "token", "metadata_token", "metadata", "secret")
FAULT_KINDS_FOR = {
    "partial": {"upload_chunk"},
    "expire_session": {"upload_chunk", "status_query"},
    "bad_hash": {"download", "get", "upload_chunk", "upload_media", "secret"},
    "truncate": {"download"},
    "corrupt": {"download", "secret"},
    "drop_after_persist": set(OPS),
    "drop_before_persist": set(OPS),
    "drop": set(OPS),
    "stall": set(OPS),
}

# --------------------------------------------------------------------------
# CRC32C (Castagnoli)

try:
    import crcmod.predefined as _crcmod_predefined
    _crc32c_c = _crcmod_predefined.mkCrcFun("crc-32c")
    CRC_IMPL = "crcmod"

    def crc32c(data, crc=0):
        """CRC32C of data, continuing from the CRC of the preceding data."""
        return _crc32c_c(data, crc)
except ImportError:  # pragma: no cover - slow fallback
    CRC_IMPL = "python"
    _T = []
    for _i in range(256):
        _c = _i
        for _ in range(8):
            _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
        _T.append(_c)

    def crc32c(data, crc=0):
        crc ^= 0xFFFFFFFF
        for b in data:
            crc = _T[(crc ^ b) & 0xFF] ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF


class Hasher:
    """CRC32C and MD5 of a stream. MD5 runs in a helper thread (hashlib
    releases the GIL) while CRC32C runs in the caller's: ~2x throughput."""

    def __init__(self, crc=0, md5=None):
        self.crc = crc
        self.md5 = md5 if md5 is not None else hashlib.md5()
        self._q = None
        self._t = None

    def update(self, b):
        if self._q is None and len(b) >= (256 << 10):
            import queue
            self._q = queue.Queue(maxsize=8)
            self._t = threading.Thread(target=self._run, daemon=True)
            self._t.start()
        if self._q is not None:
            self._q.put(b)
        else:
            self.md5.update(b)
        self.crc = crc32c(b, self.crc)

    def _run(self):
        while True:
            b = self._q.get()
            if b is None:
                return
            self.md5.update(b)

    def finish(self):
        """-> (crc, md5 hash object); waits for the helper thread."""
        if self._q is not None:
            self._q.put(None)
            self._t.join()
            self._q = self._t = None
        return self.crc, self.md5


def b64_crc(crc):
    return base64.b64encode(crc.to_bytes(4, "big")).decode("ascii")


def b64_md5(digest):
    return base64.b64encode(digest).decode("ascii")


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def jbytes(obj):
    return (json.dumps(obj, indent=1) + "\n").encode("utf-8")


def q(s):
    return urllib.parse.quote(s, safe="")


# --------------------------------------------------------------------------
# replies

class Reply(Exception):
    """Raised by handlers to answer the request."""

    def __init__(self, status, body=b"", ctype=None, headers=(), reason=None, close=False):
        super().__init__(status)
        self.status = status
        self.body = body
        self.ctype = ctype
        self.headers = list(headers)
        self.reason = reason
        self.close = close


class ClientGone(Exception):
    pass


def json_reply(status, obj, headers=()):
    return Reply(status, jbytes(obj), "application/json; charset=UTF-8", headers)


def gcs_err(code, message, reason, headers=()):
    return json_reply(code, {"error": {"code": code, "message": message, "errors": [
        {"message": message, "domain": "global", "reason": reason}]}}, headers)


def google_err(code, message, status):
    return json_reply(code, {"error": {"code": code, "message": message, "status": status}})


def oauth_err(code, err, desc):
    return json_reply(code, {"error": err, "error_description": desc})


def text_reply(code, text, ctype="application/text", headers=()):
    return Reply(code, text.encode("utf-8"), ctype, headers)


PRECONDITION_MSG = "At least one of the pre-conditions you specified did not hold."
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 408: "DEADLINE_EXCEEDED", 409: "ABORTED",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
                504: "DEADLINE_EXCEEDED"}


def fault_reply(family, code, fault):
    """The answer for an injected status-code fault."""
    headers = []
    if fault.get("retry_after") is not None:
        headers.append(("Retry-After", str(fault["retry_after"])))
    if code in (500, 502, 503, 504):
        msg, reason = "We encountered an internal error. Please try again.", "backendError"
    elif code == 429:
        msg, reason = ("The rate of change requests to the object exceeds the rate limit. "
                       "Please reduce the rate of create, update, and delete requests."), "rateLimitExceeded"
    elif code == 408:
        msg, reason = "Request Timeout", "requestTimeout"
    else:
        msg, reason = "Injected fault %d" % code, "injectedFault"
    if family == "gcs":
        r = gcs_err(code, msg, reason, headers)
    elif family == "secret":
        r = google_err(code, msg, STATUS_NAMES.get(code, "UNKNOWN"))
        r.headers += headers
    elif family == "token":
        r = oauth_err(code, "internal_failure" if code >= 500 else "rate_limit_exceeded"
                      if code == 429 else "invalid_request", msg)
        r.headers += headers
    else:  # metadata
        r = text_reply(code, msg + "\n", "text/html; charset=UTF-8",
                       [("Metadata-Flavor", "Google")] + headers)
    if code == 408:
        r.close = True
    return r


# --------------------------------------------------------------------------
# state

class Obj:
    __slots__ = ("bucket", "name", "path", "size", "crc", "md5", "generation", "metageneration",
                 "content_type", "metadata", "created", "updated")

    def resource(self, host, corrupt=False):
        gen = str(self.generation)
        crc, md5 = self.crc, self.md5
        if corrupt:
            crc ^= 0xFFFFFFFF
            md5 = bytes(b ^ 0xFF for b in md5)
        d = {
            "kind": "storage#object",
            "id": "%s/%s/%s" % (self.bucket, self.name, gen),
            "selfLink": "http://%s/storage/v1/b/%s/o/%s" % (host, q(self.bucket), q(self.name)),
            "mediaLink": "http://%s/download/storage/v1/b/%s/o/%s?generation=%s&alt=media"
                         % (host, q(self.bucket), q(self.name), gen),
            "name": self.name,
            "bucket": self.bucket,
            "generation": gen,
            "metageneration": str(self.metageneration),
            "contentType": self.content_type,
            "storageClass": "STANDARD",
            "size": str(self.size),
            "md5Hash": b64_md5(md5),
            "crc32c": b64_crc(crc),
            "etag": base64.b64encode(("%s/%d" % (gen, self.metageneration)).encode()).decode(),
            "timeCreated": rfc3339(self.created),
            "updated": rfc3339(self.updated),
            "timeStorageClassUpdated": rfc3339(self.created),
        }
        if self.metadata:
            d["metadata"] = dict(self.metadata)
        return d

    def summary(self):
        return {"name": self.name, "size": self.size, "crc32c": b64_crc(self.crc),
                "crc32c_int": self.crc, "md5Hash": b64_md5(self.md5),
                "generation": str(self.generation), "metageneration": str(self.metageneration),
                "contentType": self.content_type, "metadata": dict(self.metadata),
                "timeCreated": rfc3339(self.created), "updated": rfc3339(self.updated)}


class Bucket:
    def __init__(self, name, deny=()):
        self.name = name
        self.deny = set(deny)
        self.objects = {}

    def denies(self, perm):
        return perm in self.deny or "*" in self.deny


class Session:
    def __init__(self, uid, bucket, name, path, content_type, metadata, preconds, declared, now):
        self.id = uid
        self.bucket = bucket
        self.name = name
        self.path = path
        self.content_type = content_type
        self.metadata = metadata
        self.preconds = preconds
        self.declared = declared   # X-Upload-Content-Length
        self.total = None          # from a Content-Range .../TOTAL
        self.persisted = 0
        self.crc = 0
        self.md5 = hashlib.md5()
        self.state = "active"      # active | done | failed | cancelled
        self.result = None
        self.created = now
        self.lock = threading.Lock()

    def view(self):
        return {"upload_id": self.id, "bucket": self.bucket, "name": self.name,
                "persisted": self.persisted, "total": self.total, "declared": self.declared,
                "state": self.state}


def load_public_key(pem):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    if b"BEGIN CERTIFICATE" in data:
        return x509.load_pem_x509_certificate(data).public_key()
    return serialization.load_pem_public_key(data)


class State:
    def __init__(self, data_dir, defaults):
        self.lock = threading.RLock()
        self.data_dir = data_dir
        self.obj_dir = os.path.join(data_dir, "objects")
        self.sess_dir = os.path.join(data_dir, "sessions")
        self.tmp_dir = os.path.join(data_dir, "tmp")
        for d in (self.obj_dir, self.sess_dir, self.tmp_dir):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
        self.defaults = defaults
        self.port = 0
        self.seq = 0
        self.log = []
        self.fired = []
        self.wakeup = threading.Event()
        # Metadata waiters (wait_for_change) sleep on this; config changes
        # and shutdown wake them.
        self.md_changed = threading.Condition(self.lock)
        self.stopping = False
        self.last_generation = 0
        self.reset()

    # -- clock and reset

    def now(self):
        return time.time() + self.cfg["clock_offset"]

    def sleep(self, seconds):
        """Sleep, waking early on reset or shutdown."""
        self.wakeup.wait(max(0.0, float(seconds)))

    def reset(self):
        with self.lock:
            old = getattr(self, "buckets", {})
            for b in old.values():
                for o in b.objects.values():
                    _unlink(o.path)
            for s in getattr(self, "sessions", {}).values():
                _unlink(s.path)
            pid = self.defaults.get("project_id") or "fake-project"
            num = "123456789012"
            self.cfg = {
                "auth": bool(self.defaults.get("auth")),
                "token_ttl": 3600,
                "clock_offset": 0.0,
                "token_uri": None,
                "check_scopes": True,
                "hash_header_style": "combined",
                "session_ttl": 7 * 86400,
                "metadata": {
                    "project_id": pid,
                    "numeric_project_id": num,
                    "ip": "10.128.0.2",
                    "email": "%s-compute@developer.gserviceaccount.com" % num,
                    "scopes": [SCOPE_CP],
                    "hostname": "fake-instance.c.%s.internal" % pid,
                    "zone": "projects/%s/zones/us-central1-a" % num,
                    "instance_id": "1234567890123456789",
                    "instance_name": "fake-instance",
                    "token_enabled": True,
                    "attributes": {},
                    "project_attributes": {},
                },
            }
            self.buckets = {n: Bucket(n) for n in self.defaults.get("buckets") or ()}
            self.sessions = {}
            self.tokens = {}
            self.accounts = {}
            self.secrets = {}
            self.faults = []
            self.fired = []
            self.log = []
            self.wakeup.set()
            self.wakeup = threading.Event()
            self.md_changed.notify_all()

    def token_uri(self):
        return self.cfg["token_uri"] or "http://127.0.0.1:%d/token" % self.port

    # -- config

    CONFIG_KEYS = {"auth", "token_ttl", "clock_offset", "token_uri", "check_scopes",
                   "hash_header_style", "session_ttl", "metadata", "buckets", "secrets",
                   "service_account", "service_accounts"}
    METADATA_KEYS = {"project_id", "numeric_project_id", "ip", "email", "scopes", "hostname",
                     "zone", "instance_id", "instance_name", "token_enabled", "attributes",
                     "project_attributes"}

    def apply_config(self, c):
        if not isinstance(c, dict):
            raise ValueError("config must be a JSON object")
        unknown = set(c) - self.CONFIG_KEYS
        if unknown:
            raise ValueError("unknown config keys: %s" % ", ".join(sorted(unknown)))
        with self.lock:
            self._apply(c, True)
            self._apply(c, False)
            self.md_changed.notify_all()

    def _apply(self, c, dry):
        def need(cond, msg):
            if not cond:
                raise ValueError(msg)

        for k in ("auth", "check_scopes"):
            if k in c:
                need(isinstance(c[k], bool), "%s must be true or false" % k)
                if not dry:
                    self.cfg[k] = c[k]
        for k in ("token_ttl", "session_ttl"):
            if k in c:
                need(isinstance(c[k], (int, float)) and c[k] > 0, "%s must be a positive number" % k)
                if not dry:
                    self.cfg[k] = c[k]
        if "clock_offset" in c:
            need(isinstance(c["clock_offset"], (int, float)), "clock_offset must be a number")
            if not dry:
                self.cfg["clock_offset"] = float(c["clock_offset"])
        if "token_uri" in c:
            need(c["token_uri"] is None or isinstance(c["token_uri"], str), "token_uri must be a string")
            if not dry:
                self.cfg["token_uri"] = c["token_uri"]
        if "hash_header_style" in c:
            need(c["hash_header_style"] in ("combined", "separate"),
                 "hash_header_style must be combined or separate")
            if not dry:
                self.cfg["hash_header_style"] = c["hash_header_style"]
        if "metadata" in c:
            m = c["metadata"]
            need(isinstance(m, dict), "metadata must be an object")
            bad = set(m) - self.METADATA_KEYS
            need(not bad, "unknown metadata keys: %s" % ", ".join(sorted(bad)))
            for k, v in m.items():
                if k in ("attributes", "project_attributes"):
                    need(isinstance(v, dict) and all(x is None or isinstance(x, str) for x in v.values()),
                         "metadata.%s must map keys to strings (or null to remove)" % k)
                    if not dry:
                        for ak, av in v.items():
                            if av is None:
                                self.cfg["metadata"][k].pop(ak, None)
                            else:
                                self.cfg["metadata"][k][ak] = av
                elif k == "scopes":
                    need(isinstance(v, list) and all(isinstance(x, str) for x in v), "metadata.scopes must be a list")
                    if not dry:
                        self.cfg["metadata"][k] = list(v)
                elif k == "token_enabled":
                    need(isinstance(v, bool), "metadata.token_enabled must be true or false")
                    if not dry:
                        self.cfg["metadata"][k] = v
                else:
                    need(isinstance(v, (str, int)), "metadata.%s must be a string" % k)
                    if not dry:
                        self.cfg["metadata"][k] = str(v)
        if "buckets" in c:
            bs = c["buckets"]
            need(isinstance(bs, dict), "buckets must be an object")
            for name, v in bs.items():
                need(isinstance(name, str) and name, "bad bucket name")
                if v is None:
                    if not dry and name in self.buckets:
                        for o in self.buckets.pop(name).objects.values():
                            _unlink(o.path)
                    continue
                need(isinstance(v, dict), "buckets.%s must be an object or null" % name)
                bad = set(v) - {"deny"}
                need(not bad, "unknown keys in buckets.%s: %s" % (name, ", ".join(sorted(bad))))
                deny = v.get("deny", [])
                need(isinstance(deny, list) and all(isinstance(x, str) for x in deny),
                     "buckets.%s.deny must be a list of permission names" % name)
                if not dry:
                    if name in self.buckets:
                        self.buckets[name].deny = set(deny)
                    else:
                        self.buckets[name] = Bucket(name, deny)
        if "secrets" in c:
            ss = c["secrets"]
            need(isinstance(ss, dict), "secrets must be an object")
            for name, v in ss.items():
                need(re.fullmatch(r"projects/[^/]+/secrets/[^/]+", name or ""),
                     "secret names look like projects/P/secrets/S, not %r" % name)
                if v is None:
                    if not dry:
                        self.secrets.pop(name, None)
                    continue
                if isinstance(v, list):
                    v = {"versions": v}
                need(isinstance(v, dict), "secrets[%s] must be a list, an object or null" % name)
                bad = set(v) - {"versions", "deny"}
                need(not bad, "unknown keys in secrets[%s]: %s" % (name, ", ".join(sorted(bad))))
                versions = None
                if "versions" in v:
                    need(isinstance(v["versions"], list), "secrets[%s].versions must be a list" % name)
                    versions = [_secret_version(x) for x in v["versions"]]
                if "deny" in v:
                    need(isinstance(v["deny"], bool), "secrets[%s].deny must be true or false" % name)
                if not dry:
                    s = self.secrets.setdefault(name, {"versions": [], "deny": False})
                    if versions is not None:
                        s["versions"] = versions
                    if "deny" in v:
                        s["deny"] = v["deny"]
        for key in ("service_account", "service_accounts"):
            if key in c:
                v = c[key]
                items = v if isinstance(v, list) else [v]
                for sa in items:
                    need(isinstance(sa, dict), "%s must be an object or a list of objects" % key)
                    email_ = sa.get("client_email")
                    pem = sa.get("public_key_pem")
                    need(isinstance(email_, str) and email_, "service_account.client_email is required")
                    need(isinstance(pem, str), "service_account.public_key_pem is required")
                    try:
                        pub = load_public_key(pem)
                    except ImportError:
                        raise ValueError("python3-cryptography is not installed")
                    except Exception as e:
                        raise ValueError("service_account.public_key_pem: %s" % e)
                    if not dry:
                        kid = sa.get("private_key_id")
                        keys = [k for k in self.accounts.get(email_, []) if not kid or k["kid"] != kid]
                        keys.append({"kid": kid, "key": pub, "pem": pem})
                        self.accounts[email_] = keys

    def config_view(self):
        with self.lock:
            v = {k: self.cfg[k] for k in ("auth", "token_ttl", "clock_offset", "check_scopes",
                                          "hash_header_style", "session_ttl")}
            v["token_uri"] = self.token_uri()
            v["metadata"] = json.loads(json.dumps(self.cfg["metadata"]))
            v["buckets"] = {n: {"deny": sorted(b.deny), "objects": len(b.objects)}
                            for n, b in sorted(self.buckets.items())}
            v["secrets"] = {n: {"versions": len(s["versions"]), "deny": s["deny"]}
                            for n, s in sorted(self.secrets.items())}
            v["service_accounts"] = {e: [k["kid"] for k in ks] for e, ks in self.accounts.items()}
            v["port"] = self.port
            v["data_dir"] = self.data_dir
            v["crc32c"] = CRC_IMPL
            return v

    # -- faults

    def add_faults(self, items):
        norm = []
        for f in items:
            if not isinstance(f, dict):
                raise ValueError("a fault must be an object")
            op, kind = f.get("op"), str(f.get("kind", ""))
            if op not in OPS:
                raise ValueError("fault op must be one of %s" % ", ".join(OPS))
            if kind.isdigit():
                if not 400 <= int(kind) <= 599:
                    raise ValueError("status-code faults must be 4xx or 5xx")
            elif kind not in FAULT_KINDS_FOR:
                raise ValueError("unknown fault kind %r" % kind)
            elif op not in FAULT_KINDS_FOR[kind]:
                raise ValueError("fault kind %s does not apply to op %s" % (kind, op))
            g = dict(f)
            g["kind"] = kind
            g["count"] = int(f.get("count", 1))
            g["skip"] = int(f.get("skip", 0))
            if g["count"] < 1 or g["skip"] < 0:
                raise ValueError("count must be >= 1 and skip >= 0")
            if kind == "partial":
                g.setdefault("respond", "308")
                if str(g["respond"]) not in ("308", "503"):
                    raise ValueError("partial: respond must be 308 or 503")
            if kind == "expire_session":
                g.setdefault("respond", "404")
                if str(g["respond"]) not in ("404", "410"):
                    raise ValueError("expire_session: respond must be 404 or 410")
            if kind == "stall":
                g.setdefault("seconds", 10)
            norm.append(g)
        with self.lock:
            for g in norm:
                g["id"] = self.seq = self.seq + 1
                self.faults.append(g)
        return norm

    def take_fault(self, op, bucket=None, name=None):
        with self.lock:
            for f in self.faults:
                if f["op"] != op:
                    continue
                if f.get("bucket") is not None and f["bucket"] != bucket:
                    continue
                if f.get("name") is not None and f["name"] != name:
                    continue
                if f["skip"] > 0:
                    f["skip"] -= 1
                    return None
                f["count"] -= 1
                if f["count"] <= 0:
                    self.faults.remove(f)
                g = dict(f)
                self.fired.append({"id": f["id"], "op": op, "kind": f["kind"],
                                   "bucket": bucket, "name": name})
                return g
            return None

    # -- tokens

    def issue_token(self, principal, scopes, ttl=None):
        with self.lock:
            ttl = int(ttl or self.cfg["token_ttl"])
            tok = "ya29.fake-" + pysecrets.token_urlsafe(30)
            self.tokens[tok] = {"principal": principal, "scopes": set(scopes),
                                "expiry": self.now() + ttl}
            return tok, ttl

    # -- objects

    def new_generation(self):
        with self.lock:
            g = max(int(self.now() * 1e6), self.last_generation + 1)
            self.last_generation = g
            return g

    def commit_object(self, bucket, name, src_path, size, crc, md5, ctype, metadata,
                      preconds=None, generation=None, keep_generation=False):
        """Move src_path into the store as bucket/name. Raises Reply."""
        with self.lock:
            b = self.buckets.get(bucket)
            if b is None:
                _unlink(src_path)
                raise gcs_err(404, "The specified bucket does not exist.", "notFound")
            old = b.objects.get(name)
            if preconds:
                try:
                    check_preconditions(old, preconds)
                except Reply:
                    _unlink(src_path)
                    raise
            now = self.now()
            o = Obj()
            o.bucket, o.name, o.size, o.crc, o.md5 = bucket, name, size, crc, md5
            o.content_type = ctype or "application/octet-stream"
            o.metadata = dict(metadata or {})
            o.created = o.updated = now
            o.metageneration = 1
            if keep_generation and old is not None:
                o.generation, o.metageneration, o.created = old.generation, old.metageneration, old.created
            elif generation is not None:
                o.generation = int(generation)
                self.last_generation = max(self.last_generation, o.generation)
            else:
                o.generation = self.new_generation()
            o.path = os.path.join(self.obj_dir, uuid.uuid4().hex)
            os.replace(src_path, o.path)
            b.objects[name] = o
            if old is not None:
                _unlink(old.path)
            return o

    def get_session(self, uid):
        with self.lock:
            s = self.sessions.get(uid)
            if s is not None and self.now() > s.created + self.cfg["session_ttl"]:
                self.drop_session(uid)
                return None
            return s

    def drop_session(self, uid):
        with self.lock:
            s = self.sessions.pop(uid, None)
            if s is not None:
                _unlink(s.path)

    # -- request log

    def log_start(self, entry):
        with self.lock:
            self.seq += 1
            entry["seq"] = self.seq
            self.log.append(entry)
            if len(self.log) > LOG_LIMIT:
                del self.log[: len(self.log) - LOG_LIMIT]

    def log_update(self, entry, **kw):
        with self.lock:
            entry.update(kw)


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _secret_version(x):
    if isinstance(x, str):
        return {"data": x.encode("utf-8"), "state": "ENABLED"}
    if isinstance(x, dict):
        state = x.get("state", "ENABLED")
        if state not in ("ENABLED", "DISABLED", "DESTROYED"):
            raise ValueError("secret version state must be ENABLED, DISABLED or DESTROYED")
        if "data_b64" in x:
            return {"data": base64.b64decode(x["data_b64"]), "state": state}
        if isinstance(x.get("data"), str):
            return {"data": x["data"].encode("utf-8"), "state": state}
    raise ValueError("a secret version is a string or {\"data\"|\"data_b64\": ..., \"state\": ...}")


def parse_preconditions(query):
    out = {}
    for k in ("ifGenerationMatch", "ifGenerationNotMatch", "ifMetagenerationMatch",
              "ifMetagenerationNotMatch"):
        v = query.get(k)
        if v:
            try:
                out[k] = int(v[0])
            except ValueError:
                raise gcs_err(400, "Invalid argument for %s: %r" % (k, v[0]), "invalid")
    return out


def check_preconditions(obj, pre, not_modified=False):
    """Raise 412 (or 304 for *NotMatch on reads) when a precondition fails."""
    def fail(is_not_match=False):
        if is_not_match and not_modified:
            raise Reply(304)
        raise gcs_err(412, PRECONDITION_MSG, "conditionNotMet")

    if "ifGenerationMatch" in pre:
        v = pre["ifGenerationMatch"]
        if v == 0:
            if obj is not None:
                fail()
        elif obj is None or obj.generation != v:
            fail()
    if "ifGenerationNotMatch" in pre:
        v = pre["ifGenerationNotMatch"]
        if v == 0:
            if obj is None:
                fail()
        elif obj is not None and obj.generation == v:
            fail(True)
    if "ifMetagenerationMatch" in pre:
        if obj is None or obj.metageneration != pre["ifMetagenerationMatch"]:
            fail()
    if "ifMetagenerationNotMatch" in pre:
        if obj is not None and obj.metageneration == pre["ifMetagenerationNotMatch"]:
            fail(True)


def parse_content_range(v):
    """-> ('whole',) | ('status',) | ('finalize', total) | ('data', a, b, total|None) | None"""
    if v is None:
        return ("whole",)
    v = v.strip()
    m = re.fullmatch(r"bytes\s+\*/(\*|\d+)", v)
    if m:
        return ("status",) if m.group(1) == "*" else ("finalize", int(m.group(1)))
    m = re.fullmatch(r"bytes\s+(\d+)-(\d+)/(\*|\d+)", v)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        if b < a:
            return None
        return ("data", a, b, None if m.group(3) == "*" else int(m.group(3)))
    return None


def parse_goog_hash(values):
    """X-Goog-Hash header values -> {'crc32c': int, 'md5': bytes}; raises Reply."""
    out = {}
    for v in values:
        for part in v.split(","):
            part = part.strip()
            if not part:
                continue
            k, _, val = part.partition("=")
            k = k.strip().lower()
            try:
                raw = base64.b64decode(val.strip(), validate=True)
            except Exception:
                raise gcs_err(400, "Invalid X-Goog-Hash header value: %r" % part, "invalid")
            if k == "crc32c":
                if len(raw) != 4:
                    raise gcs_err(400, "Invalid CRC32C in X-Goog-Hash: %r" % val, "invalid")
                out["crc32c"] = int.from_bytes(raw, "big")
            elif k == "md5":
                if len(raw) != 16:
                    raise gcs_err(400, "Invalid MD5 in X-Goog-Hash: %r" % val, "invalid")
                out["md5"] = raw
    return out


def hash_mismatch(claimed, crc, md5):
    """The error message when the claimed hashes disagree with the data, else None."""
    if "crc32c" in claimed and claimed["crc32c"] != crc:
        return 'Provided CRC32C "%s" doesn\'t match calculated CRC32C "%s".' % (
            b64_crc(claimed["crc32c"]), b64_crc(crc))
    if "md5" in claimed and claimed["md5"] != md5:
        return 'Provided MD5 hash "%s" doesn\'t match calculated MD5 hash "%s".' % (
            b64_md5(claimed["md5"]), b64_md5(md5))
    return None


# --------------------------------------------------------------------------
# HTTP

LOGGED_HEADERS = ("Content-Range", "Content-Length", "Content-Type", "Transfer-Encoding",
                  "X-Goog-Hash", "Expect", "Range", "Metadata-Flavor", "X-Upload-Content-Length",
                  "X-Upload-Content-Type", "User-Agent", "Connection", "X-Goog-Api-Client",
                  "X-Goog-User-Project", "X-Forwarded-For")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "UploadServer"
    sys_version = ""
    timeout = 600          # idle keep-alive connections are closed after this
    rbufsize = 1 << 16
    disable_nagle_algorithm = True   # headers and body are separate writes

    # ---- plumbing

    @property
    def st(self):
        return self.server.state

    def version_string(self):
        return self.server_version

    def log_request(self, code="-", size="-"):
        pass

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fakegcs: %s %s\n" % (self.address_string(), fmt % args))

    def date_time_string(self, timestamp=None):
        return email.utils.formatdate(self.st.now() if timestamp is None else timestamp, usegmt=True)

    def parse_request(self):
        self._expect_pending = False
        return super().parse_request()

    def handle_expect_100(self):
        # Answer "100 Continue" only once the body is actually wanted, as
        # Google's front end does; errors found before that go out at once.
        self._expect_pending = True
        return True

    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    # ---- body

    def _body_mode(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            return "chunked", None
        cl = self.headers.get("Content-Length")
        if cl is not None:
            try:
                n = int(cl)
                if n < 0:
                    raise ValueError
            except ValueError:
                self.close_connection = True
                self._body_consumed = True
                raise gcs_err(400, "Invalid Content-Length", "invalid")
            return "length", n
        return "none", 0

    def _send_continue(self):
        if self._expect_pending:
            self._expect_pending = False
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _body_iter_socket(self):
        mode, n = self._body_mode()
        if mode == "none" or (mode == "length" and n == 0):
            self._body_consumed = True
            return
        try:
            self._send_continue()
            if mode == "length":
                remaining = n
                while remaining > 0:
                    b = self.rfile.read(min(IO_BLOCK, remaining))
                    if not b:
                        raise ClientGone("EOF after %d of %d body bytes" % (n - remaining, n))
                    remaining -= len(b)
                    self._bytes_in += len(b)
                    yield b
            else:
                while True:
                    line = self.rfile.readline(65537)
                    if not line:
                        raise ClientGone("EOF in chunked body")
                    try:
                        size = int(line.split(b";")[0].strip(), 16)
                    except ValueError:
                        raise ClientGone("bad chunk size line")
                    if size == 0:
                        while True:
                            t = self.rfile.readline(65537)
                            if not t or t in (b"\r\n", b"\n"):
                                break
                        break
                    remaining = size
                    while remaining > 0:
                        b = self.rfile.read(min(IO_BLOCK, remaining))
                        if not b:
                            raise ClientGone("EOF in chunked body")
                        remaining -= len(b)
                        self._bytes_in += len(b)
                        yield b
                    self.rfile.readline(65537)
        except (OSError, ValueError) as e:
            raise ClientGone(str(e))
        self._body_consumed = True

    def _body_iter(self):
        if self._spool is not None:
            f, _ = self._spool
            f.seek(0)
            while True:
                b = f.read(IO_BLOCK)
                if not b:
                    return
                yield b
        else:
            yield from self._body_iter_socket()

    def _spool_body(self):
        """Read the whole body into a spooled temp file (memory up to 8 MiB)."""
        if self._spool is None:
            f = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY, dir=self.st.tmp_dir)
            try:
                n = 0
                for b in self._body_iter_socket():
                    f.write(b)
                    n += len(b)
            except BaseException:
                f.close()
                raise
            self._spool = (f, n)
        return self._spool

    def _small_body(self, limit=SMALL_BODY_LIMIT):
        f, n = self._spool_body()
        if n > limit:
            raise gcs_err(413, "Request body too large", "uploadTooLarge")
        f.seek(0)
        return f.read()

    def _json_body(self, family="gcs"):
        raw = self._small_body()
        if not raw.strip():
            return {}
        try:
            v = json.loads(raw)
        except ValueError as e:
            if family == "control":
                raise json_reply(400, {"error": "invalid JSON: %s" % e})
            raise gcs_err(400, "Parse Error", "parseError")
        return v

    def _receive_to_file(self):
        """Stream the body into a new file under data-dir; -> (path, size, crc, md5)."""
        fd, path = tempfile.mkstemp(dir=self.st.tmp_dir, prefix="up-")
        h, n = Hasher(), 0
        try:
            with os.fdopen(fd, "wb") as out:
                for b in self._body_iter():
                    out.write(b)
                    h.update(b)
                    n += len(b)
        except BaseException:
            h.finish()
            _unlink(path)
            raise
        crc, md5 = h.finish()
        return path, n, crc, md5.digest()

    def _drain_body(self):
        if self._body_consumed or self._spool is not None:
            return
        try:
            mode, n = self._body_mode()
        except Reply:
            return
        if mode == "none" or (mode == "length" and n == 0):
            self._body_consumed = True
            return
        if self._expect_pending:
            # The client waits for 100 Continue: it will not send the body.
            self.close_connection = True
            self._body_consumed = True
            return
        try:
            for _ in self._body_iter_socket():
                pass
        except ClientGone:
            self.close_connection = True
            self._body_consumed = True

    # ---- responses

    def _send(self, r):
        self._drain_body()
        if self._drop_response:
            self._drop()
            return
        if r.close:
            self.close_connection = True
        self.send_response(r.status, r.reason)
        if r.ctype:
            self.send_header("Content-Type", r.ctype)
        for k, v in r.headers:
            self.send_header(k, v)
        if r.status not in (204, 304):
            self.send_header("Content-Length", str(len(r.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if r.body and self.command != "HEAD" and r.status not in (204, 304):
            self.wfile.write(r.body)
            self._bytes_out += len(r.body)
        self._status = r.status

    def _drop(self):
        """Close the connection without any response."""
        self.close_connection = True
        self._status = "dropped"
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ---- dispatch

    def _handle(self):
        self._body_consumed = False
        self._spool = None
        self._fault = None
        self._drop_response = False
        self._status = None
        self._bytes_in = 0
        self._bytes_out = 0
        self._t0 = time.time()
        url = urllib.parse.urlsplit(self.path)
        self._path = url.path
        self._query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        self._entry = None
        if not url.path.startswith("/_fake/"):
            h = {k: self.headers.get(k) for k in LOGGED_HEADERS if self.headers.get(k) is not None}
            auth = self.headers.get("Authorization")
            tok = auth.split(" ", 1)[1].strip() if auth and " " in auth else None
            self._entry = {"time": self.st.now(), "method": self.command, "path": url.path,
                           "query": url.query, "params": self._query, "headers": h,
                           "authorization": auth is not None, "token": tok, "op": None,
                           "fault": None, "status": None}
            self.st.log_start(self._entry)
        try:
            try:
                self._route()
            except Reply as r:
                self._send(r)
        except ClientGone as e:
            self.close_connection = True
            self._status = "client-gone"
            if self.server.verbose:
                sys.stderr.write("fakegcs: client gone: %s\n" % e)
        except (BrokenPipeError, ConnectionResetError, socket.timeout, TimeoutError):
            self.close_connection = True
            self._status = self._status or "client-gone"
        except Exception:
            traceback.print_exc()
            self.close_connection = True
            if self._status is None:
                try:
                    self._send(gcs_err(500, "fakegcs internal error (see its stderr)", "backendError"))
                except Exception:
                    pass
        finally:
            if self._spool is not None:
                self._spool[0].close()
            if not self._body_consumed and self._spool is None:
                try:
                    if self._body_mode()[0] != "none":
                        self.close_connection = True
                except Reply:
                    self.close_connection = True
            dt = time.time() - self._t0
            if self._entry is not None:
                self.st.log_update(self._entry, status=self._status, bytes_in=self._bytes_in,
                                   bytes_out=self._bytes_out, duration=round(dt, 4))
            if self.server.verbose:
                sys.stderr.write("fakegcs: %s \"%s %s\" %s op=%s fault=%s in=%d out=%d %.3fs\n" % (
                    self.client_address[0], self.command, self.path, self._status,
                    self._entry and self._entry["op"], self._fault and self._fault["kind"],
                    self._bytes_in, self._bytes_out, dt))

    def _route(self):
        p, m = self._path, self.command
        if p.startswith("/_fake/"):
            return self._control(p)
        if m in ("POST", "PUT") and self._body_mode()[0] == "none" and not (
                p == "/" or p.startswith("/computeMetadata/")):
            raise Reply(411, b"411. That's an error. POST requests require a Content-length header. "
                             b"That's all we know.\n", "text/html; charset=UTF-8")
        if p in ("/token", "/oauth2/v4/token"):
            return self._op("token", "token", None, None, self.h_token)
        if p == "/" or p.startswith("/computeMetadata/"):
            op = "metadata_token" if re.fullmatch(
                r"/computeMetadata/v1/instance/service-accounts/[^/]+/token", p) else "metadata"
            return self._op(op, "metadata", None, None, self.h_metadata)
        mm = re.fullmatch(r"/upload/storage/v1/b/([^/]+)/o", p)
        if mm:
            bucket = urllib.parse.unquote(mm.group(1))
            uid = self._q1("upload_id")
            if uid is not None:
                if m == "DELETE":
                    s = self.st.get_session(uid)
                    return self._op("upload_cancel", "gcs", bucket, s and s.name,
                                    lambda: self.h_session_cancel(uid))
                if m in ("PUT", "POST"):
                    parsed = parse_content_range(self.headers.get("Content-Range"))
                    op = "status_query" if parsed == ("status",) else "upload_chunk"
                    s = self.st.get_session(uid)
                    return self._op(op, "gcs", bucket, s and s.name,
                                    lambda: self.h_session_put(uid, parsed))
                raise gcs_err(405, "Method not allowed", "methodNotAllowed")
            if m != "POST":
                raise gcs_err(405, "Method not allowed", "methodNotAllowed")
            ut = self._q1("uploadType")
            name = self._q1("name")
            if ut == "resumable":
                return self._op("upload_init", "gcs", bucket, name, lambda: self.h_upload_init(bucket))
            if ut == "media":
                return self._op("upload_media", "gcs", bucket, name, lambda: self.h_upload_media(bucket))
            if ut == "multipart":
                return self._op("upload_media", "gcs", bucket, name,
                                lambda: self.h_upload_multipart(bucket))
            raise gcs_err(400, "Invalid upload type: %r" % ut, "invalid")
        mm = re.fullmatch(r"/storage/v1/b/([^/]+)/o", p)
        if mm:
            bucket = urllib.parse.unquote(mm.group(1))
            if m in ("GET", "HEAD"):
                return self._op("list", "gcs", bucket, None, lambda: self.h_list(bucket))
            raise gcs_err(405, "Method not allowed", "methodNotAllowed")
        mm = re.fullmatch(r"/(storage|download/storage)/v1/b/([^/]+)/o/(.+)", p)
        if mm:
            bucket = urllib.parse.unquote(mm.group(2))
            name = urllib.parse.unquote(mm.group(3))
            if m in ("GET", "HEAD"):
                media = mm.group(1) == "download" or self._q1("alt") == "media"
                if media:
                    return self._op("download", "gcs", bucket, name, lambda: self.h_download(bucket, name))
                return self._op("get", "gcs", bucket, name, lambda: self.h_get(bucket, name))
            if m == "DELETE" and mm.group(1) == "storage":
                return self._op("delete", "gcs", bucket, name, lambda: self.h_delete(bucket, name))
            if m == "PATCH" and mm.group(1) == "storage":
                return self._op("patch", "gcs", bucket, name, lambda: self.h_patch(bucket, name))
            raise gcs_err(405, "Method not allowed", "methodNotAllowed")
        mm = re.fullmatch(r"/storage/v1/b/([^/]+)/iam/testPermissions", p)
        if mm:
            bucket = urllib.parse.unquote(mm.group(1))
            return self._op("iam", "gcs", bucket, None, lambda: self.h_iam(bucket))
        mm = re.fullmatch(r"/storage/v1/b/([^/]+)", p)
        if mm and m in ("GET", "HEAD"):
            bucket = urllib.parse.unquote(mm.group(1))
            return self._op("bucket", "gcs", bucket, None, lambda: self.h_bucket(bucket))
        mm = re.fullmatch(r"/v1/(projects/[^/]+/secrets/[^/]+)/versions/([^/:%]+)(?::|%3[aA])access", p)
        if mm:
            return self._op("secret", "secret", None, mm.group(1),
                            lambda: self.h_secret(mm.group(1), mm.group(2)))
        if p.startswith("/v1/"):
            raise google_err(404, "Method not found.", "NOT_FOUND")
        raise gcs_err(404, "Not Found", "notFound")

    def _q1(self, k, default=None):
        v = self._query.get(k)
        return v[0] if v else default

    def _op(self, op, family, bucket, name, func):
        """Run one API operation, applying a queued fault if one matches."""
        if self._entry is not None:
            self.st.log_update(self._entry, op=op)
        f = self.st.take_fault(op, bucket, name)
        self._fault = f
        if f is not None:
            kind = f["kind"]
            if self._entry is not None:
                self.st.log_update(self._entry, fault=kind)
            if kind.isdigit():
                raise fault_reply(family, int(kind), f)
            if kind in ("drop_before_persist", "drop"):
                self._drain_body()
                self._drop()
                return
            if kind == "drop_after_persist":
                self._drop_response = True
            if kind == "stall" and not (op == "download" and f.get("after_bytes") is not None):
                try:
                    self._spool_body()
                except Reply:
                    pass
                self.st.sleep(f.get("seconds", 10))
        func()

    def _host(self):
        return self.headers.get("Host") or "127.0.0.1:%d" % self.st.port

    # ---- auth

    def _auth(self, need, family="gcs"):
        """Check the bearer token; -> principal name. need: read | write | secret."""
        st = self.st
        if not st.cfg["auth"]:
            return "Anonymous caller"
        h = self.headers.get("Authorization")
        if family == "secret":
            msg = ("Request had invalid authentication credentials. Expected OAuth 2 access token, "
                   "login cookie or other valid authentication credential.")
        if not h:
            if family == "secret":
                raise google_err(401, msg.replace("had invalid", "is missing required"), "UNAUTHENTICATED")
            raise gcs_err(401, "Anonymous caller does not have %s access." % self._perm_hint(),
                          "required", [("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"')])
        scheme, _, tok = h.partition(" ")
        with st.lock:
            t = st.tokens.get(tok.strip()) if scheme.lower() == "bearer" else None
            valid = t is not None and st.now() < t["expiry"]
            if self._entry is not None:
                self._entry["token_valid"] = valid
        if not valid:
            if family == "secret":
                raise google_err(401, msg, "UNAUTHENTICATED")
            raise gcs_err(401, "Invalid Credentials", "authError",
                          [("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/", '
                                                'error="invalid_token"')])
        if st.cfg["check_scopes"] and not (t["scopes"] & SCOPES_FOR[need]):
            if family == "secret":
                raise google_err(403, "Request had insufficient authentication scopes.", "PERMISSION_DENIED")
            raise gcs_err(403, "Insufficient Permission", "insufficientPermissions")
        return t["principal"]

    def _perm_hint(self):
        return {"upload_init": "storage.objects.create", "upload_media": "storage.objects.create",
                "list": "storage.objects.list", "delete": "storage.objects.delete",
                "iam": "storage.buckets.getIamPolicy", "bucket": "storage.buckets.get"}.get(
            self._entry and self._entry["op"], "storage.objects.get")

    def _bucket(self, name):
        b = self.st.buckets.get(name)
        if b is None:
            raise gcs_err(404, "The specified bucket does not exist.", "notFound")
        return b

    @staticmethod
    def _deny(b, perm, principal, what="bucket"):
        if b.denies(perm):
            raise gcs_err(403, "%s does not have %s access to the Google Cloud Storage %s. "
                               "Permission '%s' denied on resource (or it may not exist)."
                          % (principal, perm, what, perm), "forbidden")

    # ---- GCS: uploads

    def h_upload_init(self, bucket):
        principal = self._auth("write")
        meta = self._json_body()
        if not isinstance(meta, dict):
            raise gcs_err(400, "Invalid JSON payload: expected an object", "invalid")
        name = self._q1("name") or meta.get("name")
        if not name:
            raise gcs_err(400, "Required", "required")
        pre = parse_preconditions(self._query)
        ctype = meta.get("contentType") or self.headers.get("X-Upload-Content-Type") \
            or "application/octet-stream"
        md = meta.get("metadata") or {}
        if not isinstance(md, dict):
            raise gcs_err(400, "Invalid value for metadata: expected an object", "invalid")
        md = {str(k): (v if isinstance(v, str) else json.dumps(v)) for k, v in md.items()}
        declared = self.headers.get("X-Upload-Content-Length")
        if declared is not None:
            try:
                declared = int(declared)
            except ValueError:
                raise gcs_err(400, "Invalid X-Upload-Content-Length", "invalid")
        with self.st.lock:
            b = self._bucket(bucket)
            self._deny(b, "storage.objects.create", principal)
            old = b.objects.get(name)
            if old is not None:
                self._deny(b, "storage.objects.delete", principal, "object")
            check_preconditions(old, pre)
            uid = "fake-" + pysecrets.token_urlsafe(24)
            path = os.path.join(self.st.sess_dir, uid)
            open(path, "wb").close()
            self.st.sessions[uid] = Session(uid, bucket, name, path, ctype, md, pre, declared,
                                            self.st.now())
        loc = "http://%s/upload/storage/v1/b/%s/o?uploadType=resumable&name=%s&upload_id=%s" % (
            self._host(), q(bucket), q(name), uid)
        raise Reply(200, b"", "text/plain; charset=utf-8",
                    [("Location", loc), ("X-GUploader-UploadID", uid)])

    def _claimed_hashes(self):
        vals = self.headers.get_all("X-Goog-Hash") or []
        return parse_goog_hash(vals)

    def h_upload_media(self, bucket):
        principal = self._auth("write")
        name = self._q1("name")
        if not name:
            raise gcs_err(400, "Required", "required")
        pre = parse_preconditions(self._query)
        claimed = self._claimed_hashes()
        with self.st.lock:
            b = self._bucket(bucket)
            self._deny(b, "storage.objects.create", principal)
            old = b.objects.get(name)
            if old is not None:
                self._deny(b, "storage.objects.delete", principal, "object")
            check_preconditions(old, pre)
        ctype = self.headers.get("Content-Type") or "application/octet-stream"
        path, n, crc, md5 = self._receive_to_file()
        self._finish_upload(bucket, name, path, n, crc, md5, ctype, {}, pre, claimed)

    def h_upload_multipart(self, bucket):
        principal = self._auth("write")
        ct = self.headers.get("Content-Type") or ""
        mb = re.search(r'boundary="?([^";]+)"?', ct)
        if not ct.lower().startswith("multipart/") or not mb:
            raise gcs_err(400, "Multipart upload needs a multipart/related Content-Type with a boundary",
                          "invalid")
        body = self._small_body()
        delim = b"--" + mb.group(1).encode()
        parts = []
        for chunk in body.split(delim)[1:]:
            if chunk.startswith(b"--"):
                break
            chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk.lstrip(b"\n")
            head, sep, data = chunk.partition(b"\r\n\r\n")
            if not sep:
                raise gcs_err(400, "Malformed multipart body", "invalid")
            if data.endswith(b"\r\n"):
                data = data[:-2]
            hdrs = {}
            for line in head.decode("latin-1").split("\r\n"):
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            parts.append((hdrs, data))
        if len(parts) != 2:
            raise gcs_err(400, "Multipart upload must have exactly 2 parts", "invalid")
        try:
            meta = json.loads(parts[0][1] or b"{}")
        except ValueError:
            raise gcs_err(400, "Parse Error", "parseError")
        name = self._q1("name") or meta.get("name")
        if not name:
            raise gcs_err(400, "Required", "required")
        pre = parse_preconditions(self._query)
        claimed = self._claimed_hashes()
        for k, key in (("crc32c", "crc32c"), ("md5Hash", "md5")):
            if meta.get(k):
                claimed.update(parse_goog_hash(["%s=%s" % (key, meta[k])]))
        with self.st.lock:
            b = self._bucket(bucket)
            self._deny(b, "storage.objects.create", principal)
            old = b.objects.get(name)
            if old is not None:
                self._deny(b, "storage.objects.delete", principal, "object")
            check_preconditions(old, pre)
        data = parts[1][1]
        fd, path = tempfile.mkstemp(dir=self.st.tmp_dir, prefix="up-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        md = {str(k): str(v) for k, v in (meta.get("metadata") or {}).items()}
        ctype = meta.get("contentType") or parts[1][0].get("content-type") or "application/octet-stream"
        self._finish_upload(bucket, name, path, len(data), crc32c(data), hashlib.md5(data).digest(),
                            ctype, md, pre, claimed)

    def _finish_upload(self, bucket, name, path, n, crc, md5, ctype, md, pre, claimed):
        bad = hash_mismatch(claimed, crc, md5)
        if bad:
            _unlink(path)
            raise gcs_err(400, bad, "invalid")
        o = self.st.commit_object(bucket, name, path, n, crc, md5, ctype, md, pre)
        corrupt = bool(self._fault and self._fault["kind"] == "bad_hash")
        raise json_reply(200, o.resource(self._host(), corrupt))

    def _reply_308(self, sess):
        h = [("X-GUploader-UploadID", sess.id)]
        if sess.persisted > 0:
            h.append(("Range", "bytes=0-%d" % (sess.persisted - 1)))
        return Reply(308, b"", "text/plain; charset=utf-8", h, reason="Resume Incomplete")

    def _session_auth(self):
        # The session URI is the credential (no token needed), but a token
        # that is sent must be valid.
        if self.st.cfg["auth"] and self.headers.get("Authorization"):
            self._auth("write")

    def h_session_cancel(self, uid):
        self._session_auth()
        sess = self.st.get_session(uid)
        if sess is None:
            raise gcs_err(404, "No such upload session: %s" % uid, "notFound")
        with sess.lock:
            if sess.state == "active":
                sess.state = "cancelled"
                _unlink(sess.path)
        raise Reply(499, b"", "text/plain; charset=utf-8", reason="Client Closed Request")

    def h_session_put(self, uid, parsed):
        f = self._fault
        sess = self.st.get_session(uid)
        if f is not None and f["kind"] == "expire_session":
            self._drain_body()
            if sess is not None:
                self.st.drop_session(uid)
            raise gcs_err(int(f["respond"]), "No such upload session: %s (expired)" % uid, "notFound")
        self._session_auth()
        if sess is None:
            raise gcs_err(404, "No such upload session: %s" % uid, "notFound")
        if sess.state == "done":
            raise json_reply(200, sess.result)
        if sess.state != "active":
            raise gcs_err(410, "The upload session has been %s; start a new one."
                          % ("cancelled" if sess.state == "cancelled" else "terminated by an error"),
                          "gone")
        if parsed is None:
            raise gcs_err(400, "Failed to parse Content-Range header.", "invalid")
        if parsed[0] == "whole":
            _, n = self._spool_body()
            parsed = ("finalize", 0) if n == 0 else ("data", 0, n - 1, n)
        if parsed[0] in ("status", "finalize"):
            _, n = self._spool_body()
            if n != 0:
                raise gcs_err(400, "Content-Range %s must come with an empty body, not %d bytes"
                              % (self.headers.get("Content-Range"), n), "invalid")
            with sess.lock:
                if sess.state == "done":
                    raise json_reply(200, sess.result)
                if sess.state != "active":
                    raise gcs_err(410, "The upload session has been terminated.", "gone")
                if parsed[0] == "status":
                    raise self._reply_308(sess)
                total = parsed[1]
                self._check_total(sess, total)
                if total < sess.persisted:
                    raise gcs_err(400, "Invalid request. The final size %d is smaller than the %d "
                                       "byte(s) already uploaded." % (total, sess.persisted), "invalid")
                sess.total = total
                if total > sess.persisted:
                    raise self._reply_308(sess)
                self._finalize(sess)
            return
        _, a, b, total = parsed
        spool, n = self._spool_body()
        if n != b - a + 1:
            raise gcs_err(400, "Invalid request. Content-Range bytes %d-%d announce %d byte(s) but the "
                               "body has %d." % (a, b, b - a + 1, n), "invalid")
        if total is not None and b + 1 > total:
            raise gcs_err(400, "Invalid request. Content-Range end %d is beyond the total size %d."
                          % (b, total), "invalid")
        final = total is not None and b + 1 == total
        if not final and n % QUANTUM:
            raise gcs_err(400, "Invalid request. The number of bytes uploaded is required to be equal or "
                               "greater than 262144, except for the final request (it's recommended to be "
                               "the exact multiple of 262144). The received request contained %d bytes, "
                               "which does not meet this requirement." % n, "invalid")
        with sess.lock:
            if sess.state == "done":
                raise json_reply(200, sess.result)
            if sess.state != "active":
                raise gcs_err(410, "The upload session has been terminated.", "gone")
            if total is not None:
                self._check_total(sess, total)
                if total < sess.persisted:
                    raise gcs_err(400, "Invalid request. The total size %d is smaller than the %d "
                                       "byte(s) already uploaded." % (total, sess.persisted), "invalid")
                sess.total = total
            if a > sess.persisted:
                raise gcs_err(400, "Invalid request. According to the Content-Range header, the upload "
                                   "offset is %d byte(s), which exceeds already uploaded size of %d byte(s)."
                              % (a, sess.persisted), "invalid")
            skip = sess.persisted - a
            new = max(0, n - skip)
            take = new
            partial = f is not None and f["kind"] == "partial"
            if partial:
                want = int(f["bytes"]) if f.get("bytes") is not None else new // 2
                want = (max(0, want) // QUANTUM) * QUANTUM
                if want >= new:
                    want = ((new - 1) // QUANTUM) * QUANTUM if new > 0 else 0
                take = want
            if take > 0:
                self._append(sess, spool, skip, take)
            if partial:
                if str(f["respond"]) == "503":
                    raise gcs_err(503, "We encountered an internal error. Please try again.", "backendError")
                raise self._reply_308(sess)
            if final and sess.persisted == total:
                self._finalize(sess)
            raise self._reply_308(sess)

    def _check_total(self, sess, total):
        if sess.total is not None and sess.total != total:
            raise gcs_err(400, "Invalid request. The total object size %d does not match the %d "
                               "announced before." % (total, sess.total), "invalid")
        if sess.declared is not None and sess.declared != total:
            raise gcs_err(400, "Invalid request. The total object size %d does not match "
                               "X-Upload-Content-Length %d." % (total, sess.declared), "invalid")

    def _append(self, sess, spool, offset, count):
        spool.seek(offset)
        h = Hasher(sess.crc, sess.md5)
        try:
            with open(sess.path, "ab") as out:
                remaining = count
                while remaining > 0:
                    blk = spool.read(min(IO_BLOCK, remaining))
                    if not blk:
                        raise RuntimeError("spool shorter than expected")
                    out.write(blk)
                    h.update(blk)
                    remaining -= len(blk)
        finally:
            sess.crc, sess.md5 = h.finish()
        sess.persisted += count

    def _finalize(self, sess):
        """Turn the session into an object (sess.lock held). Always raises Reply."""
        md5 = sess.md5.digest()
        try:
            claimed = self._claimed_hashes()
        except Reply:
            sess.state = "failed"
            _unlink(sess.path)
            raise
        bad = hash_mismatch(claimed, sess.crc, md5)
        if bad:
            sess.state = "failed"
            _unlink(sess.path)
            raise gcs_err(400, bad, "invalid")
        try:
            o = self.st.commit_object(sess.bucket, sess.name, sess.path, sess.persisted, sess.crc, md5,
                                      sess.content_type, sess.metadata, sess.preconds)
        except Reply:
            sess.state = "failed"
            raise
        sess.state = "done"
        sess.result = o.resource(self._host())
        corrupt = bool(self._fault and self._fault["kind"] == "bad_hash")
        raise json_reply(200, o.resource(self._host(), corrupt))

    # ---- GCS: reads, list, delete, iam

    def _lookup(self, bucket, name, perm="storage.objects.get", need="read"):
        principal = self._auth(need)
        pre = parse_preconditions(self._query)
        with self.st.lock:
            b = self._bucket(bucket)
            self._deny(b, perm, principal, "object")
            o = b.objects.get(name)
            gen = self._q1("generation")
            if o is None or (gen and gen != str(o.generation)):
                raise gcs_err(404, "No such object: %s/%s" % (bucket, name), "notFound")
            check_preconditions(o, pre, not_modified=(need == "read"))
            fh = open(o.path, "rb") if perm == "storage.objects.get" and self._want_media else None
            return o, fh

    def h_get(self, bucket, name):
        self._want_media = False
        o, _ = self._lookup(bucket, name)
        corrupt = bool(self._fault and self._fault["kind"] == "bad_hash")
        raise json_reply(200, o.resource(self._host(), corrupt))

    def _hash_headers(self, crc, md5):
        c, m = "crc32c=" + b64_crc(crc), "md5=" + b64_md5(md5)
        if self.st.cfg["hash_header_style"] == "separate":
            return [("x-goog-hash", c), ("x-goog-hash", m)]
        return [("x-goog-hash", c + "," + m)]

    def h_download(self, bucket, name):
        self._want_media = True
        o, fh = self._lookup(bucket, name)
        f = self._fault
        kind = f["kind"] if f else None
        try:
            size = o.size
            start, end, status = 0, size - 1, 200
            rng = self.headers.get("Range")
            mr = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", rng or "")
            if mr and (mr.group(1) or mr.group(2)):
                a, bnd = mr.group(1), mr.group(2)
                if a == "":
                    n = int(bnd)
                    if n == 0 or size == 0:
                        raise self._416(size)
                    start = max(0, size - n)
                else:
                    start = int(a)
                    if bnd != "":
                        if int(bnd) < start:
                            raise self._416(size)
                        end = min(int(bnd), size - 1)
                    if start >= size:
                        raise self._416(size)
                status = 206
            length = end - start + 1 if size else 0
            crc, md5 = o.crc, o.md5
            if kind == "bad_hash":
                crc ^= 0xFFFFFFFF
                md5 = bytes(x ^ 0xFF for x in md5)
            self._drain_body()
            if self._drop_response:
                self._drop()
                return
            self.send_response(status)
            self.send_header("Content-Type", o.content_type)
            self.send_header("Content-Length", str(length))
            if status == 206:
                self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
            for k, v in self._hash_headers(crc, md5):
                self.send_header(k, v)
            self.send_header("x-goog-generation", str(o.generation))
            self.send_header("x-goog-metageneration", str(o.metageneration))
            self.send_header("x-goog-stored-content-length", str(size))
            self.send_header("x-goog-stored-content-encoding", "identity")
            self.send_header("x-goog-storage-class", "STANDARD")
            self.send_header("ETag", '"%s"' % b64_md5(o.md5))
            self.send_header("Last-Modified", email.utils.formatdate(o.updated, usegmt=True))
            self.send_header("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
            if kind == "truncate":
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self._status = status
            if self.command == "HEAD" or length == 0:
                return
            if kind == "truncate":
                send = int(f["bytes"]) if f.get("bytes") is not None else length // 2
                send = max(0, min(send, length - 1))
                self._copy_out(fh, start, send)
                self._drop()
                self._status = "truncated"
                return
            if kind == "stall" and f.get("after_bytes") is not None:
                first = max(0, min(int(f["after_bytes"]), length))
                self._copy_out(fh, start, first)
                self.wfile.flush()
                self.st.sleep(f.get("seconds", 10))
                self._copy_out(fh, start + first, length - first)
                return
            if kind == "corrupt":
                self._copy_out(fh, start, length, flip_at=length // 2)
                return
            fh.seek(start)
            sent = self.connection.sendfile(fh, start, length)
            self._bytes_out += sent
        finally:
            if fh is not None:
                fh.close()

    def _copy_out(self, fh, offset, count, flip_at=None):
        fh.seek(offset)
        pos = 0
        while pos < count:
            blk = fh.read(min(IO_BLOCK, count - pos))
            if not blk:
                break
            if flip_at is not None and pos <= flip_at < pos + len(blk):
                ba = bytearray(blk)
                ba[flip_at - pos] ^= 0xFF
                blk = bytes(ba)
            self.wfile.write(blk)
            pos += len(blk)
            self._bytes_out += len(blk)

    @staticmethod
    def _416(size):
        r = gcs_err(416, "The requested range cannot be satisfied.", "requestedRangeNotSatisfiable")
        r.headers.append(("Content-Range", "bytes */%d" % size))
        return r

    def h_list(self, bucket):
        principal = self._auth("read")
        prefix = self._q1("prefix", "")
        delim = self._q1("delimiter", "")
        start_off = self._q1("startOffset", "")
        end_off = self._q1("endOffset", "")
        try:
            max_results = int(self._q1("maxResults", "1000"))
        except ValueError:
            raise gcs_err(400, "Invalid value for maxResults", "invalid")
        if max_results < 1:
            raise gcs_err(400, "Invalid value for maxResults: must be positive", "invalid")
        max_results = min(max_results, 1000)
        after = None
        tokn = self._q1("pageToken")
        if tokn:
            try:
                after = json.loads(base64.urlsafe_b64decode(tokn + "=" * (-len(tokn) % 4)))["after"]
            except Exception:
                raise gcs_err(400, "Invalid pageToken", "invalid")
        with self.st.lock:
            b = self._bucket(bucket)
            self._deny(b, "storage.objects.list", principal)
            objs = sorted((n, o) for n, o in b.objects.items() if n.startswith(prefix)
                          and (not start_off or n >= start_off) and (not end_off or n < end_off))
            entries = []   # (key, obj or None for a prefix)
            seen_prefixes = set()
            for n, o in objs:
                if delim:
                    i = n.find(delim, len(prefix))
                    if i >= 0:
                        p = n[: i + len(delim)]
                        if p not in seen_prefixes:
                            seen_prefixes.add(p)
                            entries.append((p, None))
                        continue
                entries.append((n, o))
            entries.sort(key=lambda e: e[0])
            if after is not None:
                entries = [e for e in entries if e[0] > after]
            page, rest = entries[:max_results], entries[max_results:]
            host = self._host()
            items = [o.resource(host) for _, o in page if o is not None]
            prefixes = [k for k, o in page if o is None]
        out = {"kind": "storage#objects"}
        if rest:
            out["nextPageToken"] = base64.urlsafe_b64encode(
                json.dumps({"after": page[-1][0]}).encode()).decode().rstrip("=")
        if prefixes:
            out["prefixes"] = prefixes
        if items:
            out["items"] = items
        raise json_reply(200, out)

    def h_delete(self, bucket, name):
        principal = self._auth("write")
        pre = parse_preconditions(self._query)
        with self.st.lock:
            b = self._bucket(bucket)
            self._deny(b, "storage.objects.delete", principal, "object")
            o = b.objects.get(name)
            gen = self._q1("generation")
            if o is None or (gen and gen != str(o.generation)):
                raise gcs_err(404, "No such object: %s/%s" % (bucket, name), "notFound")
            check_preconditions(o, pre)
            del b.objects[name]
            _unlink(o.path)
        raise Reply(204)

    def h_patch(self, bucket, name):
        """objects.patch of custom metadata: keys with null are removed."""
        principal = self._auth("write")
        pre = parse_preconditions(self._query)
        body = self._json_body()
        md = body.get("metadata") if isinstance(body, dict) else None
        if not isinstance(md, dict):
            raise gcs_err(400, "Only metadata can be patched here", "invalid")
        with self.st.lock:
            b = self._bucket(bucket)
            self._deny(b, "storage.objects.update", principal, "object")
            o = b.objects.get(name)
            if o is None:
                raise gcs_err(404, "No such object: %s/%s" % (bucket, name), "notFound")
            check_preconditions(o, pre)
            for k, v in md.items():
                if v is None:
                    o.metadata.pop(str(k), None)
                else:
                    o.metadata[str(k)] = v if isinstance(v, str) else json.dumps(v)
            o.metageneration += 1
            res = o.resource(self._host(), False)
        raise json_reply(200, res)

    def h_iam(self, bucket):
        self._auth("read")
        perms = self._query.get("permissions") or []
        if not perms:
            raise gcs_err(400, "Required parameter: permissions", "required")
        for p in perms:
            if not re.fullmatch(r"storage\.[a-zA-Z]+\.[a-zA-Z]+", p):
                raise gcs_err(400, "Permission '%s' is not valid for this resource." % p, "invalid")
        with self.st.lock:
            b = self._bucket(bucket)
            granted = [p for p in perms if not b.denies(p)]
        out = {"kind": "storage#testIamPermissionsResponse"}
        if granted:
            out["permissions"] = granted
        raise json_reply(200, out)

    def h_bucket(self, bucket):
        principal = self._auth("read")
        with self.st.lock:
            b = self._bucket(bucket)
            self._deny(b, "storage.buckets.get", principal)
        raise json_reply(200, {"kind": "storage#bucket", "id": bucket, "name": bucket,
                               "selfLink": "http://%s/storage/v1/b/%s" % (self._host(), q(bucket)),
                               "projectNumber": self.st.cfg["metadata"]["numeric_project_id"],
                               "location": "US", "locationType": "multi-region",
                               "storageClass": "STANDARD", "metageneration": "1",
                               "timeCreated": rfc3339(0), "updated": rfc3339(0)})

    # ---- metadata server

    def h_metadata(self):
        mf = [("Metadata-Flavor", "Google")]
        if self.headers.get("X-Forwarded-For") is not None:
            raise text_reply(403, "Forbidden: X-Forwarded-For is not allowed\n", "text/html; charset=UTF-8", mf)
        if self.headers.get("Metadata-Flavor") != "Google":
            raise text_reply(403, "Missing required header: Metadata-Flavor: Google\n",
                             "text/html; charset=UTF-8", mf)
        if self.command != "GET":
            raise text_reply(405, "Method not allowed\n", "text/html; charset=UTF-8", mf)
        wait = self._q1("wait_for_change") == "true"
        last = self._q1("last_etag")
        try:
            timeout = float(self._q1("timeout_sec", "3600"))
        except ValueError:
            raise text_reply(400, "Bad Request: timeout_sec\n", "text/html; charset=UTF-8", mf)
        if not wait and last is not None:
            raise text_reply(400, "Bad Request: last_etag needs wait_for_change=true\n",
                             "text/html; charset=UTF-8", mf)
        # As the real server: every answer carries an ETag of its content;
        # wait_for_change=true blocks until the content's ETag differs from
        # last_etag (or from the one current at the call), or timeout_sec.
        st = self.st
        deadline = time.monotonic() + max(0.0, min(timeout, 3600.0))
        with st.md_changed:
            r = self._metadata_reply(mf)
            if wait:
                if last is None:
                    last = r.etag
                while r.status == 200 and r.etag == last and not st.stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    st.md_changed.wait(min(left, 1.0))
                    r = self._metadata_reply(mf)
        raise r

    def _metadata_reply(self, mf):
        """The metadata answer for this path now, with its ETag."""
        try:
            self._metadata_value(mf)
        except Reply as r:
            r.etag = hashlib.md5(r.body).hexdigest()[:16]
            r.headers.append(("ETag", r.etag))
            return r
        raise AssertionError("metadata: no reply")

    def _metadata_value(self, mf):
        st = self.st
        with st.lock:
            md = json.loads(json.dumps(st.cfg["metadata"]))
        p = self._path
        emails = ("default", md["email"])

        def text(v):
            raise text_reply(200, v, "application/text", mf)

        def notfound():
            raise text_reply(404, "Not Found\n", "text/html; charset=UTF-8", mf)

        if p == "/":
            text("computeMetadata/\n")
        if p in ("/computeMetadata/", "/computeMetadata"):
            text("v1/\n")
        base = "/computeMetadata/v1/"
        if not p.startswith(base):
            notfound()
        rel = p[len(base):]
        simple = {
            "project/project-id": md["project_id"],
            "project/numeric-project-id": md["numeric_project_id"],
            "instance/network-interfaces/0/ip": md["ip"],
            "instance/hostname": md["hostname"],
            "instance/id": md["instance_id"],
            "instance/name": md["instance_name"],
            "instance/zone": md["zone"],
        }
        if rel in simple:
            text(simple[rel])
        for prefix, key in (("instance/attributes/", "attributes"),
                            ("project/attributes/", "project_attributes")):
            if rel.startswith(prefix):
                k = rel[len(prefix):]
                if k == "" and self._q1("recursive") == "true":
                    raise json_reply(200, md[key], mf)
                if k == "":
                    text("".join(x + "\n" for x in sorted(md[key])))
                if k in md[key]:
                    text(md[key][k])
                notfound()
        mm = re.fullmatch(r"instance/service-accounts/([^/]+)/(token|email|scopes|aliases)?", rel)
        if mm:
            if mm.group(1) not in emails or not md["token_enabled"]:
                notfound()
            what = mm.group(2)
            if what == "email":
                text(md["email"])
            if what == "scopes":
                text("".join(s + "\n" for s in md["scopes"]))
            if what == "aliases":
                text("default\n")
            if what == "token":
                scopes = md["scopes"]
                if self._q1("scopes"):
                    scopes = [s for s in self._q1("scopes").split(",") if s]
                tok, ttl = st.issue_token(md["email"], scopes)
                raise json_reply(200, {"access_token": tok, "expires_in": ttl, "token_type": "Bearer"}, mf)
            text("aliases\nemail\nidentity\nscopes\ntoken\n")
        if rel == "instance/service-accounts/":
            text("default/\n%s/\n" % md["email"] if md["token_enabled"] else "")
        notfound()

    # ---- OAuth2 token endpoint

    def h_token(self):
        if self.command != "POST":
            raise oauth_err(405, "invalid_request", "Use POST")
        raw = self._small_body(1 << 20)
        form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        gt = (form.get("grant_type") or [""])[0]
        if gt != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            raise oauth_err(400, "unsupported_grant_type", "Invalid grant_type: %s" % gt)
        assertion = (form.get("assertion") or [""])[0]
        if not assertion:
            raise oauth_err(400, "invalid_request", "Missing required parameter: assertion")
        parts = assertion.split(".")
        try:
            if len(parts) != 3:
                raise ValueError
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            sig = _b64url_decode(parts[2])
            if not isinstance(header, dict) or not isinstance(claims, dict):
                raise ValueError
        except Exception:
            raise oauth_err(400, "invalid_grant", "Invalid JWT: the assertion is not a well-formed JWT.")
        if header.get("alg") != "RS256":
            raise oauth_err(400, "invalid_grant", "Invalid JWT: unsupported algorithm %r." % header.get("alg"))
        st = self.st
        iss = claims.get("iss")
        with st.lock:
            keys = list(st.accounts.get(iss, []))
        if not keys:
            raise oauth_err(400, "invalid_grant", "Invalid grant: account not found")
        try:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import padding
        except ImportError:
            raise oauth_err(500, "internal_failure", "python3-cryptography is not installed on the fake")
        signing_input = (parts[0] + "." + parts[1]).encode("ascii")
        kid = header.get("kid")
        ordered = sorted(keys, key=lambda k: k["kid"] != kid)  # the named key first
        ok = False
        for k in ordered:
            try:
                k["key"].verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
                ok = True
                break
            except InvalidSignature:
                continue
            except Exception:
                continue
        if not ok:
            raise oauth_err(400, "invalid_grant", "Invalid JWT Signature.")
        if claims.get("aud") != st.token_uri():
            raise oauth_err(400, "invalid_grant", "Invalid JWT: Failed audience check. The right audience is %s"
                            % st.token_uri())
        iat, exp = claims.get("iat"), claims.get("exp")
        now = st.now()
        if (not isinstance(iat, (int, float)) or not isinstance(exp, (int, float)) or exp <= iat
                or exp - iat > MAX_JWT_LIFETIME or iat > now + MAX_SKEW or exp < now - MAX_SKEW):
            raise oauth_err(400, "invalid_grant",
                            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
                            "timeframe. Check your iat and exp values in the JWT claim.")
        scope = claims.get("scope")
        if not isinstance(scope, str) or not scope.strip():
            raise oauth_err(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        tok, ttl = st.issue_token(iss, scope.split())
        r = json_reply(200, {"access_token": tok, "expires_in": ttl, "token_type": "Bearer"})
        r.headers.append(("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate"))
        raise r

    # ---- Secret Manager

    def h_secret(self, secret, version):
        if self.command != "GET":
            raise google_err(405, "Method not allowed", "INVALID_ARGUMENT")
        self._auth("secret", "secret")
        st = self.st
        with st.lock:
            s = st.secrets.get(secret)
            full = "%s/versions/%s" % (secret, version)
            if s is not None and s["deny"]:
                raise google_err(403, "Permission 'secretmanager.versions.access' denied for resource "
                                      "'%s' (or it may not exist)." % full, "PERMISSION_DENIED")
            if s is None or not s["versions"]:
                raise google_err(404, "Secret [%s] not found or has no versions." % secret, "NOT_FOUND")
            vs = s["versions"]
            if version == "latest":
                num = len(vs)
            elif version.isdigit() and 1 <= int(version) <= len(vs):
                num = int(version)
            else:
                raise google_err(404, "Secret Version [%s] not found." % full, "NOT_FOUND")
            v = vs[num - 1]
        name = "%s/versions/%d" % (secret, num)
        if v["state"] != "ENABLED":
            raise google_err(400, "%s is in %s state." % (name, v["state"]), "FAILED_PRECONDITION")
        data = v["data"]
        crc = crc32c(data)
        kind = self._fault["kind"] if self._fault else None
        if kind == "bad_hash":
            crc ^= 0xFFFFFFFF
        if kind == "corrupt" and data:
            data = bytes([data[0] ^ 0x01]) + data[1:]
        raise json_reply(200, {"name": name, "payload": {
            "data": base64.b64encode(data).decode("ascii"), "dataCrc32c": str(crc)}})

    # ---- control API

    def _control(self, p):
        st = self.st
        m = self.command
        if p == "/_fake/health":
            raise json_reply(200, {"ok": True, "port": st.port})
        if p == "/_fake/reset" and m == "POST":
            self._small_body()
            st.reset()
            raise json_reply(200, {"ok": True})
        if p == "/_fake/config":
            if m == "POST":
                try:
                    st.apply_config(self._json_body("control"))
                except ValueError as e:
                    raise json_reply(400, {"error": str(e)})
            raise json_reply(200, st.config_view())
        if p == "/_fake/faults":
            if m == "POST":
                body = self._json_body("control")
                items = body.get("faults") if isinstance(body, dict) and "faults" in body else body
                items = items if isinstance(items, list) else [items]
                try:
                    added = st.add_faults(items)
                except (ValueError, TypeError) as e:
                    raise json_reply(400, {"error": str(e)})
                raise json_reply(200, {"queued": added})
            if m == "DELETE":
                with st.lock:
                    st.faults = []
                raise json_reply(200, {"ok": True})
            with st.lock:
                raise json_reply(200, {"pending": list(st.faults), "fired": list(st.fired)})
        if p == "/_fake/log":
            if m == "DELETE":
                with st.lock:
                    st.log = []
                raise json_reply(200, {"ok": True})
            since = int(self._q1("since", "0"))
            op = self._q1("op")
            with st.lock:
                entries = [e for e in st.log if e["seq"] > since and (op is None or e["op"] == op)]
                raise json_reply(200, {"entries": entries, "last": st.seq})
        if p == "/_fake/sessions":
            with st.lock:
                raise json_reply(200, {"sessions": [s.view() for s in st.sessions.values()]})
        mm = re.fullmatch(r"/_fake/objects/([^/]+)", p)
        if mm:
            bucket = urllib.parse.unquote(mm.group(1))
            with st.lock:
                b = st.buckets.get(bucket)
                if b is None:
                    raise json_reply(404, {"error": "no bucket %s" % bucket})
                raise json_reply(200, {"bucket": bucket,
                                       "items": [o.summary() for _, o in sorted(b.objects.items())]})
        mm = re.fullmatch(r"/_fake/object/([^/]+)/(.+)", p)
        if mm:
            return self._control_object(urllib.parse.unquote(mm.group(1)), urllib.parse.unquote(mm.group(2)))
        if p == "/_fake/make_key" and m == "POST":
            body = self._json_body("control") or {}
            import make_key
            try:
                keyfile, pub = make_key.generate_service_account(
                    body.get("client_email"), body.get("project_id") or st.cfg["metadata"]["project_id"],
                    body.get("token_uri") or st.token_uri(), body.get("private_key_id"))
                st.apply_config({"service_account": {"client_email": keyfile["client_email"],
                                                     "public_key_pem": pub,
                                                     "private_key_id": keyfile["private_key_id"]}})
            except (RuntimeError, ValueError) as e:
                raise json_reply(500, {"error": str(e)})
            raise json_reply(200, keyfile)
        if p == "/_fake/token" and m == "POST":
            body = self._json_body("control") or {}
            tok, ttl = st.issue_token(body.get("principal", "test@fake"), body.get("scopes") or [SCOPE_CP],
                                      body.get("ttl"))
            raise json_reply(200, {"access_token": tok, "expires_in": ttl, "token_type": "Bearer"})
        raise json_reply(404, {"error": "unknown control endpoint %s %s" % (m, p)})

    def _control_object(self, bucket, name):
        st = self.st
        m = self.command
        if m == "GET":
            with st.lock:
                b = st.buckets.get(bucket)
                o = b and b.objects.get(name)
                if not o:
                    raise json_reply(404, {"error": "no object %s/%s" % (bucket, name)})
                fh = open(o.path, "rb")
            with fh:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(o.size))
                self.send_header("x-goog-generation", str(o.generation))
                self.end_headers()
                self._status = 200
                if o.size:
                    self.connection.sendfile(fh, 0, o.size)
            return
        if m == "DELETE":
            with st.lock:
                b = st.buckets.get(bucket)
                o = b and b.objects.pop(name, None)
                if not o:
                    raise json_reply(404, {"error": "no object %s/%s" % (bucket, name)})
                _unlink(o.path)
            raise json_reply(200, {"ok": True})
        if m in ("POST", "PUT"):
            try:
                md = json.loads(self._q1("metadata") or self.headers.get("X-Fake-Metadata") or "{}")
                if not isinstance(md, dict):
                    raise ValueError
            except ValueError:
                raise json_reply(400, {"error": "metadata must be a JSON object"})
            path, n, crc, md5 = self._receive_to_file()
            if self._q1("crc32c"):
                crc = int.from_bytes(base64.b64decode(self._q1("crc32c")), "big")
            if self._q1("md5Hash"):
                md5 = base64.b64decode(self._q1("md5Hash"))
            with st.lock:
                if bucket not in st.buckets:
                    st.buckets[bucket] = Bucket(bucket)
                o = st.commit_object(bucket, name, path, n, crc, md5,
                                     self._q1("contentType") or self.headers.get("Content-Type"),
                                     {str(k): str(v) for k, v in md.items()},
                                     generation=self._q1("generation"),
                                     keep_generation=self._q1("keepGeneration") in ("1", "true"))
            raise json_reply(200, o.summary())
        raise json_reply(405, {"error": "method not allowed"})


def _b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    allow_reuse_address = True

    def server_bind(self):
        # Skip HTTPServer.server_bind's getfqdn() (a DNS lookup).
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        if self.verbose:
            super().handle_error(request, client_address)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake GCS / metadata / OAuth2 / Secret Manager server.")
    ap.add_argument("--host", default="127.0.0.1",
                    help="address to bind (default 127.0.0.1; anything else only inside a network "
                         "namespace the test made itself)")
    ap.add_argument("--port", type=int, default=0, help="port on --host (0: any free port)")
    ap.add_argument("--port-file", help="write the bound port here (atomically) once listening")
    ap.add_argument("--data-dir", help="where objects and upload sessions are stored "
                                       "(default: a temp dir removed at exit)")
    ap.add_argument("--verbose", action="store_true", help="one line per request on stderr")
    ap.add_argument("--auth", action="store_true", help="start with auth required (control API can change it)")
    ap.add_argument("--bucket", action="append", default=[], help="bucket to exist at start and after reset")
    ap.add_argument("--project-id", default="fake-project", help="metadata project-id")
    a = ap.parse_args(argv)

    made_dir = None
    if a.data_dir:
        data_dir = os.path.abspath(a.data_dir)
        os.makedirs(data_dir, exist_ok=True)
    else:
        data_dir = made_dir = tempfile.mkdtemp(prefix="fakegcs-")
    state = State(data_dir, {"auth": a.auth, "buckets": a.bucket, "project_id": a.project_id})
    httpd = Server((a.host, a.port), Handler)
    httpd.state = state
    httpd.verbose = a.verbose
    state.port = httpd.server_address[1]

    def stop(signum, frame):
        state.stopping = True
        state.wakeup.set()
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    if a.port_file:
        tmp = "%s.tmp.%d" % (a.port_file, os.getpid())
        with open(tmp, "w") as f:
            f.write("%d\n" % state.port)
        os.replace(tmp, a.port_file)
    if a.verbose:
        sys.stderr.write("fakegcs: listening on %s:%d, data in %s, crc32c via %s\n"
                         % (a.host, state.port, data_dir, CRC_IMPL))
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        httpd.server_close()
        if made_dir:
            shutil.rmtree(made_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
