"""Smoke test of the benchmark harness (bench/bench.py and the C load generator).

Runs the whole `make bench` pipeline with tiny numbers (a couple of thousand
peers, runs of about a second) against the punchd and the echo servers of the
build tree under test, and checks only that it works: exit status 0, a
latest.json of the documented shape with non-zero rates, no error replies, the
open-loop latency rows (load as a share of the maximum measured in the same
run, for punchd and the echo), and no process left behind. No speed is asserted: the numbers depend on the machine.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# run_tests.py names the build tree (TEST_PUNCHD_BUILD; PUNCHD_BUILD before punchd
# began reading PUNCHD_* variables as configuration).
BUILD = (os.environ.get("TEST_PUNCHD_BUILD") or os.environ.get("PUNCHD_BUILD")
         or os.path.join(ROOT, "build"))
DRIVER = os.path.join(ROOT, "bench", "bench.py")


def session_members(sid):
    """Pids of live processes in session sid."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after "pid (comm)": state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(d))
    return pids


class BenchSmokeTest(unittest.TestCase):
    def test_pipeline_writes_valid_json(self):
        for b in ("punchd", "bench/loadgen", "bench/echo_udp", "bench/echo_tcp"):
            self.assertTrue(os.access(os.path.join(BUILD, b), os.X_OK), f"{b} is not built in {BUILD}")
        with tempfile.TemporaryDirectory(prefix="punchd-bench-smoke-") as tmp:
            out = os.path.join(tmp, "latest.json")
            # Its own session, so anything it leaves running can be found.
            proc = subprocess.Popen([sys.executable, DRIVER, "--smoke", "--build", BUILD, "--out", tmp,
                                     "--json", out], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                text, _ = proc.communicate(timeout=240)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
                self.fail("bench.py --smoke did not stop by itself within 240 s")
            text = text.decode("utf-8", "replace")
            self.assertEqual(proc.returncode, 0, text)
            # Children die with the driver; give the kernel a moment to reap them.
            deadline = time.monotonic() + 5
            while session_members(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertEqual(session_members(proc.pid), [], "processes left behind")

            with open(out) as f:
                res = json.load(f)
        self.assertIsInstance(res["peers"], int)
        self.assertGreater(res["peers"], 0)
        self.assertIsInstance(res["bytes_per_peer"], (int, float))
        names = [s["name"] for s in res["scenarios"]]
        for want in ("udp_mix", "udp_announce", "udp_pulse", "udp_push", "udp_mix_80pct"):
            self.assertIn(want, names)
        self.assertTrue(any(n.startswith("ws_") for n in names), names)
        for s in res["scenarios"]:
            for key in ("name", "punchd_rps", "echo_rps", "ratio", "p50_us", "p99_us"):
                self.assertIn(key, s, s["name"])
            self.assertGreater(s["punchd_rps"], 0, s["name"])
            self.assertGreater(s["echo_rps"], 0, s["name"])
            self.assertIsInstance(s["ratio"], (int, float), s["name"])
            self.assertGreaterEqual(s["p99_us"], s["p50_us"], s["name"])
            # With the benchmark config nothing is refused: an error reply is a bug.
            self.assertEqual(s["errors"], 0, f"{s['name']}: error replies")
        # The open-loop latency rows: load as a share of the maximum measured just
        # before, for punchd and the echo (at punchd's rate, and at its own 80%).
        by_name = {s["name"]: s for s in res["scenarios"]}
        self.assertIn("udp_mix_80pct_own", by_name)
        for name in ("udp_mix_80pct", "udp_mix_80pct_own"):
            s = by_name[name]
            for key in ("offered_rps", "echo_offered_rps", "punchd_max_rps", "echo_max_rps", "load",
                        "echo_load", "target_load", "p90_us", "p999_us", "echo_p90_us", "echo_p999_us",
                        "read_p99_us", "echo_read_p99_us", "send_lag_p99_us", "server_busy",
                        "server_wait_share", "pacing"):
                self.assertIn(key, s, name)
            self.assertEqual(s["target_load"], 0.8)
            self.assertGreater(s["punchd_max_rps"], 0, name)
            self.assertGreater(s["load"], 0, name)
            for side in ("", "echo_"):
                q = [s[f"{side}p{p}_us"] for p in ("50", "90", "99", "999")]
                self.assertEqual(q, sorted(q), f"{name}: {side} quantiles out of order")
        self.assertEqual(by_name["udp_mix_80pct"]["offered_rps"], by_name["udp_mix_80pct"]["echo_offered_rps"])
        for s in res["scenarios"]:
            if s["name"].startswith("udp_"):
                # every UDP reply had the kernel's receive stamp the latency ends at
                self.assertEqual(s.get("no_stamp"), 0, s["name"])
        push = next(s for s in res["scenarios"] if s["name"] == "udp_push")
        self.assertGreater(push["incomes"], 0, "a push reached no peer")
        self.assertEqual(len(res["workers"]), 2)
        for w in res["workers"]:
            v = w["replies_per_cpu_s"]
            self.assertTrue(v == "n/a (workers not supported)" or (isinstance(v, (int, float)) and v > 0), w)


if __name__ == "__main__":
    unittest.main()
