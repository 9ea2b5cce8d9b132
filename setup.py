"""Packaging for chimle, driven by settings.ini (nbdev 2 style)."""
from configparser import ConfigParser
from pathlib import Path

import setuptools

cfg = ConfigParser(delimiters=["="])
cfg.read(Path(__file__).parent / "settings.ini", encoding="utf-8")
cfg = cfg["DEFAULT"]

def _list(key): return cfg.get(key, "").split()

console = [s for s in _list("console_scripts")]
setuptools.setup(
    name=cfg["lib_name"],
    version=cfg["version"],
    description=cfg["description"],
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    author=cfg["author"],
    license="Apache-2.0",
    keywords=cfg["keywords"],
    packages=setuptools.find_packages(include=["chimle", "chimle.*"]),
    include_package_data=True,
    package_data={"chimle": ["examples/*.md", "examples/*/*.png", "examples/*/*.jpg"]},  # the demo's bundled examples
    python_requires=">=" + cfg["min_python"],
    install_requires=_list("requirements"),
    extras_require={"dev": _list("dev_requirements") + _list("docs_requirements"), "docs": _list("docs_requirements")},
    entry_points={"console_scripts": console, "nbdev": [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    zip_safe=False,
)
