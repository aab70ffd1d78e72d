#!/usr/bin/env python3
"""Download of a ~100 MB export zip over TLS on loopback: `ccfs serve` against nginx serving the
very same file, curl the client of both (issue 10, goal 3).

Rows (time ratios ours/base, medians of interleaved rounds):
  1. one stream: seconds per download (the inverse of MB/s), goal <= 1.25 (at least 0.8x nginx);
  2. 16 streams at once: seconds for all 16, goal <= 1.25;
  3. server CPU seconds (utime+stime from /proc) per download, goal <= 2.0.

The file is a real export: `ccfs simulate` records straight into a fresh data directory, then a
signed generate through the `ccfs client` CLI, waited for. The server is then restarted so its
peak RSS is the downloads' alone. Each download is signed in Python (auth-v2, host only; checked
against the SPEC's test vectors first). `max_downloads` is raised to 16 for the parallel row (the
default allows 4 per developer). nginx's CPU and peak RSS are those of its master and workers
together.

    python3 bench/cases/download.py --ccfs target/release/ccfs --work /tmp/dl --rounds 5 [--quick]
"""
import hashlib
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
import ccfsbench as cb  # noqa: E402

DOWNLOAD_PATH = "/CCFS/resource/ccfs/downloadAgentOprInfoFile"
PARALLEL = 16
# Agents of one simulated day: about 100 MB of zip (about 10 MB with --quick).
AGENTS, AGENTS_QUICK = 40000, 4000
DAY = "2024-05-01"


