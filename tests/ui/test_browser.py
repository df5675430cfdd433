#!/usr/bin/python3
"""UI end to end: ui/app.py served by a real Streamlit server (1.30.0, from tests/ui's lockfile,
see streamlit_env.py) and used in Debian's headless Chromium (playwright-core), against a real
gateway in front of a predictor serving German Credit's champion (stack.py).

Four Streamlit servers, each with its own settings:
- the right key: the form is built from GET /v1/model (a field per feature), a category and
  two numbers are changed, the form is submitted, and the page shows the probability, score and
  decision the gateway gives for that applicant, its reasons in words, and the model;
- a wrong key: the page shows the 401 message and no form;
- the right key on a gateway limited to 2 requests a minute: the second scoring shows the 429
  message with the wait;
- a gateway that is not there (set through the environment rather than secrets.toml, as
  docker-compose.yml does): the page says it cannot reach it;
- then a new champion whose schema differs from the form the first page holds: submitting it
  shows the 422 of each field under the field and in a summary, and the next page is built from
  the new model.

Run: /usr/bin/python3 tests/ui/test_browser.py [BUILD_DIR]   (or CREDITO_BUILD_DIR; the
Streamlit runtime goes to CREDITO_UI_WORKDIR, default BUILD_DIR/tests/ui/streamlit-env).
Needs `npm ci` in tests/ui and Debian's chromium and python3-* packages (streamlit_env.py
names them). Screenshots of each page go to the runtime folder (ui-*.png).
"""
import csv
import json
import os
import shutil
import subprocess
import sys
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "ui"))
sys.path.insert(0, HERE)
if len(sys.argv) > 1 and os.path.isdir(sys.argv[1]):
    os.environ["CREDITO_BUILD_DIR"] = os.path.abspath(sys.argv.pop(1))

import client  # noqa: E402  (ui/client.py)
import stack  # noqa: E402
import streamlit_env  # noqa: E402
import procs  # noqa: E402  (tests/interop, put on sys.path by stack)

APP = os.path.join(ROOT, "ui", "app.py")
CHROMIUM = "/usr/bin/chromium"
SUBMIT = "Score the applicant"
# What the test changes in the form, by field label, and the same applicant by feature name.
SELECT = {"Checking status": "<0", "Savings status": "no known savings"}
NUMBER = {"Duration": 36, "Credit amount": 7500}
CHANGES = {"checking_status": "<0", "savings_status": "no known savings", "duration": 36,
           "credit_amount": 7500}


def label(name):
    words = name.replace("_", " ")
    return words[:1].upper() + words[1:]


class Streamlit:
    """`streamlit run ui/app.py` on a free loopback port, in a folder of its own (its working
    directory and $HOME). The settings go to .streamlit/secrets.toml there (Streamlit reads
    secrets from both), or with secrets=False to CREDITO_GATEWAY_URL and CREDITO_API_KEY in
    its environment, as docker-compose.yml sets them."""

    def __init__(self, program, folder, gateway_url, api_key, secrets=True):
        os.makedirs(os.path.join(folder, ".streamlit"))
        env = dict(os.environ, HOME=folder, PYTHONDONTWRITEBYTECODE="1")
        for k in ("CREDITO_GATEWAY_URL", "CREDITO_API_KEY"):
            env.pop(k, None)
        if secrets:
            with open(os.path.join(folder, ".streamlit", "secrets.toml"), "w") as f:
                f.write("gateway_url = %s\napi_key = %s\n" % (json.dumps(gateway_url),
                                                             json.dumps(api_key)))
        else:
            env.update(CREDITO_GATEWAY_URL=gateway_url, CREDITO_API_KEY=api_key)
        self.port = stack.free_port()
        self.url = "http://127.0.0.1:%d/" % self.port
        self.log = open(os.path.join(folder, "streamlit.log"), "w+")
        self.proc = subprocess.Popen(
            [program, "run", APP, "--server.address", "127.0.0.1", "--server.port",
             str(self.port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--global.developmentMode", "false", "--server.fileWatcherType", "none",
             "--server.runOnSave", "false"],
            cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT, preexec_fn=procs._die_with_parent)

    def healthy(self):
        try:
            with urllib.request.urlopen(self.url + "_stcore/health", timeout=1) as r:
                return r.read().strip() == b"ok"
        except OSError:
            return False

    def wait(self, timeout=30):
        if not stack.wait_until(lambda: self.healthy() or self.proc.poll() is not None,
                                timeout, 0.1) or not self.healthy():
            raise AssertionError("streamlit did not come up on %s:\n%s" % (self.url,
                                                                           self.output()))

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-4000:]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


