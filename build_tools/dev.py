"""The project's one entry point for setting up, checking, testing and the demo.

Usage (from a fresh clone, with only python3 and node/npm on the machine):

    python3 build_tools/dev.py demo    # set up, run the seed README's tasks on the local server
    python3 build_tools/dev.py test    # set up, then run every check (the CI gate)

Other commands: ``setup`` (only set up), ``externals`` (only what the tests need beside the
project's environment: Node packages and the official SDKs), ``check`` (every check, without
setting up), ``bench`` (set up, then run benchmarks/run.py).

Set-up is idempotent: a virtualenv in ``.venv`` with the project and its dev tools,
the Node packages of ``build_tools/node`` (protobuf-es, for the cross-language check)
and of the TypeScript client ``clients/typescript``, and the official Render SDKs from
PyPI, each in its own virtualenv under ``.venvs/`` (they are real peers for the
compatibility tests and benchmarks, and one of them has our import name, so they never
share our environment).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
PY = BIN / "python"
NODE_DIR = ROOT / "build_tools" / "node"
#: The TypeScript client (an npm package generated from the same buf module).
TS_DIR = ROOT / "clients" / "typescript"
#: The official SDKs, each in its own virtualenv: name -> pip requirement.
OFFICIAL_SDKS = {"render_sdk-0.4.0": "render_sdk==0.4.0", "render-1.5.0": "render==1.5.0"}
OFFICIAL_VENVS = ROOT / ".venvs"
#: Benchmark peers the test suite runs (tests/test_bench_peers.py: the harness in quick mode
#: for ours and this one cheap peer); benchmarks/bench_peers.py makes its virtualenv.
BENCH_PEERS_FOR_TESTS = ("huey",)
BENCH_PEER_VENVS = OFFICIAL_VENVS / "bench-peers"
#: Every CPython the project supports (pyproject classifiers). The full gate runs on the
#: interpreter running this script; the pytest suite also runs on each other one found.
SUPPORTED_PYTHONS = ("3.10", "3.11", "3.12", "3.13")
#: Debian's Chromium, which the dashboard's browser tests drive through Playwright.
CHROMIUM = Path("/usr/bin/chromium")


def run(cmd: list[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
    print(f"+ {' '.join(str(c) for c in cmd)}", flush=True)
    subprocess.run(cmd, cwd=cwd, env=env, check=True)


def stamp_ok(stamp: Path, *sources: Path) -> bool:
    """True when ``stamp`` is newer than every source file (set-up step already done)."""
    if not stamp.exists():
        return False
    return all(stamp.stat().st_mtime >= s.stat().st_mtime for s in sources if s.exists())


def setup() -> None:
    if not PY.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        run([str(PY), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    stamp = VENV / ".render_sdk-installed"
    if not stamp_ok(stamp, ROOT / "pyproject.toml"):
        run([str(PY), "-m", "pip", "install", "-q", "-e", ".", "--group", "dev"])
        stamp.touch()
    setup_externals()


def setup_externals() -> None:
    """What the tests need beside the project's own environment: Node packages, official SDKs.

    The test suite runs this itself when something is missing, so a ``poetry install`` or
    ``tox`` environment needs no separate step.
    """
    for folder in (NODE_DIR, TS_DIR):
        npm_install(folder)
    if not CHROMIUM.exists():
        # The dashboard tests never download a browser: they use the system's package.
        apt = shutil.which("apt-get")
        if apt is None or os.geteuid() != 0:
            raise SystemExit(f"setup: {CHROMIUM} is missing; install Debian's chromium package")
        run([apt, "update", "-q"])
        run(
            [apt, "install", "-y", "-q", "chromium"],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    for name, requirement in OFFICIAL_SDKS.items():
        target = OFFICIAL_VENVS / name
        sdk_stamp = target / ".installed"
        if sdk_stamp.exists():
            continue
        venv.EnvBuilder(with_pip=True, clear=True).create(target)
        run([str(target / "bin" / "python"), "-m", "pip", "install", "-q", requirement])
        sdk_stamp.touch()
    for module in BENCH_PEERS_FOR_TESTS:
        if not (BENCH_PEER_VENVS / module / ".installed").exists():
            run([sys.executable, "benchmarks/bench_peers.py", "--install", module])


def find_interpreter(version: str) -> Path | None:
    """A working CPython ``version`` under pyenv's root or on PATH, or None when absent.

    pyenv's own directory comes first: its ``pythonX.Y`` shims on PATH exist for every
    installed version but fail unless that version is activated.
    """
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates = [v / "bin" / "python" for v in sorted(root.glob(f"versions/{version}.*"))]
    found = shutil.which(f"python{version}")
    if found:
        candidates.append(Path(found))
    for exe in candidates:
        probe = [
            str(exe),
            "-c",
            f"import sys; sys.exit(sys.version[:{len(version)}] != {version!r})",
        ]
        if exe.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
            return exe
    return None


def other_interpreters() -> list[tuple[str, Path]]:
    """The supported interpreters other than the running one, each with a set-up virtualenv."""
    current = f"{sys.version_info.major}.{sys.version_info.minor}"
    found: list[tuple[str, Path]] = []
    for version in SUPPORTED_PYTHONS:
        if version == current:
            continue
        exe = find_interpreter(version)
        if exe is None:
            print(f"python{version}: not found on PATH or under pyenv; its tests are skipped")
            continue
        target = OFFICIAL_VENVS / f"py{version}"
        py = target / "bin" / "python"
        stamp = target / ".installed"
        if not py.exists():
            run([str(exe), "-m", "venv", "--clear", str(target)])
            # `--group` needs pip >= 25.1, newer than what older interpreters bundle.
            run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"])
        if not stamp_ok(stamp, ROOT / "pyproject.toml"):
            run([str(py), "-m", "pip", "install", "-q", "-e", ".", "--group", "dev"])
            stamp.touch()
        found.append((version, py))
    return found


def npm_install(folder: Path) -> None:
    """``npm ci`` in ``folder`` unless its lock file is unchanged since the last install."""
    stamp = folder / "node_modules" / ".installed"
    if not (folder / "package.json").exists() or stamp_ok(
        stamp, folder / "package.json", folder / "package-lock.json"
    ):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(f"setup: npm is required for {folder.relative_to(ROOT)}")
    lock = (folder / "package-lock.json").exists()
    run([npm, "ci" if lock else "install", "--no-audit", "--no-fund"], cwd=folder)
    stamp.touch()


def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def buf_breaking_base() -> str | None:
    """The git ref the schemas are compared against: main's tip, or the parent commit on main."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    head = git("rev-parse", "HEAD")
    main = git("rev-parse", "--verify", "-q", "refs/heads/main")
    base = main if main and main != head else git("rev-parse", "--verify", "-q", "HEAD~1")
    if not base:
        return None
    if not git("ls-tree", "-d", base, "proto"):
        return None
    return base


