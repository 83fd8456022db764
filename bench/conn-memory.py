#!/usr/bin/env python3
"""Memory per connection: RSS a proxy adds for each open client connection.

Opens COUNT connections (10,000 by default) to a proxy and reads the growth
of the proxy's resident set (VmRSS in /proc/PID/status), divided by COUNT.
Three cases, each against a freshly started proxy:

  plain    idle keep-alive: one request answered, the connection kept open
  partial  slowloris: half a request head sent, the rest never comes
  tls      idle TLS keep-alive: handshake, one request answered, kept open

Targets: our proxy (the `bench_proxy` example, which proxies to an origin
this script runs itself) and, when installed, nginx as a reverse proxy to
the same origin with one worker process. Everything listens on 127.0.0.1
ports picked at run time; every process started here is stopped at the end.

    cargo build --release --example bench_proxy
    bench/conn-memory.py --proxy target/release/examples/bench_proxy

Options: --count N, --cases plain,partial,tls, --no-nginx, --nginx PATH,
--settle SECONDS (how long RSS may take to settle; default 3).

RSS is read once the process has served a warm-up connection of the same
kind (so code pages, TLS keys, allocator arenas and the upstream pool are
already in), and again after the connections are open and RSS has stopped
moving. Freed memory a process keeps (glibc keeps small freed chunks) counts
as used: that is what the machine sees.
"""