class BrowserTest(unittest.TestCase):
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        cls.node = node = shutil.which("node")
        cls.browser_s = 0.0
        if not node:
            raise RuntimeError("FAIL: node missing (Debian: apt-get install nodejs)")
        if not os.access(CHROMIUM, os.X_OK):
            raise RuntimeError("FAIL: %s missing (Debian: apt-get install chromium)" % CHROMIUM)
        if not os.path.isdir(os.path.join(HERE, "node_modules", "playwright-core")):
            raise RuntimeError("FAIL: playwright-core missing: cd tests/ui && npm ci")
        workdir = os.environ.get("CREDITO_UI_WORKDIR") or os.path.join(
            procs.build_dir(), "tests", "ui", "streamlit-env")
        cls.workdir = workdir
        t0 = time.monotonic()
        try:
            program = streamlit_env.ensure(workdir)
        except streamlit_env.SetupError as e:
            raise RuntimeError("FAIL: %s" % e)
        cls.setup_s = time.monotonic() - t0
        cls.stack = stack.Stack()
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()
        good = cls.stack.gateway()
        limited = cls.stack.gateway(rate_limit_key="2/minute")
        nowhere = "http://127.0.0.1:%d" % stack.free_port()
        key = cls.stack.key
        cls.client = client.Client(good, key)
        cls.model = cls.client.get_model()
        cls.expected = cls.client.predict(dict(cls.model.defaults(), **CHANGES))
        cls.servers = {}
        for name, url, k in (("ok", good, key), ("wrong_key", good, "not-the-key"),
                             ("limited", limited, key), ("unreachable", nowhere, key)):
            # The unreachable one takes its settings from the environment.
            s = Streamlit(program, os.path.join(cls.stack.tmp, "ui-" + name), url, k,
                          secrets=name != "unreachable")
            cls.addClassCleanup(s.kill)
            cls.servers[name] = s
        for s in cls.servers.values():
            s.wait()
        ok = cls.servers["ok"].url
        cls.results = cls.drive([
            {"name": "ok", "url": ok, "wait_form": True, "select": SELECT, "number": NUMBER,
             "submit": SUBMIT, "submits": 1, "expect": "Why", "screenshot": cls.shot("ok")},
            {"name": "wrong_key", "url": cls.servers["wrong_key"].url,
             "expect": "refused the API key", "screenshot": cls.shot("wrong-key")},
            {"name": "limited", "url": cls.servers["limited"].url, "wait_form": True,
             "submit": SUBMIT, "submits": 2, "expect": "Too many requests",
             "screenshot": cls.shot("limited")},
            {"name": "unreachable", "url": cls.servers["unreachable"].url,
             "expect": "Cannot reach the gateway", "screenshot": cls.shot("unreachable")},
        ])
        # The model changes under the "ok" page's form (cached for a minute): the next
        # submission gets 422s for fields the new model does not take, and the page after
        # that is built from the new model.
        cls.new_version = cls.change_schema()
        cls.results.update(cls.drive([
            {"name": "schema_422", "url": ok, "wait_form": True, "submit": SUBMIT,
             "submits": 1, "expect": "did not accept the applicant",
             "screenshot": cls.shot("schema-422")},
            {"name": "schema_new", "url": ok, "wait_form": True, "submit": SUBMIT,
             "expect": "version %d" % cls.new_version, "screenshot": cls.shot("schema-new")},
        ]))

    @classmethod
    def drive(cls, visits):
        """One Chromium for a list of visits (browser.js); {name: what the page showed}."""
        plan = os.path.join(cls.stack.tmp, "plan.json")
        with open(plan, "w") as f:
            json.dump({"chromium": CHROMIUM, "timeout_ms": 20000, "visits": visits}, f)
        env = dict(os.environ, NODE_PATH=os.path.join(HERE, "node_modules"))
        t0 = time.monotonic()
        p = subprocess.run([cls.node, os.path.join(HERE, "browser.js"), plan],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=150, env=env, cwd=HERE)
        cls.browser_s += time.monotonic() - t0
        try:
            out = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise AssertionError("browser.js printed no report (exit %d):\n%s\n%s"
                                 % (p.returncode, p.stdout[-2000:], p.stderr[-2000:]))
        return {v["name"]: v for v in out["visits"]}

    @classmethod
    def shot(cls, name):
        return os.path.join(cls.workdir, "ui-%s.png" % name)

    @classmethod
    def change_schema(cls):
        """A new champion whose schema differs from the form the "ok" page holds: no
        own_telephone, and duration a category (short, long). Returns once the gateway
        validates against it."""
        src = os.path.join(ROOT, "data", "raw", "credit-g.arff")
        dst = os.path.join(cls.stack.tmp, "credit-g-v2.csv")
        with open(src, newline="") as f:
            lines = f.read().splitlines()
        names = [ln.split()[1] for ln in lines if ln.lower().startswith("@attribute")]
        rows = csv.reader(lines[next(i for i, ln in enumerate(lines)
                                     if ln.lower().startswith("@data")) + 1:], quotechar="'")
        drop = names.index("own_telephone")
        dur = names.index("duration")
        with open(dst, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow([n for i, n in enumerate(names) if i != drop])
            for row in rows:
                if not row or row[0].startswith("%"):
                    continue
                row[dur] = "short" if float(row[dur]) <= 24 else "long"
                w.writerow([v for i, v in enumerate(row) if i != drop])
        out = cls.stack.retrain(dst, "credit-g-v2")
        version = out["model_version"]["version"]
        old = dict(cls.model.defaults(), **CHANGES)

        def refused():
            # An answer naming the new version drops the gateway's cached schema.
            try:
                cls.client.predict(old)
            except client.ValidationError as e:
                return "own_telephone" in e.by_field()
            return False
        if not stack.wait_until(refused, 20, 0.2):
            raise AssertionError("the gateway still takes the old schema 20 s after version %d"
                                 "\n%s" % (version, cls.stack.logs()))
        return version

    def visit(self, name):
        v = self.results.get(name) or self.results.get("chromium")
        self.assertIsNotNone(v, self.results)
        self.assertTrue(v["ok"], "%s: %s\npage text:\n%s\nbrowser errors: %s\nstreamlit:\n%s"
                        % (name, v.get("error"), v.get("text", "")[:3000], v.get("logs"),
                           self.servers[name].output() if name in self.servers else ""))
        return v

    def test_score_and_reasons(self):
        v = self.visit("ok")
        # The form: one field per feature of the served model, labelled in words.
        for f in self.model.features:
            self.assertIn(label(f.name), v["labels"], "no field for %s" % f.name)
        # What the real gateway says about this applicant.
        p = self.expected
        self.assertEqual(v["metrics"].get("Probability of default"),
                         "%.1f%%" % (100 * p.probability), v["metrics"])
        self.assertEqual(v["metrics"].get("Score"), "%.0f" % p.score, v["metrics"])
        self.assertEqual(v["metrics"].get("Decision"), p.decision.capitalize(), v["metrics"])
        self.assertTrue(p.reasons)
        self.assertEqual(len(v["reasons"]), len(p.reasons), v["reasons"])
        applicant = dict(self.model.defaults(), **CHANGES)
        for shown, r in zip(v["reasons"], p.reasons):
            value = applicant[r.feature]
            value = str(int(value)) if isinstance(value, float) and value.is_integer() else str(
                value)
            self.assertIn("%s is %s" % (label(r.feature), value), shown)
            self.assertIn("raised the risk of default", shown)
            self.assertIn("multiplying its odds by", shown)
        self.assertIn("Scored by model %s version %d" % (p.model_name, p.model_version),
                      v["text"])
        # The changed category made it into the request: <0 is German Credit's riskiest.
        self.assertIn("checking_status", [r.feature for r in p.reasons])

    def test_wrong_key_says_401(self):
        v = self.visit("wrong_key")
        self.assertIn("The gateway refused the API key", v["text"])
        self.assertIn("HTTP 401", v["text"])
        self.assertIn("Invalid API key", v["text"])
        self.assertNotIn(SUBMIT, v["text"], "no form without a model")

    def test_rate_limited_says_wait(self):
        v = self.visit("limited")
        self.assertIn("Too many requests", v["text"])
        self.assertIn("Rate limit exceeded: 2 per 1 minute", v["text"])
        self.assertRegex(v["text"], r"Try again in \d+ seconds?\.")

    def test_unreachable_gateway(self):
        v = self.visit("unreachable")
        self.assertIn("Cannot reach the gateway", v["text"])
        self.assertIn("Connection refused", v["text"])

    def test_schema_change_gives_422_per_field(self):
        v = self.visit("schema_422")
        self.assertIn("The gateway did not accept the applicant (HTTP 422)", v["text"])
        summary = [a for a in v["alerts"] if "did not accept" in a]
        self.assertEqual(len(summary), 1, v["alerts"])
        self.assertIn("Own telephone: Extra inputs are not permitted", summary[0])
        self.assertIn("Duration: Input should be a valid string", summary[0])
        # Each message also sits under its own field.
        under = [a for a in v["alerts"] if a not in summary]
        self.assertIn("Extra inputs are not permitted", under)
        self.assertIn("Input should be a valid string", under)
        # The next page is built from the new model.
        v = self.visit("schema_new")
        self.assertIn("credit-default version %d" % self.new_version, v["text"])
        self.assertNotIn("Own telephone", v["labels"])
        self.assertIn("Duration", v["labels"])


if __name__ == "__main__":
    procs.install_signal_handlers()
    t0 = time.monotonic()
    prog = unittest.main(exit=False, verbosity=2)
    r = prog.result
    print("setup %.1f s, browser %.1f s, total %.1f s" % (
        getattr(BrowserTest, "setup_s", 0), getattr(BrowserTest, "browser_s", 0),
        time.monotonic() - t0))
    sys.exit(0 if r.wasSuccessful() else 1)