class Nginx:
    """nginx serving one file over TLS on a loopback port, configured as a user would."""

    def __init__(self, exe: str, work: Path, cert: Path, key: Path, src: Path):
        self.exe, self.dir = exe, work / "nginx"
        root = self.dir / "root"
        root.mkdir(parents=True, exist_ok=True)
        self.name = src.name
        shutil.copyfile(src, root / self.name)
        self.port = cb.free_port()
        # What a user would write: the defaults, plus TLS on a loopback port.
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(f"""{'user root;' if os.geteuid() == 0 else ''}
worker_processes auto;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log;
events {{}}
http {{
    access_log {self.dir}/access.log;
    server {{
        listen 127.0.0.1:{self.port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {root};
    }}
}}
""")
        self.proc = None

    def start(self, timeout=30.0):
        """Starts nginx in the foreground and returns once it answers HTTPS."""
        self.proc = subprocess.Popen(
            [self.exe, "-p", str(self.dir), "-c", str(self.conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False  # nginx serves ccfs's self-signed certificate
        ctx.verify_mode = ssl.CERT_NONE
        deadline = time.monotonic() + timeout
        while True:
            try:
                c = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=2)
                c.request("GET", "/")
                c.getresponse()  # any answer will do (the root is a 403)
                c.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nginx does not answer on port {self.port}")
                time.sleep(0.1)
        time.sleep(0.3)

    def cpu_s(self) -> float:
        """CPU seconds of the master and its workers so far."""
        return cb.tree_cpu_s(self.proc.pid)

    def peak_rss_mib(self) -> float:
        """The sum of the peak RSS of the master and its workers."""
        return cb.tree_peak_rss_mib(self.proc.pid)

    def stop(self):
        """Stops nginx gracefully (SIGQUIT)."""
        if self.proc:
            self.proc.send_signal(signal.SIGQUIT)
            self.proc.wait(timeout=30)
            self.proc = None


# ---- downloads ----

def curl_ccfs(curl, server, ak, sk, name, out="/dev/null"):
    """A curl command for one signed download of `name` from ccfs."""
    body = json.dumps({"request": {"version": "2.0"}, "msgBody": {"agentOprInfoFileName": name}},
                      separators=(",", ":")).encode()
    auth = cb.sign(ak, sk, "POST", DOWNLOAD_PATH, {"host": server.host}, body, cb.timestamp_ms())
    return [curl, "-sk", "-o", out, "-w", "%{http_code} %{size_download} %{speed_download}",
            "-X", "POST", f"https://{server.host}{DOWNLOAD_PATH}",
            "-H", "Content-Type: application/json",
            "-H", f"Authorization: {auth}",
            "--data-binary", body.decode()]


def curl_nginx(curl, nginx, out="/dev/null"):
    """A curl command for one download of the file from nginx."""
    return [curl, "-sk", "-o", out, "-w", "%{http_code} %{size_download} %{speed_download}",
            f"https://127.0.0.1:{nginx.port}/{nginx.name}"]


def run_curls(cmds, size):
    """Runs the curl commands at once; the wall time for all of them."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, text=True) for c in cmds]
    outs = [p.communicate()[0] for p in procs]
    wall = time.perf_counter() - t0
    for o in outs:
        code, got, _speed = o.split()
        if code not in ("200", "206") or int(got) != size:
            raise SystemExit(f"a download failed: HTTP {code}, {got} of {size} bytes")
    return wall


def measure(server, cmds_for, size, n):
    """(wall seconds, server CPU seconds) of n downloads at once."""
    cpu0 = server.cpu_s()
    wall = run_curls([cmds_for() for _ in range(n)], size)
    return wall, server.cpu_s() - cpu0


class Round(NamedTuple):
    """One server's figures in one round: seconds for one download, for PARALLEL at once, and
    server CPU seconds per download (of the 1 + PARALLEL)."""

    one: float
    many: float
    cpu: float
    mb: float

    def __str__(self):
        """The round as the progress line shows it."""
        return (f"1 stream {self.mb / self.one:.0f} MB/s, {PARALLEL} streams "
                f"{PARALLEL * self.mb / self.many:.0f} MB/s, CPU {self.cpu:.3f} s/download")


def rounds_of(server, cmds_for, size, mb):
    """The subject of cb.interleave for one server: a Round of 1 then PARALLEL downloads."""
    def run(_round):
        """Times one download, then PARALLEL at once, on this server."""
        one, cpu1 = measure(server, cmds_for, size, 1)
        many, cpu16 = measure(server, cmds_for, size, PARALLEL)
        return Round(one, many, (cpu1 + cpu16) / (1 + PARALLEL), mb)
    return run


def main():
    """Makes the export, checks one download, then times ccfs and nginx in turns."""
    a = cb.case_args("Download of a ~100 MB export zip: ccfs serve against nginx.")
    curl = cb.tool("curl")
    if not curl:
        cb.log("download: curl is not installed (the client of both); skipped")
        return
    nginx_exe = cb.tool("nginx")
    if not nginx_exe:
        cb.log("download: ccfs measured alone")

    shutil.rmtree(a.work / "ccfs-data", ignore_errors=True)
    shutil.rmtree(a.work / "nginx", ignore_errors=True)
    ccfs = cb.Ccfs(a.ccfs, a.work / "ccfs-data",
                   env={"CCFS_MAX_DOWNLOADS": str(PARALLEL), "RUST_LOG": "warn"})
    ak, sk = ccfs.create_app(timezone_name=None, accounts=("bench01",))
    agents = AGENTS_QUICK if a.quick else AGENTS
    cb.log(f"simulating {agents} agents over one day")
    ccfs.run("simulate", "--app", ak, "--agents", str(agents), "--days", "1", "--start", DAY)
    with ccfs.serve() as server:
        cb.log("generating the export")
        status = json.loads(ccfs.run(
            "client", "--server", f"https://{server.host}", "--ak", ak, "--sk", sk,
            "--insecure", "--json", "generate", "--begin", DAY, "--end", "2024-05-02", "--wait",
            "--poll-interval", "0.2").strip().splitlines()[-1])
    name, size, sha = status["agentOprInfoFileName"], int(status["fileSize"]), status["sha256"]
    src = next(p for p in (ccfs.data_dir / "files").rglob("*") if p.name == name)
    mb = size / 1e6
    cb.log(f"file {name}: {mb:.1f} MB")

    # A fresh process: its peak RSS and CPU are the downloads' alone.
    server = ccfs.serve()
    nginx = None
    try:
        # Correctness first: the bytes come whole and match the announced SHA-256.
        check = a.work / "check.zip"
        run_curls([curl_ccfs(curl, server, ak, sk, name, str(check))], size)
        assert hashlib.sha256(check.read_bytes()).hexdigest() == sha, \
            "the download does not match its SHA-256"
        check.unlink()

        subjects = {"ccfs": rounds_of(server, lambda: curl_ccfs(curl, server, ak, sk, name),
                                      size, mb)}
        if nginx_exe:
            tls = ccfs.data_dir / "tls"
            nginx = Nginx(nginx_exe, a.work, tls / "cert.pem", tls / "key.pem", src)
            nginx.start()
            run_curls([curl_nginx(curl, nginx)], size)  # warm
            subjects["nginx"] = rounds_of(nginx, lambda: curl_nginx(curl, nginx), size, mb)

        results = cb.interleave(a.rounds, subjects)
        ours_rss = server.peak_rss_mib()
        base_rss = nginx.peak_rss_mib() if nginx else None
    finally:
        server.stop()
        if nginx:
            nginx.stop()

    label = f"download {mb:.0f} MB"
    rows = [
        (f"{label}, 1 stream", "one", "<= 1.25",
         lambda o, b: f"MB/s {mb / o:.0f} vs {mb / b:.0f}" if b else f"MB/s {mb / o:.0f}"),
        (f"{label}, {PARALLEL} streams", "many", "<= 1.25",
         lambda o, b: (f"MB/s {PARALLEL * mb / o:.0f} vs {PARALLEL * mb / b:.0f}" if b
                       else f"MB/s {PARALLEL * mb / o:.0f}")),
        (f"{label}, server CPU per download", "cpu", "<= 2.0",
         lambda o, b: f"CPU s/download {o:.3f} vs {b:.3f}" if b else f"CPU s/download {o:.3f}"),
    ]
    for case, field, goal, notes in rows:
        ours = [getattr(r, field) for r in results["ccfs"]]
        base = [getattr(r, field) for r in results.get("nginx", [])]
        o, b = cb.median(ours), cb.median(base)
        ratio = cb.ratio_of_rounds(ours, base)
        cb.emit(case, "ccfs serve", "nginx" if nginx else None, o, b, ratio, goal,
                cb.bound_met(ratio, float(goal.split()[1])), ours_rss, base_rss,
                notes(o, b) + ("" if nginx else "; nginx not installed"))


if __name__ == "__main__":
    main()
