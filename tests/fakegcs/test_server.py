"""Self-tests of the fake Google server (tests/fakegcs/server.py).

    /usr/bin/python3 -m unittest tests/fakegcs/test_server.py      (from the repo root)
    tests/fakegcs/run-tests.sh

Starts the server on a free port with --port 0 --port-file, talks to it
with http.client only, and stops it with SIGTERM at the end (checking that
it exits 0).
"""

import base64
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import make_key  # noqa: E402
from server import crc32c  # noqa: E402

PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
Q = 256 * 1024
CP = "https://www.googleapis.com/auth/cloud-platform"
SERVER = None


def b64crc(data):
    return base64.b64encode(crc32c(data).to_bytes(4, "big")).decode()


def b64md5(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def blob(n, seed=0):
    """Deterministic pseudo-random bytes."""
    out = bytearray()
    h = hashlib.sha256(b"%d" % seed).digest()
    while len(out) < n:
        h = hashlib.sha256(h).digest()
        out += h * 64
    return bytes(out[:n])


class FakeServer:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="fakegcs-test-")
        self.port_file = os.path.join(self.dir, "port")
        self.stderr = open(os.path.join(self.dir, "stderr"), "w+")
        self.proc = subprocess.Popen(
            [PY, os.path.join(HERE, "server.py"), "--port", "0", "--port-file", self.port_file,
             "--data-dir", os.path.join(self.dir, "data")],
            stdout=subprocess.DEVNULL, stderr=self.stderr)
        deadline = time.time() + 10
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stderr.seek(0)
                raise RuntimeError("fake server did not start: " + self.stderr.read())
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read().strip())
        self.base = "http://127.0.0.1:%d" % self.port

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(10)
        self.stderr.seek(0)
        err = self.stderr.read()
        self.stderr.close()
        return rc, err


def setUpModule():
    global SERVER
    SERVER = FakeServer()


def tearDownModule():
    rc, err = SERVER.stop()
    shutil.rmtree(SERVER.dir, ignore_errors=True)
    if rc != 0 or "Traceback" in err:
        raise AssertionError("fake server exited %s; stderr:\n%s" % (rc, err))


