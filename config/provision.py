"""``clinicflow provision BUNDLE``: turn this machine into the device the bundle describes.

Writes (under ``--root``, default ``/``)::

    /etc/clinicflow/device.toml              the config (validated first)
    /etc/clinicflow/secrets/api-token        mode 0600, owned by the service user
    /etc/clinicflow/secrets/mqtt-password    mode 0600
    /etc/clinicflow/ca.crt                   the broker's CA, when the broker uses TLS
    /var/lib/clinicflow/<id>/                the unit's working directory (lgpio writes here)
    /etc/systemd/system/clinicflow-<app>.service   Restart=always, WatchdogSec, Type=notify
    /etc/polkit-1/rules.d/50-clinicflow-reboot.rules   so the `reboot` command may reboot
    /etc/clinicflow/release-signing.pub      the site's release key, when the bundle has one
    /opt/clinicflow/                         the A/B app root (clinicflow.update): launch,
                                             current -> releases/<version>, whose venv is this installation

then, on the live root only, creates the service user, hands it the files, and
enables and (re)starts the unit. Every step prints what it did; running it again
changes nothing (``unchanged``); ``--dry-run`` prints what it would do and writes nothing.
A unit left by an earlier provisioning for another role is disabled and removed.
"""
from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from clinicflow import __version__
from clinicflow.update import LAUNCHER
from config.bundle import CA_PATH, CONFIG_PATH, RELEASE_KEY_PATH, ETC, MQTT_PASSWORD_PATH, SECRETS_DIR, TOKEN_PATH, Bundle, read_bundle
from config.loader import parse_config
from config.schema import ConfigError

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
APP_FOR_ROLE = {"kiosk": "kiosk", "door_screen": "display", "hall_board": "display", "button_box": "buttonbox"}
GROUPS_FOR_ROLE = {
    "kiosk": "video render input audio lp dialout plugdev",
    "door_screen": "video render input audio",
    "hall_board": "video render input audio",
    "button_box": "gpio dialout",
}
POLKIT_RULE = "/etc/polkit-1/rules.d/50-clinicflow-reboot.rules"
UNIT_DIR = "/etc/systemd/system"
MARKER = "# clinicflow-managed-unit"
APP_ROOT = "/opt/clinicflow"


