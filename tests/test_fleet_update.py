"""A/B application updates: a call screen updates itself from the server and rolls back a release that is not healthy.

Three releases are built from this tree (``pip wheel --no-deps`` with the version bumped;
the third with a check that always fails, as a broken release would), signed with the key
``broker-config`` made and published with ``clinicflow release publish``. The device is a
real ``clinicflow display`` process started through the app root's launcher by a loop that
restarts it like systemd's ``Restart=always``; each release is installed into its own venv
(``--no-deps --no-index``, reusing this venv's site-packages through a ``.pth``: no network).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from clinicflow.update import Updater
from config.broker_config import generate
from queueserver.process import QueueServerProcess
from tests.fixtures_fleet import until

if TYPE_CHECKING:
    from playwright.sync_api import Browser

ROOT = Path(__file__).resolve().parent.parent


def _build(tmp: Path, version: str, *, broken: bool = False) -> subprocess.Popen[bytes]:
    """Start building clinicflow ``version`` from a copy of this tree into ``tmp/wheels``."""
    src = tmp / f"src-{version}"
    src.mkdir(parents=True)
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           check=True, capture_output=True).stdout.split(b"\0")
    for name in filter(None, files):
        path = ROOT / name.decode()
        if path.is_file():
            (src / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, src / name.decode())
    setup = src / "setup.py"
    setup.write_text(setup.read_text().replace('version="0.1.0"', f'version="{version}"'))
    init = src / "clinicflow" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "0.1.0"', f'__version__ = "{version}"'))
    if broken:  # a release whose own health check fails, as a release with a real bug would
        agent = src / "clinicflow" / "agent.py"
        text = agent.read_text()
        marker = "        checks[CHECK_CONFIG] = self._config_error is None\n"
        assert marker in text
        agent.write_text(text.replace(marker, marker + '        checks["release_smoke"] = False\n'))
    return subprocess.Popen([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "wheels"), str(src)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


class Supervisor:
    """Runs the app root's launcher again whenever it exits (systemd ``Restart=always``, ``RestartSec`` 0.3 s)."""

    def __init__(self, launcher: Path, args: list[str], env: dict[str, str], log: Path) -> None:
        self.launcher, self.args, self.env, self.log = launcher, args, env, log
        self.starts = 0
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with open(self.log, "ab") as out:
                # The unit's WorkingDirectory: not this source tree, or `python -m` would import it instead.
                self._proc = subprocess.Popen([str(self.launcher), *self.args], env=self.env, stdout=out, stderr=out,
                                              cwd=self.log.parent, start_new_session=True)
                self.starts += 1
                self._proc.wait()
            self._stop.wait(0.3)

    def stop(self) -> None:
        self._stop.set()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._thread.join(10)


