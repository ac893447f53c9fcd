"""The image's wheel, built and installed the way the Dockerfile does, runs outside the checkout.

The image installs the project's wheel (non-editable) on the runtime lock, so a package or a
template left out of the wheel, or code that finds its files through the working directory, only
shows there. Without a Docker engine this replays the Dockerfile: its build stage's COPY lines
assemble the build context (the checkout less ``.dockerignore``) and its ``pip wheel`` line builds
the wheel, which a fresh venv outside the checkout installs with the final stage's two ``pip
install`` lines (``requirements/runtime.txt`` with ``--require-hashes``, then the wheel with
``--no-deps``). From a directory outside the checkout, ``wheel_probe.py`` then starts each entry
point as its command does and renders every email and dashboard template from the installed
package, which must render exactly as the checkout does. Where ``docker info`` answers, the
last test also runs ``docker compose config`` and ``docker build``; elsewhere it skips, saying so.

About 30 s on a quiet machine with pip's cache warm (some 25 s of CPU: the fresh venv and the
installs), more on a cold cache or a busy machine.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from adapters.settings import Settings
from payments_ops.config import LOCAL_STRIPE_KEY
from tests.integration import wheel_probe
from tests.unit.test_email_templates import CONTEXTS

ROOT = Path(__file__).resolve().parents[2]
#: Building and installing can take a while on a cold pip cache.
pytestmark = pytest.mark.timeout(600)


@dataclass
class Stage:
    """One ``FROM`` of the Dockerfile: its name and its instructions as ``(KEYWORD, arguments)``."""

    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def runs(self) -> list[str]:
        return [args for keyword, args in self.instructions if keyword == "RUN"]

    def copies(self) -> list[list[str]]:
        return [shlex.split(args) for keyword, args in self.instructions if keyword == "COPY"]

    def workdir(self) -> str:
        return next((args for keyword, args in reversed(self.instructions) if keyword == "WORKDIR"), "/")


def dockerfile_stages(text: str) -> list[Stage]:
    """The Dockerfile's stages (continuation lines joined, comments dropped)."""
    stages: list[Stage] = []
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            parts = args.split()
            stages.append(Stage(parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None))
        else:
            assert stages, f"{keyword} before any FROM"
            stages[-1].instructions.append((keyword, args))
    return stages


def pip_commands(stage: Stage, verb: str) -> list[list[str]]:
    """The ``pip <verb> …`` commands of a stage's RUN lines (each split at ``&&``), as argument lists."""
    found = []
    for run in stage.runs():
        for command in run.split("&&"):
            words = shlex.split(command)
            if words[:2] == ["pip", verb]:
                found.append(words[2:])
    return found


@dataclass(frozen=True)
class ImagePlan:
    """What the Dockerfile does with the wheel, read from it."""

    build_copies: list[list[str]]  # the build stage's COPY arguments (sources, then destination)
    build_workdir: str
    wheel_args: list[str]  # `pip wheel` arguments
    wheel_dir: str
    lock: str  # the lock file, as a path in the build context
    install_args: list[list[str]]  # the final stage's two `pip install` argument lists