class Base(unittest.TestCase):
    def setUp(self):
        self.c = self.conn()
        self.ctl("POST", "/_fake/reset")
        self.ctl("POST", "/_fake/config", {"buckets": {"b": {}}})

    def tearDown(self):
        self.c.close()

    def conn(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", SERVER.port, timeout=timeout)

    def req(self, method, path, body=None, headers=None, conn=None):
        c = conn or self.c
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, r.headers, data

    def ctl(self, method, path, obj=None):
        body = json.dumps(obj).encode() if obj is not None else b""
        st, _, data = self.req(method, path, body, {"Content-Type": "application/json"})
        if st != 200:
            raise AssertionError("control %s %s -> %d %s" % (method, path, st, data))
        return json.loads(data) if data[:1] in (b"{", b"[") else data

    def faults(self, *items):
        return self.ctl("POST", "/_fake/faults", list(items))

    # -- GCS helpers

    def init(self, name, bucket="b", meta=None, query="", headers=None, expect=200):
        h = {"Content-Type": "application/json; charset=UTF-8"}
        h.update(headers or {})
        st, hd, data = self.req("POST", "/upload/storage/v1/b/%s/o?uploadType=resumable&name=%s%s"
                                % (bucket, urllib.parse.quote(name, safe=""), query),
                                json.dumps(meta or {}).encode(), h)
        self.assertEqual(st, expect, data)
        if st != 200:
            return None
        self.assertEqual(data, b"")
        loc = hd["Location"]
        self.assertTrue(loc.startswith(SERVER.base + "/upload/storage/v1/b/%s/o?" % bucket), loc)
        self.assertIn("upload_id=", loc)
        u = urllib.parse.urlsplit(loc)
        return u.path + "?" + u.query

    def put(self, sess, data, start, total="*", headers=None, conn=None):
        h = {"Content-Range": "bytes %d-%d/%s" % (start, start + len(data) - 1, total)}
        h.update(headers or {})
        return self.req("PUT", sess, data, h, conn)

    def status(self, sess, conn=None):
        return self.req("PUT", sess, b"", {"Content-Range": "bytes */*"}, conn)

    def obj_path(self, name, bucket="b"):
        return "/storage/v1/b/%s/o/%s" % (bucket, urllib.parse.quote(name, safe=""))

    def media(self, name, data, bucket="b", query="", headers=None):
        return self.req("POST", "/upload/storage/v1/b/%s/o?uploadType=media&name=%s%s"
                        % (bucket, urllib.parse.quote(name, safe=""), query), data,
                        dict({"Content-Type": "application/octet-stream"}, **(headers or {})))

    def objects(self, bucket="b"):
        return {o["name"]: o for o in self.ctl("GET", "/_fake/objects/" + bucket)["items"]}

    def log(self, op=None):
        return self.ctl("GET", "/_fake/log" + ("?op=" + op if op else ""))["entries"]


class ResumableUploadTest(Base):
    def test_happy_path_several_chunks(self):
        data = blob(3 * Q + 12345)
        sess = self.init("dir/backup 1.tar", meta={"name": "dir/backup 1.tar", "contentType": "application/x-tar",
                                                   "metadata": {"lsn": "0/1A2B", "host": "db1"}})
        for i in range(3):
            st, hd, body = self.put(sess, data[i * Q:(i + 1) * Q], i * Q)
            self.assertEqual(st, 308, body)
            self.assertEqual(hd["Range"], "bytes=0-%d" % ((i + 1) * Q - 1))
            self.assertEqual(body, b"")
        st, hd, body = self.put(sess, data[3 * Q:], 3 * Q, len(data))
        self.assertEqual(st, 200, body)
        o = json.loads(body)
        self.assertEqual(o["name"], "dir/backup 1.tar")
        self.assertEqual(o["bucket"], "b")
        self.assertEqual(o["size"], str(len(data)))
        self.assertIsInstance(o["generation"], str)
        self.assertEqual(o["metageneration"], "1")
        self.assertEqual(o["crc32c"], b64crc(data))
        self.assertEqual(o["md5Hash"], b64md5(data))
        self.assertEqual(o["contentType"], "application/x-tar")
        self.assertEqual(o["metadata"], {"lsn": "0/1A2B", "host": "db1"})
        for k in ("timeCreated", "updated"):
            self.assertRegex(o[k], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        st, hd, got = self.req("GET", self.obj_path("dir/backup 1.tar") + "?alt=media")
        self.assertEqual(st, 200)
        self.assertEqual(got, data)
        # a completed session answers further PUTs with the object
        st, _, body = self.status(sess)
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(body)["generation"], o["generation"])
        st, _, body = self.put(sess, data[3 * Q:], 3 * Q, len(data))
        self.assertEqual(st, 200)
        # the log shows the chunks
        chunks = [e["headers"]["Content-Range"] for e in self.log("upload_chunk")]
        self.assertEqual(chunks[:4], ["bytes 0-262143/*", "bytes 262144-524287/*", "bytes 524288-786431/*",
                                      "bytes 786432-%d/%d" % (len(data) - 1, len(data))])
        self.assertFalse(any("Expect" in e["headers"] for e in self.log()))

    def test_308_without_range_when_nothing_persisted(self):
        sess = self.init("x")
        st, hd, body = self.status(sess)
        self.assertEqual(st, 308)
        self.assertIsNone(hd.get("Range"))
        self.assertEqual(hd["Content-Length"], "0")

    def test_status_query_does_not_finalize_and_star_total_does(self):
        data = blob(2 * Q, 1)
        sess = self.init("y")
        st, hd, _ = self.put(sess, data, 0)
        self.assertEqual((st, hd["Range"]), (308, "bytes=0-%d" % (2 * Q - 1)))
        for _ in range(2):
            st, hd, _ = self.status(sess)
            self.assertEqual((st, hd["Range"]), (308, "bytes=0-%d" % (2 * Q - 1)))
        self.assertEqual(self.objects(), {})
        st, _, body = self.req("PUT", sess, b"", {"Content-Range": "bytes */%d" % (3 * Q)})
        self.assertEqual(st, 308)  # more announced than persisted: still incomplete
        st, _, body = self.req("PUT", sess, b"", {"Content-Range": "bytes */%d" % (2 * Q)})
        self.assertEqual(st, 400, body)  # total may not change once announced
        sess = self.init("y2")
        self.put(sess, data, 0)
        st, _, body = self.req("PUT", sess, b"", {"Content-Range": "bytes */%d" % (2 * Q)})
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body)["crc32c"], b64crc(data))
        self.assertEqual(self.objects()["y2"]["size"], 2 * Q)

    def test_empty_object(self):
        sess = self.init("empty")
        st, _, body = self.req("PUT", sess, b"", {"Content-Range": "bytes */0"})
        self.assertEqual(st, 200, body)
        o = json.loads(body)
        self.assertEqual((o["size"], o["crc32c"], o["md5Hash"]), ("0", "AAAAAA==", b64md5(b"")))

    def test_non_quantum_chunk_rejected(self):
        sess = self.init("z")
        st, _, body = self.put(sess, blob(Q + 1000), 0)
        self.assertEqual(st, 400)
        self.assertIn("262144", json.loads(body)["error"]["message"])
        st, hd, _ = self.status(sess)
        self.assertEqual(st, 308)
        self.assertIsNone(hd.get("Range"))
        # a final chunk may have any size
        st, _, body = self.put(sess, blob(1000), 0, 1000)
        self.assertEqual(st, 200, body)

    def test_offset_beyond_persisted_is_400_and_overlap_is_skipped(self):
        data = blob(3 * Q, 2)
        sess = self.init("o")
        self.put(sess, data[:Q], 0)
        st, _, body = self.put(sess, data[2 * Q:3 * Q], 2 * Q)
        self.assertEqual(st, 400)
        self.assertIn("exceeds already uploaded size of 262144", body.decode())
        # resend from 0: the persisted first quantum is skipped
        st, hd, _ = self.put(sess, data[:2 * Q], 0)
        self.assertEqual((st, hd["Range"]), (308, "bytes=0-%d" % (2 * Q - 1)))
        st, _, body = self.put(sess, data[Q:], Q, len(data))
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body)["md5Hash"], b64md5(data))

    def test_goog_hash_mismatch(self):
        data = blob(Q + 5, 3)
        for hdr in ("crc32c=%s" % b64crc(b"other"), "md5=%s" % b64md5(b"other"),
                    "crc32c=%s,md5=%s" % (b64crc(data), b64md5(b"other"))):
            sess = self.init("h")
            self.put(sess, data[:Q], 0)
            st, _, body = self.put(sess, data[Q:], Q, len(data), {"X-Goog-Hash": hdr})
            self.assertEqual(st, 400, hdr)
            err = json.loads(body)["error"]
            self.assertEqual(err["code"], 400)
            self.assertIn("doesn't match", err["message"])
            self.assertEqual(self.objects(), {})
            st, _, _ = self.status(sess)
            self.assertEqual(st, 410)
        sess = self.init("h")
        self.put(sess, data[:Q], 0)
        st, _, body = self.put(sess, data[Q:], Q, len(data),
                               {"X-Goog-Hash": "crc32c=%s,md5=%s" % (b64crc(data), b64md5(data))})
        self.assertEqual(st, 200, body)
        # media upload too
        st, _, body = self.media("m", data, headers={"X-Goog-Hash": "crc32c=" + b64crc(b"x")})
        self.assertEqual(st, 400)
        self.assertNotIn("m", self.objects())
        st, _, body = self.media("m", data, headers={"X-Goog-Hash": "crc32c=" + b64crc(data)})
        self.assertEqual(st, 200, body)

    def test_if_generation_match_zero(self):
        st, _, body = self.media("g", b"first", query="&ifGenerationMatch=0")
        self.assertEqual(st, 200, body)
        gen = json.loads(body)["generation"]
        st, _, body = self.media("g", b"second", query="&ifGenerationMatch=0")
        self.assertEqual(st, 412)
        self.assertEqual(json.loads(body)["error"]["errors"][0]["reason"], "conditionNotMet")
        # checked when the session is initiated ...
        self.init("g", query="&ifGenerationMatch=0", expect=412)
        # ... and again at finalization
        sess = self.init("g2", query="&ifGenerationMatch=0")
        self.media("g2", b"planted meanwhile")
        st, _, body = self.put(sess, b"abc", 0, 3)
        self.assertEqual(st, 412, body)
        self.assertEqual(self.objects()["g"]["generation"], gen)
        st, _, body = self.media("g", b"third", query="&ifGenerationMatch=" + gen)
        self.assertEqual(st, 200, body)
        self.assertNotEqual(json.loads(body)["generation"], gen)

    def test_declared_length_and_cancel(self):
        sess = self.init("d", headers={"X-Upload-Content-Length": "10"})
        st, _, _ = self.put(sess, b"123456789", 0, 9)
        self.assertEqual(st, 400)
        st, _, body = self.req("DELETE", sess)
        self.assertEqual(st, 499)
        st, _, _ = self.status(sess)
        self.assertEqual(st, 410)

    def test_unknown_session_404(self):
        st, _, body = self.status("/upload/storage/v1/b/b/o?uploadType=resumable&upload_id=nope")
        self.assertEqual(st, 404)
        self.assertEqual(json.loads(body)["error"]["code"], 404)

    def test_session_expires_with_clock(self):
        sess = self.init("e")
        self.ctl("POST", "/_fake/config", {"clock_offset": 8 * 86400})
        st, _, _ = self.status(sess)
        self.assertEqual(st, 404)

    def test_missing_content_range_means_whole_object(self):
        sess = self.init("w")
        st, _, body = self.req("PUT", sess, b"hello")
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body)["size"], "5")

    def test_large_upload_streams(self):
        chunk = 8 << 20
        data = blob(3 * chunk + 777, 9)
        sess = self.init("big")
        t0 = time.time()
        for i in range(3):
            st, hd, _ = self.put(sess, data[i * chunk:(i + 1) * chunk], i * chunk)
            self.assertEqual(st, 308)
        st, _, body = self.put(sess, data[3 * chunk:], 3 * chunk, len(data))
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body)["crc32c"], b64crc(data))
        st, hd, got = self.req("GET", self.obj_path("big") + "?alt=media")
        self.assertEqual(got, data)
        self.assertLess(time.time() - t0, 10)

    def test_expect_100_continue(self):
        data = blob(Q, 4)
        sess = self.init("ex")
        s = socket.create_connection(("127.0.0.1", SERVER.port), timeout=5)
        try:
            s.sendall(("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nContent-Range: bytes 0-%d/*\r\n"
                       "Expect: 100-continue\r\n\r\n" % (sess, Q, Q - 1)).encode())
            self.assertEqual(s.recv(100), b"HTTP/1.1 100 Continue\r\n\r\n")
            s.sendall(data)
            resp = s.recv(4096)
            self.assertTrue(resp.startswith(b"HTTP/1.1 308 Resume Incomplete\r\n"), resp)
        finally:
            s.close()
        self.assertEqual(self.log("upload_chunk")[-1]["headers"]["Expect"], "100-continue")
        # an error known before the body is wanted goes out without 100 Continue
        s = socket.create_connection(("127.0.0.1", SERVER.port), timeout=5)
        try:
            s.sendall(b"POST /upload/storage/v1/b/nosuch/o?uploadType=media&name=a HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            resp = s.recv(4096)
            self.assertTrue(resp.startswith(b"HTTP/1.1 404 "), resp)
        finally:
            s.close()

    def test_chunked_request_body_and_multipart(self):
        data = blob(100000, 5)
        self.c.request("POST", "/upload/storage/v1/b/b/o?uploadType=media&name=ch",
                       body=iter([data[:40000], data[40000:]]), encode_chunked=True,
                       headers={"Content-Type": "text/plain"})
        r = self.c.getresponse()
        body = r.read()
        self.assertEqual(r.status, 200, body)
        self.assertEqual(json.loads(body)["crc32c"], b64crc(data))
        self.assertEqual(self.objects()["ch"]["contentType"], "text/plain")
        mp = (b"--XX\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
              b'{"name":"mp","metadata":{"a":"b"}}\r\n--XX\r\nContent-Type: text/csv\r\n\r\n'
              + data + b"\r\n--XX--\r\n")
        st, _, body = self.req("POST", "/upload/storage/v1/b/b/o?uploadType=multipart", mp,
                               {"Content-Type": "multipart/related; boundary=XX"})
        self.assertEqual(st, 200, body)
        o = json.loads(body)
        self.assertEqual((o["name"], o["contentType"], o["metadata"], o["md5Hash"]),
                         ("mp", "text/csv", {"a": "b"}, b64md5(data)))

    def test_length_required(self):
        self.c.putrequest("POST", "/upload/storage/v1/b/b/o?uploadType=media&name=a")
        self.c.endheaders()
        r = self.c.getresponse()
        r.read()
        self.assertEqual(r.status, 411)


class ObjectTest(Base):
    def test_list_pagination(self):
        names = ["p/%02d" % i for i in range(7)] + ["q/other"]
        for n in names:
            self.assertEqual(self.media(n, n.encode())[0], 200)
        seen, token, pages = [], None, 0
        while True:
            path = "/storage/v1/b/b/o?prefix=p%2F&maxResults=3" + ("&pageToken=" + token if token else "")
            st, _, body = self.req("GET", path)
            self.assertEqual(st, 200, body)
            page = json.loads(body)
            self.assertEqual(page["kind"], "storage#objects")
            pages += 1
            seen += [o["name"] for o in page["items"]]
            for o in page["items"]:
                self.assertEqual(o["size"], str(len(o["name"])))
            token = page.get("nextPageToken")
            if not token:
                break
            self.assertEqual(len(page["items"]), 3)
        self.assertEqual(pages, 3)
        self.assertEqual(seen, names[:7])
        st, _, body = self.req("GET", "/storage/v1/b/b/o")
        self.assertEqual([o["name"] for o in json.loads(body)["items"]], names)
        st, _, body = self.req("GET", "/storage/v1/b/b/o?delimiter=%2F")
        self.assertEqual(json.loads(body), {"kind": "storage#objects", "prefixes": ["p/", "q/"]})
        st, _, body = self.req("GET", "/storage/v1/b/b/o?prefix=nothing")
        self.assertEqual(json.loads(body), {"kind": "storage#objects"})

    def test_get_metadata_and_media_range(self):
        data = blob(1000, 6)
        gen = json.loads(self.media("r/x", data, headers={"Content-Type": "application/gzip"})[2])["generation"]
        st, _, body = self.req("GET", self.obj_path("r/x"))
        self.assertEqual(st, 200)
        o = json.loads(body)
        self.assertEqual((o["size"], o["generation"], o["contentType"]), ("1000", gen, "application/gzip"))
        want_hash = "crc32c=%s,md5=%s" % (b64crc(data), b64md5(data))
        st, hd, got = self.req("GET", self.obj_path("r/x") + "?alt=media")
        self.assertEqual((st, got, hd["x-goog-hash"], hd["x-goog-generation"]), (200, data, want_hash, gen))
        st, hd, got = self.req("GET", self.obj_path("r/x") + "?alt=media", headers={"Range": "bytes=100-199"})
        self.assertEqual((st, got, hd["Content-Range"], hd["x-goog-hash"]),
                         (206, data[100:200], "bytes 100-199/1000", want_hash))
        st, hd, got = self.req("GET", self.obj_path("r/x") + "?alt=media", headers={"Range": "bytes=900-"})
        self.assertEqual((st, got), (206, data[900:]))
        st, hd, got = self.req("GET", self.obj_path("r/x") + "?alt=media", headers={"Range": "bytes=-10"})
        self.assertEqual((st, got), (206, data[-10:]))
        st, hd, got = self.req("GET", self.obj_path("r/x") + "?alt=media", headers={"Range": "bytes=5000-"})
        self.assertEqual((st, hd["Content-Range"]), (416, "bytes */1000"))
        st, _, _ = self.req("GET", self.obj_path("r/x") + "?alt=media&ifGenerationMatch=1")
        self.assertEqual(st, 412)
        st, _, got = self.req("GET", "/download/storage/v1/b/b/o/r%2Fx?alt=media&ifGenerationMatch=" + gen)
        self.assertEqual((st, got), (200, data))
        st, _, body = self.req("GET", self.obj_path("nope"))
        self.assertEqual(st, 404)
        self.ctl("POST", "/_fake/config", {"hash_header_style": "separate"})
        st, hd, _ = self.req("GET", self.obj_path("r/x") + "?alt=media")
        self.assertEqual(hd.get_all("x-goog-hash"), ["crc32c=" + b64crc(data), "md5=" + b64md5(data)])

    def test_delete(self):
        gen = json.loads(self.media("del", b"x")[2])["generation"]
        st, _, body = self.req("DELETE", self.obj_path("del") + "?ifGenerationMatch=%d" % (int(gen) + 1))
        self.assertEqual(st, 412)
        st, _, body = self.req("DELETE", self.obj_path("del") + "?ifGenerationMatch=" + gen)
        self.assertEqual((st, body), (204, b""))
        st, _, body = self.req("DELETE", self.obj_path("del"))
        self.assertEqual(st, 404)

    def test_unknown_and_denied_bucket_and_iam(self):
        st, _, body = self.media("a", b"x", bucket="nosuch")
        self.assertEqual(st, 404)
        self.assertEqual(json.loads(body)["error"]["message"], "The specified bucket does not exist.")
        self.ctl("POST", "/_fake/config", {"buckets": {"ro": {"deny": ["storage.objects.create",
                                                                      "storage.objects.delete"]}}})
        st, _, body = self.media("a", b"x", bucket="ro")
        self.assertEqual(st, 403)
        err = json.loads(body)["error"]
        self.assertIn("does not have storage.objects.create access to the Google Cloud Storage bucket.",
                      err["message"])
        self.assertEqual(err["errors"][0]["reason"], "forbidden")
        self.init("a", bucket="ro", expect=403)
        st, _, body = self.req("GET", "/storage/v1/b/ro/iam/testPermissions?permissions=storage.objects.create"
                                      "&permissions=storage.objects.list&permissions=storage.objects.get")
        self.assertEqual(json.loads(body), {"kind": "storage#testIamPermissionsResponse",
                                            "permissions": ["storage.objects.list", "storage.objects.get"]})
        st, _, body = self.req("GET", "/storage/v1/b/nosuch/iam/testPermissions?permissions=storage.objects.get")
        self.assertEqual(st, 404)

    def test_control_plant_and_raw(self):
        st, _, body = self.media("obj", b"original")
        o = json.loads(body)
        r = self.ctl("POST", "/_fake/object/b/obj?keepGeneration=1", None)  # empty body: truncated to 0
        self.assertEqual((r["generation"], r["size"]), (o["generation"], 0))
        st, _, body = self.req("POST", "/_fake/object/b2/dir/x?contentType=text/plain&metadata=%7B%22k%22%3A%22v%22%7D",
                               b"planted")
        self.assertEqual(st, 200, body)
        self.assertEqual(self.req("GET", "/_fake/object/b2/dir/x")[2], b"planted")
        self.assertEqual(self.objects("b2")["dir/x"]["metadata"], {"k": "v"})
        st, _, body = self.req("GET", self.obj_path("dir/x", "b2"))
        self.assertEqual(json.loads(body)["crc32c"], b64crc(b"planted"))
        # plant bytes that disagree with the recorded hash (silent corruption)
        st, _, body = self.req("POST", "/_fake/object/b/rot?crc32c=" + urllib.parse.quote(b64crc(b"good")),
                               b"bad!")
        st, hd, got = self.req("GET", self.obj_path("rot") + "?alt=media")
        self.assertEqual((got, hd["x-goog-hash"].split(",")[0]), (b"bad!", "crc32c=" + b64crc(b"good")))


class FaultTest(Base):
    def test_status_code_faults_on_chunk_persist_nothing(self):
        data = blob(2 * Q, 7)
        sess = self.init("f")
        for code in ("503", "500", "429", "408"):
            self.faults({"op": "upload_chunk", "kind": code})
            c = self.conn()
            st, hd, body = self.put(sess, data[:Q], 0, conn=c)
            c.close()
            self.assertEqual(st, int(code), body)
            self.assertEqual(json.loads(body)["error"]["code"], int(code))
            st, hd, _ = self.status(sess)
            self.assertIsNone(hd.get("Range"))
        st, hd, _ = self.put(sess, data[:Q], 0)
        self.assertEqual((st, hd["Range"]), (308, "bytes=0-%d" % (Q - 1)))
        self.assertEqual([e["fault"] for e in self.log("upload_chunk")], ["503", "500", "429", "408", None])

    def test_status_faults_on_other_ops(self):
        self.media("x", b"x")
        for op, method, path in (("list", "GET", "/storage/v1/b/b/o"),
                                 ("get", "GET", self.obj_path("x")),
                                 ("download", "GET", self.obj_path("x") + "?alt=media"),
                                 ("delete", "DELETE", self.obj_path("nope")),
                                 ("secret", "GET", "/v1/projects/p/secrets/s/versions/latest:access")):
            self.faults({"op": op, "kind": "503", "retry_after": 1})
            st, hd, body = self.req(method, path)
            self.assertEqual((op, st, hd["Retry-After"]), (op, 503, "1"))
        self.faults({"op": "metadata_token", "kind": "500"}, {"op": "token", "kind": "429"})
        st, hd, _ = self.req("GET", "/computeMetadata/v1/instance/service-accounts/default/token",
                             headers={"Metadata-Flavor": "Google"})
        self.assertEqual((st, hd["Metadata-Flavor"]), (500, "Google"))
        st, _, body = self.req("POST", "/token", b"grant_type=x", {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(st, 429)

    def test_skip_and_count(self):
        self.faults({"op": "list", "kind": "503", "skip": 1, "count": 2})
        got = [self.req("GET", "/storage/v1/b/b/o")[0] for _ in range(4)]
        self.assertEqual(got, [200, 503, 503, 200])
        self.assertEqual(self.ctl("GET", "/_fake/faults")["pending"], [])

    def test_partial_308_and_503(self):
        data = blob(4 * Q + 10, 8)
        sess = self.init("p")
        self.faults({"op": "upload_chunk", "kind": "partial"})
        st, hd, _ = self.put(sess, data[:4 * Q], 0)
        self.assertEqual((st, hd["Range"]), (308, "bytes=0-%d" % (2 * Q - 1)))
        self.faults({"op": "upload_chunk", "kind": "partial", "respond": "503", "bytes": Q})
        st, hd, _ = self.put(sess, data[2 * Q:], 2 * Q, len(data))  # final chunk, partly persisted
        self.assertEqual(st, 503)
        st, hd, _ = self.status(sess)
        self.assertEqual(hd["Range"], "bytes=0-%d" % (3 * Q - 1))
        self.faults({"op": "upload_chunk", "kind": "partial", "bytes": 0})
        st, hd, _ = self.put(sess, data[3 * Q:], 3 * Q, len(data))
        self.assertEqual((st, hd["Range"]), (308, "bytes=0-%d" % (3 * Q - 1)))
        st, _, body = self.put(sess, data[3 * Q:], 3 * Q, len(data))
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(body)["md5Hash"], b64md5(data))

    def test_partial_nothing_persisted_yet_gives_no_range(self):
        sess = self.init("p0")
        self.faults({"op": "upload_chunk", "kind": "partial", "bytes": 0})
        st, hd, _ = self.put(sess, blob(Q), 0)
        self.assertEqual(st, 308)
        self.assertIsNone(hd.get("Range"))

    def test_drop_after_and_before_persist(self):
        data = blob(2 * Q + 3, 10)
        sess = self.init("d")
        self.faults({"op": "upload_chunk", "kind": "drop_before_persist"})
        c = self.conn()
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.put(sess, data[:Q], 0, conn=c)
        c.close()
        st, hd, _ = self.status(sess)
        self.assertIsNone(hd.get("Range"))
        self.faults({"op": "upload_chunk", "kind": "drop_after_persist"})
        c = self.conn()
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.put(sess, data[:Q], 0, conn=c)
        c.close()
        st, hd, _ = self.status(sess)
        self.assertEqual(hd["Range"], "bytes=0-%d" % (Q - 1))
        # the final chunk persisted and finalized, but the answer was lost
        self.faults({"op": "upload_chunk", "kind": "drop_after_persist"})
        c = self.conn()
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.put(sess, data[Q:], Q, len(data), conn=c)
        c.close()
        self.assertIn("d", self.objects())
        st, _, body = self.status(sess)
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(body)["size"], str(len(data)))
        # init dropped after the session was made
        self.faults({"op": "upload_init", "kind": "drop_after_persist"})
        c = self.conn()
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.req("POST", "/upload/storage/v1/b/b/o?uploadType=resumable&name=z", b"{}", conn=c)
        c.close()
        self.assertEqual(len([s for s in self.ctl("GET", "/_fake/sessions")["sessions"] if s["name"] == "z"]), 1)

    def test_stall(self):
        sess = self.init("s")
        self.faults({"op": "upload_chunk", "kind": "stall", "seconds": 1.0})
        c = self.conn(timeout=0.3)
        t0 = time.time()
        with self.assertRaises(socket.timeout):
            self.put(sess, blob(Q), 0, conn=c)
        c.close()
        self.assertLess(time.time() - t0, 0.9)
        self.faults({"op": "status_query", "kind": "stall", "seconds": 0.5})
        t0 = time.time()
        st, hd, _ = self.status(sess)
        self.assertGreaterEqual(time.time() - t0, 0.45)
        self.assertEqual(st, 308)
        # download: headers and 10 bytes, then silence
        self.media("dl", blob(1000))
        self.faults({"op": "download", "kind": "stall", "seconds": 1.0, "after_bytes": 10})
        c = self.conn(timeout=0.3)
        c.request("GET", self.obj_path("dl") + "?alt=media")
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.read(10)), 10)
        with self.assertRaises(socket.timeout):
            r.read(10)
        c.close()

    def test_expire_session(self):
        sess = self.init("e")
        self.put(sess, blob(Q), 0)
        self.faults({"op": "upload_chunk", "kind": "expire_session"})
        st, _, _ = self.put(sess, blob(Q), Q)
        self.assertEqual(st, 404)
        st, _, _ = self.status(sess)
        self.assertEqual(st, 404)
        sess = self.init("e2")
        self.faults({"op": "status_query", "kind": "expire_session", "respond": "410"})
        self.assertEqual(self.status(sess)[0], 410)

    def test_bad_hash_truncate_corrupt_download(self):
        data = blob(5000, 11)
        self.media("x", data)
        good = "crc32c=%s,md5=%s" % (b64crc(data), b64md5(data))
        self.faults({"op": "download", "kind": "bad_hash"})
        st, hd, got = self.req("GET", self.obj_path("x") + "?alt=media")
        self.assertEqual(got, data)
        self.assertNotEqual(hd["x-goog-hash"], good)
        self.assertNotIn(b64crc(data), hd["x-goog-hash"])
        self.faults({"op": "download", "kind": "truncate", "bytes": 100})
        c = self.conn()
        c.request("GET", self.obj_path("x") + "?alt=media")
        r = c.getresponse()
        self.assertEqual(r.headers["Content-Length"], "5000")
        with self.assertRaises(http.client.IncompleteRead) as cm:
            r.read()
        self.assertEqual(cm.exception.partial, data[:100])
        c.close()
        self.faults({"op": "download", "kind": "corrupt"})
        st, hd, got = self.req("GET", self.obj_path("x") + "?alt=media")
        self.assertEqual((hd["x-goog-hash"], len(got)), (good, len(data)))
        self.assertNotEqual(got, data)
        self.faults({"op": "upload_media", "kind": "bad_hash"})
        st, _, body = self.media("y", data)
        self.assertNotEqual(json.loads(body)["crc32c"], b64crc(data))
        self.assertEqual(self.objects()["y"]["crc32c"], b64crc(data))

    def test_fault_validation_and_filters(self):
        st, _, body = self.req("POST", "/_fake/faults", json.dumps({"op": "list", "kind": "truncate"}).encode())
        self.assertEqual(st, 400)
        st, _, body = self.req("POST", "/_fake/faults", json.dumps({"op": "nope", "kind": "503"}).encode())
        self.assertEqual(st, 400)
        self.faults({"op": "upload_media", "kind": "503", "name": "only-this"})
        self.assertEqual(self.media("other", b"1")[0], 200)
        self.assertEqual(self.media("only-this", b"1")[0], 503)


