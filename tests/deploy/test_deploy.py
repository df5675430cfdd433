"""lint.deploy: the deployment files agree with each other and with the build.

- docker-compose.yml: `docker-compose config -q` accepts it with .env.example, and refuses it with
  no environment (the secrets have no defaults); every ${VAR} it reads is in .env.example with
  the same default, and .env.example holds nothing it does not read; services, dependencies,
  health checks and the predictors' shared alias hang together.
- Secrets: nothing committed looks like a real secret; each password, secret key and API key is
  an obvious example (change-me), and each API-key hash is the hash of an example key.
- deploy/docker: the Dockerfile builds every installed program and its runtime stage carries the
  libraries they link; the scripts pass `sh -n` (and shellcheck and hadolint when installed).
- deploy/k8s: every manifest parses, has a known kind and a name; selectors, ports, probes,
  Services, Secrets and addresses refer to things that exist; kustomization lists every file.
- dvc.yaml: every ${...} resolves in params.yaml, every command exists, and the stages run here
  in order in a scratch copy and leave exactly their outputs.
- .devcontainer: has the toolchain and libraries of deploy/local/install-deps.sh, and runs it.

Standard library and PyYAML (/usr/bin/python3, Debian python3-yaml); docker-compose (Debian
docker-compose) for the compose check. CREDITO_BUILD_DIR is the CMake build directory.
"""
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(os.environ.get("CREDITO_BUILD_DIR", os.path.join(ROOT, "build")))
IMAGE_UID = 10001
# The programs the image ships, by install(TARGETS) name, and where the build puts them.
PROGRAMS = {
    "credito-registry": "services/registry",
    "credito-trainer": "services/trainer",
    "credito-predictor": "services/predictor",
    "credito-gateway": "gateway",
    "creditoctl": "services/ctl",
}
# Words a committed secret must contain to count as an obvious example.
EXAMPLE_MARK = "change-me"

failures = []
passes = 0


def check(ok, what):
    """Records one check; a failure is kept and reported, and the run goes on."""
    global passes
    if ok:
        passes += 1
    else:
        failures.append(what)
        print("FAIL: " + what)
    return ok


def path(rel):
    return os.path.join(ROOT, rel)


def read(rel):
    with open(path(rel), encoding="utf-8") as f:
        return f.read()


def program(name):
    return os.path.join(BUILD, PROGRAMS[name], name)


def env_example():
    """The NAME=value lines of .env.example, in order."""
    out = {}
    for line in read(".env.example").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        check(sep == "=" and re.fullmatch(r"[A-Z][A-Z0-9_]*", name) is not None,
              ".env.example: not a NAME=value line: %r" % line)
        check(name not in out, ".env.example: %s twice" % name)
        out[name] = value
    return out


def sha256_hex(s):
    return hashlib.sha256(s.encode()).hexdigest()


# ---- YAML and JSON parse ----

class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last).
    Keys merged in with `<<` may be overridden: that is what merging is for."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key, _ in node.value:
            if key.tag == "tag:yaml.org,2002:merge":
                continue
            if key.value in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, "key %r given twice" % key.value, key.start_mark)
            seen.add(key.value)
        return super().construct_mapping(node, deep)


def check_parse():
    docs = {}
    files = ["docker-compose.yml", "dvc.yaml", "params.yaml"]
    files += sorted(os.path.relpath(p, ROOT) for p in glob.glob(path("deploy/k8s/*.yaml")))
    for rel in files:
        try:
            docs[rel] = [d for d in yaml.load_all(read(rel), Loader=StrictLoader)
                         if d is not None]
            check(len(docs[rel]) > 0, "%s: no YAML document" % rel)
        except (OSError, yaml.YAMLError) as e:
            check(False, "%s does not parse: %s" % (rel, e))
    try:
        json.loads(read(".devcontainer/devcontainer.json"))
        check(True, "")
    except (OSError, ValueError) as e:
        check(False, ".devcontainer/devcontainer.json does not parse: %s" % e)
    return docs


# ---- docker-compose.yml ----

def compose_cmd():
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"],
                                                 capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


