"""Install promoter from a source checkout into a private virtualenv, for CI jobs.

    python3 ci/install_promoter.py SOURCE_DIR VENV_DIR

1. creates VENV_DIR (``venv``) with the interpreter running this script, and runs pip
   there from the pip wheel bundled with that Python (ensurepip's, not installed: that
   step alone took most of a cold start), or installs pip when there is no such wheel;
2. installs ``SOURCE_DIR/requirements.lock`` as wheels only (``--only-binary=:all:``):
   exact versions, and no setup code of an sdist ever runs;
3. packs ``SOURCE_DIR/promoter`` into a pure-Python wheel and installs it with
   ``--no-deps --no-index``. promoter is plain Python, so its wheel is a zip of the
   package plus metadata: packing it here needs no build backend, which would
   otherwise be downloaded, unpinned, on every run;
4. leaves ``VENV_DIR/bin/promote``.

pip reads its usual environment: ``PIP_INDEX_URL`` for a mirror, ``PIP_NO_INDEX=1`` with
``PIP_FIND_LINKS=DIR`` for a wheelhouse on a runner without internet access.
Standard library only (it runs before anything is installed), Python 3.10+.
Used by action.yml and .gitlab-ci-template.yml; tested by tests/test_ci_templates.py.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
import venv
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps: the same source gives the same wheel


@dataclass
class Project:
    name: str = ""
    version: str = ""
    summary: str = ""
    requires_python: str = ""
    dependencies: list[str] = field(default_factory=list)
    scripts: dict[str, str] = field(default_factory=dict)


def read_project(pyproject: Path) -> Project:
    """name, version, description, requires-python, dependencies and scripts."""
    text = pyproject.read_text(encoding="utf-8")
    if sys.version_info < (3, 11):
        return _read_project_simply(text)
    import tomllib

    project = tomllib.loads(text)["project"]
    return Project(
        name=project["name"],
        version=project["version"],
        summary=project.get("description", ""),
        requires_python=project.get("requires-python", ""),
        dependencies=list(project.get("dependencies", [])),
        scripts=dict(project.get("scripts", {})),
    )


def _read_project_simply(text: str) -> Project:
    """Enough TOML for promoter's own pyproject: quoted strings and one string list."""
    project = Project()
    section = ""
    in_list = False
    for raw in text.splitlines():
        line = raw.strip()
        if in_list:
            in_list = not line.startswith("]")
            project.dependencies += re.findall(r'"([^"]*)"', line)
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        match = re.match(r"([A-Za-z0-9_.-]+)\s*=\s*(.*)$", line)
        if not match:
            continue
        key, value = match.groups()
        string = value.strip().strip('"')
        if section == "project.scripts":
            project.scripts[key] = string
        elif section != "project":
            continue
        elif key == "dependencies":
            in_list = not value.rstrip().endswith("]")
            project.dependencies = re.findall(r'"([^"]*)"', value)
        elif key in {"name", "version"}:
            setattr(project, key, string)
        elif key == "description":
            project.summary = string
        elif key == "requires-python":
            project.requires_python = string
    return project


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def pack_wheel(source: Path, out_dir: Path) -> Path:
    """A ``py3-none-any`` wheel of ``source/promoter`` described by ``source/pyproject.toml``."""
    project = read_project(source / "pyproject.toml")
    dist = re.sub(r"[-_.]+", "_", project.name)
    info = f"{dist}-{project.version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {project.name}", f"Version: {project.version}"]
    if project.summary:
        metadata.append(f"Summary: {project.summary}")
    if project.requires_python:
        metadata.append(f"Requires-Python: {project.requires_python}")
    metadata += [f"Requires-Dist: {dep}" for dep in project.dependencies]
    entry_points = "[console_scripts]\n" + "".join(
        f"{key} = {value}\n" for key, value in sorted(project.scripts.items())
    )
    members: list[tuple[str, bytes]] = []
    package = source / "promoter"
    for path in sorted(package.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix in {".pyc", ".pyo"}:
            continue
        members.append((path.relative_to(source).as_posix(), path.read_bytes()))
    members += [
        (f"{info}/METADATA", ("\n".join(metadata) + "\n").encode("utf-8")),
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: promoter-ci\n"
                          b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{info}/entry_points.txt", entry_points.encode("utf-8")),
    ]
    record = "".join(f"{arc},{_record_hash(data)},{len(data)}\n" for arc, data in members)
    record += f"{info}/RECORD,,\n"
    members.append((f"{info}/RECORD", record.encode("utf-8")))

    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{dist}-{project.version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for arcname, data in members:
            entry = zipfile.ZipInfo(arcname, date_time=_EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return wheel


def bin_dir(venv_dir: Path) -> Path:
    return venv_dir / ("Scripts" if os.name == "nt" else "bin")


def bundled_pip() -> Path | None:
    """The pip wheel that ships inside this Python's ``ensurepip``, if it is there."""
    import ensurepip

    wheels = sorted((Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl"))
    return wheels[-1] if wheels else None


def _pip(pip: list[str], *args: str) -> None:
    command = [*pip, "install", "--disable-pip-version-check", "--no-input", "--quiet",
               "--no-compile", *args]
    # pip's chatter goes to stderr: stdout of this script stays empty.
    subprocess.run(command, check=True, stdout=sys.stderr)


def install(source: Path, venv_dir: Path) -> Path:
    lock = source / "requirements.lock"
    if not lock.is_file():
        raise SystemExit(f"install_promoter: {lock} is missing; is {source} a promoter checkout?")
    python = bin_dir(venv_dir) / ("python.exe" if os.name == "nt" else "python")
    wheel = bundled_pip()
    # Installing pip into the virtualenv (ensurepip) is the slowest part of a cold
    # start; pip runs just as well from its own wheel, as the virtualenv's python.
    venv.EnvBuilder(with_pip=wheel is None, clear=True, symlinks=os.name != "nt").create(venv_dir)
    pip = [str(python), str(wheel / "pip")] if wheel else [str(python), "-m", "pip"]
    _pip(pip, "--only-binary=:all:", "-r", str(lock))
    with tempfile.TemporaryDirectory(prefix="promoter-wheel-") as tmp:
        _pip(pip, "--no-deps", "--no-index", str(pack_wheel(source, Path(tmp))))
    return bin_dir(venv_dir) / "promote"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: install_promoter.py SOURCE_DIR VENV_DIR", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        promote = install(Path(argv[0]).resolve(), Path(argv[1]).resolve())
    except subprocess.CalledProcessError as exc:
        print(f"install_promoter: pip failed (exit {exc.returncode}); see its message above. "
              "Behind a proxy or offline, set PIP_INDEX_URL, or PIP_NO_INDEX=1 with "
              "PIP_FIND_LINKS=<wheel dir>.", file=sys.stderr)
        return 1
    print(f"promoter installed: {promote} ({time.monotonic() - started:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
