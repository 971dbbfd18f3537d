"""A technician with a box of Pis: `devices add` on the server, `provision` on each device (into a temp root)."""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from config import devices_cli, provision
from config.bundle import read_bundle
from config.loader import broker_url, load_config
from config.registry import DeviceRegistry, token_hash


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def server_data(tmp_path) -> Path:
    return tmp_path / "server"


def _add(server_data: Path, *args: str) -> None:
    assert devices_cli.main(["--data-dir", str(server_data), "add", "--server-url", "http://queue.local:8000",
                             "--broker-url", "mqtt://broker.local:1883", *args]) == 0


def test_devices_add_creates_identity_credentials_acl_and_a_bundle(server_data, capsys):
    _add(server_data, "--role", "display", "--rooms", "3,4", "--name", "hall-2", "--label", "Surgery waiting")
    out = capsys.readouterr().out
    assert "added hall_board hall-2 at site demo for rooms r3, r4" in out

    record = DeviceRegistry.in_data_dir(server_data).get("hall-2")
    assert record.role == "hall_board" and record.rooms == ("r3", "r4") and record.api_role == "display"
    passwd = (server_data / "broker" / "passwd").read_text()
    assert passwd.startswith("hall-2:$7$")  # PBKDF2-SHA512, hashed by mosquitto_passwd
    acl = (server_data / "broker" / "acl").read_text()
    assert "user hall-2\n" in acl and "topic write clinicflow/v1/demo/devices/hall-2/status" in acl

    bundle = read_bundle(server_data / "bundles" / "hall-2.cfbundle")
    assert _mode(server_data / "bundles" / "hall-2.cfbundle") == 0o600
    assert token_hash(bundle.api_token) == record.token_sha256
    assert bundle.mqtt_password not in passwd and bundle.mqtt_password not in bundle.config_toml
    assert not re.search(r"^(password|token)\s*=", bundle.config_toml, re.MULTILINE)

    # A second device of the same name is refused; --replace issues new credentials.
    assert devices_cli.main(["--data-dir", str(server_data), "add", "--role", "kiosk", "--name", "hall-2"]) == 1
    assert "already exists" in capsys.readouterr().err


def test_the_qr_code_carries_the_whole_bundle(server_data, tmp_path):
    _add(server_data, "--role", "kiosk", "--name", "kiosk-7", "--usb-id", "04b8:0e28", "--printer-model", "Epson TM-T20III")
    png = server_data / "bundles" / "kiosk-7.png"
    scanned = subprocess.run(["zbarimg", "--quiet", "--raw", str(png)], capture_output=True, text=True, timeout=30)
    assert scanned.returncode == 0, scanned.stderr
    (tmp_path / "scanned.txt").write_text(scanned.stdout)
    assert read_bundle(tmp_path / "scanned.txt") == read_bundle(server_data / "bundles" / "kiosk-7.cfbundle")


def test_provision_writes_config_secrets_and_a_watchdogged_unit_then_changes_nothing(server_data, tmp_path, capsys):
    _add(server_data, "--role", "display", "--rooms", "3,4", "--name", "hall-2")
    bundle_file = server_data / "bundles" / "hall-2.cfbundle"
    root = tmp_path / "pi"

    assert provision.main([str(bundle_file), "--root", str(root), "--dry-run"]) == 0
    assert "would write /etc/clinicflow/device.toml" in capsys.readouterr().out
    assert not root.exists()

    assert provision.main([str(bundle_file), "--root", str(root), "--exec", "/opt/clinicflow/.venv/bin/clinicflow"]) == 0
    first = capsys.readouterr().out
    assert "wrote      /etc/systemd/system/clinicflow-display.service" in first

    config = load_config(root / "etc/clinicflow/device.toml")
    assert config.device.id == "hall-2" and config.settings.rooms == ("r3", "r4")
    bundle = read_bundle(bundle_file)
    assert (root / "etc/clinicflow/secrets/mqtt-password").read_text().strip() == bundle.mqtt_password
    assert _mode(root / "etc/clinicflow/secrets/mqtt-password") == 0o600
    assert _mode(root / "etc/clinicflow/secrets/api-token") == 0o600
    assert _mode(root / "etc/clinicflow/secrets") == 0o700

    unit = (root / "etc/systemd/system/clinicflow-display.service").read_text()
    for line in ("Restart=always", "WatchdogSec=30", "Type=notify", "WorkingDirectory=/var/lib/clinicflow/hall-2",
                 "ExecStart=/opt/clinicflow/.venv/bin/clinicflow display", "User=clinicflow",
                 "Environment=CLINICFLOW_CONFIG=/etc/clinicflow/device.toml", "StartLimitIntervalSec=0"):
        assert line in unit, line
    assert (root / "var/lib/clinicflow/hall-2").is_dir()
    assert "clinicflow" in (root / "etc/polkit-1/rules.d/50-clinicflow-reboot.rules").read_text()

    # Idempotent: the same bundle again changes nothing.
    assert provision.main([str(bundle_file), "--root", str(root), "--exec", "/opt/clinicflow/.venv/bin/clinicflow"]) == 0
    again = capsys.readouterr().out
    assert "provision: nothing to change" in again and "wrote" not in again