def check_compose_config():
    cmd = compose_cmd()
    if not check(cmd is not None, "docker-compose not found (Debian: apt-get install "
                 "docker-compose; deploy/local/install-deps.sh installs it)"):
        return
    # A clean environment: the shell's variables would win over the env file.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tempfile.gettempdir()}
    with tempfile.TemporaryDirectory() as tmp:
        empty = os.path.join(tmp, "empty.env")
        open(empty, "w").close()
        ok = subprocess.run(cmd + ["--env-file", path(".env.example"), "-f",
                                   path("docker-compose.yml"), "config", "-q"],
                            capture_output=True, text=True, env=env, cwd=tmp)
        check(ok.returncode == 0, "docker-compose config -q with .env.example: %s"
              % (ok.stderr.strip() or ok.stdout.strip()))
        bare = subprocess.run(cmd + ["--env-file", empty, "-f", path("docker-compose.yml"),
                                     "config", "-q"],
                              capture_output=True, text=True, env=env, cwd=tmp)
        check(bare.returncode != 0, "docker-compose config accepts an empty environment: a "
              "secret has a default in docker-compose.yml")


# $$ (escaped), ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, or a bare $NAME.
VAR_RE = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}"
                    r"|([A-Za-z_][A-Za-z0-9_]*))")


def check_compose_vars(env):
    text = read("docker-compose.yml")
    used = {}
    for m in VAR_RE.finditer(text):
        if m.group(1) == "$":
            continue  # $$: a literal $ for the container's shell
        name = m.group(2) or m.group(5)
        check(m.group(5) is None, "docker-compose.yml: write ${%s}, not $%s" % (name, name))
        used.setdefault(name, set())
        if m.group(3) in ("-", ":-"):
            used[name].add(m.group(4))
    for name in sorted(used):
        if not check(name in env, "docker-compose.yml reads ${%s}, which .env.example lacks"
                     % name):
            continue
        if SECRET_NAME.search(name) or name == "CREDITO_API_KEYS":
            check(not used[name], "docker-compose.yml: the secret ${%s} has a default; write "
                  "${%s:?...} so a missing .env stops compose" % (name, name))
        for default in used[name]:
            check(default == env[name], "docker-compose.yml: ${%s:-%s} but .env.example says "
                  "%s=%s" % (name, default, name, env[name]))
    for name in env:
        check(name in used, ".env.example: %s is not read by docker-compose.yml" % name)


def check_compose_services(doc):
    services = doc.get("services", {})
    for want in ("minio", "minio-setup", "registry", "trainer", "first-model", "predictor-1",
                 "predictor-2", "gateway", "ui"):
        check(want in services, "docker-compose.yml: no service %s" % want)
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            check(dep in services, "%s depends on unknown service %s" % (name, dep))
            cond = cond.get("condition") if isinstance(cond, dict) else None
            check(cond in ("service_healthy", "service_completed_successfully"),
                  "%s waits on %s with %s, not its health or completion" % (name, dep, cond))
            if cond == "service_healthy":
                check("healthcheck" in services.get(dep, {}) or dep == "ui",
                      "%s waits on the health of %s, which has no healthcheck" % (name, dep))
        command = svc.get("command") or []
        if svc.get("image", "").startswith("${CREDITO_IMAGE"):
            prog = command[0] if command else "predictor"
            if prog in ("registry", "trainer", "predictor", "gateway"):
                test = (svc.get("healthcheck") or {}).get("test") or []
                check(test[1:3] == ["credito-healthcheck", prog],
                      "%s: its healthcheck should be credito-healthcheck %s" % (name, prog))
            else:
                check(svc.get("restart") == "no", "%s is a one-shot job: restart: \"no\"" % name)
    aliased = [n for n, s in services.items()
               if "predictors" in (((s.get("networks") or {}).get("default") or {})
                                   .get("aliases") or [])]
    check(len(aliased) >= 2, "fewer than two services carry the alias `predictors`")
    gw_env = services.get("gateway", {}).get("environment", {})
    check(gw_env.get("CREDITO_PREDICTORS") == "dns:///predictors:50053",
          "the gateway should balance over dns:///predictors:50053")


def check_minio_setup_script(doc):
    svc = doc.get("services", {}).get("minio-setup", {})
    script = (svc.get("command") or [""])[0].replace("$$", "$")
    run = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True)
    check(run.returncode == 0, "minio-setup's script: sh -n: %s" % run.stderr.strip())
    if shutil.which("shellcheck"):
        run = subprocess.run(["shellcheck", "-s", "sh", "-"], input=script, capture_output=True,
                             text=True)
        check(run.returncode == 0, "minio-setup's script: shellcheck:\n" + run.stdout)


