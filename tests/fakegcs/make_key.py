#!/usr/bin/python3
"""make_key.py - make a service-account JSON key for the fake Google server.

Generates an RSA key pair (python3-cryptography), writes a service-account
key file in Google's format (type, project_id, private_key_id, private_key
as PKCS#8 PEM, client_email, token_uri, ...) and, when told where the fake
server is, registers the public key with it so that JWTs signed with the
private key are accepted by its POST /token.

    /usr/bin/python3 tests/fakegcs/make_key.py --out key.json \\
        --port-file /tmp/fakegcs.port [--email sa@p.iam.gserviceaccount.com]

Also imported by server.py (POST /_fake/make_key) and by the self-tests
(sign_jwt).
"""

import argparse
import base64
import json
import os
import secrets
import sys
import time
import urllib.request

DEFAULT_PROJECT = "fake-project"
DEFAULT_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def _crypto():
    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "python3-cryptography is missing: apt-get install -y python3-cryptography"
        ) from e
    return hashes, serialization, padding, rsa


def generate_service_account(client_email=None, project_id=None, token_uri=None,
                             private_key_id=None, bits=2048):
    """Return (keyfile_dict, public_key_pem)."""
    _, serialization, _, rsa = _crypto()
    project_id = project_id or DEFAULT_PROJECT
    client_email = client_email or "fake-sa@%s.iam.gserviceaccount.com" % project_id
    private_key_id = private_key_id or secrets.token_hex(20)
    token_uri = token_uri or "https://oauth2.googleapis.com/token"
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo,
    ).decode("ascii")
    keyfile = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": private_key_id,
        "private_key": private_pem,
        "client_email": client_email,
        "client_id": str(100000000000000000000 + secrets.randbelow(10 ** 20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
        + client_email.replace("@", "%40"),
        "universe_domain": "googleapis.com",
    }
    return keyfile, public_pem


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_jwt(private_key_pem, claims, key_id=None, alg="RS256"):
    """Sign claims (dict) as a compact JWS with RS256. For tests."""
    hashes, serialization, padding, _ = _crypto()
    key = serialization.load_pem_private_key(private_key_pem.encode("ascii"), password=None)
    header = {"alg": alg, "typ": "JWT"}
    if key_id:
        header["kid"] = key_id
    signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode())
                     + "." + b64url(json.dumps(claims, separators=(",", ":")).encode()))
    sig = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(sig)


def assertion_for(keyfile, scope=DEFAULT_SCOPE, aud=None, iat=None, lifetime=3600):
    """A JWT bearer assertion as Google's client libraries make it."""
    now = int(time.time()) if iat is None else int(iat)
    claims = {
        "iss": keyfile["client_email"],
        "aud": aud or keyfile["token_uri"],
        "iat": now,
        "exp": now + lifetime,
    }
    if scope is not None:
        claims["scope"] = scope
    return sign_jwt(keyfile["private_key"], claims, keyfile.get("private_key_id"))


def register(server_url, keyfile, public_pem):
    body = json.dumps({"service_account": {
        "client_email": keyfile["client_email"],
        "public_key_pem": public_pem,
        "private_key_id": keyfile["private_key_id"],
    }}).encode()
    req = urllib.request.Request(server_url.rstrip("/") + "/_fake/config", data=body,
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="service-account JSON key file to write (mode 0600)")
    ap.add_argument("--email", help="client_email (default fake-sa@PROJECT.iam.gserviceaccount.com)")
    ap.add_argument("--project", default=DEFAULT_PROJECT, help="project_id")
    ap.add_argument("--key-id", help="private_key_id (default random)")
    ap.add_argument("--token-uri", help="token_uri (default SERVER/token when a server is given)")
    ap.add_argument("--server", help="fake server base URL, e.g. http://127.0.0.1:PORT: register the public key there")
    ap.add_argument("--port-file", help="instead of --server: the fake server's --port-file")
    ap.add_argument("--public-key-out", help="also write the public key PEM here")
    ap.add_argument("--bits", type=int, default=2048)
    a = ap.parse_args(argv)

    server = a.server
    if a.port_file:
        with open(a.port_file) as f:
            server = "http://127.0.0.1:%d" % int(f.read().strip())
    token_uri = a.token_uri or (server.rstrip("/") + "/token" if server else None)
    keyfile, public_pem = generate_service_account(a.email, a.project, token_uri, a.key_id, a.bits)
    if server:
        register(server, keyfile, public_pem)
    tmp = a.out + ".tmp%d" % os.getpid()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(keyfile, f, indent=2)
        f.write("\n")
    os.replace(tmp, a.out)
    if a.public_key_out:
        with open(a.public_key_out, "w") as f:
            f.write(public_pem)
    print(keyfile["client_email"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