def image_plan() -> ImagePlan:
    stages = dockerfile_stages((ROOT / "Dockerfile").read_text())
    builds = [stage for stage in stages if pip_commands(stage, "wheel")]
    assert len(builds) == 1, "one build stage runs `pip wheel`"
    build, final = builds[0], stages[-1]
    assert build is not final and build.name, "the wheel is built in a named stage of its own"
    (wheel_args,) = pip_commands(build, "wheel")
    assert "--no-deps" in wheel_args and "--wheel-dir" in wheel_args, wheel_args
    wheel_dir = wheel_args[wheel_args.index("--wheel-dir") + 1]
    for copy in build.copies():
        assert not copy[0].startswith("--"), f"the build stage copies only from the context: {copy}"

    # The final stage: the runtime lock with hashes, then that same wheel without resolving anything.
    from_build = [copy[1:] for copy in final.copies() if copy[0] == f"--from={build.name}"]
    assert from_build and from_build[0][0].rstrip("/") == wheel_dir.rstrip("/"), "the final stage takes the wheels"
    wheels_at = from_build[0][1].rstrip("/")
    locks = {copy[1]: copy[0] for copy in final.copies() if copy[0] == "requirements/runtime.txt"}
    installs = pip_commands(final, "install")
    assert len(installs) == 2, f"two pip installs in the final stage: {installs}"
    deps, project = installs
    assert "--require-hashes" in deps and deps[deps.index("-r") + 1] in locks, deps
    assert "--no-deps" in project and project[-1] == f"{wheels_at}/*.whl", project
    assert not any("-e" in args or "--editable" in args for args in installs)
    assert ("CMD", '["python", "-m", "ingress"]') in final.instructions
    assert any(keyword == "USER" and args != "root" for keyword, args in final.instructions), "runs as a user"
    return ImagePlan(build.copies(), build.workdir(), wheel_args, wheel_dir, "requirements/runtime.txt", installs)


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _matches(path: str, pattern: str) -> bool:
    """Docker's pattern matching: ``*`` and ``?`` within one path part, ``**`` across any number of them."""
    regex = ""
    for part in re.split(r"(\*\*/|\*\*|\*|\?)", pattern.strip("/")):
        regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part))
    return re.fullmatch(regex, path) is not None


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether ``.dockerignore`` leaves ``path`` (relative, with ``/``) out: a pattern that matches it or
    a folder above it excludes it; a later ``!pattern`` takes it back."""
    parts = path.split("/")
    out = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        if any(_matches("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1)):
            out = not negated
    return out


def build_context(into: Path) -> Path:
    """The checkout as Docker sends it: every file ``.dockerignore`` keeps."""
    patterns = dockerignore()
    for folder, dirs, files in os.walk(ROOT):
        here = Path(folder).relative_to(ROOT)
        dirs[:] = [name for name in dirs if not ignored((here / name).as_posix(), patterns)]
        for name in files:
            if not ignored((here / name).as_posix(), patterns):
                (into / here).mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / here / name, into / here / name)
    return into


def run(*command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, stdin: str = "") -> str:
    done = subprocess.run(
        [str(word) for word in command], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=500
    )
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed ({done.returncode}):\n{done.stderr[-4000:]}"
    return done.stdout


@dataclass(frozen=True)
class Installed:
    wheel: Path
    python: Path
    bin: Path
    work: Path  # an empty directory outside the checkout, to run from


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """The Dockerfile's wheel, installed as its final stage does into a new venv outside the checkout."""
    plan = image_plan()
    tmp = tmp_path_factory.mktemp("wheel")
    assert not tmp.resolve().is_relative_to(ROOT)
    context = build_context(tmp / "context")
    # The build stage: its COPY lines into its WORKDIR, then its `pip wheel` there (pip's cache allowed).
    stage = tmp / "stage" / plan.build_workdir.lstrip("/")
    stage.mkdir(parents=True)
    for *sources, destination in plan.build_copies:
        target = stage / destination
        for source in sources:
            if (context / source).is_dir():
                shutil.copytree(context / source, target, dirs_exist_ok=True)
            else:  # a file into a folder (``dest/``, ``.``) or to a path
                into = destination.endswith("/") or destination == "."
                (target if into else target.parent).mkdir(parents=True, exist_ok=True)
                shutil.copy2(context / source, target / Path(source).name if into else target)
    wheels = tmp / "wheels"
    args = [arg for arg in plan.wheel_args if arg != "--no-cache-dir"]
    args[args.index("--wheel-dir") + 1] = str(wheels)
    run(sys.executable, "-m", "pip", "wheel", "--quiet", *args, cwd=stage)
    (wheel,) = wheels.glob("*.whl")

    # The final stage: a fresh Python, the runtime lock with hashes, then the wheel with --no-deps.
    venv.create(tmp / "venv", with_pip=True)
    python, bin_ = tmp / "venv" / "bin" / "python", tmp / "venv" / "bin"
    deps, project = plan.install_args
    deps = [str(context / plan.lock) if arg == deps[deps.index("-r") + 1] else arg for arg in deps]
    run(python, "-m", "pip", "install", "--quiet", *[arg for arg in deps if arg != "--no-cache-dir"], cwd=tmp)
    project = [str(wheel) if arg.endswith(".whl") else arg for arg in project if arg != "--no-cache-dir"]
    run(python, "-m", "pip", "install", "--quiet", *project, cwd=tmp)
    run(python, "-m", "pip", "check", cwd=tmp)  # the runtime lock has every dependency the wheel declares
    work = tmp / "work"
    work.mkdir()
    yield Installed(wheel, python, bin_, work)


