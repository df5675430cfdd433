#!/usr/bin/python3
"""ui/client.py (the UI's HTTP client, standard library only) against a real credito-gateway in
front of a predictor serving German Credit's champion (stack.py), run by Debian's /usr/bin/python3
with no Streamlit.

- GET /v1/model: the schema as the form needs it (kinds, categories, defaults), metrics, scorecard;
- POST /predict: probability, score (the scorecard's formula), decision, reasons, model, and the
  same numbers as creditoctl asking the predictor directly;
- every error kind, typed: 401 (a wrong key, no key), 422 with one entry per field (float_parsing,
  enum, float_type, missing, extra_forbidden), 429 with the wait (a gateway at 2/minute), 503 (no
  predictor), 404 (another error), an unreachable gateway (connection refused, a server that never
  answers within the timeout, one that hangs up), and answers that are not what a gateway sends
  (not JSON, too large) from a stdlib server.

Run: /usr/bin/python3 tests/ui/test_client.py [BUILD_DIR]   (or CREDITO_BUILD_DIR)
"""
import email.utils
import http.server
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "ui"))
sys.path.insert(0, HERE)
if len(sys.argv) > 1 and os.path.isdir(sys.argv[1]):
    os.environ["CREDITO_BUILD_DIR"] = os.path.abspath(sys.argv.pop(1))

import client  # noqa: E402  (ui/client.py)
import stack  # noqa: E402
import procs  # noqa: E402  (tests/interop, put on sys.path by stack)

NUMERIC = {"duration", "credit_amount", "installment_commitment", "residence_since", "age",
           "existing_credits", "num_dependents"}
# German Credit's columns in file order, the target excluded.
FEATURES = ["checking_status", "duration", "credit_history", "purpose", "credit_amount",
            "savings_status", "employment", "installment_commitment", "personal_status",
            "other_parties", "residence_since", "property_magnitude", "age",
            "other_payment_plans", "housing", "existing_credits", "job", "num_dependents",
            "own_telephone", "foreign_worker"]


class Canned(http.server.BaseHTTPRequestHandler):
    """A stdlib HTTP server answering every request with the server's `canned` answer."""

    def do_GET(self):
        status, ctype, body = self.server.canned
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args):
        pass


def canned_server(status, ctype, body):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    srv.canned = (status, ctype, body)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