# ---- secrets ----

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)API_KEY$|PRIVATE", re.I)
REAL_SECRET = [
    (re.compile(r"AKIA[0-9A-Z]{16}"), "an AWS access key id"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"\bminioadmin\b"), "MinIO's well-known default credentials"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "a 64-hex value (a key hash?)"),
]


def example_keys(env):
    """The plain example API keys, and the NAME:HASH lines they are allowed to appear as."""
    keys = {v for n, v in env.items() if SECRET_NAME.search(n) and EXAMPLE_MARK in v}
    return {sha256_hex(k) for k in keys}


def check_key_lines(where, value, hashes):
    for entry in re.split(r"[,\n]", value):
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        name, _, digest = entry.partition(":")
        check(digest in hashes, "%s: the key hash of %s is not the hash of an example key "
              "(%s...)" % (where, name, EXAMPLE_MARK))


def check_secrets(env, docs):
    hashes = example_keys(env)
    for name, value in env.items():
        if name == "CREDITO_API_KEYS":
            check_key_lines(".env.example " + name, value, hashes)
        elif SECRET_NAME.search(name):
            check(EXAMPLE_MARK in value, ".env.example: %s is not an obvious example (put "
                  "%r in it)" % (name, EXAMPLE_MARK))
    for rel, ds in docs.items():
        if not rel.startswith("deploy/k8s/"):
            continue
        for d in ds:
            if d.get("kind") != "Secret":
                continue
            check("data" not in d, "%s: Secret data is base64, use stringData" % rel)
            for key, value in (d.get("stringData") or {}).items():
                where = "%s %s/%s" % (rel, d["metadata"]["name"], key)
                if key == "api-keys":
                    check_key_lines(where, value, hashes)
                elif SECRET_NAME.search(key):
                    check(EXAMPLE_MARK in value, "%s is not an obvious example" % where)
    allowed_hex = hashes
    scanned = ["docker-compose.yml", ".env.example", "dvc.yaml", "params.yaml",
               ".dvc/config.example", ".dockerignore", ".devcontainer/Dockerfile",
               ".devcontainer/devcontainer.json", "docs/deploy.md"]
    scanned += [os.path.relpath(p, ROOT) for p in glob.glob(path("deploy/docker/*"))]
    scanned += [os.path.relpath(p, ROOT) for p in glob.glob(path("deploy/k8s/*"))]
    for rel in scanned:
        if not os.path.exists(path(rel)):
            continue
        for rx, what in REAL_SECRET:
            for m in rx.finditer(read(rel)):
                check(m.group(0) in allowed_hex, "%s holds %s: %s" % (rel, what, m.group(0)))
    if shutil.which("git") and os.path.isdir(path(".git")):
        for rel in (".env", ".dvc/config.local", "ui/.streamlit/secrets.toml"):
            tracked = subprocess.run(["git", "-C", ROOT, "ls-files", "--error-unmatch", rel],
                                     capture_output=True).returncode == 0
            check(not tracked, "%s is committed" % rel)
        ignored = subprocess.run(["git", "-C", ROOT, "check-ignore", "-q", ".env"]).returncode
        check(ignored == 0, ".env is not git-ignored")


# ---- deploy/docker ----

def apt_packages(text):
    """Debian package names in the apt-get install lines of a Dockerfile's text."""
    out = set()
    for cmd in re.findall(r"apt-get install[^&]*", text):
        for word in cmd.replace("\\\n", " ").split():
            if re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", word) and word not in ("apt-get", "install"):
                out.add(word)
    return out


def stages(text):
    """{stage name: its text} of a multi-stage Dockerfile."""
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", text, flags=re.M | re.I)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def install_deps_packages():
    text = read("deploy/local/install-deps.sh")
    pkgs = set()
    for group in re.findall(r"packages\+?=\((.*?)\)", text, re.S):
        pkgs |= set(re.sub(r"#[^\n]*", "", group).split())
    check(len(pkgs) > 10, "cannot read the package list of deploy/local/install-deps.sh")
    return pkgs


