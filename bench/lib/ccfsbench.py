"""Shared helpers of the benchmark cases (stdlib only).

A case script imports this module as

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
    import ccfsbench as cb

and uses: `case_args()` for the common command line; `log()` for progress on stderr; `emit()` for
the one JSON line per comparison on stdout; `interleave()` to run ccfs and its baselines in
turns; `median()` and `ratio_of_rounds()` for the figures;
`run_timed()` to time a command and read its peak RSS, `run_watched()` where wait4's figure
would be this Python's; `proc_cpu_s()`, `proc_peak_rss_mib()` and their `tree_` forms for a
running process (and its children); `tool()` to find (or, with CCFS_BENCH_INSTALL=1, install) a
baseline program; `Ccfs` to run `ccfs` commands on a data directory; `Server` for a `ccfs serve`
process (its peak RSS from /proc VmHWM); `Client` for signed calls (auth-v2, SPEC section 3) over
one kept-alive connection; `Receiver` for callbacks.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path

MIB = 1024 * 1024


# ------------------------------------------------------------------------------------------------
# The case contract


def case_args(description: str, extra=None) -> argparse.Namespace:
    """The command line every case takes (see bench/README.md); `extra(parser)` adds its own."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--ccfs", required=True, help="the release ccfs binary")
    p.add_argument("--work", required=True, help="a scratch directory of this case")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--quick", action="store_true", help="a small size, for a smoke test")
    if extra:
        extra(p)
    a = p.parse_args()
    a.ccfs = str(Path(a.ccfs).resolve())
    a.work = Path(a.work).resolve()
    a.work.mkdir(parents=True, exist_ok=True)
    if a.rounds < 1:
        p.error("--rounds must be at least 1")
    check_signing()
    return a


def log(*parts) -> None:
    """Prints progress on stderr (stdout is for the JSON rows)."""
    print(*parts, file=sys.stderr, flush=True)


def emit(
    case: str,
    ours: str,
    baseline: str,
    ours_s,
    base_s,
    ratio,
    goal: str,
    met,
    ours_rss_mib=None,
    base_rss_mib=None,
    notes: str = "",
) -> None:
    """Prints one comparison as a JSON line on stdout (the contract of bench/README.md)."""

    def r(x, n=4):
        """`x` rounded to n places; None stays None."""
        return None if x is None else round(float(x), n)

    row = {
        "case": case,
        "ours": ours,
        "baseline": baseline,
        "ours_s": r(ours_s),
        "base_s": r(base_s),
        "ratio": r(ratio, 3),
        "goal": goal,
        "met": met,
        "ours_rss_mib": r(ours_rss_mib, 1),
        "base_rss_mib": r(base_rss_mib, 1),
        "notes": notes,
    }
    print(json.dumps(row), flush=True)


def median(xs):
    """The median of the values that are not None; None when there are none."""
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ratio_of_rounds(ours, base):
    """The median of the per-round ratios ours/base (rounds paired in the order run)."""
    return median([o / b for o, b in zip(ours, base) if o is not None and b])


def interleave(rounds: int, subjects: dict) -> dict:
    """Runs each subject (name -> function of the round number) once per round, in turns: a,
    b, a, b, ... Returns name -> the list of what it returned, round by round, so that a load
    that comes and goes falls on every subject alike."""
    results = {name: [] for name in subjects}
    for r in range(rounds):
        for name, run in subjects.items():
            value = run(r)
            results[name].append(value)
            shown = f"{value:.3f} s" if isinstance(value, float) else value
            log(f"  round {r + 1}/{rounds}: {name} {shown}")
    return results


def bound_met(ratio, bound: float):
    """Whether a ratio meets the goal `<= bound`; None when there is no ratio."""
    return None if ratio is None else bool(ratio <= bound)


# ------------------------------------------------------------------------------------------------
# Running programs


# GNU time, when the machine has it: see `run_timed`.
GNU_TIME = "/usr/bin/time"


