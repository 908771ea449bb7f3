"""Command line and config file: errors exit 2 naming the key, --help/--version,
signals, and ./config.json from the working directory."""
import json
import os
import signal
import subprocess
import tempfile
import time

from harness import BIN, PunchdTestCase, Punchd, padded, scaled


def run(args, cwd=None, timeout=10):
    """Runs punchd to completion (for refusals); never leaves it running."""
    with tempfile.TemporaryDirectory(prefix="punchd-cli-") as tmp:
        p = subprocess.run([BIN] + args, cwd=cwd or tmp, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=scaled(timeout))
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


class ConfigErrorsTest(PunchdTestCase):
    def refuse(self, args=(), config=None, names=(), cwd=None):
        """punchd must exit 2 with exactly one stderr line naming one of names."""
        with tempfile.TemporaryDirectory(prefix="punchd-cfg-") as tmp:
            argv = list(args)
            if config is not None:
                path = os.path.join(tmp, "c.json")
                with open(path, "w") as f:
                    f.write(config if isinstance(config, str) else json.dumps(config))
                argv = ["--config", path] + argv
            rc, out, err = run(argv, cwd=cwd)
        self.assertEqual(rc, 2, f"{argv} {config}: exit {rc}, stderr {err!r}")
        lines = [l for l in err.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, f"{argv} {config}: want one stderr line, got {err!r}")
        if names:
            self.assertTrue(any(n in lines[0] for n in names), f"{lines[0]!r} does not name {names}")
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            self.assertNotIn(marker, err)
        return lines[0]

    def test_unknown_key_in_file(self):
        line = self.refuse(config={"port": 0, "bind": "127.0.0.1", "portt": 5}, names=("portt",))
        self.assertIn("unknown", line.lower())
        self.refuse(config={"peerTtl": 5}, names=("peerTtl",))

    def test_wrong_type_in_file(self):
        self.refuse(config={"port": "abc"}, names=("port",))
        self.refuse(config={"peer_ttl": "300"}, names=("peer_ttl",))
        self.refuse(config={"port": 0, "bind": 127}, names=("bind",))
        self.refuse(config={"port": 0, "compat": True}, names=("compat",))
        self.refuse(config={"port": 0, "max_peers": None}, names=("max_peers",))
        self.refuse(config={"port": 0, "peer_ttl": 1.5}, names=("peer_ttl",))

    def test_out_of_range_in_file(self):
        self.refuse(config={"port": 70000}, names=("port",))
        self.refuse(config={"port": -1}, names=("port",))
        self.refuse(config={"port": 0, "peer_ttl": 0}, names=("peer_ttl",))
        self.refuse(config={"port": 0, "max_datagram": 70000}, names=("max_datagram",))
        self.refuse(config={"port": 0, "compat": "sobani"}, names=("compat",))
        self.refuse(config={"port": 0, "log_level": "loud"}, names=("log_level",))
        self.refuse(config={"port": 0, "token_key": "abc"}, names=("token_key",))
        self.refuse(config={"port": 0, "bind": "localhost"}, names=("bind",))

    def test_bad_config_files(self):
        self.refuse(config="{", names=("c.json",))
        self.refuse(config="[]", names=("c.json",))
        self.refuse(args=["--config", "/nonexistent/punchd.json"], names=("/nonexistent/punchd.json",))

    def test_out_of_range_flags(self):
        self.refuse(args=["--port", "0", "--peer-ttl", "0"], names=("peer_ttl", "peer-ttl"))
        self.refuse(args=["--port", "70000"], names=("port",))
        self.refuse(args=["--port", "abc"], names=("port",))
        self.refuse(args=["--port", "0", "--max-peers", "0"], names=("max_peers", "max-peers"))
        self.refuse(args=["--port", "0", "--compat", "nope"], names=("compat",))
        self.refuse(args=["--port", "0", "--token-key", "zz" * 32], names=("token_key", "token-key"))
        self.refuse(args=["--port", "0", "--bind", "1.2.3"], names=("bind",))

    def test_unknown_flag(self):
        self.refuse(args=["--port", "0", "--bogus-flag", "1"], names=("bogus",))
        self.refuse(args=["--port", "0", "stray"], names=("stray",))
        self.refuse(args=["--port"])

    def test_bad_cwd_config_json(self):
        with tempfile.TemporaryDirectory(prefix="punchd-cwd-") as tmp:
            with open(os.path.join(tmp, "config.json"), "w") as f:
                json.dump({"port": 0, "nonsense": 1}, f)
            self.refuse(cwd=tmp, names=("nonsense",))

    def test_help_and_version(self):
        rc, out, err = run(["--help"])
        self.assertEqual(rc, 0, err)
        self.assertIn("usage", out.lower())
        for flag in ("--config", "--bind", "--port", "--peer-ttl", "--compat", "--max-peers",
                     "--max-datagram", "--token-key", "--log-level"):
            self.assertIn(flag, out)
        rc, out, err = run(["--version"])
        self.assertEqual(rc, 0, err)
        self.assertRegex(out.strip(), r"^punchd \d+\.\d+\.\d+")


