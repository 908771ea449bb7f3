"""The load generator's UDP latency measurement (bench/lg_udp.c), against the
batched UDP echo: what each reply is timed with, how the open loop paces, and
that bad pacing arguments are refused. No speed is asserted.

- every reply carries the kernel's receive stamp (SO_TIMESTAMPNS), so the
  headline histogram and the read-time one count the same replies, and a
  reply's kernel stamp is never later than the moment it was read;
- the open loop sends what is due in batches of at most `burst`, and reports
  how late each request left (send_lag);
- the closed loop has no schedule, hence no send_lag.
"""
import json
import os
import re
import selectors
import subprocess
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = (os.environ.get("TEST_PUNCHD_BUILD") or os.environ.get("PUNCHD_BUILD")
         or os.path.join(ROOT, "build"))
LOADGEN = os.path.join(BUILD, "bench", "loadgen")
ECHO = os.path.join(BUILD, "bench", "echo_udp")


class LoadGen:
    def __init__(self):
        self.proc = subprocess.Popen([LOADGEN, "--max-seconds", "120"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)
        self.buf = b""

    def cmd(self, line, timeout=60):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        while b"\n" not in self.buf:
            if not self.sel.select(timeout):
                raise AssertionError(f"no answer to {line!r}")
            chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
            if not chunk:
                raise AssertionError(f"loadgen exited: {self.proc.stderr.read()!r}")
            self.buf += chunk
        out, self.buf = self.buf.split(b"\n", 1)
        return json.loads(out)

    def close(self):
        """Ends it; returns its stderr."""
        if self.proc.poll() is None:
            self.proc.stdin.write(b"quit\n")
            self.proc.stdin.flush()
            self.proc.wait(30)
        err = self.proc.stderr.read().decode("utf-8", "replace")
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.proc.stdin.close()
        return err


class LoadGenLatencyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for b in (LOADGEN, ECHO):
            if not os.access(b, os.X_OK):
                raise AssertionError(f"{b} is not built")
        cls.echo = subprocess.Popen([ECHO, "--max-seconds", "120"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
        line = cls.echo.stderr.readline().decode()
        m = re.search(r"listening on udp (127\.0\.0\.1:\d+)", line)
        if not m:
            cls.echo.kill()
            raise AssertionError(f"echo_udp did not start: {line!r}")
        cls.target = m.group(1)
        cls.lg = LoadGen()
        r = cls.lg.cmd("udp_setup sockets=4 peers=400")
        assert r.get("peers") == 400, r

    @classmethod
    def tearDownClass(cls):
        err = cls.lg.close()
        cls.echo.terminate()
        cls.echo.wait(10)
        err += cls.echo.stderr.read().decode("utf-8", "replace")
        cls.echo.stderr.close()
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            assert marker not in err, err[-2000:]

    def check_timing(self, r):
        self.assertGreater(r["replies"], 0, r)
        # every reply is in both histograms, and each had a kernel stamp
        self.assertEqual(r["n"], r["replies"])
        self.assertEqual(r["read_n"], r["replies"])
        self.assertEqual(r["no_stamp"], 0, "replies without a kernel receive stamp")
        self.assertEqual(sum(c for _, c in r["hist"]), r["replies"])
        self.assertEqual(sum(c for _, c in r["read_hist"]), r["replies"])
        # the kernel stamps a reply before the generator can read it
        for q in ("p50_us", "p99_us", "max_us"):
            self.assertLessEqual(r[q], r["read_" + q] + 1.0, q)
        self.assertLessEqual(r["p50_us"], r["p90_us"])
        self.assertLessEqual(r["p90_us"], r["p99_us"])
        self.assertLessEqual(r["p99_us"], r["p999_us"])
        self.assertEqual(r["errors"], 0)

    def test_open_loop_paced(self):
        r = self.lg.cmd(f"udp_run target={self.target} rate=4000 secs=0.6 warmup=0.1 window=8192 "
                        f"tick_us=50 burst=4 wait=sleep label=t")
        self.assertNotIn("error", r)
        self.check_timing(r)
        self.assertEqual((r["burst"], r["tick_us"], r["wait"]), (4, 50.0, "sleep"))
        # the schedule is kept on average (2400 due in 0.6 s) ...
        self.assertGreater(r["sent"], 2400 * 0.8, r["sent"])
        self.assertLessEqual(r["sent"], 2400 + 1)
        # ... never more than `burst` per sendmmsg, and every send has its lateness
        self.assertGreater(r["tx_batch_mean"], 0)
        self.assertLessEqual(r["tx_batch_mean"], 4.0)
        self.assertEqual(r["send_lag_n"], r["sent"])
        self.assertEqual(r["lost"], 0)

    def test_open_loop_continuous_spin(self):
        r = self.lg.cmd(f"udp_run target={self.target} rate=3000 secs=0.3 warmup=0 window=8192 "
                        f"tick_us=0 burst=1 wait=spin label=t")
        self.assertNotIn("error", r)
        self.check_timing(r)
        self.assertEqual(r["tx_batch_mean"], 1.0)

    def test_closed_loop_has_no_schedule(self):
        r = self.lg.cmd(f"udp_run target={self.target} secs=0.3 warmup=0.1 window=16 label=t")
        self.assertNotIn("error", r)
        self.check_timing(r)
        self.assertEqual(r["send_lag_n"], 0)

    def test_bad_pacing_refused(self):
        for bad in ("burst=0", "burst=65", "wait=nap", "tick_us=-1"):
            r = self.lg.cmd(f"udp_run target={self.target} rate=100 secs=0.1 {bad} label=t")
            self.assertIn("error", r, bad)


if __name__ == "__main__":
    unittest.main()
