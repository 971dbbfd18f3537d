"""A/B application updates with automatic rollback: signed releases on the server, a fresh venv per release on a device.

Server (``clinicflow release``)::

    clinicflow release publish dist/clinicflow-0.2.0-py3-none-any.whl --requirements requirements.lock
    # -> <data dir>/releases/0.2.0/{clinicflow-0.2.0-...whl, requirements.lock, manifest.json, manifest.sig}

``manifest.json`` names every file with its SHA-256; ``manifest.sig`` is its Ed25519
signature with ``<data dir>/broker/release-signing.key``, which ``clinicflow broker-config``
creates next to the site CA (``ensure_signing_key``). The queue server serves the files at
``/releases/{version}/{name}`` (no token: what makes them trustworthy is the signature) and
``POST /api/v1/fleet/updates`` sends the ``update`` command to a device group.

Device (an "app root", e.g. ``/opt/clinicflow``)::

    launch                  the stable launcher (systemd's ExecStart): rolls back a late trial, runs current
    current -> releases/0.1.0
    releases/0.1.0/venv     one virtualenv per release, never modified after install
    releases/0.2.0/venv
    state/trial             "deadline previous version" while a new release is on trial
    state/rolled-back       why the last update was rolled back (shown on /fleet)
    release-signing.pub     the site's release key (from provisioning)

The ``update`` command (``Updater.command``, registered by ``DeviceAgent`` when the device
runs from an app root: ``$CLINICFLOW_APP_ROOT``) downloads the release, checks the
signature and every file's hash, installs it into a fresh venv beside the running one,
points ``previous``/``current`` at old/new (atomic symlink swaps), writes ``state/trial``
with a deadline, answers, and restarts (SIGTERM; systemd's ``Restart=always`` starts
``launch`` again). The new release's agent confirms the trial once every check has passed
for ``confirm_after`` seconds while connected. If it does not within the deadline, it
rolls back by itself (switches ``current`` back and restarts); if it cannot even start,
``launch`` sees the deadline pass and switches back before starting anything.

Installing: ``pip install --no-index --find-links <release> -r requirements.lock`` then the
wheel with ``--no-deps``; a device with the dependencies already present may reuse a
site-packages directory (``$CLINICFLOW_REUSE_SITE_PACKAGES``, written into the new venv as a
``.pth``), which is what the tests do: no network, seconds per install. The operating
system itself is updated with the distribution's own tools (apt, Raspberry Pi OS images),
never by this module.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

KEY_NAME = "release-signing.key"
PUB_NAME = "release-signing.pub"
MANIFEST, SIGNATURE, REQUIREMENTS = "manifest.json", "manifest.sig", "requirements.lock"
ROOT_ENV, KEY_ENV, REUSE_ENV = "CLINICFLOW_APP_ROOT", "CLINICFLOW_RELEASE_KEY", "CLINICFLOW_REUSE_SITE_PACKAGES"

IDLE, DOWNLOADING, INSTALLING, TRIAL, OK, ROLLED_BACK, FAILED = (
    "idle", "downloading", "installing", "trial", "ok", "rolled_back", "failed")


class UpdateError(RuntimeError):
    """A release that cannot be installed: bad signature, wrong hash, failed install (the running one stays)."""


# ----------------------------------------------------------------------------- signing (server)

def ensure_signing_key(directory: Path) -> tuple[Path, Path, bool]:
    """The site's Ed25519 release key in ``directory`` (private 0600 from creation); made once, then kept."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / KEY_NAME, directory / PUB_NAME
    if private.exists():
        return private, public, False
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public, True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def wheel_version(wheel: Path) -> str:
    """``clinicflow-0.2.0-py3-none-any.whl`` -> ``0.2.0``."""
    parts = wheel.name.split("-")
    if len(parts) < 5 or parts[0] != "clinicflow" or not wheel.name.endswith(".whl"):
        raise UpdateError(f"{wheel.name} is not a clinicflow wheel (clinicflow-VERSION-py3-none-any.whl)")
    return parts[1]


