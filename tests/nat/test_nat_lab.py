"""The NAT lab: punch clients behind real Linux NATs, in network namespaces the test makes.

See natlab.py for the topology and how it is kept off the host. Three groups:
- Lab1Behaviour proves the lab itself: each NAT kind maps and filters as it should,
  seen by a tiny UDP/TCP echo at punchd's two addresses.
- Lab2Scenarios run build/punchd in `pub` and build/punch listen/connect behind the
  routers (issue 4): the path each side prints, the bytes both ways, exit 0 on both
  sides, the NAT kind the tracker detected, time to connect.
- Lab3FirstAttempt repeats scenario 1 twenty times and prints the success rate.

The success matrix is printed at the end of the module (docs/natlab.md keeps a copy).
Needs root and network namespaces; otherwise the whole module is skipped with one
line (with TEST_NAT_REQUIRED=1 it fails instead).
"""
import ipaddress
import json
import os
import statistics
import unittest

import natlab

SCALE = natlab.time_scale()
RESULTS = {}          # scenario id -> row of the matrix
RATE = {}             # first-attempt repetitions of scenario 1
REPS = 20
REPS_REQUIRED = 18    # the bar the test holds; the goal (and the usual result) is 20/20

NAT_SEEN = {"cone": "eim", "open": "eim", "sequential": "sequential", "random": "random"}

# id, title, routers, shared, per-client options, accepted combined paths
SCENARIOS = {
    "1": ("cone / cone", {"nat_a": "cone", "nat_b": "cone"}, False, {}, {"direct"}),
    "2": ("same NAT (cone), LAN candidates", {"nat_a": "cone"}, True, {}, {"direct"}),
    "3a": ("sequential / cone", {"nat_a": "sequential", "nat_b": "cone"}, False, {}, {"predicted"}),
    "3b": ("sequential / sequential", {"nat_a": "sequential", "nat_b": "sequential"}, False, {}, {"predicted"}),
    "3c": ("cone / sequential", {"nat_a": "cone", "nat_b": "sequential"}, False, {}, {"predicted"}),
    "4a": ("random / cone", {"nat_a": "random", "nat_b": "cone"}, False, {}, {"relay"}),
    "4b": ("random / random", {"nat_a": "random", "nat_b": "random"}, False, {}, {"relay"}),
    "4c": ("cone / random", {"nat_a": "cone", "nat_b": "random"}, False, {}, {"relay"}),
    "4d": ("sequential / random", {"nat_a": "sequential", "nat_b": "random"}, False, {}, {"relay"}),
    "5a": ("UDP to tracker blocked (A on --ws) / cone", {"nat_a": "udpblock", "nat_b": "cone"}, False,
           {"cli_a": {"ws": True}}, {"relay", "direct"}),
    "5b": ("cone / UDP to tracker blocked (B on --ws)", {"nat_a": "cone", "nat_b": "udpblock"}, False,
           {"cli_b": {"ws": True}}, {"relay", "direct"}),
}


def setUpModule():
    reason = natlab.unavailable()
    if reason is None:
        return
    # TEST_NAT_REQUIRED=1 turns the skip into a failure, for a machine known to
    # support the lab. Not the default in CI: a chroot-like root (as the fresh-
    # machine check uses) cannot make its mount namespace private, and one
    # missing capability must not hide every other test result.
    if os.environ.get("TEST_NAT_REQUIRED") == "1":
        raise RuntimeError(f"the NAT lab must run here, but: {reason}")
    print(f"NAT LAB NOT RUN: {reason}", flush=True)
    raise unittest.SkipTest(f"NAT lab skipped: {reason}")


def tearDownModule():
    if RESULTS or RATE:
        print(matrix_text(), flush=True)


