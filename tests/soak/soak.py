#!/usr/bin/env python3
"""Soak test of punchd (docs/soak.md): `make soak` (a few minutes) and `make soak-short` (~60 s, CI).

Starts the real build/punchd on 127.0.0.1 with realistic abuse limits (the defaults), runs the
UDP load generator (tests/soak/soakgen.c: 100k peers announcing, pulsing and pushing with churn,
plus garbage, a flood and a spray of forged sources) and, in threads here, the TCP abuse:
half-open connections that never send a head, a burst over the per-IP connection cap, slow
WebSocket readers that never read while relays pile up for them, oversized frames and heads.
Meanwhile it samples punchd's VmRSS every second. Then it checks:
  - punchd is alive throughout, exits 0 on SIGTERM, no sanitizer/valgrind report;
  - RSS flat after warm-up: max of the last third <= max of the first third x 1.1 + slack;
  - every peer that kept pulsing is resolvable (a push to it names it at its address and it gets
    the income), and a sample of the peers that went silent are gone (unknownShareId);
  - /metrics counters are consistent with what was sent, allowing for the datagrams the kernel
    dropped (Udp InErrors in /proc/net/snmp, before and after);
  - every half-open connection, slow reader and oversized frame was closed by punchd.
Prints the RSS curve and a summary; exit status 0 when every check held, 1 otherwise. Stops by
itself (every child has a time limit and dies with this process) and stops everything it started.

Python 3 standard library only.
"""
import argparse
import ctypes
import json
import os
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import wsclient  # noqa: E402  (the project's RFC 6455 test client)

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", r"==\d+== \S",
                     "ERROR SUMMARY: [1-9]", "definitely lost: [1-9]")
LISTEN_RE = re.compile(r"listening on udp ([0-9.]+):(\d+) and tcp ([0-9.]+):(\d+)")

# Profiles: peers, seconds of load, peer_ttl, pulse interval, hostile rates.
PROFILES = {
    "short": dict(peers=100000, secs=60, ttl=10, interval=3.5, churn_active=12, spray_rate=800,
                  flood_rate=3000, garbage_rate=300),
    "full": dict(peers=100000, secs=240, ttl=20, interval=6, churn_active=40, spray_rate=1000,
                 flood_rate=4000, garbage_rate=400),
}


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def die_with_parent():
    """preexec_fn: the child gets SIGKILL when this driver dies (PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        pass


def udp_snmp():
    """Udp counters from /proc/net/snmp: {name: int}."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    return {k: int(v) for k, v in zip(rows[0][1:], rows[1][1:])}