def run_timed(cmd, *, shell=False, cwd=None, env=None, stdout=None, stdin=None):
    """Runs `cmd` to its end; returns (wall seconds, peak RSS in MiB, CPU seconds).

    The peak RSS is `ru_maxrss` of the command's process, which for `sh -c 'a | b'` is the larger
    of `a` and `b`, not their sum. It is read by GNU time, which forks the command from its own
    small process: `wait4` here would count this Python too, since a child forked from it keeps
    its high-water mark across exec, and that hides a small program's figure (gzip showed 25 MiB,
    Python's size). Without GNU time it falls back to this process's `wait4` (and says so once).
    Raises CalledProcessError on a non-zero exit (with stderr in the message)."""
    argv = ["sh", "-c", cmd] if shell else list(cmd)
    peak_file = None
    if os.access(GNU_TIME, os.X_OK):
        fd, peak_file = tempfile.mkstemp(prefix="ccfsbench-rss-")
        os.close(fd)
        argv = [GNU_TIME, "-f", "%M", "-o", peak_file, *argv]
    else:
        _warn_once("no GNU time at /usr/bin/time: peak RSS of baselines includes the bench's Python")
    try:
        t0 = time.perf_counter()
        p = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=stdout if stdout is not None else subprocess.DEVNULL,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        err = p.stderr.read() if p.stderr else b""
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            raise subprocess.CalledProcessError(p.returncode, cmd, stderr=err)
        peak_kib = ru.ru_maxrss
        if peak_file is not None:
            # GNU time writes "Command exited…" lines before the figure on failure; the figure
            # is the last line.
            peak_kib = int(Path(peak_file).read_text().split()[-1])
        return wall, peak_kib / 1024.0, ru.ru_utime + ru.ru_stime
    finally:
        if peak_file is not None:
            os.unlink(peak_file)


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        log(f"warning: {message}")


def run_watched(cmd, *, env=None, stdin_data: bytes | None = None):
    """Runs `cmd` to its end; returns (wall seconds, peak RSS in MiB, its stdout as bytes).

    The peak is the child's own VmHWM, read every 10 ms while it runs: wait4's ru_maxrss (as in
    `run_timed`) would include this Python process, whose high-water mark a child keeps across
    fork and exec, and that hides a small program's figure. Raises RuntimeError on a non-zero
    exit (with the end of its stderr)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(
        cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    peak = 0.0
    done = threading.Event()

    def watch():
        """Samples the child's VmHWM until it has exited."""
        # A thread, because communicate() blocks this one until the child has exited.
        nonlocal peak
        while not done.is_set():
            peak = max(peak, proc_peak_rss_mib(p.pid) or 0.0)
            done.wait(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = p.communicate(stdin_data)
    wall = time.perf_counter() - t0
    done.set()
    watcher.join()
    if p.returncode != 0:
        tail = err.decode(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(map(str, cmd[:3]))} failed ({p.returncode}): {tail}")
    return wall, peak, out


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (all its threads) so far, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_mib(pid: int) -> float | None:
    """The peak resident set (VmHWM) of a running process in MiB; None once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def child_pids(pid: int) -> list[int]:
    """The PIDs of a process's direct children (say nginx's workers), from /proc."""
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(d))
            except OSError:
                pass  # it exited meanwhile
    return found


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its direct children so far (a master and its workers)."""
    return sum(proc_cpu_s(p) for p in [pid, *child_pids(pid)])


def tree_peak_rss_mib(pid: int) -> float:
    """The sum of the VmHWM of a process and of its direct children, MiB."""
    return sum(proc_peak_rss_mib(p) or 0.0 for p in [pid, *child_pids(pid)])


def tool(name: str, package: str | None = None) -> str | None:
    """The path of program `name`; when missing and CCFS_BENCH_INSTALL=1, `apt-get install -y
    package` first. None (with a message) when it is not there."""
    found = _which(name)
    if found:
        return found
    package = package or name
    if os.environ.get("CCFS_BENCH_INSTALL") == "1":
        log(f"installing {package} for {name} (CCFS_BENCH_INSTALL=1)")
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        install = sudo + ["apt-get", "install", "-y", "-q", package]
        if subprocess.run(install, **quiet).returncode != 0:
            # The package lists may be missing or stale on a fresh machine.
            subprocess.run(sudo + ["apt-get", "update", "-q"], **quiet)
            subprocess.run(install, **quiet)
        found = _which(name)
        if found:
            return found
        log(f"{name}: could not be installed ({package})")
        return None
    log(f"{name} is not installed: its baseline is skipped (CCFS_BENCH_INSTALL=1 installs {package})")
    return None


