"""Resolve the container image's pip requirements offline against the base image's recorded pins.

The image (``Dockerfile``) installs this package with the extras its ``pip install`` line names on
top of the TensorRT-LLM release image, with every package the image already has as a constraint
(``pip list --format=freeze``), so pip may not change them. This check reads setup.py's
``install_requires`` and those extras (without running setup.py) and the image's recorded
packages (``docker/tensorrt_llm-1.2.0-image.txt``), and reports every requirement that no version
allowed by the image can satisfy, and a ``python_requires`` that excludes the image's Python.
It checks direct requirements only (what pip adds on top may bring its own; pip then backtracks
to versions that fit the constraints, or fails the build).

    python scripts/check_image_deps.py     # exit 1 and one line per conflict
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
PINS = ROOT / "docker" / "tensorrt_llm-1.2.0-image.txt"


def setup_requirements(setup_py: Path = ROOT / "setup.py") -> tuple[str, list[str], dict[str, list[str]]]:
    """(python_requires, install_requires, extras_require) as literals in setup.py's ``setup(...)``."""
    tree = ast.parse(setup_py.read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    values = {kw.arg: kw.value for kw in call.keywords}
    return (ast.literal_eval(values["python_requires"]), ast.literal_eval(values["install_requires"]),
            ast.literal_eval(values["extras_require"]))


def dockerfile_extras(dockerfile: Path = ROOT / "Dockerfile") -> list[str]:
    match = re.search(r'pip install [^\n]*"\.\[([\w,-]+)\]"', dockerfile.read_text())
    if not match:
        raise ValueError(f"{dockerfile}: no `pip install ... \".[extras]\"` line found")
    return match.group(1).split(",")


def image_packages(pins: Path = PINS) -> dict[str, SpecifierSet]:
    packages: dict[str, SpecifierSet] = {}
    for number, line in enumerate(pins.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            requirement = Requirement(line)
        except Exception as err:   # packaging's InvalidRequirement
            raise ValueError(f"{pins}:{number}: {line!r} is not a requirement specifier ({err})") from err
        packages[canonicalize_name(requirement.name)] = requirement.specifier
    return packages


def _candidates(*specs: SpecifierSet) -> list[Version]:
    """Versions at and around every bound named in ``specs`` (enough to find an overlap of ranges)."""
    found: set[Version] = {Version("0"), Version("9999")}
    for spec in specs:
        for clause in spec:
            try:
                v = Version(clause.version.rstrip(".*"))
            except InvalidVersion:
                continue
            found |= {v, Version(f"{v.major}.{v.minor}.{v.micro + 1}"), Version(f"{v.major}.{v.minor + 1}"),
                      Version(f"{v.major + 1}"), Version(f"{max(v.major - 1, 0)}.9999")}
    return sorted(found)


def compatible(ours: SpecifierSet, image: SpecifierSet) -> bool:
    if not str(ours) or not str(image):
        return True
    return any(ours.contains(v, prereleases=True) and image.contains(v, prereleases=True)
               for v in _candidates(ours, image))


def conflicts() -> list[str]:
    python_requires, install, extras = setup_requirements()
    wanted = list(install)
    for extra in dockerfile_extras():
        if extra not in extras:
            raise KeyError(f"Dockerfile installs extra {extra!r}, setup.py has {sorted(extras)}")
        wanted += extras[extra]
    image = image_packages()
    problems = []
    python = image.pop("python-version", SpecifierSet())
    if not compatible(SpecifierSet(python_requires), python):
        problems.append(f"setup.py python_requires {python_requires!r} excludes the image's Python ({python})")
    for text in wanted:
        requirement = Requirement(text)
        held = image.get(canonicalize_name(requirement.name))
        if held is not None and not compatible(requirement.specifier, held):
            problems.append(f"setup.py requires {text!r} but the base image holds {requirement.name}{held} "
                            f"({PINS.relative_to(ROOT)})")
    return problems


def main() -> int:
    problems = conflicts()
    for problem in problems:
        print(problem)
    if not problems:
        print(f"setup.py fits the base image's packages ({PINS.relative_to(ROOT)})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
