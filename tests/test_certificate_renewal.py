"""The broker certificate is renewed before it ends, and the fleet is warned 30 days ahead if it was not."""
from __future__ import annotations

from config import broker_config, tls
from config.tls import days_left, ensure_ca, ensure_server_cert
from queueserver.fleet.registry import FleetRegistry


def _short_lived(broker, monkeypatch, days: int):
    ca, _ = ensure_ca(broker)
    (broker / "server.crt").unlink(missing_ok=True)  # issue a new one with the short validity
    monkeypatch.setattr(tls, "SERVER_DAYS", days)
    cert, _ = ensure_server_cert(broker, ca, ["broker.local", "localhost", "127.0.0.1"])
    monkeypatch.setattr(tls, "SERVER_DAYS", 825)
    return ca, cert


def test_the_fleet_is_warned_once_when_the_broker_certificate_ends_within_30_days(tmp_path, monkeypatch):
    _, cert = _short_lived(tmp_path / "broker", monkeypatch, 20)
    fleet = FleetRegistry("demo", certificates=[cert.cert])
    alerts = fleet.check_certificates()
    assert [a.kind for a in alerts] == ["certificate_expiring"] and "expires in 20 days" in alerts[0].message
    assert fleet.check_certificates() == []  # one alert, not one an hour
    assert [a["kind"] for a in fleet.alerts()] == ["certificate_expiring"]


def test_a_fresh_certificate_raises_nothing(tmp_path):
    broker = tmp_path / "broker"
    ca, _ = ensure_ca(broker)
    cert, _ = ensure_server_cert(broker, ca, ["broker.local"])
    assert FleetRegistry("demo", certificates=[cert.cert]).check_certificates() == []


def test_the_daily_renewal_reissues_a_certificate_due_with_the_last_runs_settings(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    args = ["--data-dir", str(data), "--hostname", "broker.local", "--server-port", "0"]
    assert broker_config.main(args) == 0
    _short_lived(data / "broker", monkeypatch, 20)
    assert days_left(data / "broker" / "server.crt") < 30
    capsys.readouterr()
    assert broker_config.main(["--data-dir", str(data), "--renew"]) == 0  # what clinicflow-broker-renew.service runs
    assert "issued broker certificate" in capsys.readouterr().out
    assert days_left(data / "broker" / "server.crt") > 800
    assert broker_config.main(["--data-dir", str(data), "--renew"]) == 0
    assert "already up to date" in capsys.readouterr().out
