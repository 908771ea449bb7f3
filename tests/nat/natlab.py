#!/usr/bin/env python3
"""NAT lab: real Linux NATs in network namespaces, for punch clients and punchd.

Topology (only 198.18.0.0/15 addresses, the benchmarking range, RFC 2544):

    pub    the "internet": bridge br0 with 198.18.0.1 (punchd's main address)
           and 198.18.0.2 (punchd's probe address)
    nat_a  router: wan 198.18.0.11/24 (a port of br0), lan bridge 198.19.1.1/24
    nat_b  router: wan 198.18.0.12/24,                  lan bridge 198.19.2.1/24
    cli_a  198.19.1.2 behind nat_a;  cli_b 198.19.2.2 behind nat_b
           ("shared" layout: no nat_b, cli_b is 198.19.1.3 on nat_a's LAN)

A router's LAN is reachable only through its NAT: nothing routes 198.19.x.0/24
across pub. IPv6 is off in every namespace, so nothing leaks past the NATs.

NAT kinds (every kind keeps the home-router firewall: packets arriving on wan
that conntrack sees as NEW or INVALID are dropped, on INPUT and FORWARD):
    cone        iptables MASQUERADE (endpoint-independent mapping; Linux keeps
                the source port when it is free)
    sequential  nft snat whose port is `numgen inc` looked up in a map of
                consecutive ports: every new flow gets the next port
    random      MASQUERADE --random-fully: a random port per flow
    udpblock    cone, plus UDP to punchd's two addresses dropped (TCP passes)
    open        MASQUERADE without the firewall (a full cone): only the behaviour
                test uses it, to show that its firewall check can fail

How it runs: the test calls run_lab(spec). That starts this file under
`unshare --mount --net --pid --fork --kill-child --mount-proc`, so the driver is
PID 1 of its own PID namespace, in its own mount namespace (a private tmpfs on
/run holds /run/netns) and its own empty network namespace. Namespaces are
created with `ip netns add` and veths are made inside them (`ip -n`), so the
host's network namespace is never touched. When the driver ends, however it
ends (even SIGKILL of the test), the kernel kills every process of the PID
namespace and drops the mount namespace, and with them every lab namespace.
The driver still tears down in order (processes, then namespaces) in a finally.

The driver reads a JSON spec on stdin, does one task and prints one line
"NATLAB-RESULT <json>" on stdout:
    check      build a topology with every tool (iptables, nft) and report ok
    behaviour  a small UDP/TCP echo in pub (and in cli_b's LAN for "shared")
               reports the mappings each client gets (see probe_main)
    pair       punchd in pub, `punch listen` in one client, `punch connect` in
               the other; lines both ways, time to connect, paths, exit codes
    reps       the same pair N times on one topology with one punchd

Subcommands used inside namespaces: `natlab.py echo ...`, `natlab.py probe ...`.
Python 3 standard library only.
"""
import ipaddress
import json
import os
import re
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

PUB_MAIN = "198.18.0.1"     # punchd main UDP + TCP (WebSocket)
PUB_PROBE = "198.18.0.2"    # punchd probe UDP
TRACKER_PORT = 3000
ECHO_PORT = 4000            # the behaviour echo (UDP on both addresses, TCP on main)
LAB_NET = ipaddress.ip_network("198.18.0.0/15")

ROUTERS = {
    "nat_a": {"wan": "198.18.0.11", "lan": "198.19.1"},
    "nat_b": {"wan": "198.18.0.12", "lan": "198.19.2"},
}
KINDS = ("cone", "sequential", "random", "udpblock", "open")

# Sequential NAT: flows get ports base, base+1, ... (SEQ_SIZE of them, then it
# wraps; one lab run uses a few dozen). The base is random per router, so a
# client cannot guess it: it has to learn it from the tracker.
SEQ_BASE_MIN = 20000
SEQ_BASE_SPAN = 20000
SEQ_SIZE = 1024

UNSHARE = ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child",
           "--mount-proc", "--propagation", "private"]
