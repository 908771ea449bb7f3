"""A real third-party WebSocket client: tests/ws-node/client.js drives punchd with the npm `ws`
library (announce two peers, push, relay both ways, ping, errors, close) and prints JSON; this
test checks it. Needs node and the `ws` library, from Debian's node-ws package (`make deps`
installs both; an npm-installed tests/ws-node/node_modules/ws is used too if present)."""
import json
import os
import shutil
import subprocess

from harness import ROOT, PunchdTestCase, scaled, punch_fields_ok

NODE_DIR = os.path.join(ROOT, "tests", "ws-node")
DEBIAN_NODE_PATH = "/usr/share/nodejs"  # where Debian's node-* packages install modules


class NodeWsClientTest(PunchdTestCase):
    server_flags = ()

    def test_node_ws_library(self):
        node = shutil.which("node") or shutil.which("nodejs")
        self.assertIsNotNone(node, "node is not installed (make deps installs it)")
        self.assertTrue(os.path.isfile(os.path.join(NODE_DIR, "node_modules", "ws", "package.json")) or
                        os.path.isfile(os.path.join(DEBIAN_NODE_PATH, "ws", "package.json")),
                        "the ws library is missing: run `make deps` (Debian package node-ws)")
        env = dict(os.environ, NODE_PATH=DEBIAN_NODE_PATH)
        host, port = self.server.tcp_target()
        timeout_ms = int(scaled(10) * 1000)
        p = subprocess.run([node, os.path.join(NODE_DIR, "client.js"), host, str(port), str(timeout_ms)],
                           cwd=NODE_DIR, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=scaled(10) + 10)
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, f"node client failed:\n{out}\n{err}")
        res = json.loads(out.strip().splitlines()[-1])
        a, b = res["a"], res["b"]
        ad = a["announce"]["data"]
        bd = b["announce"]["data"]
        self.assertEqual(a["announce"]["action"], "announceReceived")
        self.assertShareId(ad["shareId"])
        self.assertShareId(bd["shareId"])
        self.assertNotEqual(ad["shareId"], bd["shareId"])
        self.assertToken(ad["token"])
        self.assertEqual(ad["transports"], ["ws"])
        self.assertRegex(ad["addr"], r"^127\.0\.0\.1:\d+$")
        self.assertEqual(punch_fields_ok(a["pushReply"]), {"action": "pushReceived", "data": {
            "peeraddr": bd["addr"], "peerShareId": bd["shareId"], "transports": ["ws"]}})
        self.assertEqual(punch_fields_ok(b["income"]), {"action": "income", "data": {
            "peeraddr": ad["addr"], "peerShareId": ad["shareId"], "transports": ["ws"],
            "addrTransport": "ws"}})
        self.assertEqual(a["relayed"], {"action": "relayed", "data": {
            "peerShareId": bd["shareId"], "payload": res["sentOffer"]}})
        self.assertEqual(b["relayed"], {"action": "relayed", "data": {
            "peerShareId": ad["shareId"], "payload": res["sentText"]}})
        self.assertEqual(a["pong"], "node-ping")
        self.assertEqual(a["unknown"]["action"], "error")
        self.assertEqual(a["unknown"]["data"]["code"], "unknownAction")
        self.assertEqual(b["notJson"]["data"]["code"], "badRequest")
        self.assertEqual(b["alive"], {"action": "alived"})
        self.assertEqual(a["close"]["code"], 1000)
        self.assertEqual(b["pushAfterClose"]["data"]["code"], "unknownShareId")
        self.assertEqual(b["finalClose"], 1000)
        self.assertEqual(self.server.healthz()["peers"], 0)