def matrix_text():
    """The success matrix as a Markdown table (the README and docs/natlab.md carry it)."""
    rows = ["", "NAT lab success matrix (A connects, B listens):", "",
            "| # | NAT A / NAT B | expected | path A / B | NAT seen A / B | time to connect | bytes both ways |",
            "|---|---|---|---|---|---|---|"]
    for sid in SCENARIOS:
        r = RESULTS.get(sid)
        if r is None:
            continue
        rows.append(f"| {sid} | {r['title']} | {' or '.join(sorted(r['expected']))} | {r['paths']} "
                    f"| {r['nat']} | {r['ttc']} | {r['bytes']} |")
    if RATE:
        rows.append("")
        rows.append(f"Scenario 1, first attempt: {RATE['ok']}/{RATE['n']} connected direct with the bytes "
                    f"intact; time to connect median {RATE['median']} s (min {RATE['min']}, max {RATE['max']}).")
    return "\n".join(rows) + "\n"


def brief(res):
    """The part of a lab result worth reading when an assertion fails."""
    keep = {k: v for k, v in res.items() if k not in ("driver_stderr",)}
    return json.dumps(keep, indent=1)[-12000:]


def combined_path(res):
    """One path for the pair: relay only if both sides relay; predicted if either side
    reached the other on a predicted port; else direct. Mixed relay/direct -> 'mixed'."""
    paths = {res["connect"]["path"], res["listen"]["path"]}
    if "relay" in paths:
        return "relay" if paths == {"relay"} else "mixed"
    return "predicted" if "predicted" in paths else "direct"


def nat_line(res, role):
    for line in res.get(f"log_{role}", []):
        if line.startswith("punch: nat "):
            return line.split()[2]
    return None


class Lab1Behaviour(unittest.TestCase):
    """The lab's NATs behave as their names say, before any punch client is involved."""

    def behaviour(self, routers, shared=False):
        res = natlab.run_lab({"task": "behaviour", "routers": routers, "shared": shared},
                             timeout=60 * SCALE)
        self.assertNotIn("error", res, brief(res))
        return res["clients"]

    def ports(self, row):
        return [int(row["main"].rsplit(":", 1)[1]), int(row["probe"].rsplit(":", 1)[1])]

    def check_common(self, c):
        for row in c["sockets"]:
            for k in ("main", "probe"):
                self.assertEqual(row[k].rsplit(":", 1)[0], c["wan"], f"the NAT's WAN address: {c}")
        self.assertEqual(c["spray"], [], f"an unsolicited datagram reached the client: {c}")

    def test_cone_and_sequential(self):
        cl = self.behaviour({"nat_a": "cone", "nat_b": "sequential"})
        a, b = cl["cli_a"], cl["cli_b"]
        self.check_common(a)
        self.check_common(b)
        # Cone: one mapping per socket, whatever the destination, and it survives an
        # unsolicited datagram thanks to the firewall.
        for row in a["sockets"]:
            self.assertEqual(row["main"], row["probe"], a)
        self.assertEqual(a["after_spray"], a["sockets"][0]["main"], a)
        # Sequential: every new flow gets the next port.
        seq = [p for row in b["sockets"] for p in self.ports(row)]
        self.assertEqual(seq, list(range(seq[0], seq[0] + len(seq))), b)

    def test_random_and_udp_blocked(self):
        cl = self.behaviour({"nat_a": "random", "nat_b": "udpblock"})
        a, b = cl["cli_a"], cl["cli_b"]
        self.check_common(a)
        # Random: nothing to predict from one mapping to the next.
        diffs = [abs(p2 - p1) for p1, p2 in (self.ports(row) for row in a["sockets"])]
        self.assertTrue(all(d != 0 for d in diffs), a)
        self.assertTrue(any(d > 16 for d in diffs), a)
        # UDP to the tracker's addresses never left nat_b; TCP did.
        self.assertEqual(b["echo_udp_events"], [], b)
        self.assertEqual(b["tcp"].rsplit(":", 1)[0], b["wan"], b)

    def test_same_nat_lan(self):
        cl = self.behaviour({"nat_a": "cone"}, shared=True)
        a, b = cl["cli_a"], cl["cli_b"]
        self.check_common(a)
        self.check_common(b)
        self.assertEqual(a["wan"], b["wan"])
        # On the LAN the clients see each other's own addresses: no NAT in between.
        self.assertEqual(a["lan"], f"{a['ip']}:{a['sockets'][0]['local']}", a)

    def test_firewall_check_can_fail(self):
        # Control: the same MASQUERADE without the firewall loses the mapping after an
        # unsolicited datagram, which is what check `after_spray` above must catch.
        cl = self.behaviour({"nat_a": "open", "nat_b": "cone"})
        a = cl["cli_a"]
        self.assertNotEqual(a["after_spray"], a["sockets"][0]["main"], a)