TOOLS = ("unshare", "ip", "iptables", "nft")
RESULT_TAG = "NATLAB-RESULT "
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")


def time_scale():
    """How much longer to wait for slow builds: TEST_TIME_SCALE, else 3 for sanitizer builds."""
    v = os.environ.get("TEST_TIME_SCALE")
    if v:
        return float(v)
    build = os.environ.get("TEST_PUNCHD_BUILD", "") + os.environ.get("TEST_PUNCHD_BIN", "")
    return 3.0 if "san" in os.path.basename(os.path.dirname(os.path.join(build, "x"))) or "/san/" in build else 1.0


# --------------------------------------------------------------------------
# Outside: what the test calls.

class LabError(Exception):
    """The lab could not be built or the driver gave no result; detail: the last stderr line."""

    def __init__(self, message, detail=None):
        super().__init__(message)
        self.detail = detail or last_line(message) or message


def last_line(text):
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[-1] if lines else ""


def missing_tools():
    return [t for t in TOOLS if shutil.which(t) is None]


def unavailable():
    """None when the lab can run here, else one line saying why not."""
    if os.geteuid() != 0:
        return "the NAT lab needs root (network namespaces, iptables)"
    missing = missing_tools()
    if missing:
        return f"the NAT lab needs {', '.join(missing)} (make deps installs them)"
    try:
        res = run_lab({"task": "check", "routers": {"nat_a": "sequential", "nat_b": "random"}}, timeout=30)
    except LabError as e:
        return f"network namespaces unavailable: {e.detail}"
    if not res.get("ok"):
        return "network namespaces unavailable: " + " / ".join(str(res.get("error", res)).split("\n"))
    return None