def needed_packages(binary):
    """Debian packages of the libraries binary links directly (readelf NEEDED, then dpkg -S)."""
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True).stdout
    libs = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    pkgs = set()
    for lib in libs:
        m = re.search(r"^\s*%s \(libc6,x86-64[^)]*\) => (\S+)" % re.escape(lib), cache, re.M) \
            or re.search(r"^\s*%s \([^)]*\) => (\S+)" % re.escape(lib), cache, re.M)
        if not check(m is not None, "%s: cannot find %s" % (binary, lib)):
            continue
        real = os.path.realpath(m.group(1))
        owner = ""
        for candidate in (real, m.group(1)):
            owner = subprocess.run(["dpkg", "-S", candidate], capture_output=True,
                                   text=True).stdout
            if owner:
                break
        if check(owner != "", "%s: no Debian package owns %s" % (binary, real)):
            pkgs.add(owner.split(":")[0].strip())
    return pkgs


def check_dockerfile():
    text = read("deploy/docker/Dockerfile")
    st = stages(text)
    for want in ("build", "model", "runtime"):
        check(want in st, "deploy/docker/Dockerfile: no stage %s" % want)
    # Every program CMake installs is built and ends up in the image.
    installed = set()
    for cm in glob.glob(path("**/CMakeLists.txt"), recursive=True):
        parts = os.path.relpath(cm, ROOT).split(os.sep)
        if parts[0].startswith("build") or "node_modules" in parts:
            continue
        with open(cm, encoding="utf-8") as f:
            installed |= set(re.findall(r"install\(TARGETS\s+([\w-]+)\)", f.read()))
    check(installed == set(PROGRAMS), "install(TARGETS) names %s, the test knows %s"
          % (sorted(installed), sorted(PROGRAMS)))
    m = re.search(r"--target((?:\s+\\?\s*[\w-]+)+)", st.get("build", ""))
    targets = set(m.group(1).replace("\\", " ").split()) if m else set()
    check(targets == installed, "the Dockerfile builds %s, CMake installs %s"
          % (sorted(targets), sorted(installed)))
    # The build stage has every library the build needs (install-deps.sh, less test tools).
    build_pkgs = apt_packages(st.get("build", ""))
    test_only = {"libcmocka-dev", "libclang-rt-14-dev"}
    for p in sorted(install_deps_packages()):
        if p.endswith("-dev") and p not in test_only:
            check(p in build_pkgs, "deploy/docker/Dockerfile's build stage lacks %s" % p)
    # The runtime stage has every library the programs link.
    runtime_pkgs = apt_packages(st.get("runtime", "")) | {"libc6", "libgcc-s1"}
    for name in PROGRAMS:
        if not check(os.access(program(name), os.X_OK), "%s not built in %s" % (name, BUILD)):
            continue
        for p in sorted(needed_packages(program(name))):
            check(p in runtime_pkgs, "%s links a library of %s, missing from the runtime stage"
                  % (name, p))
    check_image_configure(st.get("build", ""))
    check("USER 10001" in st.get("runtime", ""), "the runtime stage does not run as uid 10001")
    check(re.search(r"^HEALTHCHECK ", st.get("runtime", ""), re.M) is not None,
          "the runtime stage has no HEALTHCHECK")
    for rel in ("deploy/docker/entrypoint.sh", "deploy/docker/healthcheck.sh",
                "deploy/docker/first-model.sh"):
        check(os.access(path(rel), os.X_OK), "%s is not executable (COPY keeps the mode)" % rel)
        check(re.search(r"^COPY %s " % re.escape(rel), text, re.M) is not None,
              "the Dockerfile does not copy %s" % rel)
    # The commands the image's scripts call exist in this build's creditoctl.
    if os.access(program("creditoctl"), os.X_OK):
        usage = subprocess.run([program("creditoctl"), "--help"], capture_output=True,
                               text=True)
        usage = usage.stdout + usage.stderr
        for cmd in ("health HOST:PORT", "model pull", "lineage", "dataset push", "train"):
            check(cmd in usage, "creditoctl --help does not offer `%s`, which the image uses"
                  % cmd)