def probe_environment(settings: Settings) -> dict[str, str]:
    """Only what a container gets: no PYTHONPATH, the services of the test stack, no checkout anywhere."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "APP_ENV": "test",
        "REDIS_URL": settings.redis_url,
        "MONGODB_URI": settings.mongodb_uri,
        "MONGODB_DB": settings.mongodb_db,
        "STRIPE_SECRET_KEY": LOCAL_STRIPE_KEY,
        "STRIPE_WEBHOOK_SECRET": "whsec_wheel",
        "JWT_SECRET": "wheel-test-secret",
        "OPS_TOKEN": "wheel-test-ops-token-0123456789abcdef",
        "WORKER_PROCESSES": "1",
        "WORKER_THREADS": "1",
        "LOG_LEVEL": "WARNING",
    }


def test_the_dockerfile_builds_the_wheel_and_installs_it_on_the_runtime_lock() -> None:
    """A build stage runs `pip wheel --no-deps`; the final stage installs the runtime lock with hashes, then
    that wheel with --no-deps (never editable), and runs `python -m ingress` as a user."""
    plan = image_plan()
    assert (ROOT / plan.lock).is_file()
    patterns = dockerignore()
    for secret_or_bulk in (".env", ".venv/bin/python", ".git/HEAD", "var/stack.json", "ingress/__pycache__/a.pyc"):
        assert ignored(secret_or_bulk, patterns), f"{secret_or_bulk} would be in the build context"
    for needed in ("pyproject.toml", "templates/ops/index.html", "usecases/__init__.py", "payments_ops/cli.py"):
        assert not ignored(needed, patterns), f"{needed} would be left out of the build context"


def test_the_wheel_holds_every_package_and_template(installed: Installed) -> None:
    """Every top-level package of the checkout and every template file is in the wheel."""
    import zipfile

    names = set(zipfile.ZipFile(installed.wheel).namelist())
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert set(wheel_probe.PACKAGES) == packages, "wheel_probe.PACKAGES lists the checkout's packages"
    files = {
        path.relative_to(ROOT).as_posix()
        for package in packages
        for path in (ROOT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and not path.name.startswith(".")
    }
    missing = sorted(files - names)
    assert not missing, f"not in {installed.wheel.name}: {missing}"


def test_the_installed_entry_points_start_and_render_outside_the_checkout(
    installed: Installed, settings: Settings
) -> None:
    """From a directory outside the checkout: the ingress app as `python -m ingress` builds it, the worker
    module `python -m workers` has Dramatiq import, and every email and dashboard template, rendered from
    the installed package exactly as from the checkout."""
    shutil.copy(Path(wheel_probe.__file__), installed.work / "probe.py")
    out = run(
        installed.python,
        "probe.py",
        cwd=installed.work,
        env=probe_environment(settings),
        stdin=json.dumps(CONTEXTS),
    )
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    site = Path(report["python"])
    for package, where in report["where"].items():
        assert Path(where).is_relative_to(site) and not Path(where).is_relative_to(ROOT), f"{package} from {where}"

    checkout_files = sorted(
        path.relative_to(ROOT / "templates").as_posix()
        for path in (ROOT / "templates").rglob("*")
        if path.is_file() and path.suffix != ".py" and "__pycache__" not in path.parts and not path.name.startswith(".")
    )
    assert report["template_files"] == checkout_files
    emails = wheel_probe.render_emails(CONTEXTS)
    assert None not in emails.values(), "tests/unit/test_email_templates.py's CONTEXTS covers every email"
    assert report["emails"] == emails
    assert report["dashboard"] == wheel_probe.render_dashboard()

    ingress = report["ingress"]
    assert ingress["exit"] == 0 and ingress["protocol"] == "GuardedHttpToolsProtocol"
    status, _, has_form = ingress["pages"]["/ops/login"]
    assert status == 200 and has_form, "the dashboard's login page, through the app"
    assert ingress["pages"]["/openapi.json"][0] == 200
    worker = report["worker"]
    assert worker["exit"] == 0 and worker["module"] == "workers.entry"
    assert {"stripe-events", "refunds", "emails"} <= set(worker["queues"]), worker


def test_payments_ops_runs_from_the_installed_script(installed: Installed) -> None:
    """The console script the wheel installs answers --help outside the checkout."""
    out = run(installed.bin / "payments-ops", "--help", cwd=installed.work, env={"PATH": "/usr/bin:/bin"})
    assert out.startswith("usage: payments-ops")


def docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def test_compose_config_and_the_image_build() -> None:
    """With a Docker engine: `docker compose config` is valid and `docker build` makes an image whose
    entry points import from site-packages."""
    if not docker_engine():
        pytest.skip("no Docker engine here (`docker info` failed): `docker compose config` and `docker build` not run")
    env = {**os.environ, "STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_WEBHOOK_SECRET": "whsec_x", "JWT_SECRET": "x"}
    run("docker", "compose", "config", "--quiet", cwd=ROOT, env=env)
    tag = "payments-pipeline:wheel-test"
    run("docker", "build", "--quiet", "--tag", tag, ".", cwd=ROOT)
    roots = "ingress.composition, workers.composition, payments_ops.composition"
    imports = f"import ingress.__main__, workers.__main__, payments_ops.cli, {roots}, templates"
    run("docker", "run", "--rm", tag, "python", "-c", imports)
    assert run("docker", "run", "--rm", tag, "payments-ops", "--help").startswith("usage: payments-ops")


def test_dockerignore_patterns_match_as_docker_does() -> None:
    """The matcher above: a folder pattern covers what is under it, ** spans folders, ! takes back."""
    assert ignored("tests/unit/x.py", ["tests"]) and not ignored("testsuite.py", ["tests"])
    assert ignored("a/b/__pycache__/m.pyc", ["**/__pycache__"]) and ignored("x.pyc", ["**/*.pyc"])
    assert ignored("p.egg-info/PKG-INFO", ["*.egg-info"]) and not ignored("a/p.egg-info", ["*.egg-info"])
    assert not ignored("docs/keep.md", ["docs", "!docs/keep.md"])
