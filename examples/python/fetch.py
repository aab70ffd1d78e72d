#!/usr/bin/env python3
"""fetch.py — export the agent operation records of one time window from a CC-FS server
(ccfs or any CC-FS compatible one): generate, wait, download, verify.

Python 3.8+, standard library only (hmac, hashlib, urllib.request, ssl, json).

Usage:
  export CCFS_SERVER=https://127.0.0.1:28443   # the server's base URL
  export CCFS_AK=<appId> CCFS_SK=<secretKey>    # the developer's credentials
  export CCFS_CA_CERT=ccfs-data/tls/cert.pem    # optional: PEM of a self-signed server
  python3 fetch.py "2024-05-01 00:00:00" "2024-05-02 00:00:00" exports

  python3 fetch.py --self-test   # checks the signer against the test vectors of SPEC section 3

Optional: CCFS_CALLBACK_URL (default https://127.0.0.1:9/unused: this script polls the status
extension instead of receiving the callback), CCFS_TIMEOUT (seconds to wait for the export,
default 600).

Signing: auth-v2 over content-length;content-type;host with a MILLISECONDS timestamp
(yyyy-MM-ddTHH:mm:ss.SSSZ). See docs/integrating.md for the recipe.

Prints, on success (stdout):
  responseId  <32 hex>
  file        <yyyyMMdd_responseId.zip>
  size        <bytes>
  recordCount <records in the export>
  sha256      <hex> (verified)
  saved       <path of the zip>
Progress goes to stderr. Exit status: 0 done, 1 failed, 2 wrong usage.
"""

import datetime
import hashlib
import hmac
import json
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

JSON_TYPE = "application/json;charset=UTF-8"
BASE_PATH = "/CCFS/resource/ccfs/"
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
NAME_RE = re.compile(r"^[0-9]{8}_[0-9a-f]{32}\.zip$")


class Failure(Exception):
    """A failure to report on stderr, exit status 1."""


# ---- auth-v2 ------------------------------------------------------------------------------


def norm(s):
    """NORM: every UTF-8 byte outside A-Z a-z 0-9 - . _ ~ becomes %XX (upper-case hex)."""
    data = s if isinstance(s, bytes) else s.encode("utf-8")
    return urllib.parse.quote_from_bytes(data, safe="")