def test_a_device_updates_itself_and_rolls_back_a_release_that_is_not_healthy(tmp_path, mosquitto, browser,
                                                                              artifacts_dir):
    if not shutil.which("git"):
        pytest.skip("git is needed to copy this tree")
    builds = {v: _build(tmp_path, v, broken=(v == "0.3.0")) for v in ("0.1.0", "0.2.0", "0.3.0")}
    for version, proc in builds.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"building {version}: {out.decode(errors='replace')[-2000:]}"
    wheels = {v: tmp_path / "wheels" / f"clinicflow-{v}-py3-none-any.whl" for v in builds}

    # The server: broker-config made the site's release key; two releases are published with it.
    data = tmp_path / "server"
    generate(data / "broker", data=data, hostnames=["localhost"])
    assert (data / "broker" / "release-signing.key").stat().st_mode & 0o777 == 0o600
    for version in ("0.2.0", "0.3.0"):
        published = subprocess.run([sys.executable, "-m", "clinicflow", "release", "publish", str(wheels[version]),
                                    "--data-dir", str(data)], cwd=ROOT, capture_output=True, text=True)
        assert published.returncode == 0, published.stderr
    site = f"upd{int(time.time() * 1000) % 10**8}"
    server = QueueServerProcess(data, mosquitto.url, site=site).start()

    # Two call screens, each an app root whose first release is 0.1.0, with the site's key from provisioning.
    reuse = sysconfig.get_paths()["purelib"]  # this venv's dependencies (Kivy, paho...), as a .pth in each release
    screens: dict[str, tuple[Path, Supervisor]] = {}
    admin = server.client("admin")
    try:
        for name in ("door-u1", "door-u2"):
            app = tmp_path / name
            launcher = Updater.init_root(app, "0.1.0")
            shutil.copy(data / "broker" / "release-signing.pub", app / "release-signing.pub")
            Updater(app, reuse_site_packages=[reuse])._make_venv(wheels["0.1.0"].parent, app / "releases" / "0.1.0" / "venv",
                                                                 wheels["0.1.0"].name)
            env = dict(os.environ, CLINICFLOW_APP_ROOT=str(app), CLINICFLOW_REUSE_SITE_PACKAGES=reuse, KIVY_NO_ARGS="1",
                       KIVY_HOME=str(tmp_path / f"kivy-{name}"), CLINICFLOW_STATE_DIR=str(tmp_path / f"state-{name}"))
            env.pop("PYTHONPATH", None)  # the device runs its release, not this tree
            (tmp_path / f"work-{name}").mkdir()
            screens[name] = (app, Supervisor(launcher, [
                "display", "--broker", mosquitto.url, "--site", site, "--rooms", "r1", "--layout", "door",
                "--device-id", name, "--speaker", "fake", "--size", "320x200", "--watchdog", "0"],
                env, tmp_path / f"work-{name}" / "device.log"))

        def entry(name: str) -> dict:
            r = admin.get(f"/api/v1/fleet/{name}")
            return r.json() if r.status_code == 200 else {}

        def wait(name: str, predicate, timeout=30.0) -> dict:
            try:
                return until(lambda: entry(name), predicate, timeout)
            except AssertionError:
                log = (tmp_path / f"work-{name}" / "device.log").read_text()[-3000:]
                raise AssertionError(f"{entry(name)}\n--- device log ---\n{log}") from None

        def rollout_finished(rollout_id: str, timeout: float) -> dict:
            return until(lambda: next(r for r in admin.get("/api/v1/fleet/updates").json()["rollouts"]
                                      if r["id"] == rollout_id), lambda r: r["state"] != "running", timeout)

        for name in screens:
            assert "update" in wait(name, lambda d: d.get("online") and d.get("version") == "0.1.0")["commands"]

        # A good release, one screen first, then the rest: each installs beside its running release,
        # switches, restarts and confirms itself healthy.
        r = admin.post("/api/v1/fleet/updates", json={"version": "0.2.0", "role": "door_screen", "first": 1,
                                                      "health_timeout": 60})
        assert r.status_code == 202, r.text
        rollout = rollout_finished(r.json()["rollout"]["id"], 90)
        assert rollout["state"] == "done" and rollout["waves"] == [["door-u1"], ["door-u2"]]
        assert rollout["devices"] == {"door-u1": "updated", "door-u2": "updated"}
        for name, (app, _) in screens.items():
            assert wait(name, lambda d: d.get("version") == "0.2.0")["update_state"] == "ok"
            assert os.readlink(app / "current") == "releases/0.2.0" and not (app / "state" / "trial").exists()
            assert (app / "releases" / "0.1.0" / "venv").exists()  # the old release stays, ready to go back to

        # A broken release: the first screen starts it, it never reports healthy, the screen goes back by
        # itself, and the rollout stops there: the second screen never gets it.
        r = admin.post("/api/v1/fleet/updates", json={"version": "0.3.0", "role": "door_screen", "first": 1,
                                                      "health_timeout": 6})
        rollout = rollout_finished(r.json()["rollout"]["id"], 60)
        assert rollout["state"] == "halted" and "door-u1 did not take 0.3.0" in rollout["reason"]
        assert rollout["devices"]["door-u1"].startswith("rolled back") and "release_smoke" in rollout["devices"]["door-u1"]
        assert rollout["devices"]["door-u2"] == "not sent (rollout halted)"
        d = wait("door-u1", lambda d: d.get("version") == "0.2.0" and d.get("update_state") == "rolled_back")
        assert "0.3.0" in d["update_detail"] and any("update rolled back" in p for p in d["problems"])
        assert os.readlink(screens["door-u1"][0] / "current") == "releases/0.2.0"
        assert entry("door-u2")["version"] == "0.2.0" and entry("door-u2")["update_state"] == "ok"
        _fleet_page_shows_updates(server, browser, artifacts_dir)

        # A release that was never published, and a tampered file, never reach a device.
        assert admin.post("/api/v1/fleet/updates", json={"version": "9.9.9", "devices": ["door-u1"]}).status_code == 404
        manifest = data / "releases" / "0.3.0" / "manifest.json"
        manifest.write_text(manifest.read_text().replace('"0.3.0"', '"0.3.0" ', 1))
        r = admin.post("/api/v1/fleet/updates", json={"version": "0.3.0", "devices": ["door-u2"], "health_timeout": 10})
        bad = r.json()["devices"]["door-u2"]
        assert bad["status"] == "error" and "signature does not verify" in bad["error"]
        assert wait("door-u2", lambda d: d.get("update_state") == "failed")["version"] == "0.2.0"
    finally:
        admin.close()
        for _, supervisor in screens.values():
            supervisor.stop()
        server.stop()


def _fleet_page_shows_updates(server: QueueServerProcess, browser: Browser, artifacts_dir: Path) -> None:
    from playwright.sync_api import expect

    # The session's one Chromium (tests/fixtures_browser.py): a second sync Playwright cannot start beside it.
    context = browser.new_context(viewport={"width": 1500, "height": 700})
    try:
        page = context.new_page()
        page.goto(f"{server.base_url}/fleet#token={server.tokens['admin']}&lang=en")
        expect(page.locator("tr[data-device=door-u1] .version")).to_have_text("0.2.0 · update rolled back")
        expect(page.locator("tr[data-device=door-u2] .version")).to_have_text("0.2.0 · update ok")
        expect(page.locator("#rollouts li[data-version='0.3.0']")).to_contain_text("halted")
        page.screenshot(path=str(artifacts_dir / "fleet-updates.png"), full_page=True)
    finally:
        context.close()