def check() -> None:
    env = tool_env()
    steps: list[tuple[str, list[str]]] = [
        ("ruff format", [str(BIN / "ruff"), "format", "--check", "."]),
        ("ruff lint", [str(BIN / "ruff"), "check", "."]),
        ("mypy", [str(BIN / "mypy")]),
        ("codegen", [str(PY), "build_tools/codegen.py", "--check"]),
        ("buf lint", [str(BIN / "buf"), "lint"]),
        ("buf format", [str(BIN / "buf"), "format", "-d", "--exit-code"]),
    ]
    base = buf_breaking_base()
    if base is not None:
        steps.append(
            ("buf breaking", [str(BIN / "buf"), "breaking", "--against", f".git#ref={base}"])
        )
    else:
        print("buf breaking: no earlier commit with proto/ to compare against (first schema)")
    if (NODE_DIR / "check_vectors.mjs").exists():
        steps.append(("node cross-check", ["node", str(NODE_DIR / "check_vectors.mjs")]))
    if (TS_DIR / "package.json").exists():
        steps.append(("typescript client", ["npm", "test", "--prefix", str(TS_DIR)]))
    # The suite on this interpreter runs under coverage, and the gate enforces the floor
    # ([tool.coverage.report] fail_under), as `tox -e coverage` does.
    steps.append(("coverage erase", [str(PY), "-m", "coverage", "erase"]))
    steps.append(
        (
            "pytest",
            [str(PY), "-m", "coverage", "run", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        )
    )
    steps.append(("coverage combine", [str(PY), "-m", "coverage", "combine", "-q"]))
    steps.append(("coverage floor", [str(PY), "-m", "coverage", "report", "--precision=2"]))
    for version, py in other_interpreters():
        steps.append(
            (f"pytest (python{version})", [str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider"])
        )
    failed: list[str] = []
    for name, cmd in steps:
        started = time.monotonic()
        print(f"\n=== {name}", flush=True)
        code = subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode
        print(
            f"=== {name}: {'ok' if code == 0 else f'FAILED ({code})'} "
            f"in {time.monotonic() - started:.1f}s",
            flush=True,
        )
        if code != 0:
            failed.append(name)
    if failed:
        raise SystemExit(f"\nchecks failed: {', '.join(failed)}")
    print("\nall checks passed")


def demo() -> None:
    run([str(PY), "examples/demo.py"], env=tool_env())
    print(
        f"\nThe CLI is {BIN / 'render-workflows'} (not on PATH): run it by that path, or first"
        f" `source {VENV.relative_to(ROOT)}/bin/activate`.",
        flush=True,
    )


def bench() -> None:
    run([str(PY), "benchmarks/run.py", *sys.argv[2:]], env=tool_env())


def main() -> None:
    commands = {
        "setup": [setup],
        "externals": [setup_externals],
        "check": [check],
        "test": [setup, check],
        "demo": [setup, demo],
        "bench": [setup, bench],
    }
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        raise SystemExit(f"usage: python3 build_tools/dev.py {{{'|'.join(commands)}}}")
    try:
        for step in commands[sys.argv[1]]:
            step()
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"command failed with exit code {exc.returncode}: {exc.cmd}") from None


if __name__ == "__main__":
    main()
