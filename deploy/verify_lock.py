"""Checks that this Python environment holds exactly the versions requirements.lock pins: every
locked package that is installed has the locked version, and every library whose version decides
the output's bytes (wwm_core.manifest.BYTE_DECIDING_LIBRARIES) is installed. deploy/Dockerfile runs
it as the image's last build step, so an image that drifted from the lock is never pushed.

    python deploy/verify_lock.py requirements.lock     (exit 1 and one line per difference)
"""
import importlib.metadata
import re
import sys

from wwm_core.manifest import BYTE_DECIDING_LIBRARIES


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(text: str) -> dict:
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonical(name.split("[", 1)[0])] = version.strip()
    return pins


def installed_versions() -> dict:
    return {canonical(dist.metadata["Name"]): dist.version for dist in importlib.metadata.distributions()}


def differences(pins: dict, installed: dict) -> list:
    problems = [f"{name}: {installed[name]} installed, {version} locked"
                for name, version in sorted(pins.items()) if name in installed and installed[name] != version]
    problems += [f"{name}: not installed (it decides the output's bytes)"
                 for name in map(canonical, BYTE_DECIDING_LIBRARIES) if name not in installed]
    problems += [f"{name}: installed ({installed[name]}) but not in the lock"
                 for name in map(canonical, BYTE_DECIDING_LIBRARIES) if name in installed and name not in pins]
    return problems


def main(argv) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as handle:
        problems = differences(locked_versions(handle.read()), installed_versions())
    for problem in problems:
        print(f"verify_lock: {problem}", file=sys.stderr)
    if not problems:
        print(f"verify_lock: every installed package has the version {argv[0]} pins")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