def test_the_launcher_switches_back_a_release_that_never_confirmed_before_starting_anything(tmp_path):
    app = tmp_path / "app"
    launcher = Updater.init_root(app, "1.0.0")
    for version in ("1.0.0", "1.1.0"):  # stand-in interpreters that say which release runs
        python = app / "releases" / version / "venv" / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text(f"#!/bin/sh\necho running {version} \"$@\"\n")
        python.chmod(0o755)
    updater = Updater(app)
    updater.switch("1.1.0", health_timeout=60)
    assert subprocess.run([str(launcher), "display"], capture_output=True, text=True).stdout.strip() == \
        "running 1.1.0 -m clinicflow display"  # on trial, within its time: the new one runs

    # 1.1.0 crashed at every start and never confirmed; its deadline has passed.
    (app / "state" / "trial").write_text(f"{int(time.time()) - 1} 1.0.0 1.1.0\n")
    out = subprocess.run([str(launcher), "display"], capture_output=True, text=True).stdout.strip()
    assert out == "running 1.0.0 -m clinicflow display"
    assert os.readlink(app / "current") == "releases/1.0.0" and updater.trial() is None
    assert "1.1.0 did not report healthy" in (app / "state" / "rolled-back").read_text()


def test_a_device_provisioned_as_the_docs_say_can_install_and_run_a_signed_release(tmp_path):
    """broker-config, devices add and provision exactly as docs/technicians.md prints them: no hand steps after."""
    if not shutil.which("git"):
        pytest.skip("git is needed to copy this tree")
    from clinicflow.cli import main as clinicflow_main
    from clinicflow.rehearsal import doc_commands, split_and

    build = _build(tmp_path, "0.2.0")
    data, pi = tmp_path / "server", tmp_path / "pi"
    blocks = doc_commands()

    def run(block: str, first_word: str, *extra: str) -> None:
        words = next(part for line in blocks[block] for part in split_and(line) if part[1:2] == [first_word])
        words = [str(data) if w == "/var/lib/clinicflow" else w for w in words]
        if first_word == "provision":
            words = [str(data / "bundles" / w) if w.endswith(".cfbundle") else w for w in words]
        assert clinicflow_main([*words[1:], *extra]) == 0, words

    run("server", "broker-config")
    run("devices", "devices")  # the first device of the block: kiosk-1
    bundle = data / "bundles" / "kiosk-1.cfbundle"
    assert clinicflow_main(["provision", str(bundle), "--root", str(pi), "--exec", str(Path(sys.prefix) / "bin" / "clinicflow")]) == 0

    # The unit starts the A/B launcher with the app root and the site's key, both laid out by provision.
    unit = (pi / "etc/systemd/system/clinicflow-kiosk.service").read_text()
    env = dict(line.removeprefix("Environment=").split("=", 1) for line in unit.splitlines() if line.startswith("Environment="))
    assert "ExecStart=/opt/clinicflow/launch kiosk" in unit
    app, key = pi / env["CLINICFLOW_APP_ROOT"].lstrip("/"), pi / env["CLINICFLOW_RELEASE_KEY"].lstrip("/")
    assert key.read_bytes() == (data / "broker" / "release-signing.pub").read_bytes()
    assert Updater(app, public_key=key).running_version() == "0.1.0"
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    usage = subprocess.run([str(app / "launch"), "--help"], capture_output=True, text=True, env=clean, cwd=tmp_path, timeout=60)
    assert usage.returncode == 0 and "provision" in usage.stdout, usage.stderr

    # The server publishes 0.2.0; the device verifies it with the provisioned key, installs it beside 0.1.0, switches.
    out, _ = build.communicate(timeout=300)
    assert build.returncode == 0, out.decode(errors="replace")[-2000:]
    assert clinicflow_main(["release", "publish", str(tmp_path / "wheels" / "clinicflow-0.2.0-py3-none-any.whl"),
                            "--data-dir", str(data)]) == 0
    updater = Updater(app, public_key=key, reuse_site_packages=[sysconfig.get_paths()["purelib"]])
    updater.install((data / "releases" / "0.2.0").as_uri(), "0.2.0")
    assert updater.switch("0.2.0", health_timeout=120) == "0.1.0"
    version = subprocess.run([str(app / "current" / "venv" / "bin" / "python"), "-c",
                              "import clinicflow; print(clinicflow.__version__)"], capture_output=True, text=True,
                             env=clean, cwd=tmp_path, timeout=60)
    assert version.stdout.strip() == "0.2.0", version.stderr
    assert (app / "previous").resolve() == (app / "releases" / "0.1.0").resolve()
