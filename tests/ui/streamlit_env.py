#!/usr/bin/python3
"""A Streamlit 1.30.0 runtime for the browser test, built from tests/ui/node_modules (npm ci
with tests/ui/package-lock.json) and Debian's Python packages: no PyPI.

stlite's npm package @stlite/mountable 0.45.0 carries the Streamlit 1.30.0 wheel (CPython 3.11,
Debian 12's /usr/bin/python3) and Streamlit's React frontend. This installs the wheel into a venv
that sees Debian's python3-* packages, stubs pyarrow (not in Debian 12: DataFrame elements cannot
render), and serves stlite's frontend from the real tornado server with its Pyodide worker replaced
by a bridge to the server's WebSocket (streamlit/worker-bridge.js, from the project's
streamlit-harness). Users install the real Streamlit with pip (ui/requirements.txt).

Usage: streamlit_env.py WORKDIR   (prints the path of WORKDIR's streamlit program)
"""
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
STLITE = os.path.join(HERE, "node_modules", "@stlite", "mountable")
STLITE_VERSION = "0.45.0"
WHEEL = "streamlit-1.30.0-cp311-none-any.whl"
# stlite 0.45.0's Pyodide worker chunk, which the bridge replaces.
WORKER_CHUNK = os.path.join("static", "js", "4581.b2cd8235.chunk.js")
PYTHON = "/usr/bin/python3"
DEBIAN_HINT = ("apt-get install python3-venv python3-tornado python3-pandas python3-numpy "
               "python3-altair python3-pil python3-protobuf python3-click python3-toml "
               "python3-cachetools python3-blinker python3-tenacity python3-rich "
               "python3-watchdog python3-git python3-typing-extensions python3-packaging "
               "python3-requests python3-tzlocal python3-validators python3-dateutil "
               "python3-tz python3-importlib-metadata chromium")
PYARROW_STUB = '''"""Stand-in for pyarrow, which Debian 12 lacks (as stlite does in Pyodide)."""
__version__ = "0.0.1"


class Table:
    @classmethod
    def from_pandas(cls, *args, **kwargs):
        raise NotImplementedError("pyarrow is not available here")
'''


class SetupError(RuntimeError):
    pass


def _digest():
    """What the runtime is made from; a change rebuilds it."""
    h = hashlib.sha256()
    for name in ("package-lock.json", "streamlit/worker-bridge.js", "streamlit/index.html",
                 "streamlit_env.py"):
        with open(os.path.join(HERE, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def _run(argv):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        raise SetupError("%s failed (%d):\n%s" % (" ".join(argv), p.returncode, p.stdout))
    return p.stdout


def _check_sources():
    try:
        with open(os.path.join(STLITE, "package.json")) as f:
            version = json.load(f)["version"]
    except OSError:
        raise SetupError("%s missing: run `npm ci` in tests/ui (deploy/local/install-deps.sh "
                         "does)" % STLITE)
    if version != STLITE_VERSION:
        raise SetupError("@stlite/mountable is %s, want %s: run `npm ci` in tests/ui"
                         % (version, STLITE_VERSION))
    worker = os.path.join(STLITE, "build", WORKER_CHUNK)
    with open(worker, encoding="utf-8", errors="replace") as f:
        if '"initData"' not in f.read():
            raise SetupError("%s is not stlite's worker chunk" % worker)
    p = subprocess.run([PYTHON, "-c", "import tornado, pandas, altair, PIL, google.protobuf, "
                        "click, toml, cachetools, blinker, tenacity, rich, watchdog, git, "
                        "validators, tzlocal, venv"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        raise SetupError("%s lacks Streamlit's dependencies (%s); Debian: %s"
                         % (PYTHON, p.stdout.strip().splitlines()[-1], DEBIAN_HINT))


def _build(workdir):
    venv = os.path.join(workdir, "venv")
    shutil.rmtree(venv, ignore_errors=True)
    _run([PYTHON, "-m", "venv", "--system-site-packages", venv])
    vpy = os.path.join(venv, "bin", "python")
    _run([vpy, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
          "--disable-pip-version-check", os.path.join(STLITE, "build", "pypi", WHEEL)])
    site = _run([vpy, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip()
    os.makedirs(os.path.join(site, "pyarrow"), exist_ok=True)
    with open(os.path.join(site, "pyarrow", "__init__.py"), "w") as f:
        f.write(PYARROW_STUB)
    static = os.path.join(site, "streamlit", "static")
    shutil.rmtree(static, ignore_errors=True)
    shutil.copytree(os.path.join(STLITE, "build"), static,
                    ignore=lambda d, names: [n for n in names
                                             if n == "pypi" or n.endswith(".map")])
    shutil.copyfile(os.path.join(HERE, "streamlit", "worker-bridge.js"),
                    os.path.join(static, WORKER_CHUNK))
    shutil.copyfile(os.path.join(HERE, "streamlit", "index.html"),
                    os.path.join(static, "index.html"))
    out = _run([os.path.join(venv, "bin", "streamlit"), "version"])
    if "1.30.0" not in out:
        raise SetupError("streamlit version said %r" % out)


def ensure(workdir):
    """Builds the runtime in workdir unless it is there and current; returns the streamlit
    program's path. Safe to call from several processes at once."""
    os.makedirs(workdir, exist_ok=True)
    streamlit = os.path.join(workdir, "venv", "bin", "streamlit")
    stamp = os.path.join(workdir, "stamp")
    with open(os.path.join(workdir, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _check_sources()
        want = _digest()
        try:
            with open(stamp) as f:
                have = f.read().strip()
        except OSError:
            have = ""
        if have != want or not os.access(streamlit, os.X_OK):
            if os.path.exists(stamp):
                os.unlink(stamp)
            _build(workdir)
            with open(stamp, "w") as f:
                f.write(want + "\n")
    return streamlit


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    try:
        print(ensure(os.path.abspath(sys.argv[1])))
    except SetupError as e:
        sys.exit("FAIL: %s" % e)