def check_image_configure(build_stage):
    """The build stage's cmake configure line, as written, succeeds on this tree with only the
    packages the stage installs in mind (no tests: no cmocka). Configure only; a full build is
    the Docker build's job."""
    m = re.search(r"RUN (cmake -S \. -B /build .*?)(?:\\\n\s*)?&&", build_stage, re.S)
    if not check(m is not None, "the Dockerfile's build stage has no `cmake -S . -B /build` line"):
        return
    with tempfile.TemporaryDirectory(prefix="credito-image-") as tmp:
        args = m.group(1).replace("\\\n", " ").replace("/build", tmp).split()
        run = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
        check(run.returncode == 0, "the Dockerfile's configure line fails: %s"
              % run.stderr.strip()[-500:])
        check("CREDITO_TESTS=OFF" in m.group(1).replace(":BOOL", ""),
              "the image should build without tests (-DCREDITO_TESTS=OFF)")


def check_scripts():
    scripts = glob.glob(path("deploy/docker/*.sh"))
    for s in scripts:
        run = subprocess.run(["sh", "-n", s], capture_output=True, text=True)
        check(run.returncode == 0, "%s: sh -n: %s" % (s, run.stderr.strip()))
    if shutil.which("shellcheck"):
        run = subprocess.run(["shellcheck"] + scripts, capture_output=True, text=True)
        check(run.returncode == 0, "shellcheck deploy/docker:\n" + run.stdout)
    if shutil.which("hadolint"):
        for df in ("deploy/docker/Dockerfile", "deploy/docker/ui.Dockerfile",
                   ".devcontainer/Dockerfile"):
            run = subprocess.run(["hadolint", path(df)], capture_output=True, text=True)
            check(run.returncode == 0, "hadolint %s:\n%s" % (df, run.stdout))


BUILD_TOOLS = {"build-essential", "cmake", "pkg-config", "protobuf-compiler",
               "protobuf-c-compiler", "grpc-proto"}


def check_devcontainer():
    # The image has the toolchain and every library header, so the editor works at once;
    # postCreateCommand runs install-deps.sh for the rest (test and benchmark tools).
    pkgs = apt_packages(read(".devcontainer/Dockerfile"))
    for p in sorted(install_deps_packages()):
        if p.endswith("-dev") or p in BUILD_TOOLS:
            check(p in pkgs, ".devcontainer/Dockerfile lacks %s (deploy/local/install-deps.sh)"
                  % p)
    conf = json.loads(read(".devcontainer/devcontainer.json"))
    check("install-deps.sh" in conf.get("postCreateCommand", ""),
          "devcontainer.json's postCreateCommand should run deploy/local/install-deps.sh")
    exts = conf.get("customizations", {}).get("vscode", {}).get("extensions", [])
    check(any("clangd" in e or "cpptools" in e for e in exts), "no C extension in devcontainer")
    check(any("proto" in e for e in exts), "no protobuf extension in devcontainer")


# ---- deploy/k8s ----

KINDS = {
    "Namespace": "v1", "ConfigMap": "v1", "Secret": "v1", "Service": "v1",
    "Deployment": "apps/v1", "Job": "batch/v1",
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
}


def container_ports(pod):
    return {p.get("name"): p["containerPort"] for c in pod["containers"]
            for p in c.get("ports", [])}


def check_probe(where, probe, ports):
    if not probe:
        return
    for kind in ("grpc", "httpGet", "tcpSocket"):
        if kind in probe:
            port = probe[kind].get("port")
            ok = port in ports or port in ports.values()
            check(ok, "%s: the probe's port %s is not a container port" % (where, port))
            return
    check(False, "%s: a probe with no grpc, httpGet or tcpSocket" % where)


