#!/usr/bin/env python3
"""Runs every punchd test and prints one closing line: "N passed, M failed".

Unit tests are cmocka binaries (run with TAP output, one result per test case);
integration tests are the unittest modules in tests/integration/, which start
the real punchd binary (TEST_PUNCHD_BIN) on loopback. A unit binary that dies
without reporting a failure (a crash, a sanitizer abort) counts as a failure.
Exit status: 0 when nothing failed, 1 otherwise.
"""
import argparse
import os
import re
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run_unit(binary, counts):
    env = dict(os.environ, CMOCKA_MESSAGE_OUTPUT="TAP")
    name = os.path.basename(binary)
    try:
        proc = subprocess.run([binary], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=300)
        out = proc.stdout.decode("utf-8", "replace")
        rc = proc.returncode
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")
        rc = "timeout"
    failed_here = 0
    for line in out.splitlines():
        m = re.match(r"^(not ok|ok) \d+ - (.*)$", line)
        if not m:
            continue
        if m.group(1) == "ok":
            counts["passed"] += 1
            print(f"ok      {name}: {m.group(2)}")
        else:
            counts["failed"] += 1
            failed_here += 1
            print(f"NOT OK  {name}: {m.group(2)}")
    if rc != 0 and failed_here == 0:
        counts["failed"] += 1
        print(f"NOT OK  {name}: exited with status {rc}")
    if rc != 0:
        print(out)


class CountingResult(unittest.TextTestResult):
    def __init__(self, *a, counts=None, **kw):
        super().__init__(*a, **kw)
        self.counts = counts
        self.started = 0.0

    def startTest(self, test):
        self.started = time.monotonic()
        super().startTest(test)

    def _line(self, status, test):
        took = time.monotonic() - self.started
        print(f"{status:<7} {test.id().replace('test_', '', 1)} ({took:.2f}s)", flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self.counts["passed"] += 1
        self._line("ok", test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.counts["failed"] += 1
        self._line("NOT OK", test)

    def addError(self, test, err):
        super().addError(test, err)
        self.counts["failed"] += 1
        self._line("NOT OK", test)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.counts["skipped"] += 1
        print(f"skip    {test.id()}: {reason}", flush=True)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.counts["failed"] += 1
        self._line("NOT OK", test)


# Directories of unittest modules, run in this order when present. Module
# names must be unique across them (they share one import namespace).
SUITES = ["integration", "client", "deploy", "bench", "nat"]


def run_integration(build, counts, pattern, suites):
    os.environ["TEST_PUNCHD_BIN"] = os.path.join(ROOT, build, "punchd")
    os.environ["PUNCH_BIN"] = os.path.join(ROOT, build, "punch")
    os.environ["TEST_PUNCHD_BUILD"] = os.path.join(ROOT, build)
    sys.path.insert(0, os.path.join(HERE, "integration"))
    suite = unittest.TestSuite()
    for name in suites:
        d = os.path.join(HERE, name)
        if not os.path.isdir(d):
            continue
        if d not in sys.path:
            sys.path.insert(0, d)
        suite.addTests(unittest.defaultTestLoader.discover(d, pattern=pattern, top_level_dir=d))
    runner = unittest.TextTestRunner(stream=open(os.devnull, "w"), verbosity=0,
                                     resultclass=lambda *a, **kw: CountingResult(*a, counts=counts, **kw))
    result = runner.run(suite)
    for test, tb in result.failures + result.errors:
        print(f"\n--- {test.id()} ---\n{tb}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--pattern", default="test_*.py", help="integration modules to run")
    ap.add_argument("--no-integration", action="store_true")
    ap.add_argument("--suite", action="append", help="suite directories under tests/ (default: all)")
    ap.add_argument("units", nargs="*")
    args = ap.parse_args()
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for u in args.units:
        run_unit(u, counts)
    if not args.no_integration:
        run_integration(args.build, counts, args.pattern, args.suite or SUITES)
    if counts["skipped"]:
        print(f"{counts['skipped']} skipped")
    print(f"{counts['passed']} passed, {counts['failed']} failed")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