def publish_release(wheel: Path, *, releases_dir: Path, key_file: Path, requirements: Path | None = None) -> Path:
    """Copy the wheel (and its locked requirements) into ``releases_dir/<version>/`` with a signed manifest."""
    from cryptography.hazmat.primitives import serialization

    version = wheel_version(wheel)
    target = releases_dir / version
    if target.exists():
        raise UpdateError(f"release {version} is already published ({target}); bump the version")
    staging = releases_dir / f".{version}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copy2(wheel, staging / wheel.name)
    if requirements is not None:
        shutil.copy2(requirements, staging / REQUIREMENTS)
    else:
        (staging / REQUIREMENTS).write_text("# no locked requirements: the wheel's own dependencies\n")
    files = {p.name: _sha256(p) for p in sorted(staging.iterdir())}
    manifest = json.dumps({"v": 1, "version": version, "wheel": wheel.name, "files": files,
                           "created": datetime.now(timezone.utc).isoformat()}, indent=2).encode()
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    (staging / MANIFEST).write_bytes(manifest)
    (staging / SIGNATURE).write_bytes(key.sign(manifest))  # type: ignore[call-arg, union-attr]
    os.replace(staging, target)
    return target


def release_main(argv: list[str] | None = None) -> int:
    """``clinicflow release publish WHEEL``: sign and publish a release for the fleet."""
    from config.registry import data_dir

    p = argparse.ArgumentParser(prog="clinicflow release", description="Publish a signed application release.")
    sub = p.add_subparsers(dest="action", required=True)
    pub = sub.add_parser("publish", help="sign WHEEL (and its locked requirements) into <data dir>/releases/<version>")
    pub.add_argument("wheel", type=Path)
    pub.add_argument("--requirements", type=Path, help="locked requirements (pip freeze of a tested device)")
    pub.add_argument("--data-dir", help="the server's data directory (default: $CLINICFLOW_DATA_DIR or ./clinicflow-data)")
    pub.add_argument("--key", type=Path, help="signing key (default: <data dir>/broker/release-signing.key)")
    args = p.parse_args(argv)
    data = data_dir(args.data_dir)
    key = args.key or data / "broker" / KEY_NAME
    if not key.exists():
        print(f"clinicflow release: no signing key at {key}. Fix: run `clinicflow broker-config` (it makes one)",
              file=sys.stderr)
        return 2
    try:
        target = publish_release(args.wheel, releases_dir=data / "releases", key_file=key, requirements=args.requirements)
    except (UpdateError, OSError) as exc:
        print(f"clinicflow release: {exc}", file=sys.stderr)
        return 1
    print(f"published {target.name} in {target}")
    return 0


# ----------------------------------------------------------------------------- the device side

LAUNCHER = """#!/bin/sh
# clinicflow A/B launcher (written by clinicflow.update; systemd's ExecStart). A release on trial
# that has not confirmed itself by its deadline is switched back before anything starts.
ROOT="$(cd "$(dirname "$0")" && pwd)"
if [ -f "$ROOT/state/trial" ]; then
  read deadline previous version < "$ROOT/state/trial"
  if [ "$(date +%s)" -ge "$deadline" ]; then
    ln -sfn "releases/$previous" "$ROOT/.current.tmp" && mv -T "$ROOT/.current.tmp" "$ROOT/current"
    echo "$version did not report healthy by its deadline (launcher); back to $previous" > "$ROOT/state/rolled-back"
    rm -f "$ROOT/state/trial"
  fi
fi
exec "$ROOT/current/venv/bin/python" -m clinicflow "$@"
"""


def _swap_link(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)  # atomic: the link is the old or the new one, never missing


def _http_get(url: str, timeout: float = 60.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http(s) URLs from the server)
        return response.read()


def _terminate_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