def check_k8s(docs):
    objs = []
    for rel, ds in docs.items():
        if rel.startswith("deploy/k8s/"):
            objs += [(rel, d) for d in ds]
    by_kind = {}
    for rel, d in objs:
        kind = d.get("kind")
        check(KINDS.get(kind) == d.get("apiVersion"), "%s: kind %s with apiVersion %s"
              % (rel, kind, d.get("apiVersion")))
        if kind != "Kustomization":
            check(bool((d.get("metadata") or {}).get("name")), "%s: a %s with no name"
                  % (rel, kind))
        by_kind.setdefault(kind, {})[(d.get("metadata") or {}).get("name")] = d
    kust = docs.get("deploy/k8s/kustomization.yaml", [{}])[0]
    listed = set(kust.get("resources", []))
    files = {os.path.basename(p) for p in glob.glob(path("deploy/k8s/*.yaml"))}
    check(listed == files - {"kustomization.yaml"}, "kustomization resources %s, files %s"
          % (sorted(listed), sorted(files - {"kustomization.yaml"})))
    images = {i.get("name") for i in kust.get("images", [])}

    services = by_kind.get("Service", {})
    pods = {}
    for kind in ("Deployment", "Job"):
        for name, d in by_kind.get(kind, {}).items():
            tmpl = d["spec"]["template"]
            labels = tmpl["metadata"].get("labels", {})
            sel = d["spec"].get("selector", {}).get("matchLabels", {})
            if kind == "Deployment":
                check(sel and all(labels.get(k) == v for k, v in sel.items()),
                      "%s: the selector does not match the pod labels" % name)
            spec = tmpl["spec"]
            sc = spec.get("securityContext", {})
            check(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == IMAGE_UID,
                  "%s: pods must run as non-root uid %d (the image's user)" % (name, IMAGE_UID))
            ports = container_ports(spec)
            pods[name] = (labels, ports, spec)
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            for c in spec["containers"]:
                where = "%s/%s" % (name, c["name"])
                check(c["image"].split(":")[0] in images, "%s: image %s is not in the "
                      "kustomization's images" % (where, c["image"]))
                csc = c.get("securityContext", {})
                check(csc.get("allowPrivilegeEscalation") is False, "%s: allowPrivilegeEscalation"
                      % where)
                for probe in ("readinessProbe", "livenessProbe"):
                    check_probe(where + " " + probe, c.get(probe), ports)
                if kind == "Deployment":
                    check("readinessProbe" in c, "%s: no readiness probe" % where)
                for vm in c.get("volumeMounts", []):
                    check(vm["name"] in volumes, "%s: mounts unknown volume %s" % (where,
                                                                                    vm["name"]))
                for ef in c.get("envFrom", []):
                    for key, kind2 in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                        if key in ef:
                            check(ef[key]["name"] in by_kind.get(kind2, {}),
                                  "%s: envFrom %s %s does not exist" % (where, kind2,
                                                                        ef[key]["name"]))
                for e in c.get("env", []):
                    check_address(where, e, services)
            for v in volumes.values():
                if "secret" in v:
                    check(v["secret"]["secretName"] in by_kind.get("Secret", {}),
                          "%s: volume of unknown Secret %s" % (name, v["secret"]["secretName"]))
    for name, svc in services.items():
        sel = svc["spec"].get("selector", {})
        targets = [p for p in pods.values()
                   if sel and all(p[0].get(k) == v for k, v in sel.items())]
        check(len(targets) > 0, "Service %s selects no pod" % name)
        for port in svc["spec"].get("ports", []):
            tp = port.get("targetPort", port["port"])
            for _, ports, _ in targets:
                check(tp in ports or tp in ports.values(), "Service %s: targetPort %s is not a "
                      "port of its pods" % (name, tp))
    pred = services.get("credito-predictor", {})
    check(pred.get("spec", {}).get("clusterIP") == "None",
          "the predictors' Service must be headless (clusterIP: None)")
    gw = by_kind.get("Deployment", {}).get("credito-gateway")
    gw_env = {e["name"]: e.get("value") for e in
              (gw["spec"]["template"]["spec"]["containers"][0].get("env", []) if gw else [])}
    check((gw_env.get("CREDITO_PREDICTORS") or "").startswith("dns:///credito-predictor:"),
          "the gateway should use dns:///credito-predictor:PORT")
    reg = by_kind.get("Deployment", {}).get("credito-registry", {})
    check(reg.get("spec", {}).get("replicas") == 1 and
          reg.get("spec", {}).get("strategy", {}).get("type") == "Recreate",
          "the registry is the store's single writer: replicas 1, strategy Recreate")
    if shutil.which("kubectl"):
        run = subprocess.run(["kubectl", "kustomize", path("deploy/k8s")], capture_output=True,
                             text=True)
        check(run.returncode == 0, "kubectl kustomize deploy/k8s: " + run.stderr.strip())