import argparse
import os
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
REQUEST = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: conn-memory\r\n\r\n"
# Half of a head: the request line and part of a field, never finished.
PARTIAL = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: conn-mem"
DEADLINE = 300  # seconds for the whole run; every wait is bounded by it


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < need:
        sys.exit(f"need {need} file descriptors, the hard limit is {hard}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# === origin =================================================================


def origin(listener):
    """A tiny keep-alive origin: every request head gets RESPONSE."""

    def serve(conn):
        buf = b""
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    conn.sendall(RESPONSE)
        except OSError:
            pass
        finally:
            conn.close()

    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


# === targets ================================================================


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def settled_rss(pid, settle):
    """RSS once two readings 0.5 s apart agree within 0.5 %, or after
    `settle` seconds."""
    last = rss_kb(pid)
    end = time.monotonic() + settle
    while time.monotonic() < end:
        time.sleep(0.5)
        now = rss_kb(pid)
        if abs(now - last) <= last * 0.005:
            return now
        last = now
    return last


def wait_port(port, proc, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not listening after {timeout}s")


class Ours:
    name = "ours"

    def __init__(self, binary, origin_port, tmp):
        self.binary, self.origin_port, self.tmp = binary, origin_port, tmp

    def start(self):
        self.port, self.tls_port = free_port(), free_port()
        cmd = [
            self.binary,
            f"127.0.0.1:{self.origin_port}",
            f"127.0.0.1:{self.port}",
            f"127.0.0.1:{self.tls_port}",
            f"{self.tmp}/cert.pem",
            f"{self.tmp}/key.pem",
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)
        wait_port(self.tls_port, self.proc)
        self.pid = self.proc.pid

    def stop(self):
        stop_proc(self.proc)


class Nginx:
    name = "nginx"

    def __init__(self, binary, origin_port, tmp):
        self.binary, self.origin_port, self.tmp = binary, origin_port, tmp

    def start(self):
        self.port, self.tls_port = free_port(), free_port()
        d = tempfile.mkdtemp(dir=self.tmp, prefix="nginx-")
        conf = f"""
worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  upstream origin {{ server 127.0.0.1:{self.origin_port}; keepalive 16; }}
  server {{
    listen 127.0.0.1:{self.port};
    listen 127.0.0.1:{self.tls_port} ssl;
    ssl_certificate {self.tmp}/cert.pem;
    ssl_certificate_key {self.tmp}/key.pem;
    location / {{
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(
            [self.binary, "-p", d, "-c", f"{d}/nginx.conf"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, self.proc)
        wait_port(self.tls_port, self.proc)
        # The connections are the worker's: measure it, not the master.
        end = time.monotonic() + 10
        while time.monotonic() < end:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                kids = f.read().split()
            if kids:
                self.pid = int(kids[0])
                return
            time.sleep(0.05)
        raise RuntimeError("nginx started no worker")

    def stop(self):
        stop_proc(self.proc)


def stop_proc(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# === clients ================================================================


def read_response(sock):
    """Read one RESPONSE-sized answer (the origin's, passed on)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(4096)
        if not data:
            raise RuntimeError("closed before the response")
        buf += data
    head, body = buf.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected response {head[:40]!r}")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        data = sock.recv(4096)
        if not data:
            raise RuntimeError("closed in the body")
        body += data


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def open_one(case, target, ctx):
    port = target.tls_port if case == "tls" else target.port
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    # Close with a reset: no TIME_WAIT left behind to exhaust local ports.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    if case == "tls":
        sock = ctx.wrap_socket(sock)
    if case == "partial":
        sock.sendall(PARTIAL)
    else:
        sock.sendall(REQUEST)
        read_response(sock)
    return sock


def measure(target, case, count, settle, ctx):
    target.start()
    socks = []
    try:
        # Warm up with connections of the same kind: code paths, keys,
        # the upstream pool and the allocator's arenas.
        warm = [open_one(case, target, ctx) for _ in range(4)]
        for s in warm:
            s.close()
        before = settled_rss(target.pid, settle)
        started = time.monotonic()
        for i in range(count):
            socks.append(open_one(case, target, ctx))
            if time.monotonic() - started > DEADLINE / 3:
                raise RuntimeError(f"only {i} connections in {DEADLINE // 3}s")
        took = time.monotonic() - started
        after = settled_rss(target.pid, settle)
        # Every connection must still be open: a closed one holds nothing.
        # (A peek at the TCP bytes under TLS too: b"" is the server's FIN.)
        for s in socks[:: max(1, count // 100)]:
            s.setblocking(False)
            try:
                peek = socket.socket.recv(s, 1, socket.MSG_PEEK)
            except BlockingIOError:
                continue
            if peek == b"":
                raise RuntimeError(f"{target.name} closed a {case} connection")
        return before, after, took
    finally:
        for s in socks:
            s.close()
        target.stop()


def make_cert(tmp):
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "2", "-subj", "/CN=localhost",
            "-keyout", f"{tmp}/key.pem", "-out", f"{tmp}/cert.pem",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--proxy", default="target/release/examples/bench_proxy")
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--cases", default="plain,partial,tls")
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--no-nginx", action="store_true")
    ap.add_argument("--settle", type=float, default=3.0)
    args = ap.parse_args()

    raise_fd_limit(args.count + 200)
    cases = [c for c in args.cases.split(",") if c]
    for c in cases:
        if c not in ("plain", "partial", "tls"):
            sys.exit(f"unknown case {c}")
    tmp = tempfile.mkdtemp(prefix="conn-memory-")
    try:
        make_cert(tmp)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        origin_port = listener.getsockname()[1]
        threading.Thread(target=origin, args=(listener,), daemon=True).start()

        targets = []
        if os.path.exists(args.proxy):
            targets.append(Ours(os.path.abspath(args.proxy), origin_port, tmp))
        else:
            log(f"{args.proxy} not found: build it with `cargo build --release --example bench_proxy`")
        if not args.no_nginx and os.path.exists(args.nginx):
            targets.append(Nginx(args.nginx, origin_port, tmp))
        elif not args.no_nginx:
            log("nginx not installed: measuring ours only")
        if not targets:
            sys.exit(1)

        ctx = tls_context()
        print(f"{'target':8} {'case':8} {'conns':>6} {'VmRSS before':>13} {'VmRSS after':>12} {'per connection':>15}")
        for case in cases:
            for target in targets:
                before, after, took = measure(target, case, args.count, args.settle, ctx)
                per = (after - before) * 1024 / args.count
                print(
                    f"{target.name:8} {case:8} {args.count:6} {before:10} kB {after:9} kB "
                    f"{per:8.0f} B = {per / 1024:5.2f} KiB   (opened in {took:.1f}s)",
                    flush=True,
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