class Updater:
    """Installs, switches, confirms and rolls back releases under an app root (see the module docstring)."""

    def __init__(self, root: Path, *, public_key: Path | None = None, python: str = sys.executable,
                 reuse_site_packages: list[str] | None = None, confirm_after: float = 3.0,
                 health_timeout: float = 120.0, restart: Callable[[], None] = _terminate_self,
                 fetch: Callable[[str], bytes] = _http_get) -> None:
        self.root = Path(root)
        self.public_key = Path(public_key) if public_key else self.root / PUB_NAME
        self.python = python
        self.reuse = list(reuse_site_packages or [])
        self.confirm_after = confirm_after
        self.health_timeout = health_timeout
        self.restart = restart
        self.fetch = fetch
        self.state = IDLE
        self.detail: str | None = None
        self._lock = threading.Lock()
        self._busy = False

    @classmethod
    def from_environment(cls) -> "Updater | None":
        """An updater when this process runs from an app root (``$CLINICFLOW_APP_ROOT``), else None."""
        root = os.environ.get(ROOT_ENV)
        if not root:
            return None
        reuse = [p for p in os.environ.get(REUSE_ENV, "").split(os.pathsep) if p]
        key = os.environ.get(KEY_ENV)
        return cls(Path(root), public_key=Path(key) if key else None, reuse_site_packages=reuse)

    # -------------------------------------------------------------- layout
    @staticmethod
    def init_root(root: Path, version: str, venv: Path | None = None) -> Path:
        """Lay out an app root whose first release ``version`` is ``venv`` (moved in) or an empty venv to fill."""
        (root / "releases").mkdir(parents=True, exist_ok=True)
        (root / "state").mkdir(exist_ok=True)
        release = root / "releases" / version
        release.mkdir(exist_ok=True)
        if venv is not None and not (release / "venv").exists():
            shutil.move(str(venv), release / "venv")
        _swap_link(root / "current", f"releases/{version}")
        launcher = root / "launch"
        launcher.write_text(LAUNCHER)
        launcher.chmod(0o755)
        return launcher

    def running_version(self) -> str | None:
        link = self.root / "current"
        return Path(os.readlink(link)).name if link.is_symlink() else None

    def trial(self) -> tuple[float, str, str] | None:
        """(deadline, previous, version) while a release is on trial."""
        try:
            deadline, previous, version = (self.root / "state" / "trial").read_text().split()
            return float(deadline), previous, version
        except (OSError, ValueError):
            return None

    # ------------------------------------------------------------- install
    def _verify(self, manifest: bytes, signature: bytes) -> dict[str, Any]:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization

        try:
            key = serialization.load_pem_public_key(self.public_key.read_bytes())
        except OSError as exc:
            raise UpdateError(f"no release key at {self.public_key}: {exc}") from None
        try:
            key.verify(signature, manifest)  # type: ignore[call-arg, union-attr]
        except InvalidSignature:
            raise UpdateError("the release's signature does not verify with this site's release key") from None
        return json.loads(manifest)

    def install(self, base_url: str, version: str) -> Path:
        """Download, verify and install ``version`` into ``releases/<version>/venv``; raise UpdateError."""
        base = base_url.rstrip("/") + "/"
        release = self.root / "releases" / version
        work = self.root / "releases" / f".{version}.partial"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            self._set(DOWNLOADING, f"downloading {version}")
            manifest_bytes = self.fetch(base + MANIFEST)
            manifest = self._verify(manifest_bytes, self.fetch(base + SIGNATURE))
            if manifest.get("version") != version:
                raise UpdateError(f"the signed manifest is for {manifest.get('version')}, not {version}")
            for name, digest in manifest["files"].items():
                if "/" in name or name.startswith("."):
                    raise UpdateError(f"bad file name {name!r} in the manifest")
                data = self.fetch(base + name)
                if hashlib.sha256(data).hexdigest() != digest:
                    raise UpdateError(f"{name} does not match the signed manifest (damaged or tampered download)")
                (work / name).write_bytes(data)
            (work / MANIFEST).write_bytes(manifest_bytes)
            self._set(INSTALLING, f"installing {version}")
            # Straight into its final place (venvs do not move): a failure removes it again.
            shutil.rmtree(release, ignore_errors=True)
            release.mkdir()
            self._make_venv(work, release / "venv", manifest["wheel"])
            for item in work.iterdir():
                os.replace(item, release / item.name)
        except UpdateError:
            shutil.rmtree(release, ignore_errors=True)
            raise
        except (OSError, ValueError, KeyError, subprocess.SubprocessError) as exc:
            shutil.rmtree(release, ignore_errors=True)
            raise UpdateError(f"could not install release {version}: {exc}") from None
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return release

    def _make_venv(self, work: Path, venv: Path, wheel: str) -> None:
        steps = [[self.python, "-m", "venv", "--without-pip", str(venv)]]
        pip = [self.python, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
               "--disable-pip-version-check", "--no-index", "--find-links", str(work)]
        if not self.reuse:
            steps.append(pip + ["-r", str(work / REQUIREMENTS)])
        steps.append(pip + ["--no-deps", str(work / wheel)])
        for i, step in enumerate(steps):
            proc = subprocess.run(step, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                raise UpdateError(f"install failed ({' '.join(step[2:4])}): {proc.stderr.strip()[-300:]}")
            if i == 0 and self.reuse:
                site = next((venv / "lib").glob("python3*/site-packages"))
                (site / "_clinicflow_reuse.pth").write_text("\n".join(self.reuse) + "\n")
        proc = subprocess.run([str(venv / "bin" / "python"), "-c", "import clinicflow"], capture_output=True,
                              text=True, timeout=60)
        if proc.returncode != 0:
            raise UpdateError(f"the installed release does not import: {proc.stderr.strip()[-300:]}")

    # --------------------------------------------------------- switch, confirm, roll back
    def switch(self, version: str, health_timeout: float) -> str:
        """Make ``version`` current, on trial until ``health_timeout`` s from now; returns the previous version."""
        previous = self.running_version()
        if previous is None:
            raise UpdateError(f"{self.root} has no current release")
        state = self.root / "state"
        state.mkdir(exist_ok=True)
        (state / "rolled-back").unlink(missing_ok=True)
        trial = state / ".trial.tmp"
        trial.write_text(f"{int(time.time() + health_timeout)} {previous} {version}\n")
        os.replace(trial, state / "trial")
        _swap_link(self.root / "previous", f"releases/{previous}")
        _swap_link(self.root / "current", f"releases/{version}")
        return previous

    def rollback(self, reason: str) -> None:
        """Switch back to the release before the one on trial and say why (the caller restarts)."""
        trial = self.trial()
        if trial is None:
            return
        _, previous, version = trial
        _swap_link(self.root / "current", f"releases/{previous}")
        (self.root / "state" / "rolled-back").write_text(f"{version} {reason}; back to {previous}\n")
        (self.root / "state" / "trial").unlink(missing_ok=True)
        self._set(ROLLED_BACK, f"{version} {reason}; rolling back to {previous}")
        log.error("update to %s rolled back: %s", version, reason)

    def confirm(self) -> None:
        (self.root / "state" / "trial").unlink(missing_ok=True)
        self._set(OK, f"{self.running_version()} confirmed healthy")
        log.warning("release %s confirmed healthy", self.running_version())

    def _set(self, state: str, detail: str | None) -> None:
        self.state, self.detail = state, detail

    # ------------------------------------------------------------ the agent
    def attach(self, agent: Any) -> None:
        """Register the ``update`` command and the ``update_state`` details; judge a trial of this release."""
        rolled = self.root / "state" / "rolled-back"
        if rolled.exists():
            self._set(ROLLED_BACK, rolled.read_text().strip())
        agent.on_command("update", lambda args: self.command(agent, args))
        agent.add_detail("update_state", lambda: self.state)
        agent.add_detail("update_detail", lambda: self.detail)
        trial = self.trial()
        if trial is not None and trial[2] == self.running_version():
            self._set(TRIAL, f"{trial[2]} on trial until it reports healthy")
            threading.Thread(target=self._judge, args=(agent, trial[0]), name="update-trial", daemon=True).start()

    def _judge(self, agent: Any, deadline: float) -> None:
        healthy_since: float | None = None
        failed: list[str] = []
        while time.time() < deadline:
            status = agent.build_status()
            failed = sorted(name for name, ok in status.checks.items() if not ok)
            connected = bool(getattr(agent.bus, "connected", True))
            if connected and not failed:
                healthy_since = healthy_since or time.monotonic()
                if time.monotonic() - healthy_since >= self.confirm_after:
                    self.confirm()
                    agent.publish_status_now()
                    return
            else:
                healthy_since = None
            time.sleep(0.5)
        why = f"failed checks: {', '.join(failed)}" if failed else "never connected to the broker"
        self.rollback(f"did not report healthy within its time ({why})")
        try:
            agent.publish_status_now()
        finally:
            time.sleep(0.5)  # let the status leave before the restart
            self.restart()

    def command(self, agent: Any, args: dict[str, Any]) -> dict[str, Any]:
        """The ``update`` command: ``{"version": "0.2.0", "url": ".../releases/0.2.0/", "health_timeout": 120}``."""
        version = str(args.get("version") or "")
        url = str(args.get("url") or "")
        if not version or not url:
            raise UpdateError("update needs args version and url (the server's /releases/<version>/)")
        running = self.running_version()
        if version == running:
            return {"version": version, "already_running": True}
        with self._lock:
            if self._busy or self.trial() is not None:
                raise UpdateError("an update is already in progress on this device")
            self._busy = True
        try:
            self.install(url, version)
            agent.publish_status_now()
            previous = self.switch(version, float(args.get("health_timeout", self.health_timeout)))
        except UpdateError as exc:
            self._set(FAILED, str(exc))
            agent.publish_status_now()
            raise
        finally:
            self._busy = False
        self._set(TRIAL, f"restarting into {version}")
        agent.publish_status_now()
        threading.Timer(1.0, self.restart).start()  # after the answer went out
        return {"installed": version, "previous": previous, "restarting": True}