class ClientTest(unittest.TestCase):
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        cls.stack = stack.Stack()
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()
        cls.url = cls.stack.gateway()
        cls.c = client.Client(cls.url, cls.stack.key)
        cls.model = cls.c.get_model()

    def applicant(self, **change):
        a = self.model.defaults()
        for k, v in change.items():
            if v is None:
                a.pop(k, None)
            else:
                a[k] = v
        return a

    # ---- GET /v1/model ----

    def test_get_model(self):
        m = self.model
        self.assertEqual((m.name, m.version, m.alias), (stack.MODEL, 1, "champion"))
        self.assertEqual([f.name for f in m.features], FEATURES)
        for f in m.features:
            self.assertTrue(f.required, f)
            if f.name in NUMERIC:
                self.assertEqual(f.kind, client.NUMERIC, f)
                self.assertEqual(f.categories, [], f)
                self.assertIsInstance(f.default, float, f)
            else:
                self.assertEqual(f.kind, client.CATEGORICAL, f)
                self.assertIn(f.default, f.categories, f)
        self.assertEqual(m.feature("checking_status").categories,
                         ["<0", "0<=X<200", ">=200", "no checking"])
        self.assertEqual(m.feature("age").default, 33.0, "the training median")
        self.assertIsNone(m.feature("nope"))
        self.assertEqual((m.target, m.positive_label), ("class", "bad"))
        self.assertEqual(set(m.scorecard), {"pdo", "base_score", "base_odds", "threshold"})
        self.assertTrue(0.7 <= m.metrics["test_roc_auc"] <= 1.0, m.metrics)
        self.assertRegex(m.sha256, r"^[0-9a-f]{64}$")
        self.assertTrue(m.run_id and m.trained_at_ms > 0)

    # ---- POST /predict ----

    def test_predict(self):
        applicant = self.applicant(checking_status="<0", duration=36, credit_amount=7500)
        p = self.c.predict(applicant)
        self.assertTrue(0.0 < p.probability < 1.0, p)
        sc = self.model.scorecard
        factor = sc["pdo"] / math.log(2.0)
        offset = sc["base_score"] - factor * math.log(sc["base_odds"])
        self.assertAlmostEqual(p.score, offset + factor * math.log((1 - p.probability)
                                                                   / p.probability), delta=1e-6)
        self.assertEqual(p.decision, "decline" if p.probability >= sc["threshold"] else "approve")
        self.assertTrue(1 <= len(p.reasons) <= 4, p.reasons)
        for r in p.reasons:
            self.assertIn(r.feature, FEATURES)
            self.assertGreater(r.impact, 0)
            self.assertTrue(r.text.startswith(r.feature + " = "), r.text)
        self.assertEqual(p.reasons[0].feature, "checking_status", "<0 is the riskiest status")
        self.assertEqual((p.model_name, p.model_version, p.model_alias),
                         (stack.MODEL, 1, "champion"))
        self.assertTrue(p.request_id.startswith("gw-"), p.request_id)
        # The same numbers as the predictor gives creditoctl directly.
        out = subprocess.run([stack.built("services/ctl/creditoctl"), "--predictor",
                              self.stack.predictor.target, "predict", "--json",
                              json.dumps(applicant)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        direct = json.loads(out.stdout)["prediction"]
        self.assertEqual(p.probability, direct["probability"])
        self.assertEqual(p.score, direct["score"])
        self.assertEqual([r.feature for r in p.reasons], [r["feature"] for r in direct["reasons"]])

    def test_predict_refuses_what_json_cannot_say(self):
        with self.assertRaises(ValueError):
            self.c.predict([self.model.defaults()])
        with self.assertRaises(ValueError):
            self.c.predict(self.applicant(duration=float("nan")))

    # ---- 401 ----

    def test_wrong_key(self):
        bad = client.Client(self.url, "not-the-key")
        for call in (bad.get_model, lambda: bad.predict(self.model.defaults())):
            with self.assertRaises(client.AuthError) as cm:
                call()
            e = cm.exception
            self.assertEqual((e.status, e.detail), (401, "Invalid API key"))
            self.assertIn("Invalid API key", str(e))
            self.assertTrue(e.request_id)

    def test_no_key(self):
        with self.assertRaises(client.AuthError) as cm:
            client.Client(self.url, "").get_model()
        self.assertEqual(cm.exception.detail, "Not authenticated: x-api-key missing")

    def test_key_with_trailing_space_is_another_key(self):
        with self.assertRaises(client.AuthError):
            client.Client(self.url, self.stack.key + " ").get_model()

    # ---- 422 ----

    def test_422_per_field(self):
        bad = self.applicant(duration="abc", checking_status="zzz", credit_amount=True,
                             job=None, colour="blue")
        with self.assertRaises(client.ValidationError) as cm:
            self.c.predict(bad)
        e = cm.exception
        self.assertEqual(e.status, 422)
        got = {x.field: x for x in e.errors}
        self.assertEqual(set(got), {"duration", "checking_status", "credit_amount", "job",
                                    "colour"}, e.errors)
        self.assertEqual(got["duration"].type, "float_parsing")
        self.assertEqual(got["duration"].input, "abc")
        self.assertEqual(got["checking_status"].type, "enum")
        self.assertEqual(got["checking_status"].ctx["expected"],
                         "'<0', '0<=X<200', '>=200' or 'no checking'")
        self.assertEqual(got["credit_amount"].type, "float_type")
        self.assertEqual(got["job"].type, "missing")
        self.assertEqual(got["job"].msg, "Field required")
        self.assertEqual(got["colour"].type, "extra_forbidden")
        by = e.by_field()
        self.assertEqual(by["duration"],
                         ["Input should be a valid number, unable to parse string as a number"])
        self.assertIn("5 fields not accepted", str(e))

    def test_422_one_field(self):
        with self.assertRaises(client.ValidationError) as cm:
            self.c.predict(self.applicant(age=None))
        self.assertEqual([(x.field, x.type) for x in cm.exception.errors], [("age", "missing")])
        self.assertIn("1 field not accepted", str(cm.exception))

    # ---- 429 ----

    def test_429_with_the_wait(self):
        url = self.stack.gateway(rate_limit_key="2/minute")
        c = client.Client(url, self.stack.key)
        model = c.get_model()                       # 1 of 2
        c.predict(model.defaults())                 # 2 of 2
        for call in (lambda: c.predict(model.defaults()), c.get_model):
            with self.assertRaises(client.RateLimited) as cm:
                call()
            e = cm.exception
            self.assertEqual(e.status, 429)
            self.assertEqual(e.detail, "Rate limit exceeded: 2 per 1 minute")
            self.assertIsInstance(e.retry_after, int)
            self.assertTrue(1 <= e.retry_after <= 60, e.retry_after)
        # Another key's limit is its own: a wrong key is still told it is wrong.
        with self.assertRaises(client.AuthError):
            client.Client(url, "not-the-key").get_model()

    def test_retry_after_forms(self):
        now = 1_800_000_000
        self.assertEqual(client._retry_after({"Retry-After": "17"}, now), 17)
        date = email.utils.formatdate(now + 30, usegmt=True)
        self.assertEqual(client._retry_after({"Retry-After": date}, now), 30)
        self.assertEqual(client._retry_after({"X-RateLimit-Reset": str(now + 42)}, now), 42)
        self.assertIsNone(client._retry_after({}, now))

    # ---- the gateway or the predictor out of reach ----

    def test_unreachable_gateway(self):
        url = "http://127.0.0.1:%d" % stack.free_port()
        with self.assertRaises(client.Unavailable) as cm:
            client.Client(url, self.stack.key).get_model()
        e = cm.exception
        self.assertIsNone(e.status)
        self.assertEqual(e.reason, "Connection refused")
        self.assertIn(url, str(e))

    def test_gateway_that_never_answers(self):
        # A listening socket nobody accepts on: the connection is made, no answer ever comes.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(8)
            c = client.Client("http://127.0.0.1:%d" % s.getsockname()[1], "k", timeout=0.5)
            t0 = time.monotonic()
            with self.assertRaises(client.Unavailable) as cm:
                c.predict({"age": 30})
            took = time.monotonic() - t0
        self.assertEqual(cm.exception.reason, "no answer within 0.5 s")
        self.assertLess(took, 3.0)

    def test_gateway_that_hangs_up(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(8)

            def hang_up():
                conn, _ = s.accept()
                conn.recv(65536)
                conn.close()
            t = threading.Thread(target=hang_up, daemon=True)
            t.start()
            with self.assertRaises(client.Unavailable) as cm:
                client.Client("http://127.0.0.1:%d" % s.getsockname()[1], "k").get_model()
            t.join(5)
        self.assertIsNone(cm.exception.status)
        self.assertTrue(cm.exception.reason)

    def test_no_predictor_is_503(self):
        url = self.stack.gateway(predictors="127.0.0.1:%d" % stack.free_port())
        with self.assertRaises(client.Unavailable) as cm:
            client.Client(url, self.stack.key).predict(self.model.defaults())
        e = cm.exception
        self.assertEqual(e.status, 503)
        self.assertTrue(e.reason.startswith("No predictor is available"), e.reason)

    # ---- other answers ----

    def test_other_status_is_a_gateway_error(self):
        with self.assertRaises(client.GatewayError) as cm:
            client.Client(self.url + "/nope", self.stack.key).get_model()
        e = cm.exception
        self.assertIs(type(e), client.GatewayError)
        self.assertEqual((e.status, e.detail), (404, "Not Found"))

    def test_answers_no_gateway_sends(self):
        srv = canned_server(200, "text/plain", b"hello")
        try:
            c = client.Client("http://127.0.0.1:%d/" % srv.server_address[1], "k")
            with self.assertRaises(client.GatewayError) as cm:
                c.get_model()
            self.assertIn("not a JSON object", str(cm.exception))
            srv.canned = (200, "application/json", b'{"probability": "high"}')
            with self.assertRaises(client.GatewayError) as cm:
                c.predict({})
            self.assertIn("not understood", str(cm.exception))
            srv.canned = (200, "application/json", b" " * (client.MAX_RESPONSE + 10))
            with self.assertRaises(client.GatewayError) as cm:
                c.get_model()
            self.assertIn("larger than", str(cm.exception))
            srv.canned = (500, "text/html", b"<h1>oops</h1>")
            with self.assertRaises(client.GatewayError) as cm:
                c.get_model()
            self.assertEqual((cm.exception.status, cm.exception.detail), (500, None))
            self.assertIn("<h1>oops</h1>", str(cm.exception))
        finally:
            srv.shutdown()
            srv.server_close()

    def test_bad_urls(self):
        for url in ("", None, "127.0.0.1:8080", "ftp://127.0.0.1/", "http://"):
            with self.assertRaises(ValueError, msg=repr(url)):
                client.Client(url, "k")


if __name__ == "__main__":
    procs.install_signal_handlers()
    prog = unittest.main(exit=False, verbosity=2)
    r = prog.result
    print("%d passed, %d failed, %d skipped" % (
        r.testsRun - len(r.failures) - len(r.errors) - len(r.skipped),
        len(r.failures) + len(r.errors), len(r.skipped)))
    sys.exit(0 if r.wasSuccessful() else 1)
