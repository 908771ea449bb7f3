"""Issue 4, tracker side: NAT behaviour detection through the probe socket
(eim / sequential / random / unknown), candidates, predicted ports, pubkeys and the
per-pairing nonce in pushReceived and income. Loopback stands in for the NATs: a
"mapping" is simply the source port a socket probes from."""
import re
import socket

from harness import PunchdTestCase, encode, padded, parse_object, check_size, expect_silence

PROBE_IP = "127.0.0.2"


def bind_udp(port=0, ip="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, port))
    return s


def socket_near(port, step):
    """A UDP socket on port+step (trying further steps in the same direction)."""
    for k in range(step, step + 6 * (1 if step > 0 else -1), 1 if step > 0 else -1):
        try:
            return bind_udp(port + k)
        except OSError:
            continue
    raise AssertionError(f"no free port near {port}")


class ProbeTest(PunchdTestCase):
    server_flags = ("--probe-bind", PROBE_IP)

    def probe_to(self):
        return (PROBE_IP, self.server.port)

    def probe(self, sock, data, expect_reply=True):
        """Sends a probe for data's identity from sock; returns the parsed reply."""
        req = encode({"action": "probe", "shareId": data["shareId"], "token": data["token"]})
        sock.sendto(req, self.probe_to())
        sock.settimeout(2)
        raw, src = sock.recvfrom(65536)
        self.assertEqual(src, self.probe_to(), "the probe is answered from the probe address")
        check_size(req, raw, self.server.max_datagram)
        return parse_object(raw)

    def test_announce_says_where_to_probe(self):
        c, d = self.announced()
        self.assertEqual(d["probe"], f"{PROBE_IP}:{self.server.port}")
        self.assertEqual(d["nat"], "unknown")

    def test_same_mapping_is_eim(self):
        c, d = self.announced()
        r = self.probe(c.sock, d)
        self.assertEqual(r, {"action": "probeReceived", "data": {"addr": c.addr, "nat": "eim"}})
        # The peer's own pulses now report it, and so do pushes to it.
        p = c.request(padded({"action": "pulse"}, 64))
        self.assertEqual(p["data"]["nat"], "eim", p)
        other, _ = self.announced()
        r = other.request(padded({"action": "push", "shareId": d["shareId"]}, 400))
        self.assertEqual(r["data"]["nat"], "eim")
        self.assertNotIn("predicted", r["data"])

    def test_bare_pulse_keeps_its_shape_until_a_probe(self):
        c, d = self.announced()
        r = c.request(padded({"action": "pulse"}, 64))
        self.assertEqual(r, {"action": "pulseReceived", "data": {"status": "0", "overriden": "false"}})

    def test_nearby_port_is_sequential_and_predicted(self):
        c, d = self.announced()
        s = socket_near(c.port, 1)
        self.addCleanup(s.close)
        step = s.getsockname()[1]
        r = self.probe(s, d)
        self.assertEqual(r["data"], {"addr": f"127.0.0.1:{step}", "nat": "sequential"})
        other, od = self.announced()
        r = other.request(padded({"action": "push", "shareId": d["shareId"]}, 600))
        self.assertEqual(r["data"]["nat"], "sequential")
        self.assertEqual(r["data"]["peeraddr"], c.addr)
        self.assertEqual(r["data"]["predicted"], [f"127.0.0.1:{step + k}" for k in range(1, 5)])
        inc = c.recv()
        self.assertEqual(inc["action"], "income")
        self.assertEqual(inc["data"]["nat"], "unknown")  # the pusher never probed
        self.assertNotIn("predicted", inc["data"])

    def test_downward_sequence_is_predicted_downward(self):
        c, d = self.announced()
        s = socket_near(c.port, -1)
        self.addCleanup(s.close)
        low = s.getsockname()[1]
        self.assertEqual(self.probe(s, d)["data"]["nat"], "sequential")
        other, _ = self.announced()
        r = other.request(padded({"action": "push", "shareId": d["shareId"]}, 600))
        self.assertEqual(r["data"]["predicted"], [f"127.0.0.1:{low - k}" for k in range(1, 5)])

    def test_far_port_is_random(self):
        c, d = self.announced()
        far = bind_udp()
        self.addCleanup(far.close)
        if abs(far.getsockname()[1] - c.port) <= 16:
            far.close()
            far = socket_near(c.port, 200)
            self.addCleanup(far.close)
        self.assertEqual(self.probe(far, d)["data"]["nat"], "random")
        other, _ = self.announced()
        r = other.request(padded({"action": "push", "shareId": d["shareId"]}, 600))
        self.assertEqual(r["data"]["nat"], "random")
        self.assertNotIn("predicted", r["data"])

    def test_probe_errors(self):
        c, d = self.announced()
        # A wrong token must not relabel someone else's NAT.
        bad = dict(d, token=d["token"][:-1] + ("0" if d["token"][-1] != "0" else "1"))
        r = self.probe(c.sock, bad)
        self.assertEqual(r["data"]["code"], "unauthorized", r)
        r = self.probe(c.sock, {"shareId": d["shareId"], "token": 5})
        self.assertEqual(r["data"]["code"], "badRequest", r)
        # A probe to the main port is refused; anything but probe on the probe port too.
        r = c.request({"action": "probe", "shareId": d["shareId"], "token": d["token"]})
        self.assertEqual(r["data"]["code"], "badRequest", r)
        c.sock.sendto(encode(padded({"action": "pulse"}, 64)), self.probe_to())
        self.assertEqual(parse_object(c.sock.recvfrom(65536)[0])["data"]["code"], "badRequest")
        # Garbage on the probe port is never answered.
        c.sock.sendto(b"\x00garbage", self.probe_to())
        expect_silence(c.sock, 0.2)
        # A WebSocket-only identity has no UDP mapping to compare with.
        w, wd = self.ws_announced()
        r = self.probe(c.sock, wd)
        self.assertEqual(r["data"]["code"], "notAnnounced", r)
        # After all that, the real probe still works.
        self.assertEqual(self.probe(c.sock, d)["data"]["nat"], "eim")


class CandidatesTest(PunchdTestCase):
    server_flags = ()

    def test_candidates_and_pubkey_reach_the_other_side(self):
        cands = ["192.168.1.5:4000", "[fe80::1]:4000", "10.0.0.7:65535"]
        t, td = self.announced(fields={"candidates": cands, "pubkey": "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq8="})
        p, pd = self.announced(fields={"candidates": ["172.16.0.9:5000"], "pubkey": "cGVlcg"})
        r = p.request(padded({"action": "push", "shareId": td["shareId"]}, 800))
        self.assertEqual(r["data"]["candidates"], cands)
        self.assertEqual(r["data"]["pubkey"], "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq8=")
        inc = t.recv()
        self.assertEqual(inc["data"]["candidates"], ["172.16.0.9:5000"])
        self.assertEqual(inc["data"]["pubkey"], "cGVlcg")
        # A pulse with the token replaces them (an empty list clears them); without
        # the token (it could be forged from p's address) it changes nothing.
        p.request(padded({"action": "pulse", "candidates": ["6.6.6.6:6"], "pubkey": "ZXZpbA"}, 200))
        p.request(padded({"action": "push", "shareId": td["shareId"]}, 800))
        inc = t.recv()
        self.assertEqual((inc["data"]["candidates"], inc["data"]["pubkey"]), (["172.16.0.9:5000"], "cGVlcg"))
        p.request(padded({"action": "pulse", "candidates": [], "token": pd["token"]}, 64))
        p.request(padded({"action": "push", "shareId": td["shareId"]}, 800))
        self.assertNotIn("candidates", t.recv()["data"])

    def test_bad_candidates_and_pubkeys_are_bad_requests(self):
        c = self.client()
        for fields in ({"candidates": "1.2.3.4:5"},
                       {"candidates": [f"10.0.0.{i}:1" for i in range(9)]},
                       {"candidates": ["host.example:80"]},
                       {"candidates": ["1.2.3.4"]},
                       {"candidates": ["1.2.3.4:0"]},
                       {"candidates": ["1.2.3.4:65536"]},
                       {"candidates": ["fe80::1:80"]},
                       {"candidates": [5]},
                       {"pubkey": ""},
                       {"pubkey": "a" * 65},
                       {"pubkey": "has space"},
                       {"pubkey": 7}):
            r = c.request(padded(dict({"action": "announce"}, **fields), 200))
            self.assertEqual(r["action"], "error", fields)
            self.assertEqual(r["data"]["code"], "badRequest", (fields, r))

    def test_nonce_pairs_both_sides_and_is_fresh(self):
        a, ad = self.announced()
        b, bd = self.announced()
        seen = set()
        for _ in range(3):
            r = a.request({"action": "push", "shareId": bd["shareId"]})  # bare: the nonce still fits
            inc = b.recv()
            self.assertRegex(r["data"]["nonce"], r"^[0-9a-f]{32}$")
            self.assertEqual(inc["data"]["nonce"], r["data"]["nonce"])
            seen.add(r["data"]["nonce"])
        self.assertEqual(len(seen), 3)

    def test_income_over_ws_carries_everything(self):
        w, wd = self.ws_announced(fields={"candidates": ["192.168.0.2:7000"]})
        u, ud = self.announced(fields={"candidates": ["10.1.1.1:9000"], "pubkey": "dWRw"})
        r = u.request(padded({"action": "push", "shareId": wd["shareId"]}, 800))
        self.assertEqual(r["data"]["candidates"], ["192.168.0.2:7000"])
        inc = w.recv_json()
        self.assertEqual(inc["action"], "income")
        self.assertEqual(inc["data"]["candidates"], ["10.1.1.1:9000"])
        self.assertEqual(inc["data"]["pubkey"], "dWRw")
        self.assertEqual(inc["data"]["nonce"], r["data"]["nonce"])
        self.assertEqual(inc["data"]["nat"], "unknown")
        self.assertTrue(re.fullmatch(r"[0-9a-f]{32}", inc["data"]["nonce"]))


class NoProbeTest(PunchdTestCase):
    server_flags = ()

    def test_no_probe_socket_no_probe_field(self):
        c, d = self.announced()
        self.assertNotIn("probe", d)
        r = c.request({"action": "probe", "shareId": d["shareId"], "token": d["token"]})
        self.assertEqual(r["data"]["code"], "badRequest")