def parse_metrics(text):
    """Prometheus text -> {(name, ((label, value), ...)): float}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$', line)
        if not m:
            raise AssertionError(f"not a Prometheus sample line: {line!r}")
        labels = tuple(sorted(re.findall(r'([a-zA-Z_]\w*)="([^"]*)"', m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def msum(metrics, name, **labels):
    """Sum of the series of name whose labels include labels."""
    want = set(labels.items())
    return sum(v for (n, ls), v in metrics.items() if n == name and want <= set(ls))


class Server:
    """punchd under test (optionally under a wrapper such as valgrind)."""

    def __init__(self, binary, config, wrapper, tmp):
        self.cfg_path = os.path.join(tmp, "soak-config.json")
        with open(self.cfg_path, "w") as f:
            json.dump(config, f)
        # PUNCHD_* variables are punchd config: never pass ours (PUNCHD_BIN...) on.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUNCHD_")}
        # ASan keeps freed memory in a quarantine (256 MiB by default) that would read as RSS
        # growth: a small one still catches use-after-free of recent frees.
        if "quarantine_size_mb" not in env.get("ASAN_OPTIONS", ""):
            env["ASAN_OPTIONS"] = ":".join(x for x in (env.get("ASAN_OPTIONS"), "quarantine_size_mb=16") if x)
        self.argv = wrapper + [binary, "--config", self.cfg_path]
        self.proc = subprocess.Popen(self.argv, cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=die_with_parent)
        self.lines = []
        self.ready = threading.Event()
        self.udp = self.tcp = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            m = LISTEN_RE.search(line)
            if m and self.udp is None:
                self.udp = (m.group(1), int(m.group(2)))
                self.tcp = (m.group(3), int(m.group(4)))
                self.ready.set()
        self.ready.set()

    def wait_ready(self, timeout):
        if not self.ready.wait(timeout) or self.udp is None:
            raise SystemExit("soak: punchd did not start:\n" + "\n".join(self.lines[-40:]))

    def alive(self):
        return self.proc.poll() is None

    def rss_kib(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def metrics(self, timeout):
        url = f"http://{self.tcp[0]}:{self.tcp[1]}/metrics"
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return parse_metrics(r.read().decode())

    def report(self):
        text = "\n".join(self.lines)
        return next((m for m in SANITIZER_MARKERS if re.search(m, text)), None)

    def stop(self, timeout):
        """SIGTERM; the exit status (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


class TcpAbuse:
    """The TCP side of the hostile traffic, in threads until stop is set. Each kind
    counts what it did and what punchd answered."""

    def __init__(self, tcp, scale):
        self.host, self.port = tcp
        self.scale = scale
        self.stop = threading.Event()
        self.errors = []
        self.c = dict(halfopen_opened=0, halfopen_closed=0, cap_opened=0, cap_503=0,
                      slow_readers=0, slow_closed_1008=0, slow_closed_1001=0, slow_closed_other=0, relays_sent=0,
                      relay_errors=0, big_frames=0, big_frames_1009=0, big_heads=0, big_heads_4xx=0,
                      ws_announces=0)
        self.lock = threading.Lock()
        self.halfopen = []   # [socket, opened_at, closed]
        self.threads = [threading.Thread(target=f, daemon=True) for f in
                        (self._halfopen_loop, self._slow_loop, self._big_loop, self._cap_once)]

    def count(self, k, n=1):
        with self.lock:
            self.c[k] += n

    def start(self):
        for t in self.threads:
            t.start()

    def conn(self, src_ip, rcvbuf=None):
        c = wsclient.Conn(self.host, self.port, timeout=10 * self.scale, rcvbuf=rcvbuf, connect=False)
        c.sock.bind((src_ip, 0))
        c.connect()
        return c

    # half-open: connections that never send a request head (punchd closes them after 5 s)
    def _halfopen_loop(self):
        n = 0
        while not self.stop.wait(0.25):
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind((f"127.203.{n // 250}.{1 + n % 250}", 0))
                s.settimeout(5)
                s.connect((self.host, self.port))
                s.setblocking(False)
                self.halfopen.append([s, time.monotonic(), False])
                self.count("halfopen_opened")
                n = (n + 1) % 60000
            except OSError as e:
                self.errors.append(f"half-open connect: {e}")
            self.poll_halfopen()

    def poll_halfopen(self):
        for h in self.halfopen:
            if h[2]:
                continue
            try:
                data = h[0].recv(4096)
                if data == b"":
                    h[2] = True
            except BlockingIOError:
                continue
            except OSError:
                h[2] = True
            if h[2]:
                h[0].close()
                self.count("halfopen_closed")

    # a burst over max_connections_per_ip from one address: the excess gets 503 and close
    def _cap_once(self, n=560):
        if self.stop.wait(5):
            return
        socks = []
        try:
            for _ in range(n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind(("127.204.0.1", 0))
                s.settimeout(10 * self.scale)
                try:
                    s.connect((self.host, self.port))
                except OSError as e:
                    self.errors.append(f"cap connect: {e}")
                    s.close()
                    break
                socks.append(s)
                self.count("cap_opened")
            # the last ones are over the cap: each gets a 503 (the first ones are half-open)
            for s in socks[-(n - 512):]:
                try:
                    data = s.recv(4096)
                    if data.startswith(b"HTTP/1.1 503"):
                        self.count("cap_503")
                except OSError:
                    pass
        finally:
            for s in socks:
                s.close()

    # slow readers: a WebSocket that never reads while others relay to it; punchd must close it
    # (1008 once its backlog passes ws_max_queued, after the kernel's buffers are full; or 1001
    # after two ping intervals of silence)
    def _slow_loop(self, pairs=2):
        threads = [threading.Thread(target=self._slow_pair, args=(k,), daemon=True) for k in range(pairs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _slow_pair(self, k, nsenders=4):
        payload = {"p": "x" * 7000}   # 4 x 7 KB per 0.13 s: under relay_bytes_per_sec per sender
        gen = 0
        while not self.stop.is_set():
            senders = []
            try:
                reader = self.conn(f"127.205.{k}.{1 + gen % 250}", rcvbuf=4096)
                reader.handshake("/")
                rid = reader.request_json({"action": "announce"})["data"]["shareId"]
                for j in range(nsenders):
                    s = self.conn(f"127.206.{k}.{1 + (gen * nsenders + j) % 250}")
                    s.handshake("/")
                    s.request_json({"action": "announce"})
                    senders.append(s)
                self.count("ws_announces", 1 + nsenders)
                self.count("slow_readers")
            except (OSError, AssertionError, KeyError) as e:
                self.errors.append(f"slow reader set-up: {e}")
                for s in senders:
                    s.close()
                self.stop.wait(1)
                continue
            gen += 1
            gone = False
            while not self.stop.is_set() and not gone:
                for s in senders:
                    try:
                        s.send_json({"action": "relay", "shareId": rid, "data": payload})
                        self.count("relays_sent")
                        # success has no answer; unknownShareId means the reader is gone
                        r = s.recv_json(0.13 / nsenders)
                        self.count("relay_errors")
                        if r.get("data", {}).get("code") == "unknownShareId":
                            gone = True
                    except AssertionError as e:
                        if "timed out" not in str(e):
                            self.errors.append(f"relay sender: {e}")
                            gone = True
                    except OSError as e:
                        self.errors.append(f"relay sender: {e}")
                        gone = True
            if gone:
                try:
                    code = reader.expect_close(30 * self.scale)
                except (OSError, AssertionError):
                    code = None
                key = {1008: "slow_closed_1008", 1001: "slow_closed_1001"}.get(code, "slow_closed_other")
                self.count(key)
            reader.close()
            for s in senders:
                s.close()

    # oversized frames (close 1009) and oversized request heads (4xx and close)
    def _big_loop(self):
        n = 0
        while not self.stop.wait(0.5):
            ip = f"127.207.{n // 250 % 250}.{1 + n % 250}"
            n += 1
            try:
                c = self.conn(ip)
                if n % 2:
                    c.handshake("/")
                    c.send_raw(wsclient.build_frame(wsclient.OP_TEXT, b"{", length=1 << 20))
                    self.count("big_frames")
                    if c.expect_close(10 * self.scale) == 1009:
                        self.count("big_frames_1009")
                else:
                    self.count("big_heads")
                    c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 9000 + b"\r\n\r\n")
                    r = c.read_response(10 * self.scale)
                    if 400 <= r.status < 500:
                        self.count("big_heads_4xx")
                c.close()
            except (OSError, AssertionError) as e:
                self.errors.append(f"oversized frame/head: {e}")

    def finish(self, timeout):
        """Stops the loops; waits (up to timeout) until punchd closed every half-open connection."""
        self.stop.set()
        for t in self.threads:
            t.join(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll_halfopen()
            if all(h[2] for h in self.halfopen):
                break
            time.sleep(0.2)
        still = sum(1 for h in self.halfopen if not h[2])
        for h in self.halfopen:
            if not h[2]:
                h[0].close()
        return still


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="short")
    ap.add_argument("--secs", type=float, help="seconds of load (profile's default)")
    ap.add_argument("--peers", type=int)
    ap.add_argument("--ttl", type=int)
    ap.add_argument("--interval", type=float)
    ap.add_argument("--rate-scale", type=float, default=1.0,
                    help="multiplies the garbage, flood and spray rates (e.g. 0.05 under valgrind)")
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--rss-slack-kib", type=int, default=4096)
    args = ap.parse_args()
    prof = dict(PROFILES[args.profile])
    for k in ("secs", "peers", "ttl", "interval"):
        if getattr(args, k) is not None:
            prof[k] = getattr(args, k)
    for k in ("spray_rate", "garbage_rate"):
        prof[k] *= args.rate_scale
    # the flood shrinks by its number of sources: each must stay far over the request limit
    flood_ips = max(1, round(8 * args.rate_scale))
    prof["flood_rate"] = prof["flood_rate"] * flood_ips / 8

    wrapper = os.environ.get("TEST_PUNCHD_WRAPPER", "").split()
    scale = 20.0 if any("valgrind" in w for w in wrapper) else (3.0 if "san" in args.build else 1.0)
    wsclient.DEFAULT_TIMEOUT = 2.0 * scale
    binary = os.path.join(ROOT, args.build, "punchd")
    gen_bin = os.path.join(ROOT, args.build, "soak", "soakgen")
    for b in (binary, gen_bin):
        if not os.access(b, os.X_OK):
            raise SystemExit(f"soak: {b} is missing (make soak builds it)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    # Every limit stays at its default (rate_*, max_connections_per_ip, retry_threshold,
    # ws_max_queued...): only the clock is shortened, so that peers expire within the run.
    config = {"bind": "127.0.0.1", "port": 0, "peer_ttl": prof["ttl"], "log_level": "info"}
    failures = []
    summary = {}
    tmp = tempfile.TemporaryDirectory(prefix="punchd-soak-")
    srv = Server(binary, config, wrapper, tmp.name)
    gen = None
    abuse = None
    try:
        srv.wait_ready(10 * scale)
        log(f"punchd pid {srv.proc.pid} on udp {srv.udp[0]}:{srv.udp[1]} (config {json.dumps(config)}; "
            f"argv {' '.join(srv.argv)})")
        rss = []          # (seconds since start of load, KiB)
        snmp0 = udp_snmp()
        m0 = srv.metrics(10 * scale)
        t0 = time.monotonic()
        gen_argv = [gen_bin, "--target", f"{srv.udp[0]}:{srv.udp[1]}", "--peers", str(prof["peers"]),
                    "--secs", str(prof["secs"]), "--ttl", str(prof["ttl"]),
                    "--interval", str(prof["interval"]), "--churn-active", str(prof["churn_active"]),
                    "--spray-rate", str(prof["spray_rate"]), "--flood-rate", str(prof["flood_rate"]), "--flood-ips", str(flood_ips),
                    "--garbage-rate", str(prof["garbage_rate"]), "--seed", str(args.seed),
                    "--verify-max", str(int(max(30, 4 * prof["interval"]) * min(scale, 3)))]
        log("load generator: " + " ".join(gen_argv[1:]))
        gen = subprocess.Popen(gen_argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                               preexec_fn=die_with_parent)
        abuse = TcpAbuse(srv.tcp, scale)
        abuse.start()
        final = None
        dead_at = None
        next_sample = t0
        last_log = t0
        progress = []

        def read_gen():
            for raw in iter(gen.stdout.readline, b""):
                progress.append(json.loads(raw))
        reader = threading.Thread(target=read_gen, daemon=True)
        reader.start()
        limit = prof["secs"] + 120 * min(scale, 3)
        while gen.poll() is None:
            now = time.monotonic()
            if now >= next_sample:
                next_sample += 1.0
                v = srv.rss_kib()
                if v is not None:
                    rss.append((now - t0, v))
            if not srv.alive() and dead_at is None:
                dead_at = now - t0
                failures.append(f"punchd died at t={dead_at:.1f}s (status {srv.proc.poll()})")
                break
            if progress and now - last_log >= 10 and "live" in progress[-1]:
                last_log = now
                p = progress[-1]
                log(f"t={p['t']:.0f}s {p['phase']}: live {p['live']}, sent {p['sent']}, "
                    f"in flight {p['inflight']}, waiting {p['ready']}, timeouts {p['timeouts']}, "
                    f"rss {rss[-1][1] if rss else '?'} KiB")
            if now - t0 > limit:
                failures.append(f"load generator still running after {limit:.0f}s: killed")
                gen.kill()
                break
            time.sleep(0.05)
        gen.wait()
        reader.join(5)
        final = next((p for p in reversed(progress) if p.get("final")), None)
        if final is None:
            failures.append(f"load generator ended without a summary (status {gen.returncode})")
        load_end = final["load_secs"] if final else prof["secs"]
        still_open = abuse.finish(15 * scale)
        m1 = srv.metrics(10 * scale) if srv.alive() else None
        snmp1 = udp_snmp()
        if not srv.alive():
            failures.append(f"punchd is not running at the end (status {srv.proc.poll()})")
    finally:
        if gen and gen.poll() is None:
            gen.kill()
            gen.wait()
        if abuse:
            abuse.stop.set()
        status = srv.stop(10 * scale)
        tmp.cleanup()

    # ---- checks ----
    if status != 0:
        failures.append(f"punchd exit status after SIGTERM: {status} (want 0)")
    bad = srv.report()
    if bad:
        failures.append(f"sanitizer/valgrind report on punchd's stderr ({bad}):\n"
                        + "\n".join(srv.lines[-60:]))

    # RSS: the warm-up is the first third of the load, compared with the last third
    load = [(t, v) for t, v in rss if t <= load_end]
    print("\nRSS of punchd (KiB), one sample per second:")
    for i in range(0, len(load), 10):
        print("  " + " ".join(f"{t:5.0f}s:{v:7d}" for t, v in load[i:i + 10]))
    if len(load) >= 9:
        third = len(load) // 3
        warm_max = max(v for _, v in load[:third])
        last_max = max(v for _, v in load[-third:])
        allowed = warm_max * 1.1 + args.rss_slack_kib
        summary["rss_warmup_max_kib"] = warm_max
        summary["rss_last_third_max_kib"] = last_max
        summary["rss_allowed_kib"] = int(allowed)
        if last_max > allowed:
            failures.append(f"RSS grew: last third max {last_max} KiB > warm-up max {warm_max} KiB x 1.1 "
                            f"+ {args.rss_slack_kib} KiB")
    else:
        failures.append(f"only {len(load)} RSS samples during the load")

    if final:
        f = final
        kdrops = snmp1.get("InErrors", 0) - snmp0.get("InErrors", 0)
        rcvbuf = snmp1.get("RcvbufErrors", 0) - snmp0.get("RcvbufErrors", 0)
        summary.update(kernel_udp_in_errors=kdrops, kernel_udp_rcvbuf_errors=rcvbuf)

        def check(cond, what):
            if not cond:
                failures.append(what)

        # nothing lost, expired ones gone
        check(f["lost_early"] == 0, f"{f['lost_early']} peers were told notAnnounced although they had "
                                    f"pulsed within peer_ttl")
        check(f["push_unknown_live"] == 0, f"{f['push_unknown_live']} pushes to peers that kept pulsing "
                                           f"got unknownShareId")
        check(f["rejoin_same_id"] == 0, f"{f['rejoin_same_id']} silent peers got their old shareId back "
                                        f"after peer_ttl (it had not expired)")
        check(f["v_live"] >= 0.5 * f["peers"], f"only {f['v_live']} of {f['peers']} peers were live at the end")
        check(f["v_unknown"] == 0, f"{f['v_unknown']} peers that kept pulsing were not resolvable")
        check(f["v_bad_reply"] == 0, f"{f['v_bad_reply']} pushReceived replies named the wrong peer or address")
        check(f["v_incomplete"] == 0, f"{f['v_incomplete']} verification pushes were not answered in time")
        check(f["v_ok"] == f["v_live"], f"verified {f['v_ok']} of {f['v_live']} live peers")
        missing_incomes = f["v_ok"] - f["v_income_ok"]
        check(missing_incomes <= kdrops, f"{missing_incomes} verification incomes never arrived "
                                         f"(kernel dropped {kdrops} datagrams)")
        check(f["v_exp_checked"] > 0, "no expired peer to check (run longer)")
        check(f["v_exp_gone"] == f["v_exp_checked"],
              f"of {f['v_exp_checked']} expired ids pushed to, {f['v_exp_gone']} were gone "
              f"({f['v_exp_present']} still resolved)")
        check(f["g_replies"] == 0, f"punchd answered garbage {f['g_replies']} times")
        check(f["other_replies"] == 0, f"{f['other_replies']} datagrams to unexpected addresses")

        if m1 is not None:
            d = {k: m1.get(k, 0) - m0.get(k, 0) for k in m1}

            def md(name, **labels):
                return msum(d, name, **labels)
            udp_requests = md("punchd_requests_total", transport="udp")
            dropped = md("punchd_dropped_datagrams_total")
            limited_req = md("punchd_limited_total", limit="requests")
            counted = udp_requests + dropped + limited_req
            sent = f["sent_total"]
            summary.update(udp_sent=sent, udp_counted_by_punchd=int(counted),
                           udp_requests=int(udp_requests), dropped=int(dropped),
                           limited_requests=int(limited_req))
            # every datagram sent is counted once (requests, dropped or limited), unless the
            # kernel dropped it on the way
            check(sent - kdrops <= counted <= sent,
                  f"punchd counted {counted:.0f} UDP datagrams; sent {sent}, kernel drops {kdrops}")
            for reason, key in (("too_large", "too_large"), ("invalid_utf8", "invalid_utf8"),
                                ("not_object", "not_object")):
                got = md("punchd_dropped_datagrams_total", reason=reason)
                want = f["g_sent"][key]
                check(want - kdrops <= got <= want,
                      f"dropped{{reason={reason}}} is {got:.0f}, sent {want} (kernel drops {kdrops})")
            got = md("punchd_dropped_datagrams_total", reason="not_json")
            want = f["g_sent"]["not_json"]
            check(want - kdrops <= got <= want + f["f_sent_garbage"],
                  f"dropped{{reason=not_json}} is {got:.0f}, garbage sent {want} (+{f['f_sent_garbage']} "
                  f"in the flood), kernel drops {kdrops}")
            # the flood: each source gets at most burst + rate x time through, the rest is limited
            flood_allowed = f["flood_ips"] * (200 + 100 * (f["load_secs"] + 2))
            check(f["f_sent"] - flood_allowed - kdrops <= limited_req <= f["f_sent"],
                  f"limited{{requests}} is {limited_req:.0f}; the flood sent {f['f_sent']}, of which at most "
                  f"{flood_allowed:.0f} pass the limit")
            rl = md("punchd_errors_total", code="rateLimited")
            notices_max = f["flood_ips"] * (f["load_secs"] + 2)
            check(f["f_rate_limited"] <= rl <= notices_max + f["err_rate_limited"] + md(
                  "punchd_limited_total", limit="income"),
                  f"errors{{rateLimited}} is {rl:.0f}; flood notices received {f['f_rate_limited']}, "
                  f"at most {notices_max:.0f} (once a second per source)")
            check(f["f_rate_limited"] >= 1, "the flood never got a rateLimited notice")
            # per action: at most what was sent, at least what sources under the limit sent
            for action, under, flood in (
                    ("announce", f["sent_announce"] + f["s_sent_announce"], 0),
                    ("pulse", f["sent_pulse"] + f["s_sent_pulse"], f["f_sent_pulse"]),
                    ("push", f["sent_push"] + f["s_sent_push"], 0),
                    ("alive", 0, f["f_sent_alive"]),
                    ("unknown", 0, f["f_sent_unknown"])):
                got = md("punchd_requests_total", transport="udp", action=action)
                check(under - kdrops <= got <= under + flood,
                      f"requests{{udp,{action}}} is {got:.0f}; sent {under} under the limits "
                      f"+ {flood} in the flood (kernel drops {kdrops})")
            # errors: at least what we received, at most what could cause them
            for code, received, cause in (
                    ("unknownShareId", f["err_unknown"] + f["s_unknown"], f["sent_push"] + f["s_sent_push"]),
                    ("notAnnounced", f["err_not_announced"] + f["f_not_announced"] + f["s_not_announced"],
                     f["sent_pulse"] + f["sent_push"] + f["s_sent_pulse"] + f["s_sent_push"]
                     + f["f_sent_alive"] + f["f_sent_pulse"]),
                    ("unknownAction", f["f_unknown_action"], f["f_sent_unknown"])):
                got = md("punchd_errors_total", code=code)
                check(received <= got <= cause, f"errors{{{code}}} is {got:.0f}; received {received}, "
                                                f"at most {cause} requests could cause it")
            for code in ("badRequest", "unauthorized", "full", "retry"):
                got = md("punchd_errors_total", code=code)
                check(got == 0, f"errors{{{code}}} is {got:.0f}, want 0 (nothing sent could cause it)")
            pushes = md("punchd_pushes_total")
            check(pushes >= f["push_ok"], f"pushes_total {pushes:.0f} < {f['push_ok']} pushReceived seen")
            expired = md("punchd_expired_total")
            check(expired >= f["v_exp_gone"], f"expired_total {expired:.0f} < {f['v_exp_gone']} ids seen gone")
            conn_cap = md("punchd_limited_total", limit="connections_per_ip")
            check(conn_cap >= abuse.c["cap_503"] >= 1,
                  f"limited{{connections_per_ip}} is {conn_cap:.0f}; 503s seen {abuse.c['cap_503']} (want >= 1)")
            summary.update(errors={ls[0][1]: int(v) for (n, ls), v in d.items()
                                   if n == "punchd_errors_total" and v},
                           limited={ls[0][1]: int(v) for (n, ls), v in d.items()
                                    if n == "punchd_limited_total" and v},
                           pushes=int(pushes), expired=int(expired),
                           peers_at_end=int(m1.get(("punchd_peers", ()), 0)))
        summary["generator"] = {k: f[k] for k in (
            "sent_total", "sent_announce", "sent_pulse", "sent_push", "resent", "timeouts", "ann_ok",
            "pulse_ok", "push_ok", "incomes", "rejoins", "gone_recorded", "starved", "v_live",
            "v_uncertain", "v_ok", "v_income_ok", "v_exp_candidates", "v_exp_checked", "v_exp_gone",
            "f_sent", "f_rate_limited", "s_sent", "s_announced", "g_sent")}

    # TCP abuse
    if abuse:
        c = abuse.c
        summary["tcp_abuse"] = dict(c, halfopen_left_open=still_open)
        if still_open:
            failures.append(f"{still_open} half-open connections were never closed by punchd")
        if c["halfopen_opened"] < 10:
            failures.append(f"only {c['halfopen_opened']} half-open connections were made")
        if c["slow_closed_1008"] < 1 or c["slow_closed_other"]:
            failures.append(f"slow readers: {c['slow_closed_1008']} closed with 1008, "
                            f"{c['slow_closed_other']} ended otherwise (want >= 1 and 0)")
        if c["big_frames_1009"] != c["big_frames"] or c["big_frames"] < 1:
            failures.append(f"oversized frames: {c['big_frames_1009']} of {c['big_frames']} closed with 1009")
        if c["big_heads_4xx"] != c["big_heads"] or c["big_heads"] < 1:
            failures.append(f"oversized heads: {c['big_heads_4xx']} of {c['big_heads']} got a 4xx")
        if abuse.errors:
            failures.append(f"TCP abuse errors ({len(abuse.errors)}): " + "; ".join(abuse.errors[:5]))

    print("\nsummary:")
    print(json.dumps(summary, indent=1, sort_keys=True))
    if failures:
        print(f"\nSOAK FAILED ({len(failures)}):")
        for x in failures:
            print("  - " + x)
        return 1
    print("\nSOAK PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