def run_lab(spec, timeout):
    """Runs one task in a fresh lab (see the module doc); returns its result dict.

    Raises LabError when the driver did not print a result (it crashed, or the
    timeout passed: then unshare is killed, and with it the whole lab).
    """
    env = dict(os.environ, NATLAB_INSIDE="1")
    argv = UNSHARE + [sys.executable, os.path.abspath(__file__), "inside"]
    try:
        proc = subprocess.run(argv, input=json.dumps(spec).encode(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        err = (e.stderr or b"").decode("utf-8", "replace")
        raise LabError(f"lab task {spec.get('task')} did not finish within {timeout:.0f}s\n{err[-3000:]}")
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    for line in reversed(out.splitlines()):
        if line.startswith(RESULT_TAG):
            res = json.loads(line[len(RESULT_TAG):])
            res.setdefault("driver_stderr", err[-3000:])
            return res
    raise LabError(f"lab driver exited with status {proc.returncode} without a result\n"
                   f"{err[-3000:]}\n{out[-1000:]}", detail=last_line(err) or f"status {proc.returncode}")


# --------------------------------------------------------------------------
# Inside: building the topology.

def sh(*argv, input_text=None):
    """Runs one command; raises LabError with its stderr when it fails."""
    p = subprocess.run(list(argv), input=input_text.encode() if input_text is not None else None,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise LabError(f"{' '.join(argv)}: status {p.returncode}: "
                       f"{p.stderr.decode('utf-8', 'replace').strip()}")
    return p.stdout.decode("utf-8", "replace")


def nsexec(ns, *argv, input_text=None):
    return sh("ip", "netns", "exec", ns, *argv, input_text=input_text)


def sequential_nft(wan_ip, base):
    """nft ruleset: SNAT each new TCP/UDP flow to the next port of base, base+1, ...

    `numgen inc` counts flows; a typed map turns the count into a port (the
    number itself cannot be used as a port expression directly).
    """
    pairs = ", ".join(f"{i} : {base + i}" for i in range(SEQ_SIZE))
    return f"""table ip seqnat {{
  chain post {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" meta l4proto {{ tcp, udp }} snat ip to {wan_ip} : numgen inc mod {SEQ_SIZE} map {{ {pairs} }}
    oifname "wan" masquerade
  }}
}}
"""


class Lab:
    """The namespaces of one topology. routers: {"nat_a": kind, ["nat_b": kind]}."""

    def __init__(self, routers, shared=False):
        self.routers = dict(routers)
        self.shared = shared
        for r, kind in self.routers.items():
            if r not in ROUTERS or kind not in KINDS:
                raise LabError(f"bad router spec {r}: {kind}")
        if shared:
            self.clients = {"cli_a": ("nat_a", "198.19.1.2"), "cli_b": ("nat_a", "198.19.1.3")}
        else:
            self.clients = {"cli_a": ("nat_a", "198.19.1.2"), "cli_b": ("nat_b", "198.19.2.2")}
        for c, (r, _) in self.clients.items():
            if r not in self.routers:
                raise LabError(f"{c} needs router {r}")
        self.namespaces = []
        self.procs = []

    def client_ip(self, cli):
        return self.clients[cli][1]

    def router_of(self, cli):
        return self.clients[cli][0]

    def wan_ip(self, router):
        return ROUTERS[router]["wan"]

    def _add_ns(self, name, forward):
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        # Before any interface exists, so new ones inherit the defaults.
        nsexec(name, "sysctl", "-qw",
               "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
               "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
               f"net.ipv4.ip_forward={1 if forward else 0}")
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def setup(self):
        # Refuse to run anywhere but in the throwaway namespaces run_lab made:
        # mounting over /run on a host would be a disaster.
        if os.environ.get("NATLAB_INSIDE") != "1" or os.getpid() != 1:
            raise LabError("the lab driver runs only under run_lab() (unshare, PID 1)")
        sh("mount", "-t", "tmpfs", "-o", "mode=0755", "natlab", "/run")
        os.mkdir("/run/netns")
        self._add_ns("pub", True)
        sh("ip", "-n", "pub", "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", "pub", "addr", "add", f"{PUB_MAIN}/24", "dev", "br0")
        sh("ip", "-n", "pub", "addr", "add", f"{PUB_PROBE}/24", "dev", "br0")
        sh("ip", "-n", "pub", "link", "set", "br0", "up")
        for r in self.routers:
            self._add_ns(r, True)
            wan, lan = ROUTERS[r]["wan"], ROUTERS[r]["lan"]
            sh("ip", "-n", "pub", "link", "add", f"w_{r}", "type", "veth", "peer", "name", "wan", "netns", r)
            sh("ip", "-n", "pub", "link", "set", f"w_{r}", "master", "br0", "up")
            sh("ip", "-n", r, "addr", "add", f"{wan}/24", "dev", "wan")
            sh("ip", "-n", r, "link", "set", "wan", "up")
            sh("ip", "-n", r, "link", "add", "lan", "type", "bridge")
            sh("ip", "-n", r, "addr", "add", f"{lan}.1/24", "dev", "lan")
            sh("ip", "-n", r, "link", "set", "lan", "up")
            sh("ip", "-n", r, "route", "add", "default", "via", PUB_MAIN)
        for c, (r, ip) in self.clients.items():
            self._add_ns(c, False)
            sh("ip", "-n", r, "link", "add", f"l_{c}", "type", "veth", "peer", "name", "eth0", "netns", c)
            sh("ip", "-n", r, "link", "set", f"l_{c}", "master", "lan", "up")
            sh("ip", "-n", c, "addr", "add", f"{ip}/24", "dev", "eth0")
            sh("ip", "-n", c, "link", "set", "eth0", "up")
            sh("ip", "-n", c, "route", "add", "default", "via", f"{ROUTERS[r]['lan']}.1")
        for ns in self.namespaces:
            # Interfaces made before the defaults were set (lo) or by the
            # kernel: rp_filter off everywhere, as the lab note says.
            nsexec(ns, "sh", "-c", "for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 > $f; done")
        for r, kind in self.routers.items():
            self._nat(r, kind)

    def _nat(self, r, kind):
        ipt = lambda *a: nsexec(r, "iptables", "-w", *a)  # noqa: E731
        if kind == "udpblock":
            # A network that lets only TCP reach the tracker: the client must use WebSocket.
            for dst in (PUB_MAIN, PUB_PROBE):
                ipt("-A", "FORWARD", "-i", "lan", "-p", "udp", "-d", dst, "-j", "DROP")
        # The home-router firewall. Without it an early unsolicited knock makes
        # a conntrack entry that forces the NAT onto a new port (protocols.md 8).
        for chain in (("INPUT", "FORWARD") if kind != "open" else ()):
            ipt("-A", chain, "-i", "wan", "-m", "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP")
        if kind in ("cone", "udpblock", "open"):
            ipt("-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE")
        elif kind == "random":
            ipt("-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE", "--random-fully")
        elif kind == "sequential":
            base = SEQ_BASE_MIN + secrets.randbelow(SEQ_BASE_SPAN)
            nsexec(r, "nft", "-f", "-", input_text=sequential_nft(ROUTERS[r]["wan"], base))

    def spawn(self, name, ns, argv, env=None):
        p = Proc(name, ns, argv, env)
        self.procs.append(p)
        return p

    def teardown(self):
        for p in self.procs:
            p.kill()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.namespaces = []


class Proc:
    """A process in a namespace; threads collect its stdout/stderr lines with arrival times."""

    def __init__(self, name, ns, argv, env=None):
        self.name = name
        self.argv = argv
        self.cond = threading.Condition()
        self.lines = {"out": [], "err": []}
        self.eof = {"out": False, "err": False}
        self.p = subprocess.Popen(["ip", "netns", "exec", ns] + list(argv), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.threads = [threading.Thread(target=self._read, args=(s, k), daemon=True)
                        for s, k in ((self.p.stdout, "out"), (self.p.stderr, "err"))]
        for t in self.threads:
            t.start()

    def _read(self, stream, key):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cond:
                self.lines[key].append((time.monotonic(), line))
                self.cond.notify_all()
        with self.cond:
            self.eof[key] = True
            self.cond.notify_all()

    def wait_line(self, key, regex, timeout, start=0):
        """First line of stream key (from index start) matching regex: (index, time, match), or None
        when the timeout passes or the stream ends first."""
        rx = re.compile(regex)
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                lines = self.lines[key]
                while i < len(lines):
                    m = rx.search(lines[i][1])
                    if m:
                        return i, lines[i][0], m
                    i += 1
                left = deadline - time.monotonic()
                if self.eof[key] or left <= 0:
                    return None
                self.cond.wait(left)

    def wait_count(self, key, n, timeout):
        """Waits until stream key has n lines; returns them (fewer on timeout/EOF)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.lines[key]) < n and not self.eof[key]:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return [l for _, l in self.lines[key]]

    def text(self, key):
        with self.cond:
            return [l for _, l in self.lines[key]]

    def send(self, text):
        try:
            self.p.stdin.write(text.encode())
            self.p.stdin.flush()
            return True
        except (BrokenPipeError, ValueError):
            return False

    def close_stdin(self):
        try:
            self.p.stdin.close()
        except (BrokenPipeError, ValueError):
            pass

    def wait_exit(self, timeout):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self.close_stdin()
        for t in self.threads:
            t.join(2)


# --------------------------------------------------------------------------
# Inside: tasks.

def task_check(lab, spec):
    return {"ok": True, "namespaces": list(lab.namespaces)}


def start_echo(lab, ns, addrs, tcp=True):
    argv = [sys.executable, os.path.abspath(__file__), "echo", json.dumps({"udp": addrs, "tcp": tcp})]
    p = lab.spawn(f"echo@{ns}", ns, argv)
    if p.wait_line("out", r'"ready"', 10) is None:
        raise LabError(f"echo in {ns} did not start: {p.text('err')}")
    return p


def run_probe(lab, cli, plan, timeout):
    argv = [sys.executable, os.path.abspath(__file__), "probe", json.dumps(plan)]
    p = lab.spawn(f"probe@{cli}", cli, argv)
    rc = p.wait_exit(timeout)
    out = p.text("out")
    if rc != 0 or not out:
        raise LabError(f"probe in {cli} failed (status {rc}): {p.text('err')[-20:]}")
    return json.loads(out[-1])


def task_behaviour(lab, spec):
    """Mappings, filtering and blocking as each client sees them (assertions are the test's)."""
    echo = start_echo(lab, "pub", [f"{PUB_MAIN}:{ECHO_PORT}", f"{PUB_PROBE}:{ECHO_PORT}"])
    res = {"clients": {}}
    lan_echo = None
    if lab.shared:
        lan_echo = start_echo(lab, "cli_b", [f"{lab.client_ip('cli_b')}:{ECHO_PORT}"], tcp=False)
    for cli in lab.clients:
        router = lab.router_of(cli)
        kind = lab.routers[router]
        tag = secrets.token_hex(8)
        plan = {"main": f"{PUB_MAIN}:{ECHO_PORT}", "probe": f"{PUB_PROBE}:{ECHO_PORT}",
                "tag": tag, "blocked": kind == "udpblock", "sockets": 4}
        if lan_echo is not None and cli == "cli_a":
            plan["lan"] = f"{lab.client_ip('cli_b')}:{ECHO_PORT}"
        r = run_probe(lab, cli, plan, 30)
        # What the echo in pub saw carrying this client's tag. The blocked case
        # must show no UDP at all: the probe's TCP went after its UDP on the same
        # path, and the echo logs UDP before TCP, so once the TCP event is read
        # any UDP that got through has been read too.
        if plan["blocked"] and echo.wait_line("out", r'"proto": "tcp".*' + tag, 10) is None:
            raise LabError(f"the echo in pub logged no TCP connection from {cli}")
        seen = [json.loads(l) for l in echo.text("out") if tag in l]
        r["echo_udp_events"] = [e for e in seen if e.get("proto") == "udp"]
        r["router"] = router
        r["kind"] = kind
        r["wan"] = lab.wan_ip(router)
        r["ip"] = lab.client_ip(cli)
        res["clients"][cli] = r
    return res


CONNECTED_RE = r"^punch: (connected path=(\S+) rtt_ms=(\S+) peer=(\S+)|error .*)$"


def start_punchd(lab, scale):
    bin_ = os.environ.get("TEST_PUNCHD_BIN") or os.path.join(ROOT, "build", "punchd")
    conf = {"bind": PUB_MAIN, "port": TRACKER_PORT, "probe_bind": PUB_PROBE,
            "probe_port": TRACKER_PORT, "ws_port": 0, "log_level": "info"}
    path = "/run/natlab-punchd.json"
    with open(path, "w") as f:
        json.dump(conf, f)
    # PUNCHD_<KEY> variables override the config file: none may leak into the lab.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUNCHD_")}
    p = lab.spawn("punchd", "pub", [bin_, "--config", path], env=env)
    if p.wait_line("err", r"listening on udp", 10 * scale) is None:
        raise LabError("punchd did not start: " + "\n".join(p.text("err")[-20:]))
    return p


def stop_punchd(p, scale):
    if p.p.poll() is None:
        p.p.send_signal(signal.SIGTERM)
    rc = p.wait_exit(10 * scale)
    if rc is None:
        p.kill()
    err = "\n".join(p.text("err"))
    return {"punchd_status": rc, "punchd_sanitizer": next((m for m in SANITIZER_MARKERS if m in err), None),
            "punchd_log": p.text("err")[-40:]}


def payload_lines(side):
    """Lines that must arrive byte for byte: short, long, spaces, tabs, UTF-8, JSON-looking."""
    tok = secrets.token_hex(8)
    return [f"hello from {side} {tok}",
            f"{side} long " + secrets.token_hex(600),
            f"{side}\ttabs  and  spaces \u00e9\u00e8 \u2713 \u65e5\u672c {tok}",
            '{"action":"announce","from":"%s"}' % side]


def punch_bin():
    return os.environ.get("PUNCH_BIN") or os.path.join(ROOT, "build", "punch")


def punch_argv(side_spec, tracker_timeout):
    bin_ = punch_bin()
    argv = [bin_, "--tracker", f"{PUB_MAIN}:{TRACKER_PORT}", "--timeout", str(int(tracker_timeout))]
    if side_spec.get("ws"):
        argv.append("--ws")
    if side_spec.get("relay"):
        argv.append("--relay")
    return argv


def run_pair(lab, spec, scale):
    """One listen/connect pair; returns what happened (the test judges it)."""
    listen_cli, connect_cli = spec.get("listen", "cli_b"), spec.get("connect", "cli_a")
    opts = spec.get("opts", {})
    connect_budget = spec.get("connect_budget", 25) * scale
    punch_timeout = max(30, connect_budget)
    res = {"listen_cli": listen_cli, "connect_cli": connect_cli, "ok": False}
    lp = lab.spawn(f"listen@{listen_cli}", listen_cli,
                   punch_argv(opts.get(listen_cli, {}), punch_timeout) + ["listen"])
    procs = {"listen": lp}
    try:
        m = lp.wait_line("err", r"^punch: (shareId (\S+)|error .*)$", 15 * scale)
        if m is None or m[2].group(2) is None:
            res["failure"] = "listener did not register"
            return res
        share_id = m[2].group(2)
        t0 = time.monotonic()
        cp = lab.spawn(f"connect@{connect_cli}", connect_cli,
                       punch_argv(opts.get(connect_cli, {}), punch_timeout) + ["connect", share_id])
        procs["connect"] = cp
        for role, p in (("connect", cp), ("listen", lp)):
            got = p.wait_line("err", CONNECTED_RE, connect_budget - (time.monotonic() - t0))
            if got is None or got[2].group(2) is None:
                res["failure"] = f"{role} side did not connect" + (f": {got[2].group(1)}" if got else "")
                return res
            _, t, mm = got
            res[role] = {"cli": p.name.split("@")[1], "path": mm.group(2), "rtt_ms": float(mm.group(3)),
                         "peer": mm.group(4), "ttc_s": round(t - t0, 3)}
            nat = p.wait_line("err", r"^punch: nat (\S+)$", 0)
            res[role]["nat"] = nat[2].group(1) if nat else None
        # Bytes both ways: each side's lines must come out of the other's stdout, in order, exactly.
        sent = {"connect": payload_lines("a"), "listen": payload_lines("b")}
        for role, p in procs.items():
            p.send("".join(l + "\n" for l in sent[role]))
        for role, other in (("connect", "listen"), ("listen", "connect")):
            got = procs[other].wait_count("out", len(sent[role]), 15 * scale)
            res[f"data_{role}_to_{other}"] = got == sent[role]
            if got != sent[role]:
                res.setdefault("data_mismatch", {})[role] = {"sent": sent[role], "got": got}
        # Both stdins closed: both say bye and exit 0.
        for p in procs.values():
            p.close_stdin()
        for role, p in procs.items():
            res[f"exit_{role}"] = p.wait_exit(15 * scale)
        res["ok"] = (res["data_connect_to_listen"] and res["data_listen_to_connect"]
                     and res["exit_connect"] == 0 and res["exit_listen"] == 0)
        if not res["ok"]:
            res["failure"] = "data or exit status"
        return res
    finally:
        for role, p in procs.items():
            p.kill()
            err = p.text("err")
            res[f"log_{role}"] = err[-30:]
            bad = next((m for m in SANITIZER_MARKERS if m in "\n".join(err)), None)
            if bad:
                res["ok"] = False
                res["failure"] = f"sanitizer report ({bad}) from the {role} side"


def task_pair(lab, spec):
    scale = spec.get("scale", 1.0)
    pd = start_punchd(lab, scale)
    try:
        res = run_pair(lab, spec, scale)
    finally:
        res_pd = stop_punchd(pd, scale)
    res.update(res_pd)
    return res


def task_reps(lab, spec):
    """spec["n"] pairs one after another (fresh punch processes, same topology and punchd)."""
    scale = spec.get("scale", 1.0)
    budget = spec.get("budget", 240) * scale
    t_start = time.monotonic()
    pd = start_punchd(lab, scale)
    reps = []
    try:
        for _ in range(spec["n"]):
            if time.monotonic() - t_start > budget:
                reps.append({"ok": False, "failure": "not attempted: the repetitions' time budget ran out"})
                continue
            r = run_pair(lab, spec, scale)
            if r.get("ok"):
                # Keep the result small: logs only of failures.
                r = {k: v for k, v in r.items() if not k.startswith("log_")}
            reps.append(r)
    finally:
        res_pd = stop_punchd(pd, scale)
    return dict(reps=reps, **res_pd)


TASKS = {"check": task_check, "behaviour": task_behaviour, "pair": task_pair, "reps": task_reps}


def inside_main():
    spec = json.loads(sys.stdin.read())
    res = {}
    lab = None
    try:
        lab = Lab(spec.get("routers", {}), shared=spec.get("shared", False))
        lab.setup()
        res = TASKS[spec["task"]](lab, spec)
    except Exception as e:  # noqa: BLE001  (every failure becomes a result the test prints)
        res = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
    finally:
        if lab is not None:
            lab.teardown()
    sys.stdout.write(RESULT_TAG + json.dumps(res) + "\n")
    sys.stdout.flush()
    return 0


# --------------------------------------------------------------------------
# Small programs run inside the namespaces.

def parse_ep(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def fmt_ep(a):
    return f"{a[0]}:{a[1]}"


def echo_main(arg):
    """UDP echo on each address of arg["udp"] (TCP too on the first one when arg["tcp"]).

    Each UDP datagram (JSON) gets {"seen": "<source ip:port>", "local": ..., "tag": ...} back
    from the address it reached. {"cmd":"spray"} first gets a datagram from the spray
    socket (port+1 of the last address), which the sender never talked to, then the normal
    reply; the spray socket answers like the others. A TCP connection gets the seen line
    and is closed. Every event is printed as one JSON line on stdout. Ends when stdin closes.
    """
    sel = selectors.DefaultSelector()
    udp = []
    for ep in arg["udp"]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(parse_ep(ep))
        s.setblocking(False)
        udp.append(s)
        sel.register(s, selectors.EVENT_READ, "udp")
    host, port = parse_ep(arg["udp"][-1])
    spray = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    spray.bind((host, port + 1))
    spray.setblocking(False)
    udp.append(spray)
    sel.register(spray, selectors.EVENT_READ, "udp")
    tcp = None
    if arg.get("tcp"):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(parse_ep(arg["udp"][0]))
        tcp.listen(16)
        sel.register(tcp, selectors.EVENT_READ, "tcp")
    sel.register(sys.stdin, selectors.EVENT_READ, "stdin")

    def emit(ev):
        sys.stdout.write(json.dumps(ev) + "\n")
        sys.stdout.flush()

    def drain_udp():
        for s in udp:
            while True:
                try:
                    data, peer = s.recvfrom(2048)
                except BlockingIOError:
                    break
                try:
                    msg = json.loads(data)
                except ValueError:
                    msg = {}
                local = fmt_ep(s.getsockname())
                emit({"proto": "udp", "local": local, "peer": fmt_ep(peer), "tag": msg.get("tag")})
                if msg.get("cmd") == "spray":
                    spray.sendto(json.dumps({"spray": True, "tag": msg.get("tag")}).encode(), peer)
                s.sendto(json.dumps({"seen": fmt_ep(peer), "local": local, "tag": msg.get("tag"),
                                     "n": msg.get("n")}).encode(), peer)

    emit({"ready": True})
    while True:
        events = sel.select()
        kinds = {k.data for k, _ in events}
        # UDP first: a datagram sent before a TCP connection is logged before it.
        drain_udp()
        if "tcp" in kinds:
            conn, peer = tcp.accept()
            conn.settimeout(5)
            try:
                data = conn.recv(2048)
                try:
                    msg = json.loads(data)
                except ValueError:
                    msg = {}
                emit({"proto": "tcp", "local": fmt_ep(conn.getsockname()), "peer": fmt_ep(peer),
                      "tag": msg.get("tag")})
                conn.sendall(json.dumps({"seen": fmt_ep(peer), "tag": msg.get("tag")}).encode())
            except OSError:
                pass
            conn.close()
        if "stdin" in kinds and not sys.stdin.buffer.read1(4096):
            return 0


def ask(sock, to, msg, timeout=5.0):
    """Sends msg to `to` until a reply with the same n arrives (bounded); returns (reply, spray_seen)."""
    deadline = time.monotonic() + timeout
    sprays = []
    tries = 0
    while time.monotonic() < deadline and tries < 10:
        tries += 1
        sock.sendto(json.dumps(msg).encode(), to)
        end = min(deadline, time.monotonic() + 0.5)
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                data, src = sock.recvfrom(2048)
            except socket.timeout:
                break
            r = json.loads(data)
            if r.get("spray"):
                sprays.append(fmt_ep(src))
                continue
            if r.get("n") == msg.get("n"):
                return r, sprays
    raise RuntimeError(f"no reply from {fmt_ep(to)} to {msg}")


def probe_main(plan):
    """Runs in a client namespace. Prints one JSON line:

    sockets: for each of plan["sockets"] fresh UDP sockets, its local port and the
             source port seen by the echo at the main and at the probe address;
    spray:   sources of datagrams from an address the socket never talked to (the
             spray socket) that got through before the echo's own reply did;
    after_spray: the source the spray socket sees when the socket then talks to it.
             A cone NAT with the home-router firewall keeps the mapping; without the
             firewall the early datagram leaves a conntrack entry that takes the
             mapping's tuple, and the NAT picks another port (protocols.md 8);
    lan:     (optional) the source the echo on the LAN peer saw;
    tcp:     (blocked plans) the source the echo saw for a TCP connection made after
             UDP datagrams that the router should have dropped.
    """
    main, probe = parse_ep(plan["main"]), parse_ep(plan["probe"])
    out = {"sockets": []}
    n = 0
    if plan.get("blocked"):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for to in (main, probe):
            for _ in range(3):
                s.sendto(json.dumps({"tag": plan["tag"], "n": -1}).encode(), to)
        c = socket.create_connection(main, timeout=5)
        c.sendall(json.dumps({"tag": plan["tag"]}).encode())
        data = b""
        while True:
            chunk = c.recv(2048)
            if not chunk:
                break
            data += chunk
        c.close()
        out["tcp"] = json.loads(data)["seen"]
        print(json.dumps(out))
        return 0
    socks = []
    for _ in range(plan["sockets"]):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 0))
        socks.append(s)
        row = {"local": s.getsockname()[1]}
        for name, to in (("main", main), ("probe", probe)):
            n += 1
            r, _ = ask(s, to, {"tag": plan["tag"], "n": n})
            row[name] = r["seen"]
        out["sockets"].append(row)
    # Firewall: the echo sprays from a fresh source, then answers. The spray
    # left first on the same path: had it passed it would have arrived first,
    # and once the answer is here the router has handled the spray.
    n += 1
    _, sprays = ask(socks[0], main, {"tag": plan["tag"], "n": n, "cmd": "spray"})
    out["spray"] = sprays
    n += 1
    r, _ = ask(socks[0], (probe[0], probe[1] + 1), {"tag": plan["tag"], "n": n})
    out["after_spray"] = r["seen"]
    if plan.get("lan"):
        n += 1
        r, _ = ask(socks[0], parse_ep(plan["lan"]), {"tag": plan["tag"], "n": n})
        out["lan"] = r["seen"]
    for s in socks:
        s.close()
    print(json.dumps(out))
    return 0


def main(argv):
    if len(argv) >= 2 and argv[1] == "inside":
        return inside_main()
    if len(argv) >= 3 and argv[1] == "echo":
        return echo_main(json.loads(argv[2]))
    if len(argv) >= 3 and argv[1] == "probe":
        return probe_main(json.loads(argv[2]))
    sys.stderr.write("usage: natlab.py inside|echo JSON|probe JSON (run by tests/nat/test_nat_lab.py)\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