class RunTest(PunchdTestCase):
    def test_sigterm_and_sigint_stop_promptly(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            s = Punchd()
            s.start()
            self.addCleanup(s._kill)  # only if the assertions below fail
            c = self.client(s)
            c.announce()  # it has a peer, then is stopped
            t0 = time.monotonic()
            self.assertEqual(s.stop(sig, timeout=2.0), 0)
            self.assertLess(time.monotonic() - t0, scaled(2.0))
            self.assertFalse(s.alive())

    def test_listening_line(self):
        s = self.start_server("--log-level", "info")
        self.assertEqual(s.listen_text, f"127.0.0.1:{s.port}")
        self.assertNotEqual(s.port, 0)

    def test_reads_config_json_from_cwd(self):
        with tempfile.TemporaryDirectory(prefix="punchd-cwd-") as tmp:
            with open(os.path.join(tmp, "config.json"), "w") as f:
                json.dump({"port": 0, "bind": "127.0.0.1", "peer_ttl": 77, "compat": "sobani-app"}, f)
            s = self.start_server(cwd=tmp, port0=False)
            c = self.client(s)
            r = c.request(padded({"action": "announce"}, 128))
            self.assertEqual(r["action"], "announced", r)
            self.assertEqual(r["data"]["ttl"], 77)

    def test_config_file_and_flags(self):
        s = self.start_server("--peer-ttl", "61", config={"peer_ttl": 50, "max_peers": 1},
                              port0=True)
        c = self.client(s)
        r = c.request(padded({"action": "announce"}, 128))
        self.assertEqual(r["data"]["ttl"], 61)   # the flag wins over the file
        r = self.client(s).request(padded({"action": "announce"}, 200))
        self.assertError(r, "full", message=True)   # max_peers 1 from the file
        # --config beats ./config.json in the working directory.
        with tempfile.TemporaryDirectory(prefix="punchd-cwd-") as tmp:
            with open(os.path.join(tmp, "config.json"), "w") as f:
                json.dump({"peer_ttl": 99, "bogus": 1}, f)
            s2 = self.start_server(config={"peer_ttl": 42}, cwd=tmp)
            r = self.client(s2).request(padded({"action": "announce"}, 128))
            self.assertEqual(r["data"]["ttl"], 42)

    def test_flag_equals_form(self):
        """README: `--peer-ttl=60` works as well as `--peer-ttl 60`."""
        s = self.start_server("--port=0", "--bind=127.0.0.1", "--peer-ttl=33", port0=False)
        r = self.client(s).request(padded({"action": "announce"}, 128))
        self.assertEqual(r["data"]["ttl"], 33)