class MetadataTest(Base):
    MF = {"Metadata-Flavor": "Google"}

    def test_token_needs_flavor(self):
        st, hd, body = self.req("GET", "/computeMetadata/v1/instance/service-accounts/default/token")
        self.assertEqual((st, hd["Metadata-Flavor"]), (403, "Google"))
        st, hd, body = self.req("GET", "/computeMetadata/v1/instance/service-accounts/default/token",
                                headers=dict(self.MF, **{"X-Forwarded-For": "1.2.3.4"}))
        self.assertEqual(st, 403)
        st, hd, body = self.req("GET", "/computeMetadata/v1/instance/service-accounts/default/token",
                                headers=self.MF)
        self.assertEqual((st, hd["Metadata-Flavor"]), (200, "Google"))
        t = json.loads(body)
        self.assertEqual(t["token_type"], "Bearer")
        self.assertEqual(t["expires_in"], 3600)
        self.assertTrue(t["access_token"])

    def test_values(self):
        self.ctl("POST", "/_fake/config", {"metadata": {"project_id": "p1", "ip": "10.0.0.5",
                                                        "attributes": {"pg-password-secret": "s1"}}})
        for path, want in (("project/project-id", b"p1"), ("instance/network-interfaces/0/ip", b"10.0.0.5"),
                           ("instance/attributes/pg-password-secret", b"s1")):
            st, hd, body = self.req("GET", "/computeMetadata/v1/" + path, headers=self.MF)
            self.assertEqual((st, body, hd["Metadata-Flavor"]), (200, want, "Google"))
        st, _, _ = self.req("GET", "/computeMetadata/v1/instance/attributes/unset", headers=self.MF)
        self.assertEqual(st, 404)
        self.ctl("POST", "/_fake/config", {"metadata": {"attributes": {"pg-password-secret": None}}})
        st, _, _ = self.req("GET", "/computeMetadata/v1/instance/attributes/pg-password-secret", headers=self.MF)
        self.assertEqual(st, 404)


    def test_recursive_and_etag(self):
        self.ctl("POST", "/_fake/config", {"metadata": {"attributes": {"a": "1", "b": "2"}}})
        path = "/computeMetadata/v1/instance/attributes/?recursive=true"
        st, hd, body = self.req("GET", path, headers=self.MF)
        self.assertEqual((st, json.loads(body)), (200, {"a": "1", "b": "2"}))
        etag = hd["ETag"]
        st, hd2, _ = self.req("GET", path, headers=self.MF)
        self.assertEqual(hd2["ETag"], etag)
        self.ctl("POST", "/_fake/config", {"metadata": {"attributes": {"b": "3"}}})
        st, hd3, _ = self.req("GET", path, headers=self.MF)
        self.assertNotEqual(hd3["ETag"], etag)

    def test_wait_for_change(self):
        self.ctl("POST", "/_fake/config", {"metadata": {"attributes": {"v": "1"}}})
        path = "/computeMetadata/v1/instance/attributes/?recursive=true"
        _, hd, _ = self.req("GET", path, headers=self.MF)
        etag = hd["ETag"]
        # A stale last_etag answers at once.
        t0 = time.time()
        st, _, body = self.req("GET", path + "&wait_for_change=true&last_etag=0000&timeout_sec=5",
                               headers=self.MF)
        self.assertEqual((st, json.loads(body)), (200, {"v": "1"}))
        self.assertLess(time.time() - t0, 2)
        # The current one times out with the same content ...
        st, hd, body = self.req("GET", path + "&wait_for_change=true&last_etag=%s&timeout_sec=1" % etag,
                                headers=self.MF)
        self.assertEqual((st, hd["ETag"]), (200, etag))
        # ... and a change wakes the waiter.
        c2 = self.conn()
        out = {}

        def waiter():
            out["r"] = self.req("GET", path + "&wait_for_change=true&last_etag=%s&timeout_sec=20" % etag,
                                headers=self.MF, conn=c2)
        th = threading.Thread(target=waiter)
        th.start()
        time.sleep(0.3)
        self.assertTrue(th.is_alive())
        self.ctl("POST", "/_fake/config", {"metadata": {"attributes": {"v": "2"}}})
        th.join(10)
        c2.close()
        st, hd, body = out["r"]
        self.assertEqual((st, json.loads(body)), (200, {"v": "2"}))
        self.assertNotEqual(hd["ETag"], etag)
        st, _, _ = self.req("GET", path + "&last_etag=%s" % etag, headers=self.MF)
        self.assertEqual(st, 400)