def test_reprovisioning_a_pi_for_another_role_removes_the_old_unit(server_data, tmp_path, capsys):
    root = tmp_path / "pi"
    _add(server_data, "--role", "display", "--rooms", "3", "--name", "door-3")
    assert provision.main([str(server_data / "bundles" / "door-3.cfbundle"), "--root", str(root)]) == 0
    assert (root / "etc/systemd/system/clinicflow-display.service").exists()
    _add(server_data, "--role", "button_box", "--rooms", "3", "--name", "buttons-3")
    assert provision.main([str(server_data / "bundles" / "buttons-3.cfbundle"), "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "removed    /etc/systemd/system/clinicflow-display.service" in out
    unit = (root / "etc/systemd/system/clinicflow-buttonbox.service").read_text()
    assert "ExecStart=" in unit and "buttonbox" in unit and "GPIOZERO_PIN_FACTORY=lgpio" in unit
    # systemd itself accepts the unit: no unknown keys, no bad values.
    verified = subprocess.run(["systemd-analyze", "verify", str(root / "etc/systemd/system/clinicflow-buttonbox.service")],
                              capture_output=True, text=True, timeout=30)
    assert verified.returncode == 0 and "clinicflow-buttonbox.service" not in verified.stderr, verified.stderr
    assert load_config(root / "etc/clinicflow/device.toml").hardware.buttons.call_next_pin == 17


def test_a_damaged_or_foreign_bundle_is_refused(tmp_path, capsys):
    (tmp_path / "x.cfbundle").write_text(json.dumps({"kind": "something-else"}))
    assert provision.main([str(tmp_path / "x.cfbundle"), "--root", str(tmp_path / "pi")]) == 1
    assert "not a clinicflow provisioning bundle" in capsys.readouterr().err
    (tmp_path / "y.txt").write_text("CFPB1:not-base64!!")
    assert provision.main([str(tmp_path / "y.txt"), "--root", str(tmp_path / "pi")]) == 1
    assert "damaged" in capsys.readouterr().err
    assert not (tmp_path / "pi").exists()


def test_a_provisioned_device_reads_its_password_from_the_secret_file(server_data, tmp_path):
    _add(server_data, "--role", "kiosk", "--name", "kiosk-2")
    root = tmp_path / "pi"
    assert provision.main([str(server_data / "bundles" / "kiosk-2.cfbundle"), "--root", str(root)]) == 0
    text = (root / "etc/clinicflow/device.toml").read_text().replace("/etc/clinicflow", str(root / "etc/clinicflow"))
    (root / "etc/clinicflow/device.toml").write_text(text)
    config = load_config(root / "etc/clinicflow/device.toml")
    password = read_bundle(server_data / "bundles" / "kiosk-2.cfbundle").mqtt_password
    assert broker_url(config) == f"mqtt://kiosk-2:{password}@broker.local:1883"


def test_a_new_devices_api_token_works_on_the_queue_server_after_a_restart(queue_server, capsys):
    assert devices_cli.main(["--data-dir", str(queue_server.data_dir), "add", "--role", "display", "--rooms", "1",
                             "--name", "door-1", "--broker-url", queue_server.broker_url]) == 0
    assert "restart it" in capsys.readouterr().out
    bundle = read_bundle(queue_server.data_dir / "bundles" / "door-1.cfbundle")
    queue_server.stop()
    queue_server.start()
    headers = {"Authorization": f"Bearer {bundle.api_token}"}
    with httpx.Client(base_url=queue_server.base_url, headers=headers, timeout=10) as screen:
        assert screen.get("/api/v1/rooms/r1/state").status_code == 200
        refused = screen.post("/api/v1/rooms/r1/call-next")
        assert refused.status_code == 403 and "display token" in refused.json()["detail"]
    assert devices_cli.main(["--data-dir", str(queue_server.data_dir), "remove", "door-1"]) == 0
    queue_server.stop()
    queue_server.start()
    with httpx.Client(base_url=queue_server.base_url, headers=headers, timeout=10) as screen:
        assert screen.get("/api/v1/rooms/r1/state").status_code == 401


@pytest.mark.parametrize("name", ["queueserver", "QueueServer", "queueserver-2", "campus-east", "bridge-east",
                                  "clinicflow-server-demo-1a2b3c4d"])
def test_names_the_system_uses_on_the_broker_are_refused(server_data, capsys, name):
    _add(server_data, "--role", "kiosk", "--name", "kiosk-1")
    before = (server_data / "broker" / "passwd").read_text()
    assert devices_cli.main(["--data-dir", str(server_data), "add", "--role", "kiosk", "--name", name]) == 1
    assert "refused" in capsys.readouterr().err
    assert (server_data / "broker" / "passwd").read_text() == before
    assert [r.id for r in DeviceRegistry.in_data_dir(server_data).all()] == ["kiosk-1"]


def test_a_name_that_already_is_a_broker_user_is_refused(server_data, capsys):
    from config.broker_files import MosquittoPasswords

    MosquittoPasswords(server_data / "broker" / "passwd").set("nurse-station", "x" * 24)
    assert devices_cli.main(["--data-dir", str(server_data), "add", "--role", "kiosk", "--name", "nurse-station"]) == 1
    assert "already a broker user" in capsys.readouterr().err


def test_broker_secrets_stay_readable_by_the_mosquitto_group_after_every_change(server_data):
    import grp

    _add(server_data, "--role", "kiosk", "--name", "kiosk-1")
    _add(server_data, "--role", "display", "--rooms", "3", "--name", "door-3")
    assert devices_cli.main(["--data-dir", str(server_data), "remove", "kiosk-1"]) == 0
    passwd = server_data / "broker" / "passwd"
    assert _mode(passwd) == 0o640 and grp.getgrgid(passwd.stat().st_gid).gr_name == "mosquitto"
    assert [line.split(":")[0] for line in passwd.read_text().splitlines()] == ["door-3"]


def test_the_qr_png_is_private_from_the_moment_it_is_written(server_data, monkeypatch):
    """It holds the MQTT password and API token: 0600 while PIL writes it, not chmod-ed afterwards."""
    from PIL import PngImagePlugin

    modes: list[int] = []
    real_save = PngImagePlugin._save

    def spy(im, fp, filename, *args, **kwargs):
        modes.append(stat.S_IMODE(os.fstat(fp.fileno()).st_mode))
        return real_save(im, fp, filename, *args, **kwargs)

    monkeypatch.setattr(PngImagePlugin, "_save", spy)
    monkeypatch.setitem(PngImagePlugin.Image.SAVE, "PNG", spy)
    old = os.umask(0o022)
    try:
        _add(server_data, "--role", "kiosk", "--name", "kiosk-1")
    finally:
        os.umask(old)
    assert modes == [0o600]
    assert _mode(server_data / "bundles" / "kiosk-1.png") == 0o600


def test_a_new_ca_gets_the_broker_a_new_certificate(tmp_path):
    from cryptography import x509

    from config.tls import days_left, ensure_ca, ensure_server_cert

    broker = tmp_path / "broker"
    ca, _ = ensure_ca(broker)
    cert, made = ensure_server_cert(broker, ca, ["broker.local"])
    assert made and not ensure_server_cert(broker, ca, ["broker.local"])[1]  # kept while all is well
    assert 800 < days_left(cert.cert) <= 825
    ca.cert.unlink()
    ca.key.unlink()
    new_ca, made = ensure_ca(broker)
    assert made
    _, reissued = ensure_server_cert(broker, new_ca, ["broker.local"])
    assert reissued
    x509.load_pem_x509_certificate(cert.cert.read_bytes()).verify_directly_issued_by(
        x509.load_pem_x509_certificate(new_ca.cert.read_bytes()))


def test_the_server_units_are_valid_and_keep_secrets_off_the_command_line(tmp_path):
    import sys

    from config import server_units

    out = tmp_path / "units"
    assert server_units.main(["--data-dir", str(tmp_path / "data"), "--out", str(out), "--exec", sys.executable]) == 0
    server = (out / "clinicflow-server.service").read_text()
    assert "EnvironmentFile=" in server and "--broker" not in server  # the password comes from server.env (0600)
    texts = [(out / u).read_text() for u in server_units.UNITS] + [provision.DEPLOY.joinpath("clinicflow-device.service.in").read_text()]
    for text in texts:  # After= alone does not pull the target in: every unit ordered after it also Wants= it
        lines = text.splitlines()
        if any(line.startswith("After=") and "time-sync.target" in line for line in lines):
            assert any(line.startswith("Wants=") and "time-sync.target" in line for line in lines), text
    verified = subprocess.run(["systemd-analyze", "verify", *(str(out / u) for u in server_units.UNITS)],
                              capture_output=True, text=True, timeout=30)
    assert verified.returncode == 0 and "clinicflow-" not in verified.stderr, verified.stderr


def test_a_campus_device_is_added_with_the_campus_brokers_files(server_data, tmp_path):
    """`devices --broker-dir`: the bundle names the campus broker and its CA; the API token stays central."""
    from config import broker_config
    from config.broker_files import MosquittoPasswords

    campus = tmp_path / "campus"
    assert broker_config.main(["--data-dir", str(campus), "--hostname", "broker.east.local", "--server-port", "0"]) == 0
    assert devices_cli.main(["--data-dir", str(server_data), "--broker-dir", str(campus / "broker"), "add",
                             "--role", "display", "--rooms", "7", "--name", "east-door-7",
                             "--server-url", "http://queue.local:8000"]) == 0
    bundle = read_bundle(server_data / "bundles" / "east-door-7.cfbundle")
    assert 'url = "mqtts://broker.east.local:8883"' in bundle.config_toml
    assert bundle.ca_cert == (campus / "broker" / "ca.crt").read_text()
    assert "east-door-7" in MosquittoPasswords(campus / "broker" / "passwd").users()
    assert "user east-door-7\n" in (campus / "broker" / "acl").read_text()
    assert "device:east-door-7" in json.loads((server_data / "tokens.json").read_text())


@pytest.mark.skipif(os.geteuid() != 0, reason="handing files to the server's user needs root, as `sudo devices add` has")
def test_sudo_devices_add_leaves_the_servers_files_readable_by_the_servers_user(server_data):
    import grp
    import pwd

    nobody = pwd.getpwnam("nobody")
    server_data.mkdir(parents=True)
    os.chown(server_data, nobody.pw_uid, nobody.pw_gid)  # the data dir belongs to the server's user
    _add(server_data, "--role", "kiosk", "--name", "kiosk-1")
    tokens = (server_data / "tokens.json").stat()
    assert (tokens.st_uid, _mode(server_data / "tokens.json")) == (nobody.pw_uid, 0o600)
    passwd = (server_data / "broker" / "passwd").stat()
    assert passwd.st_uid == 0 and grp.getgrgid(passwd.st_gid).gr_name == "mosquitto"