@dataclass
class Plan:
    """What provisioning does, step by step, and what it reports."""

    root: Path
    dry_run: bool
    lines: list[str] = field(default_factory=list)
    changed: bool = False

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def say(self, verb: str, what: str) -> None:
        self.lines.append(f"{verb:10} {what}")
        print(f"{verb:10} {what}")

    def directory(self, absolute: str, mode: int) -> None:
        target = self.path(absolute)
        if target.is_dir():
            if (target.stat().st_mode & 0o777) != mode and not self.dry_run:
                target.chmod(mode)
                self.say("chmod", f"{absolute} {mode:o}")
            return
        self.changed = True
        if self.dry_run:
            self.say("would mkdir", absolute)
            return
        target.mkdir(parents=True, mode=mode)
        target.chmod(mode)
        self.say("mkdir", absolute)

    def file(self, absolute: str, text: str, mode: int) -> bool:
        """Write ``text`` if it differs; True when it did (or would)."""
        target = self.path(absolute)
        if target.exists() and target.read_text(encoding="utf-8") == text:
            if (target.stat().st_mode & 0o777) != mode and not self.dry_run:
                target.chmod(mode)
                self.say("chmod", f"{absolute} {mode:o}")
            else:
                self.say("unchanged", absolute)
            return False
        self.changed = True
        if self.dry_run:
            self.say("would write", f"{absolute} (mode {mode:o})")
            return True
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.new")
        # Create with the final mode, so a secret is never readable by others even for a moment.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
        self.say("wrote", f"{absolute} (mode {mode:o})")
        return True

    def symlink(self, absolute: str, target: str) -> None:
        """Point ``absolute`` at ``target`` (kept when it already does; replaced atomically)."""
        link = self.path(absolute)
        if link.is_symlink() and os.readlink(link) == target:
            self.say("unchanged", f"{absolute} -> {target}")
            return
        self.changed = True
        if self.dry_run:
            self.say("would link", f"{absolute} -> {target}")
            return
        tmp = link.with_name(f".{link.name}.new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, link)
        self.say("linked", f"{absolute} -> {target}")

    def remove(self, absolute: str) -> None:
        self.changed = True
        if self.dry_run:
            self.say("would remove", absolute)
            return
        self.path(absolute).unlink()
        self.say("removed", absolute)


def render_unit(bundle: Bundle, *, exec_path: str, user: str) -> str:
    app = APP_FOR_ROLE[bundle.role]
    screens = bundle.role != "button_box"
    extra_env = "Environment=DISPLAY=:0\n" if screens else "Environment=GPIOZERO_PIN_FACTORY=lgpio\n"
    if bundle.release_key:
        # Updatable: systemd starts the A/B launcher, which runs whatever release is current.
        exec_path = f"{APP_ROOT}/launch"
        extra_env += f"Environment=CLINICFLOW_APP_ROOT={APP_ROOT}\nEnvironment=CLINICFLOW_RELEASE_KEY={RELEASE_KEY_PATH}\n"
    return Template((DEPLOY / "clinicflow-device.service.in").read_text()).substitute(
        device_id=bundle.device_id, role=bundle.role, role_title=bundle.role.replace("_", " "), docs=REPO, user=user,
        groups=GROUPS_FOR_ROLE[bundle.role], workdir=f"/var/lib/clinicflow/{bundle.device_id}", config=CONFIG_PATH,
        exec=exec_path, command=app, extra_env=extra_env,
        wanted_by="graphical.target" if screens else "multi-user.target")


def default_exec() -> str:
    candidate = Path(sys.prefix) / "bin" / "clinicflow"
    return str(candidate) if candidate.exists() else (shutil.which("clinicflow") or str(candidate))


def provision(bundle: Bundle, *, root: Path, dry_run: bool, user: str = "clinicflow", exec_path: str | None = None,
              manage_services: bool | None = None) -> Plan:
    """Write everything the bundle describes under ``root``; on the live root also set up the service."""
    config = parse_config(bundle.config_toml, source=f"bundle for {bundle.device_id}")
    if config.device.id != bundle.device_id or config.device.role != bundle.role:
        raise ConfigError("bundle is inconsistent: its config names another device or role. Fix: issue it again")
    live = manage_services if manage_services is not None else root.resolve() == Path("/")
    plan = Plan(root=root, dry_run=dry_run)
    app = APP_FOR_ROLE[bundle.role]
    plan.say("device", f"{bundle.device_id}: {bundle.role} at site {bundle.site}, rooms {', '.join(config.settings.rooms) or 'all'}")

    plan.directory(ETC, 0o755)
    plan.directory(SECRETS_DIR, 0o700)
    plan.file(CONFIG_PATH, bundle.config_toml, 0o644)
    plan.file(TOKEN_PATH, bundle.api_token + "\n", 0o600)
    plan.file(MQTT_PASSWORD_PATH, bundle.mqtt_password + "\n", 0o600)
    if bundle.ca_cert:
        plan.file(CA_PATH, bundle.ca_cert, 0o644)
    workdir = f"/var/lib/clinicflow/{bundle.device_id}"
    plan.directory("/var/lib/clinicflow", 0o755)
    plan.directory(workdir, 0o750)
    exec_path = exec_path or default_exec()
    if bundle.release_key:
        _app_root(plan, bundle.release_key, venv=str(Path(exec_path).resolve().parent.parent))
    unit_name = f"clinicflow-{app}.service"
    unit_changed = plan.file(f"{UNIT_DIR}/{unit_name}", render_unit(bundle, exec_path=exec_path, user=user), 0o644)
    plan.file(POLKIT_RULE, Template((DEPLOY / "50-clinicflow-reboot.rules.in").read_text()).substitute(user=user), 0o644)

    stale = []
    for other in sorted(set(APP_FOR_ROLE.values()) - {app}):
        path = plan.path(f"{UNIT_DIR}/clinicflow-{other}.service")
        if path.exists() and MARKER in path.read_text():
            stale.append(f"clinicflow-{other}.service")
            if live and not dry_run:
                _run(plan, ["systemctl", "disable", "--now", f"clinicflow-{other}.service"])
            plan.remove(f"{UNIT_DIR}/clinicflow-{other}.service")

    if not live:
        plan.say("skipped", "service user, ownership and systemctl (not the live root)")
        return plan
    if dry_run:
        plan.say("would run", f"useradd/chown for {user}; systemctl daemon-reload; systemctl enable --now {unit_name}")
        return plan
    _ensure_user(plan, user, config.device.role)
    owned = [SECRETS_DIR, TOKEN_PATH, MQTT_PASSWORD_PATH, workdir]
    if bundle.release_key:  # the device installs releases and records its trials itself
        owned += [APP_ROOT, f"{APP_ROOT}/releases", f"{APP_ROOT}/state"]
    for absolute in owned:
        shutil.chown(plan.path(absolute), user=user, group=user)
    _run(plan, ["systemctl", "daemon-reload"])
    _run(plan, ["systemctl", "enable", unit_name])
    _run(plan, ["systemctl", "restart" if (plan.changed or unit_changed or stale) else "start", unit_name])
    return plan


def _app_root(plan: Plan, release_key: str, *, venv: str) -> None:
    """The A/B layout of clinicflow.update, whose first release is this installation's venv (linked, not copied)."""
    plan.file(RELEASE_KEY_PATH, release_key, 0o644)
    plan.directory(APP_ROOT, 0o755)
    plan.directory(f"{APP_ROOT}/releases", 0o755)
    plan.directory(f"{APP_ROOT}/state", 0o755)
    plan.directory(f"{APP_ROOT}/releases/{__version__}", 0o755)
    plan.symlink(f"{APP_ROOT}/releases/{__version__}/venv", venv)
    if not plan.path(f"{APP_ROOT}/current").is_symlink():  # an update moved it on: provisioning again keeps that
        plan.symlink(f"{APP_ROOT}/current", f"releases/{__version__}")
    plan.file(f"{APP_ROOT}/launch", LAUNCHER, 0o755)


def _ensure_user(plan: Plan, user: str, role: str) -> None:
    try:
        pwd.getpwnam(user)
        return
    except KeyError:
        pass
    _run(plan, ["useradd", "--system", "--home-dir", "/var/lib/clinicflow", "--shell", "/usr/sbin/nologin", user])


def _run(plan: Plan, command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    plan.say("ran" if done.returncode == 0 else "FAILED", " ".join(command) + (f": {done.stderr.strip()}" if done.returncode else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clinicflow provision", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", help="the .cfbundle file, or a text file with the scanned QR code")
    parser.add_argument("--root", default="/", help="install under this directory instead of / (images, tests)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be done; change nothing")
    parser.add_argument("--user", default="clinicflow", help="the service user (default clinicflow)")
    parser.add_argument("--exec", dest="exec_path", help="path of the clinicflow command (default this installation's)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if root.resolve() == Path("/") and os.geteuid() != 0 and not args.dry_run:
        print("provision: run as root (sudo clinicflow provision ...), or use --dry-run", file=sys.stderr)
        return 1
    try:
        bundle = read_bundle(Path(args.bundle))
        plan = provision(bundle, root=root, dry_run=args.dry_run, user=args.user, exec_path=args.exec_path)
    except ConfigError as exc:
        print(f"provision: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"provision: {exc}", file=sys.stderr)
        return 1
    verdict = "nothing to change" if not plan.changed else ("dry run: nothing written" if args.dry_run else "done")
    print(f"provision: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