def check_address(where, env, services):
    """A HOST:PORT or dns:///HOST:PORT value naming an in-cluster Service must match one."""
    value = env.get("value") or ""
    m = re.fullmatch(r"(?:dns:///)?(credito-[a-z-]+):(\d+)", value)
    if not m:
        return
    svc = services.get(m.group(1))
    if not check(svc is not None, "%s: %s=%s names no Service" % (where, env["name"], value)):
        return
    check(int(m.group(2)) in [p["port"] for p in svc["spec"].get("ports", [])],
          "%s: %s=%s: the Service has no such port" % (where, env["name"], value))


# ---- dvc.yaml ----

def param(params, dotted):
    v = params
    for part in dotted.split("."):
        if not isinstance(v, dict) or part not in v:
            return None
        v = v[part]
    return v


def check_dvc(dvc, params):
    stages_ = dvc.get("stages", {})
    check(list(stages_) == ["prepare", "train", "evaluate"],
          "dvc.yaml stages %s, want prepare, train, evaluate" % list(stages_))
    bins = {os.path.dirname(program(n)) for n in PROGRAMS}
    env = dict(os.environ, PATH=os.pathsep.join(sorted(bins) + [os.environ.get("PATH", "")]))
    with tempfile.TemporaryDirectory(prefix="credito-dvc-") as work:
        os.makedirs(os.path.join(work, "data", "raw"))
        shutil.copy(path("data/raw/credit-g.arff"), os.path.join(work, "data", "raw"))
        shutil.copy(path("params.yaml"), work)
        produced = set()
        for name, st in stages_.items():
            cmds = st["cmd"] if isinstance(st["cmd"], list) else [st["cmd"]]
            for key in st.get("params", []):
                check(param(params, key) is not None, "%s: param %s is not in params.yaml"
                      % (name, key))
            for dep in st.get("deps", []):
                check(os.path.exists(path(dep)) or dep in produced,
                      "%s: dependency %s neither exists nor is an earlier output" % (name, dep))
            outs = list(st.get("outs", []))
            for m in st.get("metrics", []) + st.get("plots", []):
                outs += list(m) if isinstance(m, dict) else [m]
            for i, cmd in enumerate(cmds):
                refs = re.findall(r"\$\{([^}]+)\}", cmd)
                for ref in refs:
                    check(param(params, ref.strip()) is not None, "%s: ${%s} is not in "
                          "params.yaml" % (name, ref))
                    if ref.split(".")[0] not in st.get("params", []):
                        check(False, "%s uses ${%s} without listing %s in its params"
                              % (name, ref, ref.split(".")[0]))
                line = re.sub(r"\$\{([^}]+)\}", lambda m: str(param(params, m.group(1).strip())),
                              cmd)
                exe = line.split()[0]
                check(shutil.which(exe, path=env["PATH"]) is not None,
                      "%s: command %s does not exist here" % (name, exe))
                run = subprocess.run(line, shell=True, cwd=work, env=env, capture_output=True,
                                     text=True, timeout=120)
                if not check(run.returncode == 0, "%s: `%s` failed (%d): %s"
                             % (name, line, run.returncode, run.stderr.strip()[-500:])):
                    return
            for out in outs:
                check(os.path.exists(os.path.join(work, out)), "%s did not write %s"
                      % (name, out))
                produced.add(out)
            # A stage keeps its outputs only: nothing else left in the folders it writes.
            for d in {os.path.dirname(o) for o in outs}:
                extra = set(os.listdir(os.path.join(work, d))) - \
                    {os.path.basename(o) for o in outs if os.path.dirname(o) == d}
                extra -= {"raw"} if d == "data" else set()
                check(not extra, "%s leaves %s in %s" % (name, sorted(extra), d))
        with open(os.path.join(work, "reports", "metrics.json")) as f:
            final = json.load(f).get("final", {})
        check("test_roc_auc" in final and "cv_roc_auc_mean" in final,
              "evaluate's metrics.json lacks test_roc_auc or cv_roc_auc_mean")


def main():
    docs = check_parse()
    env = env_example()
    compose = (docs.get("docker-compose.yml") or [{}])[0]
    check_compose_config()
    check_compose_vars(env)
    check_compose_services(compose)
    check_minio_setup_script(compose)
    check_secrets(env, docs)
    check_dockerfile()
    check_scripts()
    check_devcontainer()
    check_k8s(docs)
    check_dvc((docs.get("dvc.yaml") or [{}])[0], (docs.get("params.yaml") or [{}])[0])
    print("lint.deploy: %d passed, %d failed" % (passes, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
