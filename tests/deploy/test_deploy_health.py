"""The image's HEALTHCHECK command, run for real against a real punchd.

docker/Dockerfile checks health with `punchd --health --config FILE` (GET
/healthz on the config's TCP port; exit 0 on 200, else 1), and
deploy-docker.sh's --port reaches the container as PUNCHD_PORT, which the
health check must see too. These tests run that command next to a punchd on
127.0.0.1; they are skipped, saying why, while the binary under test does not
have --health (or PUNCHD_* overrides) yet.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402

HEALTH_TIMEOUT = 30   # a hang is a failure, not a slow machine


def punchd_help():
    p = subprocess.run([harness.BIN, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=30)
    return p.stdout


class HealthCommandTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.help = punchd_help()
        if "--health" not in cls.help:
            raise unittest.SkipTest("this punchd has no --health mode yet (the Dockerfile's HEALTHCHECK needs it)")

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="punchd-health-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def health(self, config, env=None):
        e = {k: v for k, v in os.environ.items() if not k.startswith("PUNCHD_")}
        e.update(env or {})
        return subprocess.run([harness.BIN, "--health", "--config", config], env=e, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                              timeout=HEALTH_TIMEOUT)

    def config(self, **keys):
        path = os.path.join(self.tmp, "config.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(keys, f)
        return path

    def test_healthy_then_unhealthy(self):
        s = harness.Punchd()
        s.start()
        self.addCleanup(s.stop)
        cfg = self.config(bind="127.0.0.1", port=s.tcp_port)
        p = self.health(cfg)
        self.assertEqual(p.returncode, 0, p.stdout)
        s.stop()
        p = self.health(cfg)
        self.assertEqual(p.returncode, 1, p.stdout)

    def test_port_from_the_environment(self):
        """deploy-docker.sh --port N sets PUNCHD_PORT=N; the health check in
        the container must then probe N, not the file's port."""
        if "PUNCHD_" not in self.help:
            self.skipTest("this punchd does not document PUNCHD_* environment overrides yet")
        s = harness.Punchd()
        s.start()
        self.addCleanup(s.stop)
        # The file names a port nothing listens on (the server's own + 1 is
        # not guaranteed free, so use the ephemeral port of a closed socket).
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            dead = probe.getsockname()[1]
        cfg = self.config(bind="127.0.0.1", port=dead)
        self.assertEqual(self.health(cfg).returncode, 1)
        p = self.health(cfg, {"PUNCHD_PORT": str(s.tcp_port)})
        self.assertEqual(p.returncode, 0, p.stdout)


if __name__ == "__main__":
    unittest.main()