def punch_missing():
    """None when build/punch exists; else why the punch scenarios cannot run.

    Skipped while the tree has no rule to build the CLI (mk/client.mk); once it has
    one, a missing binary is a failure, not a skip.
    """
    if os.path.exists(natlab.punch_bin()):
        return None
    if os.path.exists(os.path.join(natlab.ROOT, "mk", "client.mk")):
        raise AssertionError(f"{natlab.punch_bin()} is missing (make all builds it)")
    return f"{natlab.punch_bin()} is not built in this tree yet (no mk/client.mk)"


class Lab2Scenarios(unittest.TestCase):
    """Issue 4's scenarios: punchd in pub, punch listen in cli_b, punch connect in cli_a."""

    @classmethod
    def setUpClass(cls):
        why = punch_missing()
        if why:
            raise unittest.SkipTest(why)

    def run_scenario(self, sid):
        title, routers, shared, opts, expected = SCENARIOS[sid]
        spec = {"task": "pair", "routers": routers, "shared": shared, "opts": opts,
                "listen": "cli_b", "connect": "cli_a", "scale": SCALE}
        res = natlab.run_lab(spec, timeout=120 * SCALE)
        row = {"title": title, "expected": expected, "paths": "-", "nat": "-", "ttc": "-", "bytes": "no"}
        RESULTS[sid] = row
        self.assertNotIn("error", res, brief(res))
        self.assertIn("connect", res, f"scenario {sid}: {res.get('failure')}\n{brief(res)}")
        self.assertIn("listen", res, f"scenario {sid}: {res.get('failure')}\n{brief(res)}")
        c, l_ = res["connect"], res["listen"]
        path = combined_path(res)
        nat_a, nat_b = nat_line(res, "connect"), nat_line(res, "listen")
        row.update(paths=f"{c['path']} / {l_['path']}", nat=f"{nat_a or '-'} / {nat_b or '-'}",
                   ttc=f"{c['ttc_s']:.2f} s",
                   bytes="yes" if res.get("data_connect_to_listen") and res.get("data_listen_to_connect") else "no")
        print(f"natlab: scenario {sid} ({title}): path {path} (A {c['path']} peer={c['peer']}, "
              f"B {l_['path']} peer={l_['peer']}), NAT seen {nat_a}/{nat_b}, time to connect "
              f"{c['ttc_s']:.2f} s (B {l_['ttc_s']:.2f} s), rtt {c['rtt_ms']:.1f} ms", flush=True)
        self.assertIn(path, expected, f"scenario {sid}: path {path}\n{brief(res)}")
        self.assertTrue(res.get("data_connect_to_listen"), f"A -> B bytes\n{brief(res)}")
        self.assertTrue(res.get("data_listen_to_connect"), f"B -> A bytes\n{brief(res)}")
        self.assertEqual(res.get("exit_connect"), 0, brief(res))
        self.assertEqual(res.get("exit_listen"), 0, brief(res))
        self.assertTrue(res.get("ok"), brief(res))
        self.assertEqual(res.get("punchd_status"), 0, brief(res))
        self.assertIsNone(res.get("punchd_sanitizer"), brief(res))
        # The tracker's NAT classification, as each client printed it (a WS-only
        # client has no UDP mapping to classify).
        for cli, seen in (("cli_a", nat_a), ("cli_b", nat_b)):
            kind = routers[("nat_a" if shared else {"cli_a": "nat_a", "cli_b": "nat_b"}[cli])]
            if kind in NAT_SEEN and not opts.get(cli, {}).get("ws"):
                self.assertEqual(seen, NAT_SEEN[kind], f"{cli} behind {kind}\n{brief(res)}")
        self.check_peers(sid, res, path, routers, shared)
        return res

    def check_peers(self, sid, res, path, routers, shared):
        """Where each side says it reached the other."""
        wan = {"cli_a": natlab.ROUTERS["nat_a"]["wan"],
               "cli_b": natlab.ROUTERS["nat_a" if shared else "nat_b"]["wan"]}
        for role, other in (("connect", "cli_b"), ("listen", "cli_a")):
            side = res[role]
            if side["path"] == "relay":
                self.assertEqual(side["peer"], "relay", brief(res))
                continue
            ip = side["peer"].rsplit(":", 1)[0]
            if shared:
                # Hairpinning is off, so direct can only be the LAN candidate.
                self.assertIn(ipaddress.ip_address(ip), ipaddress.ip_network("198.19.1.0/24"), brief(res))
            else:
                self.assertEqual(ip, wan[other], f"{role} side's peer\n{brief(res)}")

    def test_1_cone_cone(self):
        self.run_scenario("1")

    def test_2_same_nat(self):
        self.run_scenario("2")

    def test_3a_sequential_cone(self):
        self.run_scenario("3a")

    def test_3b_sequential_sequential(self):
        self.run_scenario("3b")

    def test_3c_cone_sequential(self):
        self.run_scenario("3c")

    def test_4a_random_cone(self):
        self.run_scenario("4a")

    def test_4b_random_random(self):
        self.run_scenario("4b")

    def test_4c_cone_random(self):
        self.run_scenario("4c")

    def test_4d_sequential_random(self):
        self.run_scenario("4d")

    def test_5a_udp_blocked_connects(self):
        self.run_scenario("5a")

    def test_5b_udp_blocked_listens(self):
        self.run_scenario("5b")