def _which(name: str) -> str | None:
    """`name` on PATH, or in /usr/sbin or /sbin (nginx lives there, off a user's PATH)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def nproc() -> int:
    """The number of cores this process may run on."""
    return len(os.sched_getaffinity(0))


def machine() -> dict:
    """The machine a run was made on."""
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gib = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                ram_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    root = Path(__file__).resolve().parents[2]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=root,
        capture_output=True,
        text=True,
    ).stdout.strip()
    try:
        load = float(open("/proc/loadavg").read().split()[0])
    except (OSError, ValueError, IndexError):
        load = None
    return {
        "nproc": nproc(),
        "load_1min": load,
        "cpu": cpu,
        "ram_gib": ram_gib,
        "kernel": os.uname().release,
        "commit": commit + ("+dirty" if dirty else ""),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


# ------------------------------------------------------------------------------------------------
# ccfs commands and the server process


class Ccfs:
    """`ccfs` commands on one data directory (CCFS_DATA_DIR), without the caller's CCFS_*."""

    def __init__(self, binary: str, data_dir: Path, env: dict | None = None):
        self.binary = binary
        self.data_dir = Path(data_dir)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CCFS_")}
        self.env.pop("RUST_LOG", None)
        self.env["CCFS_DATA_DIR"] = str(self.data_dir)
        self.env.update(env or {})

    def run(self, *args, **kw) -> str:
        """Runs `ccfs ARGS`; returns its stdout, raising RuntimeError (with stderr) on failure."""
        r = subprocess.run(
            [self.binary, *args], env=self.env, capture_output=True, text=True, **kw
        )
        if r.returncode != 0:
            raise RuntimeError(f"ccfs {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    def create_app(
        self,
        name="bench",
        timezone_name: str | None = "Asia/Shanghai",
        roles=("export",),
        accounts=(),
        app_id: str | None = None,
    ):
        """Creates a developer; returns (app id, secret key). A timezone of None is the server's
        default one; no roles is ccfs's default (export); no app id is a random one."""
        args = ["app", "create", "--name", name]
        if timezone_name is not None:
            args += ["--timezone", timezone_name]
        for role in roles:
            args += ["--role", role]
        for account in accounts:
            args += ["--account", account]
        if app_id is not None:
            args += ["--app-id", app_id]
        created = json.loads(self.run(*args))
        return created["appId"], created["secretKey"]

    def serve(self, env: dict | None = None, tls=True) -> "Server":
        """Starts `ccfs serve` on this data directory (see Server)."""
        return Server(self, env=env, tls=tls)


