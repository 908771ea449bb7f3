#!/usr/bin/env python3
"""punchd's benchmark driver (docs/bench.md). Python 3 standard library only.

Runs, in one go and on loopback only: punchd (from the build tree, with a
generated benchmark config), the batched UDP echo and the bare TCP echo built
from the same tree, and the C load generator (bench/loadgen.c), which it drives
over a pipe one command at a time. Every punchd measurement is paired with the
same measurement of the echo, interleaved in rounds so that a noisy neighbour
hits both alike; only ratios are meant to be compared across machines.

    bench.py --build build --out build/bench [--quick | --smoke] [--json PATH]
    bench.py --report --out build/bench          (PNGs from latest.json, gnuplot)

Every child process is pinned (server on CPU 0, load generator on CPU 1 when
there are two), dies with this process (PR_SET_PDEATHSIG) and has its own
time limit; all are stopped in a finally block. Exit status 0 when the run
completed (whatever the numbers), 1 when something failed.
"""
import argparse
import ctypes
import json
import math
import os
import re
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Profiles: how much and how long. full ~5-8 min, quick ~1 min, smoke ~10 s.
PROFILES = {
    "full": dict(peers=1_000_000, curve=[10_000, 100_000, 300_000, 1_000_000], secs=2.5, rounds=2,
                 kind_secs=2.0, rate_secs=3.0, ws_idle=10_000, ws_active=1_000, ws_secs=4.0,
                 workers_peers=1_000_000, workers_secs=3.0, warmup=0.5),
    "quick": dict(peers=100_000, curve=[10_000, 100_000], secs=1.5, rounds=2,
                  kind_secs=1.0, rate_secs=1.5, ws_idle=2_000, ws_active=200, ws_secs=1.5,
                  workers_peers=100_000, workers_secs=1.5, warmup=0.3),
    "smoke": dict(peers=2_000, curve=[2_000], secs=1.0, rounds=1,
                  kind_secs=0.3, rate_secs=0.5, ws_idle=20, ws_active=10, ws_secs=0.5,
                  workers_peers=2_000, workers_secs=0.5, warmup=0.1),
}

MIX = "10,80,10"          # announce, pulse, push: pulses dominate (the app pulses every 2 s)
WS_MIX = "10,90"          # announce, pulse over WebSocket
UDP_SOCKETS = 16
UDP_WINDOW = 128          # closed loop: requests in flight at once (all peers together)
RATE_WINDOW = 8192        # open loop: in-flight bound (only reached if the server stalls)
LOAD = 0.8                # open loop: offered rate as a share of the closed-loop maximum
TICK_US = 50              # open loop: the generator acts (sends what is due, reads) every 50 us
BURST = 8                 # open loop: at most 8 requests per sendmmsg (each batch stamped as it leaves)
LISTEN_RE = re.compile(r"listening on udp (?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+)):(\d+)"
                       r"(?: and tcp (?:\[[0-9A-Fa-f:.]+\]|[0-9.]+):(\d+))?")
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
ECHO_RE = re.compile(r"listening on (?:udp|tcp) 127\.0\.0\.1:(\d+)")


class BenchError(Exception):
    pass


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def _die_with_parent():
    """preexec_fn: the child gets SIGTERM when this driver dies, however it dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


NICE = 0  # --nice: scheduling priority of every child (negative needs root)
RT = 0    # --rt: SCHED_FIFO priority of every child (needs root); 0 = normal scheduling


def pin(pid, cpu):
    """Pins pid to cpu (None: leave it) and applies --nice / --rt; best effort."""
    if NICE:
        try:
            os.setpriority(os.PRIO_PROCESS, pid, NICE)
        except OSError as e:
            log(f"warning: cannot set nice {NICE} on {pid}: {e}")
    if RT:
        try:
            os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(RT))
        except OSError as e:
            log(f"warning: cannot set SCHED_FIFO {RT} on {pid}: {e}")
    if cpu is None:
        return
    try:
        os.sched_setaffinity(pid, {cpu})
    except OSError:
        pass


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Server:
    """A child server whose stderr announces its port; stderr is kept."""

    def __init__(self, name, argv, regex, cwd=None, cpu=None):
        self.name = name
        self.argv = argv
        self.regex = regex
        self.cwd = cwd
        self.cpu = cpu
        self.proc = None
        self.lines = []
        self.match = None
        self.failed_start = False  # start() raised: its exit status is no news
        self._ready = threading.Event()

    def start(self, timeout=10.0):
        # punchd reads PUNCHD_<KEY> variables as configuration (and refuses
        # unknown ones): the benchmark's config is only the file it writes.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUNCHD_")}
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=_die_with_parent)
        pin(self.proc.pid, self.cpu)
        threading.Thread(target=self._reader, daemon=True).start()
        if not self._ready.wait(timeout) or self.match is None:
            self.failed_start = True
            self.stop()
            raise BenchError(f"{self.name} did not start: {' '.join(self.argv)}\n" + self.stderr())
        return self

    def _reader(self):
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            if self.match is None:
                m = self.regex.search(line)
                if m:
                    self.match = m
                    self._ready.set()
        self._ready.set()

    def stderr(self):
        return "\n".join(self.lines[-20:])

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """Stops it (SIGTERM, then SIGKILL after 10 s); returns a problem or None."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return f"{self.name} ignored SIGTERM"
        time.sleep(0.05)  # the reader thread takes the last lines
        text = "\n".join(self.lines)
        if any(m in text for m in SANITIZER_MARKERS):
            return f"{self.name}: sanitizer report:\n{self.stderr()}"
        if self.proc.returncode != 0 and not self.failed_start:
            return f"{self.name} exited with status {self.proc.returncode}:\n{self.stderr()}"
        return None


