"""Packaging for clinicflow: one distribution, one ``clinicflow`` console script."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def requirements(name: str) -> list[str]:
    return [line.split("#")[0].strip() for line in (HERE / name).read_text().splitlines()
            if line.split("#")[0].strip() and not line.startswith("-r")]


setup(
    name="clinicflow",
    version="0.1.0",
    description="Open-source firmware for hospital self-service kiosks and waiting-room call screens",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["protocol*", "queueserver*", "kiosk*", "display*", "hardware*", "config*", "clinicflow*"]),
    include_package_data=True,
    package_data={"": ["*.kv", "*.html", "*.js", "*.css", "*.toml", "*.json", "*.wav", "*.po", "*.mo", "*.pdf", "*.ini", "*.mako", "*.yaml"]},
    install_requires=requirements("requirements.txt"),
    extras_require={"test": requirements("requirements-test.txt")},
    entry_points={"console_scripts": ["clinicflow=clinicflow.cli:main"]},
)