class Server:
    """A `ccfs serve` child on 127.0.0.1 and a free port; its output goes to `serve.log` in the
    data directory. Stop it with `stop()` (SIGTERM, then SIGKILL) or use it in a `with`."""

    def __init__(self, ccfs: Ccfs, env: dict | None = None, tls=True, timeout=60.0):
        ccfs.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = ccfs.data_dir / "serve.log"
        args = [ccfs.binary, "serve", "--listen", "127.0.0.1:0"]
        if not tls:
            args.append("--plain-http")
        run_env = dict(ccfs.env, **(env or {}))
        self._log = open(self.log_path, "ab")
        start = self._log.tell()
        self.proc = subprocess.Popen(
            args, env=run_env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.pid = self.proc.pid
        self.scheme = self.port = None
        deadline = time.monotonic() + timeout
        while self.port is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ccfs serve exited: {self._tail(start)}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ccfs serve did not start in {timeout} s: {self._tail(start)}")
            text = self.log_path.read_bytes()[start:].decode(errors="replace")
            m = re.search(r"listening on (https?)://[^:\s]+:(\d+)", text)
            if m:
                self.scheme, self.port = m.group(1), int(m.group(2))
            else:
                time.sleep(0.02)
        self.cert = ccfs.data_dir / "tls" / "cert.pem" if self.scheme == "https" else None
        self.host = f"127.0.0.1:{self.port}"
        try:
            self.wait_healthy(deadline)
        except BaseException:
            self.stop()
            raise

    def _tail(self, start: int) -> str:
        """The end of what this server wrote to serve.log, for an error message."""
        return self.log_path.read_bytes()[start:].decode(errors="replace")[-2000:]

    def connection(self, timeout=600.0) -> http.client.HTTPConnection:
        """A new connection to the server, trusting its self-signed certificate."""
        if self.scheme == "https":
            ctx = ssl.create_default_context(cafile=str(self.cert))
            ctx.check_hostname = False  # the self-signed certificate names localhost
            # Python 3.13 checks certificates strictly by default; a self-signed one need not pass.
            ctx.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
            return http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=timeout)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def wait_healthy(self, deadline: float) -> None:
        """Returns once GET /healthz answers 200; RuntimeError at `deadline` (monotonic)."""
        while True:
            try:
                c = self.connection(timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    c.close()
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("ccfs serve is not healthy")
            time.sleep(0.05)

    def peak_rss_mib(self) -> float | None:
        """The process's peak resident set so far (VmHWM)."""
        return proc_peak_rss_mib(self.pid)

    def cpu_s(self) -> float:
        """User + system CPU seconds of the process so far."""
        return proc_cpu_s(self.pid)

    def stop(self) -> None:
        """Stops the server: SIGTERM, and SIGKILL if it has not exited 20 s later."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self):
        """The server itself, for `with`."""
        return self

    def __exit__(self, *exc):
        """Stops the server at the end of the `with`."""
        self.stop()


# ------------------------------------------------------------------------------------------------
# Signed calls (SPEC section 3)

def norm(s: str | bytes) -> str:
    """NORM: every byte outside A-Z a-z 0-9 - . _ ~ as upper-case %XX."""
    return urllib.parse.quote(s, safe="-._~") if s else ""


def _hmac_hex(key: str, msg: str) -> str:
    """HMAC-SHA256 of `msg` under `key`, in hex (both as UTF-8)."""
    return hmac.new(key.encode(), msg.encode(), hashlib.sha256).hexdigest()


def sign(ak, sk, method, path, headers: dict, body: bytes, timestamp: str, query="") -> str:
    """The auth-v2 Authorization value signing `headers` (lower-case names to values)."""
    names = sorted(headers)
    signed = ";".join(names)
    prefix = f"auth-v2/{ak}/{timestamp}/{signed}"
    key = _hmac_hex(sk, prefix)
    canonical = f"{method.upper()}\n{path}\n"
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        canonical += "&".join(sorted(f"{norm(k)}={norm(v)}" for k, v in pairs)) + "\n"
    canonical += signed + "\n"
    canonical += "\n".join(f"{norm(n)}:{norm(str(headers[n]).strip())}" for n in names) + "\n"
    if body:
        canonical += norm(body)
    return f"{prefix}/{_hmac_hex(key, canonical)}"


def timestamp_ms() -> str:
    """The current UTC time as an auth-v2 timestamp with milliseconds."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def check_signing() -> None:
    """The SPEC's test vectors V1 and V2, so a wrong signer fails loudly, not as 401s."""
    body = (
        b'{"request":{"version":"2.0"},"msgBody":{"beginTime":"2024-05-01 00:00:00",'
        b'"endTime":"2024-05-02 00:00:00","callBackURL":"https://example.com/ccfs/cb"}}'
    )
    ak, sk = "globalaktest", "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p"
    path, host = "/CCFS/resource/ccfs/queryAgentOprInfoData", "10.22.26.181:28080"
    v1 = sign(
        ak, sk, "POST", path,
        {"content-length": "151", "content-type": "application/json;charset=UTF-8", "host": host},
        body, "2021-08-31T09:38:50.872Z",
    )
    assert v1.endswith("0dced0b657b515e45538b8f6815a609265142fde2924e90f94c281b919924771"), v1
    v2 = sign(ak, sk, "POST", path, {"host": host}, body, "2021-08-31T09:38:50Z")
    assert v2.endswith("4f8d9f430bc4e9d50201e11eb6b2400f5a7ed4148752453b99c963519886c724"), v2


class Client:
    """Signed calls of one developer to one server over one kept-alive connection."""

    def __init__(self, server: Server, ak: str, sk: str):
        self.server, self.ak, self.sk = server, ak, sk
        self.conn = server.connection()

    def call(self, interface: str, msg_body: dict, headers: dict | None = None) -> dict:
        """POSTs the envelope; returns resultData, raising on any other answer."""
        return self.send(*self.prepare(interface, msg_body, headers))

    def prepare(self, interface: str, msg_body: dict, headers: dict | None = None):
        """The (path, body, signed headers) of a call, so a case can time `send` alone."""
        path = f"/CCFS/resource/ccfs/{interface}"
        envelope = {"request": {"version": "2.0"}, "msgBody": msg_body}
        body = json.dumps(envelope, separators=(",", ":")).encode()
        ctype = "application/json;charset=UTF-8"
        signed = {"content-length": str(len(body)), "content-type": ctype, "host": self.server.host}
        auth = sign(self.ak, self.sk, "POST", path, signed, body, timestamp_ms())
        sent = {"Content-Type": ctype, "Host": self.server.host, "Authorization": auth}
        sent.update(headers or {})
        return path, body, sent

    def send(self, path: str, body: bytes, headers: dict) -> dict:
        """Sends a prepared call; returns resultData, raising on any other answer."""
        interface = path.rsplit("/", 1)[1]
        for attempt in (1, 2):
            try:
                self.conn.request("POST", path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed the kept-alive connection (idle time-out): once more.
                self.conn.close()
                self.conn = self.server.connection()
                if attempt == 2:
                    raise
        try:
            answer = json.loads(data)
        except ValueError:
            raise RuntimeError(f"{interface}: HTTP {resp.status}, not JSON: {data[:200]!r}")
        if answer.get("resultCode") != "0":
            raise RuntimeError(f"{interface}: {answer.get('resultCode')} {answer.get('resultDesc')}")
        return answer["resultData"]

    def generate(self, begin: str, end: str, callback_url: str, idempotency_key=None) -> str:
        """Asks for an export of [begin, end); returns its responseId."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body = {"beginTime": begin, "endTime": end, "callBackURL": callback_url}
        return self.call("queryAgentOprInfoData", body, headers)["responseId"]

    def status(self, response_id: str) -> dict:
        """The status of an export."""
        return self.call("queryAgentOprInfoStatus", {"responseId": response_id})

    def close(self):
        """Closes the connection."""
        self.conn.close()


# ------------------------------------------------------------------------------------------------
# Callbacks


class Receiver:
    """An HTTP callback receiver on 127.0.0.1 (loopback is allowed by the default callback
    policy). It answers 200 at once and notes, per responseId, the perf_counter time at which
    the request's body was read, so a case can time generate -> callback."""

    def __init__(self):
        self.arrived: dict[str, tuple[float, dict]] = {}
        self.cond = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            """The callback endpoint; a thread per request (ThreadingHTTPServer below)."""

            protocol_version = "HTTP/1.1"

            def do_POST(self):
                """Answers 200 and notes when the callback's body had arrived."""
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                at = time.perf_counter()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                try:
                    msg = json.loads(body)["msgBody"]
                    rid = msg["responseId"]
                except (ValueError, KeyError, TypeError):
                    return
                with receiver.cond:
                    receiver.arrived.setdefault(rid, (at, msg))
                    receiver.cond.notify_all()

            def log_message(self, *args):
                """Silent: progress goes through log()."""
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/cb"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, response_id: str, timeout: float) -> tuple[float, dict]:
        """(arrival time, msgBody) of the callback of `response_id`; TimeoutError after timeout."""
        deadline = time.perf_counter() + timeout
        with self.cond:
            while response_id not in self.arrived:
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise TimeoutError(f"no callback for {response_id} in {timeout} s")
                self.cond.wait(left)
            return self.arrived[response_id]

    def close(self):
        """Stops the receiver."""
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a baseline server's config)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