class LoadGen:
    """The C load generator: one command line in, one JSON line out."""

    def __init__(self, binary, cpu=None, max_seconds=1500):
        self.proc = subprocess.Popen([binary, "--max-seconds", str(max_seconds)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
        pin(self.proc.pid, cpu)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)
        self.buf = b""

    def cmd(self, line, timeout):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sel.select(left):
                raise BenchError(f"load generator: no answer to '{line}' within {timeout:.0f}s")
            chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
            if not chunk:
                err = self.proc.stderr.read().decode("utf-8", "replace")
                raise BenchError(f"load generator exited during '{line}': {err}")
            self.buf += chunk
        out, self.buf = self.buf.split(b"\n", 1)
        d = json.loads(out)
        if "error" in d:
            raise BenchError(f"load generator: '{line}': {d['error']}")
        return d

    def stop(self):
        """Ends it with quit; returns a problem or None."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.flush()
                self.proc.wait(30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
                return "load generator did not quit"
        err = self.proc.stderr.read().decode("utf-8", "replace")
        if self.proc.returncode != 0 or any(m in err for m in SANITIZER_MARKERS):
            return f"load generator exited with status {self.proc.returncode}: {err[-2000:]}"
        return None


# ---- punchd configuration ----

def punchd_keys(binary):
    """Config keys this punchd knows, from its --help (flags with dashes)."""
    out = subprocess.run([binary, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=10).stdout.decode("utf-8", "replace")
    return {m.group(1).replace("-", "_") for m in re.finditer(r"^\s+--([a-z][a-z0-9-]*)", out, re.M)}


def punchd_config(keys, peers, workers=None):
    """The benchmark's config: room for every peer and connection, nothing
    expiring during the run, every limit that would throttle the load off.
    Keys this punchd does not know yet are left out (unknown keys are fatal)."""
    cfg = {
        "bind": "127.0.0.1",
        "port": 0,
        "max_peers": max(1_100_000, int(peers * 1.1)),
        "peer_ttl": 86400,
        "max_connections": 12_000,
        "ws_ping_interval": 3600,
        "log_level": "info",
    }
    optional = {
        "rate_requests_per_sec": 0,
        "rate_income_per_sec": 0,
        "rate_response_bytes_per_sec": 0,
        "max_connections_per_ip": 0,
        "retry_threshold": 1,
        "relay_bytes_per_sec": 0,
    }
    for k, v in optional.items():
        if k in keys:
            cfg[k] = v
    if workers is not None:
        cfg["workers"] = workers
    return cfg


# ---- histogram helpers (bins as the load generator prints them) ----

def bin_width(lo):
    """Width in µs of the load generator's JSON bin starting at lo (see lg_common.c)."""
    return 1 if lo < 100 else 5 if lo < 1000 else 50 if lo < 10000 else 500


def merge_hists(hists):
    acc = {}
    for h in hists:
        for lo, c in h:
            acc[lo] = acc.get(lo, 0) + c
    return sorted([lo, c] for lo, c in acc.items())


def hist_quantile(hist, q):
    total = sum(c for _, c in hist)
    if total == 0:
        return None
    want = max(1, int(total * q))
    acc = 0
    for lo, c in hist:
        acc += c
        if acc >= want:
            return round(lo + bin_width(lo) / 2, 1)
    return float(hist[-1][0])


def _share(runs, key, secs):
    """Sum of a per-run seconds figure over the measured time; None if any run lacks it."""
    vals = [r.get(key) for r in runs]
    if secs <= 0 or any(v is None or v < 0 for v in vals):
        return None
    return round(sum(vals) / secs, 3)


def _others(runs, cpu, secs):
    """Share of the machine's CPU time (all CPUs) used by anything but the server and
    the generator during the measured windows; None if not known."""
    busy = [r.get("machine_busy_s") for r in runs]
    if cpu is None or secs <= 0 or any(b is None or b < 0 for b in busy):
        return None
    own = cpu + sum(r.get("lg_cpu_s", 0) for r in runs)
    return round(max(0.0, sum(busy) - own) / (secs * (os.cpu_count() or 1)), 3)


def combine(runs):
    """Aggregates several runs of one target: rates over the summed time."""
    secs = sum(r["secs"] for r in runs)
    replies = sum(r["replies"] for r in runs)
    cpu = sum(r["cpu_s"] for r in runs) if all(r["cpu_s"] >= 0 for r in runs) else None
    hist = merge_hists(r["hist"] for r in runs)
    # read_hist: older load generators have none
    read = merge_hists(r.get("read_hist", r["hist"]) for r in runs)
    out = {
        "rps": round(replies / secs) if secs > 0 else 0,
        "replies": replies,
        "secs": round(secs, 3),
        "p50_us": hist_quantile(hist, 0.50) or 0.0,
        "p90_us": hist_quantile(hist, 0.90) or 0.0,
        "p99_us": hist_quantile(hist, 0.99) or 0.0,
        "p999_us": hist_quantile(hist, 0.999) or 0.0,
        "read_p50_us": hist_quantile(read, 0.50) or 0.0,
        "read_p99_us": hist_quantile(read, 0.99) or 0.0,
        "read_p999_us": hist_quantile(read, 0.999) or 0.0,
        # quantiles of single runs do not merge: the worst run's
        "read_delay_p99_us": max((r.get("read_delay_p99_us", 0) for r in runs), default=0),
        "send_lag_p99_us": max((r.get("send_lag_p99_us", 0) for r in runs), default=0),
        "lg_stall_max_us": max((r.get("lg_stall_max_us", 0) for r in runs), default=0),
        "lg_stalls_1ms": sum(r.get("lg_stalls_1ms", 0) for r in runs),
        "server_busy": round(cpu / secs, 3) if cpu is not None and secs > 0 else None,
        "server_wait_share": _share(runs, "server_run_delay_s", secs),
        "lg_wait_share": _share(runs, "lg_run_delay_s", secs),
        "tx_batch_mean": round(sum(r.get("tx_batch_mean", 0) for r in runs) / len(runs), 2),
        "others_share": _others(runs, cpu, secs),
        "steal_share": _share(runs, "steal_s", secs * (os.cpu_count() or 1)),
        "cpu_s": round(cpu, 3) if cpu is not None else None,
        "cpu_s_per_m": round(cpu / (replies / 1e6), 3) if cpu and replies else None,
        "replies_per_cpu_s": round(replies / cpu) if cpu else None,
        "lg_cpu_s": round(sum(r.get("lg_cpu_s", 0) for r in runs), 3),
        "lg_busy": round(sum(r.get("lg_cpu_s", 0) for r in runs) / secs, 3) if secs > 0 else None,
        "errors": sum(r.get("errors", 0) for r in runs),
        "lost": sum(r.get("lost", 0) for r in runs),
        "hist": hist,
    }
    for k in ("incomes", "skipped", "closed", "no_stamp"):
        if any(k in r for r in runs):
            out[k] = sum(r.get(k, 0) for r in runs)
    return out


def scenario_row(name, p, e, **extra):
    row = {
        "name": name,
        "punchd_rps": p["rps"],
        "echo_rps": e["rps"],
        "ratio": round(p["rps"] / e["rps"], 3) if e["rps"] else None,
        "p50_us": p["p50_us"],
        "p90_us": p["p90_us"],
        "p99_us": p["p99_us"],
        "p999_us": p["p999_us"],
        "echo_p50_us": e["p50_us"],
        "echo_p90_us": e["p90_us"],
        "echo_p99_us": e["p99_us"],
        "echo_p999_us": e["p999_us"],
        "read_p50_us": p["read_p50_us"],
        "read_p99_us": p["read_p99_us"],
        "echo_read_p50_us": e["read_p50_us"],
        "echo_read_p99_us": e["read_p99_us"],
        "read_delay_p99_us": p["read_delay_p99_us"],
        "echo_read_delay_p99_us": e["read_delay_p99_us"],
        "send_lag_p99_us": p["send_lag_p99_us"],
        "echo_send_lag_p99_us": e["send_lag_p99_us"],
        # the generator's own hiccups (longest, and how many over 1 ms)
        "generator_stall_max_us": p["lg_stall_max_us"],
        "echo_generator_stall_max_us": e["lg_stall_max_us"],
        "generator_stalls_1ms": p["lg_stalls_1ms"],
        "echo_generator_stalls_1ms": e["lg_stalls_1ms"],
        "cpu_s_per_m": p["cpu_s_per_m"],
        "echo_cpu_s_per_m": e["cpu_s_per_m"],
        "replies_per_cpu_s": p["replies_per_cpu_s"],
        "echo_replies_per_cpu_s": e["replies_per_cpu_s"],
        "cpu_ratio": (round(p["replies_per_cpu_s"] / e["replies_per_cpu_s"], 3)
                      if p["replies_per_cpu_s"] and e["replies_per_cpu_s"] else None),
        "errors": p["errors"],
        "lost": p["lost"],
        "echo_lost": e["lost"],
        "generator_cpu_s": round(p["lg_cpu_s"] + e["lg_cpu_s"], 3),
        # share of one CPU the generator used: near 1.0 it may have been the limit
        "generator_busy": p["lg_busy"],
        "echo_generator_busy": e["lg_busy"],
        # share of the window the server ran, and (wait) was runnable but not running
        "server_busy": p["server_busy"],
        "echo_server_busy": e["server_busy"],
        "server_wait_share": p["server_wait_share"],
        "echo_server_wait_share": e["server_wait_share"],
        "generator_wait_share": p["lg_wait_share"],
        "echo_generator_wait_share": e["lg_wait_share"],
        # what the rest of the machine took meanwhile (other processes; the hypervisor)
        "others_share": p["others_share"],
        "echo_others_share": e["others_share"],
        "steal_share": p["steal_share"],
        "echo_steal_share": e["steal_share"],
        "hist": p["hist"],
        "echo_hist": e["hist"],
    }
    for k in ("incomes", "skipped", "closed", "no_stamp"):
        if k in p:
            row[k] = p[k]
        if k in e:
            row["echo_" + k] = e[k]
    row.update(extra)
    return row


# ---- the run ----

class Bench:
    def __init__(self, args):
        self.args = args
        self.prof = dict(PROFILES[args.profile])
        if args.peers:
            self.prof["peers"] = args.peers
            self.prof["curve"] = sorted({c for c in self.prof["curve"] if c < args.peers} | {args.peers})
            self.prof["workers_peers"] = args.peers
        self.build = os.path.join(ROOT, args.build) if not os.path.isabs(args.build) else args.build
        self.punchd_bin = os.path.join(self.build, "punchd")
        self.bin = os.path.join(self.build, "bench")
        two = (os.cpu_count() or 1) >= 2 and not args.no_pin
        self.cpu_server = 0 if two else None
        self.cpu_gen = 1 if two else None
        self.children = []
        self.tmp = tempfile.TemporaryDirectory(prefix="punchd-bench-")
        self.result = {"scenarios": []}

    # children

    def start_punchd(self, cfg, cpu="default", name="punchd"):
        path = os.path.join(self.tmp.name, f"{name}.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        s = Server(name, [self.punchd_bin, "--config", path], LISTEN_RE, cwd=self.tmp.name,
                   cpu=self.cpu_server if cpu == "default" else cpu)
        self.children.append(s)
        s.start()
        s.udp = f"127.0.0.1:{s.match.group(3)}"
        s.tcp = f"127.0.0.1:{s.match.group(4) or s.match.group(3)}"
        return s

    def start_echo(self, kind):
        s = Server(f"echo_{kind}", [os.path.join(self.bin, f"echo_{kind}"), "--max-seconds", "1500"],
                   ECHO_RE, cpu=self.cpu_server)
        self.children.append(s)
        s.start()
        s.addr = f"127.0.0.1:{s.match.group(1)}"
        return s

    def stop_all(self):
        """Stops every child; returns the problems seen (exit status, sanitizers)."""
        problems = []
        for c in reversed(self.children):
            try:
                p = c.stop()
            except Exception as e:  # keep stopping the others
                p = f"stopping: {e!r}"
            if p:
                problems.append(p)
        self.children = []
        return problems

    # measurements

    def udp_run(self, lg, srv, target, label, mix, secs, rate=0.0, window=None):
        """One udp_run of the load generator; rate > 0: open loop, paced (see TICK_US)."""
        warm = self.prof["warmup"]
        window = window or self.args.window
        paced = (f" tick_us={self.args.tick_us:g} burst={self.args.burst} wait={self.args.wait}"
                 if rate > 0 else "")
        r = lg.cmd(f"udp_run target={target} pid={srv.pid} mix={mix} secs={secs} "
                   f"warmup={warm} window={window} rate={rate:.0f}{paced} label={label}",
                   timeout=secs + warm + 60)
        if not srv.alive():
            raise BenchError(f"{srv.name} died during {label}:\n{srv.stderr()}")
        return r

    def udp_pair(self, lg, punchd, echo, label, mix, secs, rounds, rate=0.0, window=None, keep=None):
        """Runs punchd and the echo alternately, `rounds` times each; returns both combined
        (and appends the single runs to keep[0] and keep[1] when given)."""
        p_runs, e_runs = [], []
        for r in range(rounds):
            for srv, runs, target in ((punchd, p_runs, punchd.udp), (echo, e_runs, echo.addr)):
                runs.append(self.udp_run(lg, srv, target, f"{label}-{srv.name}-{r}", mix, secs,
                                         rate=rate, window=window))
        if keep is not None:
            keep[0].extend(p_runs)
            keep[1].extend(e_runs)
        return combine(p_runs), combine(e_runs)

    def udp_load(self, lg, punchd, echo, N):
        """Latency at LOAD (0.8) of the measured maximum, open loop, punchd and the echo.

        The maximum of each server is its closed-loop rate on the same mix and
        peers in this run: the udp_mix runs, plus as many measured again just
        before (interleaved), all counted together (replies over time), since
        one short run on a shared machine is a noisy denominator. Then, in
        rounds: punchd at LOAD of its maximum, the echo at that same rate, the
        echo at LOAD of its own."""
        prof, load = self.prof, self.args.load
        name = f"udp_mix_{round(load * 100)}pct"
        max_runs = (list(self.mix_runs[0]), list(self.mix_runs[1]))
        self.udp_pair(lg, punchd, echo, "udp_mix_max", MIX, prof["secs"], prof["rounds"], keep=max_runs)
        pm, em = combine(max_runs[0]), combine(max_runs[1])
        p_rate, e_rate = load * pm["rps"], load * em["rps"]
        p_runs, e_same, e_own = [], [], []
        for r in range(prof["rounds"]):
            p_runs.append(self.udp_run(lg, punchd, punchd.udp, f"{name}-punchd-{r}", MIX,
                                       prof["rate_secs"], rate=p_rate, window=RATE_WINDOW))
            e_same.append(self.udp_run(lg, echo, echo.addr, f"{name}-echo-{r}", MIX,
                                       prof["rate_secs"], rate=p_rate, window=RATE_WINDOW))
            e_own.append(self.udp_run(lg, echo, echo.addr, f"{name}-echo-own-{r}", MIX,
                                      prof["rate_secs"], rate=e_rate, window=RATE_WINDOW))
        p, es, eo = combine(p_runs), combine(e_same), combine(e_own)

        def frac(a, b):
            return round(a / b, 3) if b else None
        pacing = {"tick_us": self.args.tick_us, "burst": self.args.burst, "wait": self.args.wait}
        common = dict(peers=N, mix=MIX, bytes_per_peer=self.result["bytes_per_peer"],
                      punchd_max_rps=pm["rps"], echo_max_rps=em["rps"], target_load=load,
                      punchd_max_runs_rps=[round(r["rps"]) for r in max_runs[0]],
                      echo_max_runs_rps=[round(r["rps"]) for r in max_runs[1]],
                      offered_rps=round(p_rate), load=frac(p["rps"], pm["rps"]), pacing=pacing)
        rows = [scenario_row(name, p, es, echo_offered_rps=round(p_rate),
                             echo_load=frac(es["rps"], em["rps"]), **common),
                scenario_row(name + "_own", p, eo, echo_offered_rps=round(e_rate),
                             echo_load=frac(eo["rps"], em["rps"]), **common)]
        log(f"{round(load * 100)}% load: punchd {p['rps']}/s of max {pm['rps']}/s: p50 {p['p50_us']} "
            f"p99 {p['p99_us']} us (busy {p['server_busy']}); echo at the same rate p99 {es['p99_us']} us; "
            f"echo {eo['rps']}/s of its max {em['rps']}/s: p50 {eo['p50_us']} p99 {eo['p99_us']} us")
        return rows

    def run(self):
        prof = self.prof
        N = prof["peers"]
        keys = punchd_keys(self.punchd_bin)
        self.result["punchd_keys_set"] = sorted(k for k in punchd_config(keys, N) if k in keys)
        started = time.monotonic()
        lg = LoadGen(os.path.join(self.bin, "loadgen"), cpu=self.cpu_gen)
        self.children.append(lg)
        echo_u = self.start_echo("udp")
        echo_t = self.start_echo("tcp")
        punchd = self.start_punchd(punchd_config(keys, N))
        log(f"punchd pid {punchd.pid} on udp {punchd.udp} tcp {punchd.tcp}; "
            f"echo udp {echo_u.addr}, tcp {echo_t.addr}; profile {self.args.profile}, {N} peers")
        time.sleep(0.2)  # let punchd finish start-up allocations before the baseline
        rss0 = rss_kib(punchd.pid)
        lg.cmd(f"udp_setup sockets={UDP_SOCKETS} peers={N}", timeout=60)

        # Throughput vs live peers: preload in steps, measure the mix at each.
        curve = []
        for n in prof["curve"]:
            pre = lg.cmd(f"udp_preload target={punchd.udp} upto={n} window=256 max_secs=300",
                         timeout=400)
            if not pre["complete"] or pre["announced"] == 0:
                raise BenchError(f"preload to {n} peers did not complete: {pre}")
            rss = rss_kib(punchd.pid)
            last = n == prof["curve"][-1]
            self.mix_runs = ([], [])
            p, e = self.udp_pair(lg, punchd, echo_u, f"mix{n}", MIX, prof["secs"],
                                 prof["rounds"] if last else 1, keep=self.mix_runs)
            point = {"peers": n, "punchd_rps": p["rps"], "echo_rps": e["rps"],
                     "ratio": round(p["rps"] / e["rps"], 3) if e["rps"] else None,
                     "p99_us": p["p99_us"], "rss_kib": rss,
                     "bytes_per_peer": round((rss - rss0) * 1024 / n, 1),
                     "preload_rps": pre["rps"], "preload_errors": pre["errors"]}
            curve.append(point)
            log(f"{n} peers: punchd {p['rps']}/s, echo {e['rps']}/s, "
                f"{point['bytes_per_peer']} B/peer (preload {pre['rps']}/s)")
            if last:
                mix_p, mix_e = p, e
        self.result["curve"] = curve
        self.result["peers"] = N
        self.result["bytes_per_peer"] = curve[-1]["bytes_per_peer"]
        self.result["rss_kib_start"] = rss0
        self.result["rss_kib_loaded"] = curve[-1]["rss_kib"]
        sc = self.result["scenarios"]
        sc.append(scenario_row("udp_mix", mix_p, mix_e, peers=N, mix=MIX, window=self.args.window,
                               bytes_per_peer=self.result["bytes_per_peer"]))

        # One request kind at a time, same peers.
        for name, mix in (("udp_announce", "1,0,0"), ("udp_pulse", "0,1,0"), ("udp_push", "0,0,1")):
            p, e = self.udp_pair(lg, punchd, echo_u, name, mix, prof["kind_secs"], prof["rounds"])
            sc.append(scenario_row(name, p, e, peers=N, mix=mix, window=self.args.window,
                                   bytes_per_peer=self.result["bytes_per_peer"]))
            log(f"{name}: punchd {p['rps']}/s, echo {e['rps']}/s")

        # Latency at 80% of the measured maximum (open loop), punchd and the echo.
        sc.extend(self.udp_load(lg, punchd, echo_u, N))

        # WebSocket: active connections with one message in flight each, while
        # the idle ones are held; then the bare TCP echo the same way.
        total = prof["ws_idle"] + prof["ws_active"]
        # Each side holds one descriptor per connection: fit the hard limit
        # (which children inherit) rather than fail, and say so.
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard != resource.RLIM_INFINITY and hard < total + 256:
            fit = max(prof["ws_active"] + 1, hard - 256)
            log(f"warning: open-file hard limit {hard}: {fit} WebSocket connections instead of {total}")
            total = fit
        ws_rss0 = rss_kib(punchd.pid)
        op = lg.cmd(f"tcp_open target={punchd.tcp} n={total} ws=1 announce=1 parallel=128 max_secs=120",
                    timeout=180)
        time.sleep(0.2)
        ws_rss1 = rss_kib(punchd.pid)
        if op["ready_total"] < total:
            log(f"warning: only {op['ready_total']} of {total} WebSocket connections are open: {op}")
        wp = lg.cmd(f"tcp_run active={prof['ws_active']} secs={prof['ws_secs']} "
                    f"warmup={prof['warmup']} mix={WS_MIX} pid={punchd.pid} label=ws-punchd",
                    timeout=prof["ws_secs"] + 60)
        lg.cmd("tcp_close", timeout=60)
        eo = lg.cmd(f"tcp_open target={echo_t.addr} n={total} ws=0 parallel=128 max_secs=120",
                    timeout=180)
        er = lg.cmd(f"tcp_run active={prof['ws_active']} secs={prof['ws_secs']} "
                    f"warmup={prof['warmup']} mix={WS_MIX} pid={echo_t.pid} label=ws-echo",
                    timeout=prof["ws_secs"] + 60)
        lg.cmd("tcp_close", timeout=60)
        per_conn = round((ws_rss1 - ws_rss0) * 1024 / max(1, op["ready_total"]))
        sc.append(scenario_row(f"ws_{prof['ws_active']}conns", combine([wp]), combine([er]),
                               active=wp["active"], idle=wp["idle"], echo_idle=er["idle"],
                               connections=op["ready_total"], echo_connections=eo["ready_total"],
                               rss_per_ws_conn_bytes=per_conn, mix=WS_MIX))
        self.result["rss_per_ws_conn_bytes"] = per_conn
        log(f"WebSocket: punchd {wp['rps']}/s over {wp['active']} (+{wp['idle']} idle), "
            f"TCP echo {er['rps']}/s; {per_conn} B RSS per WebSocket connection")

        # Replies per server CPU-second with 1 and 2 workers (fresh punchd each).
        problem = punchd.stop()
        if problem:
            raise BenchError(problem)
        self.result["workers"] = self.workers(keys, lg)
        self.result["elapsed_s"] = round(time.monotonic() - started, 1)

    def workers(self, keys, lg):
        prof = self.prof
        out = []
        # Tried even when --help does not list it: punchd's own verdict counts.
        n = prof["workers_peers"]
        for w in (1, 2):
            try:
                # Two workers need both cores: leave that punchd unpinned.
                srv = self.start_punchd(punchd_config(keys, n, workers=w),
                                        cpu=self.cpu_server if w == 1 else None, name=f"punchd_w{w}")
            except BenchError as e:
                if "workers" in str(e) and "unknown" in str(e):
                    out.append({"workers": w, "replies_per_cpu_s": "n/a (workers not supported)"})
                    continue
                raise
            try:
                lg.cmd(f"udp_setup sockets={UDP_SOCKETS} peers={n}", timeout=60)
                pre = lg.cmd(f"udp_preload target={srv.udp} upto={n} window=256 max_secs=300",
                             timeout=400)
                r = lg.cmd(f"udp_run target={srv.udp} pid={srv.pid} mix={MIX} secs={prof['workers_secs']} "
                           f"warmup={prof['warmup']} window={self.args.window} label=workers{w}",
                           timeout=prof["workers_secs"] + 60)
                c = combine([r])
                out.append({"workers": w, "peers": n, "rps": c["rps"], "cpu_s": c["cpu_s"],
                            "replies_per_cpu_s": c["replies_per_cpu_s"], "errors": c["errors"],
                            "p99_us": c["p99_us"], "preload_rps": pre["rps"],
                            "generator_cpu_s": c["lg_cpu_s"]})
                log(f"workers {w}: {c['rps']}/s, {c['replies_per_cpu_s']} replies per CPU-second")
            finally:
                problem = srv.stop()
            if problem:
                raise BenchError(problem)
        return out


def fmt(v, spec="", na="-"):
    if v is None:
        return na
    if isinstance(v, str):
        return v
    return format(v, spec)


def print_table(res):
    print()
    print(f"punchd benchmark: {res['peers']} live peers, {fmt(res['bytes_per_peer'])} bytes RSS per peer")
    print(f"{'scenario':<18} {'punchd/s':>9} {'echo/s':>9} {'ratio':>6} {'p50us':>8} {'p99us':>8} "
          f"{'echo p99':>8} {'cpu s/M':>8} {'echo s/M':>8} {'cpu ratio':>9} {'gen busy':>9} {'RSS/peer|conn':>13}")
    for s in res["scenarios"]:
        print(f"{s['name']:<18} {s['punchd_rps']:>9} {s['echo_rps']:>9} {fmt(s['ratio'], '.3f'):>6} "
              f"{s['p50_us']:>8} {s['p99_us']:>8} {s['echo_p99_us']:>8} {fmt(s['cpu_s_per_m'], '.2f'):>8} "
              f"{fmt(s['echo_cpu_s_per_m'], '.2f'):>8} {fmt(s['cpu_ratio'], '.3f'):>9} "
              f"{fmt(s['generator_busy'], '.2f')}/{fmt(s['echo_generator_busy'], '.2f'):<4} "
              f"{fmt(s.get('bytes_per_peer', s.get('rss_per_ws_conn_bytes'))):>13}")
    lat = [s for s in res["scenarios"] if "offered_rps" in s]
    if lat:
        print("open-loop latency (us; send -> reply at the generator's socket, kernel-stamped; "
              "'read' -> reply read by the generator):")
        print(f"  {'':<22} {'rate/s':>8} {'of max':>7} {'p50':>7} {'p90':>7} {'p99':>8} {'p999':>8} "
              f"{'read p99':>8} {'busy':>5} {'waited':>6} {'others':>6}")
        seen = set()
        for s in lat:
            sides = [("punchd", "", s["punchd_rps"], s.get("load"))]
            sides.append((f"echo ({'own max' if s['name'].endswith('_own') else 'same rate'})", "echo_",
                          s["echo_rps"], s.get("echo_load")))
            for who, k, rps, load in sides:
                key = (who, rps, s.get(k + "p99_us"))
                if key in seen:  # punchd's run is in both rows
                    continue
                seen.add(key)
                busy = s.get("echo_server_busy" if k else "server_busy")
                waited = s.get("echo_server_wait_share" if k else "server_wait_share")
                others = s.get("echo_others_share" if k else "others_share")
                print(f"  {who:<22} {rps:>8} {fmt(load, '.2f'):>7} {fmt(s.get(k + 'p50_us')):>7} "
                      f"{fmt(s.get(k + 'p90_us')):>7} {fmt(s.get(k + 'p99_us')):>8} "
                      f"{fmt(s.get(k + 'p999_us')):>8} {fmt(s.get(k + 'read_p99_us')):>8} "
                      f"{fmt(busy, '.2f'):>5} {fmt(waited, '.2f'):>6} {fmt(others, '.2f'):>6}")
        s = lat[0]
        print(f"  maximum (closed loop, this run): punchd {s.get('punchd_max_rps')}/s "
              f"(runs {s.get('punchd_max_runs_rps')}), echo {s.get('echo_max_rps')}/s "
              f"(runs {s.get('echo_max_runs_rps')})")
        print("  busy / waited: share of the time the server ran / was runnable but waited for a CPU;"
              " others: share of the machine's CPU time others used meanwhile")
    if "rss_per_ws_conn_bytes" in res:
        print(f"RSS per WebSocket connection: {res['rss_per_ws_conn_bytes']} bytes")
    print("throughput vs live peers:")
    for c in res.get("curve", []):
        print(f"  {c['peers']:>9} peers: punchd {c['punchd_rps']}/s, echo {c['echo_rps']}/s, "
              f"ratio {fmt(c['ratio'], '.3f')}, {c['bytes_per_peer']} B/peer")
    print("replies per server CPU-second:")
    for w in res.get("workers", []):
        print(f"  workers {w['workers']}: {w['replies_per_cpu_s']}"
              + (f" ({w['rps']}/s)" if "rps" in w else ""))
    print()


def cpu_busy_s():
    """Seconds of CPU time all processes have used (all CPUs, from /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_steal_s():
    """Seconds of CPU time the hypervisor gave to others (all CPUs, /proc/stat 'steal')."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[7] if len(v) > 7 else 0) / os.sysconf("SC_CLK_TCK")


def wait_quiet(max_wait, threshold=0.15, sample=3.0):
    """Waits (up to max_wait seconds) until the machine's CPUs are mostly idle
    over a sample, so others' load does not land in the measurement. Returns
    the busy share last seen."""
    deadline = time.monotonic() + max_wait
    ncpu = os.cpu_count() or 1
    while True:
        b0 = cpu_busy_s()
        time.sleep(sample)
        share = (cpu_busy_s() - b0) / (sample * ncpu)
        if share <= threshold or time.monotonic() >= deadline:
            return round(share, 3)
        log(f"machine busy ({100 * share:.0f}% of its CPU time): waiting for a quieter moment")


def own_cpu_s():
    """CPU seconds of this driver and of its reaped children (the servers and the generator)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def compare(res, base_path):
    """Prints each scenario's ratios next to a saved run's (e.g. bench/baseline-*.json)."""
    with open(base_path) as f:
        base = json.load(f)
    old = {s["name"]: s for s in base.get("scenarios", [])}
    print(f"compared with {base_path} ({base.get('generated_at', '?')}, "
          f"others' CPU share {base.get('machine', {}).get('others_cpu_share', '?')}):")
    print(f"  {'scenario':<16} {'ratio':>13} {'cpu ratio':>13} {'cpu s/M':>13}")
    for s in res["scenarios"]:
        o = old.get(s["name"])
        if not o:
            continue
        def pair(k, spec):
            return f"{fmt(o.get(k), spec)}->{fmt(s.get(k), spec)}"
        print(f"  {s['name']:<16} {pair('ratio', '.3f'):>13} {pair('cpu_ratio', '.3f'):>13} "
              f"{pair('cpu_s_per_m', '.2f'):>13}")
    print(f"  bytes per peer {fmt(base.get('bytes_per_peer'))} -> {fmt(res.get('bytes_per_peer'))}; "
          f"RSS per WebSocket connection {fmt(base.get('rss_per_ws_conn_bytes'))} -> "
          f"{fmt(res.get('rss_per_ws_conn_bytes'))}")


def machine_info():
    info = {"cpus": os.cpu_count()}
    try:
        info["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        info["kernel"] = os.uname().release
    except OSError:
        pass
    return info


# ---- report (PNG) ----

GNUPLOT = """set terminal pngcairo size 900,540 noenhanced
set output '{out}/latency_hist.png'
set title 'UDP request latency at {pct}% of the measured maximum ({rate}/s offered, {peers} peers)'
set xlabel 'latency (us)'
set ylabel 'share of requests per bin (%), 20 bins per decade'
set logscale x
set xrange [5:*]
set grid
set style fill transparent solid 0.4
plot '{out}/latency.dat' using 1:2 with steps lw 2 title 'punchd', \\
     '{out}/latency.dat' using 1:3 with steps lw 2 title 'batched UDP echo (same rate)'
set output '{out}/throughput_peers.png'
set xrange [*:*]
set title 'UDP request mix: throughput vs live peers'
set xlabel 'live peers'
set ylabel 'replies per second'
set yrange [0:*]
set key bottom left
plot '{out}/curve.dat' using 1:2 with linespoints lw 2 pt 7 title 'punchd', \\
     '{out}/curve.dat' using 1:3 with linespoints lw 2 pt 5 title 'batched UDP echo'
"""


def report(out):
    path = os.path.join(out, "latest.json")
    with open(path) as f:
        res = json.load(f)
    sc = {s["name"]: s for s in res["scenarios"]}
    lat = next((s for s in res["scenarios"] if "offered_rps" in s and not s["name"].endswith("_own")),
               res["scenarios"][0])
    # Re-bin into 20 log-spaced bins per decade: the load generator's bins
    # widen with latency, which would distort a histogram on a log axis.
    # Each bin's count is spread over the log bins it overlaps, in proportion
    # (bins of 1 µs are wider than a log bin below ~9 µs, narrower above).
    def log_bins(hist):
        acc, total = {}, sum(c for _, c in hist) or 1
        for lo, c in hist:
            a, b = max(lo, 1), max(lo, 1) + bin_width(lo)
            k = int(math.floor(math.log10(a) * 20))
            while True:
                edge_lo, edge_hi = 10 ** (k / 20), 10 ** ((k + 1) / 20)
                part = min(b, edge_hi) - max(a, edge_lo)
                if part > 0:
                    acc[k] = acc.get(k, 0) + c * part / (b - a)
                if edge_hi >= b:
                    break
                k += 1
        return {k: 100.0 * c / total for k, c in acc.items()}
    ph, eh = log_bins(lat["hist"]), log_bins(lat.get("echo_hist", []))
    with open(os.path.join(out, "latency.dat"), "w") as f:
        f.write("# bin_lo_us punchd_pct echo_pct (20 log-spaced bins per decade)\n")
        for k in range(min(ph.keys() | eh.keys()) - 1, max(ph.keys() | eh.keys()) + 2):
            f.write(f"{10 ** (k / 20):.2f} {ph.get(k, 0):.4f} {eh.get(k, 0):.4f}\n")
    with open(os.path.join(out, "curve.dat"), "w") as f:
        f.write("# peers punchd_rps echo_rps\n")
        for c in res.get("curve", []):
            f.write(f"{c['peers']} {c['punchd_rps']} {c['echo_rps']}\n")
    script = os.path.join(out, "report.gp")
    with open(script, "w") as f:
        f.write(GNUPLOT.format(out=out, rate=lat.get("offered_rps", "?"), peers=res["peers"],
                               pct=round(100 * lat.get("target_load", 0.8))))
    gp = shutil.which("gnuplot")
    if not gp:
        raise BenchError("gnuplot not found (make bench-report installs gnuplot-nox)")
    subprocess.run([gp, script], check=True, timeout=120)
    for name in ("latency_hist.png", "throughput_peers.png"):
        print(os.path.join(out, name))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="build tree with punchd and bench/ (default build)")
    ap.add_argument("--out", default=None, help="where latest.json goes (default BUILD/bench)")
    ap.add_argument("--json", default=None, help="write the result here instead of OUT/latest.json")
    ap.add_argument("--quick", action="store_true", help="fewer peers, shorter runs (~1 min)")
    ap.add_argument("--smoke", action="store_true", help="tiny numbers: checks that it works (~10 s)")
    ap.add_argument("--peers", type=int, default=0, help="override the profile's peer count")
    ap.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    ap.add_argument("--window", type=int, default=UDP_WINDOW,
                    help=f"closed-loop UDP requests in flight (default {UDP_WINDOW})")
    ap.add_argument("--load", type=float, default=LOAD,
                    help=f"open-loop latency run: offered rate as a share of the measured maximum "
                         f"(default {LOAD}; the scenario is named udp_mix_<percent>pct)")
    ap.add_argument("--tick-us", type=float, default=TICK_US,
                    help=f"open loop: the generator sends what is due and reads replies every TICK_US "
                         f"(default {TICK_US}; 0 = continuously)")
    ap.add_argument("--burst", type=int, default=BURST,
                    help=f"open loop: requests per sendmmsg at most (default {BURST})")
    ap.add_argument("--wait", choices=("sleep", "spin"), default="sleep",
                    help="open loop: between ticks the generator sleeps (default) or spins on its CPU")
    ap.add_argument("--nice", type=int, default=0,
                    help="run the servers and the generator at this nice value (e.g. -5 as root on a "
                         "shared machine, so others' load disturbs the measurement less)")
    ap.add_argument("--rt", type=int, default=0, metavar="PRIO",
                    help="run the servers and the generator SCHED_FIFO at PRIO (1-99, root): other "
                         "processes then only get the CPU time they leave (see docs/bench.md)")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECS",
                    help="first wait up to SECS for the machine to be mostly idle (shared machines)")
    ap.add_argument("--compare", metavar="JSON",
                    help="also print the ratios of a saved run next to this one's (bench/baseline-*.json)")
    ap.add_argument("--report", action="store_true", help="draw PNGs from OUT/latest.json")
    args = ap.parse_args()
    if not 0 < args.load <= 2 or not 0 <= args.tick_us <= 100000 or not 1 <= args.burst <= 64:
        ap.error("--load must be in (0, 2], --tick-us in [0, 100000], --burst in [1, 64]")
    if not 0 <= args.rt <= 99:
        ap.error("--rt must be 1-99 (0: off)")
    global NICE, RT
    NICE = args.nice
    RT = args.rt
    args.profile = "smoke" if args.smoke else "quick" if args.quick else "full"
    out = args.out or os.path.join(args.build, "bench")
    if args.report:
        try:
            report(out)
        except (BenchError, OSError, subprocess.CalledProcessError, KeyError, ValueError) as e:
            print(f"bench-report: {e}", file=sys.stderr)
            return 1
        return 0

    # SIGTERM / SIGHUP end the run through the same clean-up as Ctrl-C.
    def on_signal(sig, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    busy_before = wait_quiet(args.wait_quiet) if args.wait_quiet > 0 else None
    b = Bench(args)
    failed = None
    busy0, own0, t0, steal0 = cpu_busy_s(), own_cpu_s(), time.monotonic(), cpu_steal_s()
    load0 = [round(x, 2) for x in os.getloadavg()]
    try:
        b.run()
    except (BenchError, KeyboardInterrupt, OSError, ValueError) as e:
        failed = str(e) if isinstance(e, BenchError) else repr(e)
    finally:
        problems = b.stop_all()
        b.tmp.cleanup()
    if failed or problems:
        print("bench: failed: " + "\n".join(([failed] if failed else []) + problems), file=sys.stderr)
        return 1
    res = b.result
    res["profile"] = args.profile
    res["machine"] = machine_info()
    # Others on a shared machine skew every rate (less so the CPU-based
    # figures and the ratios of interleaved runs): say how much they used.
    wall = time.monotonic() - t0
    others = max(0.0, (cpu_busy_s() - busy0) - (own_cpu_s() - own0))
    res["machine"]["load_avg_at_start"] = load0
    res["machine"]["others_cpu_share"] = round(others / (wall * (os.cpu_count() or 1)), 3)
    res["machine"]["nice"] = args.nice
    res["machine"]["rt"] = args.rt
    steal = cpu_steal_s() - steal0
    res["machine"]["steal_share"] = round(steal / (wall * (os.cpu_count() or 1)), 4)
    if busy_before is not None:
        res["machine"]["busy_share_before"] = busy_before
    res["generated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = args.json or os.path.join(out, "latest.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(res, f, indent=1)
    os.replace(path + ".tmp", path)
    print_table(res)
    print(f"other processes used {100 * res['machine']['others_cpu_share']:.0f}% of the machine's "
          f"CPU time during the run (load average {load0[0]} at start)")
    print(f"wrote {path}")
    if args.compare:
        try:
            compare(res, args.compare)
        except (OSError, ValueError, KeyError) as e:
            print(f"bench: cannot compare with {args.compare}: {e}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