class AuthTest(Base):
    @classmethod
    def setUpClass(cls):
        cls.key, cls.pub = make_key.generate_service_account("sa@p.iam.gserviceaccount.com", "p",
                                                             SERVER.base + "/token", "kid1")
        cls.other, _ = make_key.generate_service_account("sa@p.iam.gserviceaccount.com", "p",
                                                         SERVER.base + "/token", "kid1")

    def setUp(self):
        super().setUp()
        self.ctl("POST", "/_fake/config", {"service_account": {"client_email": self.key["client_email"],
                                                               "public_key_pem": self.pub,
                                                               "private_key_id": "kid1"}})

    def token(self, assertion):
        body = urllib.parse.urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                       "assertion": assertion}).encode()
        st, _, data = self.req("POST", "/token", body, {"Content-Type": "application/x-www-form-urlencoded"})
        return st, json.loads(data)

    def test_jwt_good_and_bad(self):
        st, t = self.token(make_key.assertion_for(self.key))
        self.assertEqual(st, 200, t)
        self.assertEqual((t["token_type"], t["expires_in"]), ("Bearer", 3600))
        cases = {
            "signature": make_key.assertion_for(self.other),
            "aud": make_key.assertion_for(self.key, aud="https://oauth2.googleapis.com/token"),
            "expired": make_key.assertion_for(self.key, iat=time.time() - 7200),
            "too long": make_key.assertion_for(self.key, lifetime=7200),
            "future": make_key.assertion_for(self.key, iat=time.time() + 1000),
            "garbage": "a.b.c",
        }
        for what, a in cases.items():
            st, t = self.token(a)
            self.assertEqual((what, st, t["error"]), (what, 400, "invalid_grant"))
        st, t = self.token(make_key.assertion_for(self.key, scope=None))
        self.assertEqual((st, t["error"]), (400, "invalid_scope"))
        unknown = dict(self.key, client_email="who@p.iam.gserviceaccount.com")
        st, t = self.token(make_key.assertion_for(unknown))
        self.assertEqual((st, t["error"]), (400, "invalid_grant"))
        # the fake's clock runs 1000 s behind: a JWT made now is from the future
        self.ctl("POST", "/_fake/config", {"clock_offset": -1000})
        st, t = self.token(make_key.assertion_for(self.key))
        self.assertEqual(st, 400)
        st, hd, _ = self.req("GET", "/_fake/health")
        skew = time.time() - time.mktime(time.strptime(hd["Date"], "%a, %d %b %Y %H:%M:%S GMT")) + time.timezone
        self.assertAlmostEqual(skew, 1000, delta=5)

    def test_make_key_cli_and_endpoint(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "key.json")
            subprocess.run([PY, os.path.join(HERE, "make_key.py"), "--out", out, "--port-file",
                            SERVER.port_file, "--email", "cli@p.iam.gserviceaccount.com"],
                           check=True, stdout=subprocess.DEVNULL)
            with open(out) as f:
                k = json.load(f)
            self.assertEqual(oct(os.stat(out).st_mode & 0o777), "0o600")
        self.assertEqual(k["type"], "service_account")
        self.assertEqual(k["token_uri"], SERVER.base + "/token")
        self.assertTrue(k["private_key"].startswith("-----BEGIN PRIVATE KEY-----"))
        self.assertEqual(self.token(make_key.assertion_for(k))[0], 200)
        k2 = self.ctl("POST", "/_fake/make_key", {"client_email": "ep@p.iam.gserviceaccount.com"})
        self.assertEqual(self.token(make_key.assertion_for(k2))[0], 200)

    def test_auth_required(self):
        self.ctl("POST", "/_fake/config", {"auth": True, "token_ttl": 60,
                                           "secrets": {"projects/p/secrets/pw": ["old", "new\u00e9"]}})
        st, hd, body = self.req("GET", "/storage/v1/b/b/o")
        self.assertEqual(st, 401)
        self.assertEqual(json.loads(body)["error"]["code"], 401)
        st, _, _ = self.req("GET", "/storage/v1/b/b/o", headers={"Authorization": "Bearer made-up"})
        self.assertEqual(st, 401)
        st, _, _ = self.req("GET", "/v1/projects/p/secrets/pw/versions/latest:access")
        self.assertEqual(st, 401)
        _, t = self.token(make_key.assertion_for(self.key))
        auth = {"Authorization": "Bearer " + t["access_token"]}
        self.assertEqual(t["expires_in"], 60)
        self.assertEqual(self.req("GET", "/storage/v1/b/b/o", headers=auth)[0], 200)
        self.assertEqual(self.media("a", b"x", headers=auth)[0], 200)
        self.assertEqual(self.req("GET", "/v1/projects/p/secrets/pw/versions/latest:access", headers=auth)[0], 200)
        st, _, body = self.req("GET", "/computeMetadata/v1/instance/service-accounts/default/token",
                               headers={"Metadata-Flavor": "Google"})
        mauth = {"Authorization": "Bearer " + json.loads(body)["access_token"]}
        self.assertEqual(self.req("GET", "/storage/v1/b/b/o", headers=mauth)[0], 200)
        # a read-only scope cannot write
        _, t = self.token(make_key.assertion_for(
            self.key, scope="https://www.googleapis.com/auth/devstorage.read_only"))
        ro = {"Authorization": "Bearer " + t["access_token"]}
        self.assertEqual(self.req("GET", "/storage/v1/b/b/o", headers=ro)[0], 200)
        self.assertEqual(self.media("a", b"x", headers=ro)[0], 403)
        # tokens expire on the fake's clock
        self.ctl("POST", "/_fake/config", {"clock_offset": 120})
        self.assertEqual(self.req("GET", "/storage/v1/b/b/o", headers=auth)[0], 401)
        self.assertTrue(any(e["authorization"] and e["token_valid"] is False for e in self.log("list")))

    def test_session_uri_is_the_credential(self):
        self.ctl("POST", "/_fake/config", {"auth": True})
        _, t = self.token(make_key.assertion_for(self.key))
        sess = self.init("s", headers={"Authorization": "Bearer " + t["access_token"]})
        st, hd, _ = self.put(sess, blob(Q), 0)  # no token needed on the session URI
        self.assertEqual(st, 308)
        st, _, _ = self.put(sess, b"x", Q, Q + 1, {"Authorization": "Bearer expired-or-bogus"})
        self.assertEqual(st, 401)
        st, _, _ = self.put(sess, b"x", Q, Q + 1)
        self.assertEqual(st, 200)
        self.init("s2", expect=401)

    def test_denied_names_principal(self):
        self.ctl("POST", "/_fake/config", {"auth": True, "buckets": {"d": {"deny": ["storage.objects.create"]}}})
        _, t = self.token(make_key.assertion_for(self.key))
        st, _, body = self.media("a", b"x", bucket="d", headers={"Authorization": "Bearer " + t["access_token"]})
        self.assertEqual(st, 403)
        self.assertIn("sa@p.iam.gserviceaccount.com does not have storage.objects.create access",
                      json.loads(body)["error"]["message"])