class Lab3FirstAttempt(unittest.TestCase):
    """Scenario 1, twenty times: fresh clients each time, one topology, one punchd."""

    @classmethod
    def setUpClass(cls):
        why = punch_missing()
        if why:
            raise unittest.SkipTest(why)

    def test_scenario_1_twenty_times(self):
        spec = {"task": "reps", "n": REPS, "routers": SCENARIOS["1"][1], "shared": False,
                "listen": "cli_b", "connect": "cli_a", "scale": SCALE, "connect_budget": 15,
                "budget": 240}
        res = natlab.run_lab(spec, timeout=360 * SCALE)
        self.assertNotIn("error", res, brief(res))
        reps = res["reps"]
        good = [r for r in reps if r.get("ok") and "connect" in r and "listen" in r
                and combined_path(r) == "direct"]
        times = [r["connect"]["ttc_s"] for r in good]
        RATE.update(n=len(reps), ok=len(good),
                    median=f"{statistics.median(times):.2f}" if times else "-",
                    min=f"{min(times):.2f}" if times else "-", max=f"{max(times):.2f}" if times else "-")
        print(f"natlab: scenario 1 first attempt: {len(good)}/{len(reps)} direct with bytes intact; "
              f"time to connect median {RATE['median']} s, min {RATE['min']} s, max {RATE['max']} s",
              flush=True)
        bad = [r for r in reps if r not in good]
        self.assertEqual(res.get("punchd_status"), 0, brief(res))
        self.assertIsNone(res.get("punchd_sanitizer"), brief(res))
        self.assertGreaterEqual(len(good), REPS_REQUIRED,
                                "failed repetitions:\n" + "\n".join(brief(r) for r in bad[:3]))


if __name__ == "__main__":
    unittest.main()