def hmac_hex(key, message):
    """HEX(HMAC-SHA256(key, message)) over the UTF-8 bytes of two strings."""
    return hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def timestamp_millis(now=None):
    """UTC as yyyy-MM-ddTHH:mm:ss.SSSZ."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)


def authorization(ak, sk, timestamp, method, path, body, headers, query=None):
    """The Authorization value of a request.

    headers: {name: value} of the headers to sign, with the values as sent.
    query: {name: value} of the query parameters, or None (the CC-FS interfaces have none).
    body: the exact bytes sent.
    """
    signed = sorted((name.lower(), value) for name, value in headers.items())
    signed_headers = ";".join(name for name, _ in signed)
    prefix = "auth-v2/%s/%s/%s" % (ak, timestamp, signed_headers)
    # The signing key is the 64-character hex STRING, not the raw 32 bytes.
    signing_key = hmac_hex(sk, prefix)
    canonical = method.upper() + "\n" + path + "\n"
    if query:  # with no query the line is left out entirely
        pairs = sorted(norm(k) + "=" + norm(v) for k, v in query.items())
        canonical += "&".join(pairs) + "\n"
    canonical += signed_headers + "\n"
    lines = sorted(norm(name) + ":" + norm(value.strip()) for name, value in signed)
    canonical += "\n".join(lines) + "\n"
    if body:
        canonical += norm(body)
    return prefix + "/" + hmac_hex(signing_key, canonical)


def self_test():
    body = (
        '{"request":{"version":"2.0"},"msgBody":{"beginTime":"2024-05-01 00:00:00",'
        '"endTime":"2024-05-02 00:00:00","callBackURL":"https://example.com/ccfs/cb"}}'
    ).encode("utf-8")
    assert len(body) == 151
    path = BASE_PATH + "queryAgentOprInfoData"
    ak, sk, host = "globalaktest", "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p", "10.22.26.181:28080"
    cases = [
        (
            "V1",
            "2021-08-31T09:38:50.872Z",
            {"content-length": "151", "content-type": JSON_TYPE, "host": host},
            "auth-v2/globalaktest/2021-08-31T09:38:50.872Z/content-length;content-type;host/"
            "0dced0b657b515e45538b8f6815a609265142fde2924e90f94c281b919924771",
        ),
        (
            "V2",
            "2021-08-31T09:38:50Z",
            {"host": host},
            "auth-v2/globalaktest/2021-08-31T09:38:50Z/host/"
            "4f8d9f430bc4e9d50201e11eb6b2400f5a7ed4148752453b99c963519886c724",
        ),
    ]
    for case, ts, headers, want in cases:
        got = authorization(ak, sk, ts, "POST", path, body, headers)
        if got != want:
            raise Failure("self-test %s: got %s" % (case, got))
    got = authorization(ak, sk, "2021-08-31T09:38:50Z", "GET", "/CCFS/resource/ccfs/x", b"",
                        {"host": host}, {"b": "x y", "a": "1"})
    if not got.endswith("/a385bda497e647f1f5da89dbfea86a1063dc61cbbf94792eb59a9624916477ef"):
        raise Failure("self-test V3: got %s" % got)
    print("self-test: V1, V2 and V3 signatures match SPEC section 3")


# ---- requests -----------------------------------------------------------------------------


class Server:
    def __init__(self, url, ak, sk, ca_cert):
        self.url = url.rstrip("/")
        # The Host header is sent explicitly, so the value signed is the value sent.
        self.host = urllib.parse.urlsplit(self.url).netloc
        if not self.host:
            raise Failure("CCFS_SERVER is not a URL: %s" % url)
        self.ak, self.sk = ak, sk
        self.context = None
        if ca_cert:
            try:
                self.context = ssl.create_default_context(cafile=ca_cert)
            except (OSError, ssl.SSLError) as e:
                raise Failure("CCFS_CA_CERT %s: %s" % (ca_cert, e))
            # A self-signed server certificate is its own trust anchor; Python 3.13's strict
            # X.509 checks would ask it for CA extensions it need not have.
            if hasattr(ssl, "VERIFY_X509_STRICT"):
                self.context.verify_flags &= ~ssl.VERIFY_X509_STRICT

    def post(self, interface, msg_body, timeout=60):
        """Sends a signed request; returns (HTTP status, headers, response object or bytes)."""
        path = BASE_PATH + interface
        body = json.dumps(
            {"request": {"version": "2.0"}, "msgBody": msg_body}, separators=(",", ":")
        ).encode("utf-8")
        headers = {
            "Content-Length": str(len(body)),
            "Content-Type": JSON_TYPE,
            "Host": self.host,
        }
        headers["Authorization"] = authorization(
            self.ak, self.sk, timestamp_millis(), "POST", path, body, headers
        )
        request = urllib.request.Request(self.url + path, data=body, headers=headers,
                                         method="POST")
        try:
            return urllib.request.urlopen(request, timeout=timeout, context=self.context)
        except urllib.error.HTTPError as e:  # 401, 403, 500 …: still an envelope
            return e
        except (urllib.error.URLError, OSError) as e:
            raise Failure("%s: no answer from %s: %s" % (interface, self.url, e))

    def call(self, interface, msg_body):
        """A JSON interface: returns resultData, or fails with the result code."""
        with self.post(interface, msg_body) as r:
            return envelope_data(interface, r.getcode(), r.read())


def envelope_data(interface, status, raw):
    try:
        answer = json.loads(raw.decode("utf-8"))
        code = answer["resultCode"]
    except (ValueError, TypeError, KeyError):
        raise Failure("%s: not a CC-FS answer (HTTP %s): %s"
                      % (interface, status, raw[:300].decode("utf-8", "replace")))
    if code != "0":
        raise Failure("%s: HTTP %s, resultCode %s: %s"
                      % (interface, status, code, answer.get("resultDesc")))
    return answer.get("resultData")


def fetch(server, begin, end, out_dir, callback_url, timeout):
    # 1. Generate.
    data = server.call("queryAgentOprInfoData",
                       {"beginTime": begin, "endTime": end, "callBackURL": callback_url})
    response_id = data["responseId"]
    print("generated %s, waiting" % response_id, file=sys.stderr)

    # 2. Wait: poll the status extension until the job is finished.
    deadline = time.monotonic() + timeout
    while True:
        job = server.call("queryAgentOprInfoStatus", {"responseId": response_id})
        state = job.get("state")
        if state == "succeeded":
            break
        if state in ("failed", "expired", "cancelled"):
            raise Failure("export %s %s: %s" % (response_id, state, job.get("error")))
        if state not in ("queued", "running"):
            raise Failure("status: unexpected state %r" % state)
        if time.monotonic() > deadline:
            raise Failure("export %s still %s after %ss" % (response_id, state, timeout))
        time.sleep(0.25)
    name = job["agentOprInfoFileName"]
    if not NAME_RE.match(name):
        raise Failure("status: bad file name %r" % name)

    # 3. Download: success is told by the Content-Type, an error is a JSON envelope.
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name)
    part = path + ".part"
    with server.post("downloadAgentOprInfoFile", {"agentOprInfoFileName": name},
                     timeout=3600) as r:
        content_type = r.headers.get("Content-Type", "")
        if not content_type.lower().startswith("application/octet-stream"):
            envelope_data("download", r.getcode(), r.read(65536))
            raise Failure("download: HTTP %s, Content-Type %r" % (r.getcode(), content_type))
        if r.getcode() != 200:
            raise Failure("download: HTTP %s" % r.getcode())
        want = (r.headers.get("X-Checksum-Sha256") or "").lower()
        if not want:
            raise Failure("download: no X-Checksum-Sha256 header")
        digest, size = hashlib.sha256(), 0
        with open(part, "wb") as f:
            while True:
                chunk = r.read(1 << 16)
                if not chunk:
                    break
                digest.update(chunk)
                size += len(chunk)
                f.write(chunk)
    got = digest.hexdigest()
    if got != want:
        os.remove(part)
        raise Failure("download: SHA-256 %s does not match X-Checksum-Sha256 %s" % (got, want))
    os.replace(part, path)

    print("responseId  %s" % response_id)
    print("file        %s" % name)
    print("size        %d" % size)
    print("recordCount %s" % job.get("recordCount"))
    print("sha256      %s (verified)" % got)
    print("saved       %s" % path)


def main(argv):
    if argv[1:] == ["--self-test"]:
        self_test()
        return 0
    if len(argv) != 4:
        usage = __doc__.split("Optional:")[0].split("Usage:")[1].rstrip()
        print("Usage:" + usage, file=sys.stderr)
        return 2
    begin, end, out_dir = argv[1:]
    for t in (begin, end):
        if not TIME_RE.match(t):
            raise Failure("times are yyyy-MM-dd HH:mm:ss, not: %s" % t)
    env = {}
    for key, hint in (("CCFS_SERVER", "the server URL, e.g. https://127.0.0.1:28443"),
                      ("CCFS_AK", "the appId"), ("CCFS_SK", "the secret key")):
        env[key] = os.environ.get(key)
        if not env[key]:
            raise Failure("set %s to %s" % (key, hint))
    server = Server(env["CCFS_SERVER"], env["CCFS_AK"], env["CCFS_SK"],
                    os.environ.get("CCFS_CA_CERT") or None)
    fetch(server, begin, end, out_dir,
          os.environ.get("CCFS_CALLBACK_URL") or "https://127.0.0.1:9/unused",
          float(os.environ.get("CCFS_TIMEOUT") or 600))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Failure as e:
        print("fetch.py: %s" % e, file=sys.stderr)
        sys.exit(1)