class SecretTest(Base):
    def test_access(self):
        self.ctl("POST", "/_fake/config", {"secrets": {
            "projects/p/secrets/pw": ["v1data", "v2data"],
            "projects/p/secrets/bin": {"versions": [{"data_b64": base64.b64encode(b"\x00\xff").decode()}]},
            "projects/p/secrets/no": {"versions": ["x"], "deny": True}}})
        for v, num, data in (("latest", 2, b"v2data"), ("1", 1, b"v1data")):
            st, _, body = self.req("GET", "/v1/projects/p/secrets/pw/versions/%s:access" % v)
            self.assertEqual(st, 200, body)
            r = json.loads(body)
            self.assertEqual(r["name"], "projects/p/secrets/pw/versions/%d" % num)
            self.assertEqual(base64.b64decode(r["payload"]["data"]), data)
            self.assertEqual(r["payload"]["dataCrc32c"], str(crc32c(data)))
        st, _, body = self.req("GET", "/v1/projects/p/secrets/bin/versions/latest%3Aaccess")
        self.assertEqual(base64.b64decode(json.loads(body)["payload"]["data"]), b"\x00\xff")
        for path, code in (("pw/versions/3", 404), ("nope/versions/latest", 404), ("no/versions/latest", 403)):
            st, _, body = self.req("GET", "/v1/projects/p/secrets/%s:access" % path)
            self.assertEqual((path, st), (path, code))
            self.assertEqual(json.loads(body)["error"]["code"], code)
        self.faults({"op": "secret", "kind": "bad_hash"})
        st, _, body = self.req("GET", "/v1/projects/p/secrets/pw/versions/latest:access")
        self.assertNotEqual(json.loads(body)["payload"]["dataCrc32c"], str(crc32c(b"v2data")))


class ServerTest(Base):
    def test_keepalive_and_date(self):
        for _ in range(20):
            st, hd, _ = self.req("GET", "/storage/v1/b/b/o")
            self.assertEqual(st, 200)
            self.assertTrue(hd["Date"].endswith("GMT"))
        self.assertEqual(self.c.sock is not None, True)

    def test_config_rejects_unknown_keys(self):
        st, _, body = self.req("POST", "/_fake/config", b'{"buckts": {}}')
        self.assertEqual(st, 400)
        self.assertIn("buckts", json.loads(body)["error"])

    def test_reset_forgets(self):
        self.media("x", b"1")
        self.ctl("POST", "/_fake/reset")
        self.assertEqual(self.media("x", b"1")[0], 404)
        self.assertEqual(self.ctl("GET", "/_fake/config")["buckets"], {})


if __name__ == "__main__":
    unittest.main()
