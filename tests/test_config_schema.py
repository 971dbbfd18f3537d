"""Device config files as a technician writes them: every example loads, every mistake is named with its fix."""
from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import broker_url, load_config, main as check_main, parse_config
from config.schema import ROLES, ConfigError, validate_settings

EXAMPLES = Path(__file__).resolve().parent.parent / "config" / "examples"

HALL = """
[device]
id = "hall-2"
role = "hall_board"
site = "demo"

[server]
url = "http://127.0.0.1:8000"

[broker]
url = "mqtt://127.0.0.1:1883"
password_file = "{pw}"

[settings]
rooms = ["r3", "r4"]
"""


def test_every_role_has_an_example_that_loads():
    roles = {load_config(path).role for path in EXAMPLES.glob("*.toml")}
    assert roles == set(ROLES)


@pytest.mark.parametrize("change, key, fix", [
    (("role = \"hall_board\"", "role = \"hallboard\""), "device.role", "one of kiosk, door_screen, hall_board, button_box"),
    (("rooms = [\"r3\", \"r4\"]", "rooms = [\"r3\", \"r4\"]\nvolume = 150"), "settings.volume", "0 (silent) to 100"),
    (("rooms = [\"r3\", \"r4\"]", "rooms = [\"r3\", \"r4\"]\nlanguages = [\"fr\"]"), "settings.languages.0", "zh, en, yue"),
    (("rooms = [\"r3\", \"r4\"]", "rooms = [\"room 3\"]"), "settings.rooms.0", "rooms = [\"r3\", \"r4\"]"),
    (("rooms = [\"r3\", \"r4\"]", "rooms = []"), "settings.rooms", "at least one room"),
    (("site = \"demo\"\n", "site = \"demo\"\ncolour = \"blue\"\n"), "device.colour", "remove it or check its spelling"),
    (("url = \"mqtt://127.0.0.1:1883\"", "url = \"tcp://127.0.0.1\""), "broker.url", "mqtts://"),
    (("id = \"hall-2\"\n", ""), "device.id", "add it"),
])
def test_a_mistake_names_the_key_and_the_fix(tmp_path, change, key, fix):
    text = HALL.format(pw=tmp_path / "pw").replace(*change)
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="hall-2.toml")
    message = str(caught.value)
    assert message.startswith("hall-2.toml: ") and key in message and fix in message, message


def test_a_secret_written_into_the_file_is_refused_with_where_to_put_it(tmp_path):
    text = HALL.format(pw=tmp_path / "pw").replace(f"password_file = \"{tmp_path / 'pw'}\"", "password = \"hunter2\"")
    with pytest.raises(ConfigError, match=r"broker\.password: secrets never go in a config file.*password_file"):
        parse_config(text)
    text = HALL.format(pw="x").replace("mqtt://127.0.0.1:1883", "mqtt://hall-2:hunter2@127.0.0.1:1883")
    with pytest.raises(ConfigError, match=r"broker\.url: holds a password"):
        parse_config(text)


def test_toml_syntax_errors_give_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"not valid TOML.*line 3"):
        parse_config("[device]\nid = \"x\"\nrole = hall_board\n")


def test_hardware_mistakes_are_caught_before_the_app_starts():
    text = (EXAMPLES / "button_box.toml").read_text()
    with pytest.raises(ConfigError, match=r"recall_pin and call_next_pin both use GPIO 17"):
        parse_config(text.replace("recall_pin = 27", "recall_pin = 17"))
    with pytest.raises(ConfigError, match=r"hardware\.buttons\.call_next_pin.*BCM GPIO number from 2 to 27"):
        parse_config(text.replace("call_next_pin = 17", "call_next_pin = 40"))
    kiosk = (EXAMPLES / "kiosk.toml").read_text()
    with pytest.raises(ConfigError, match=r"adapter escpos_usb needs usb_vendor"):
        parse_config(kiosk.replace("usb_vendor = 0x04b8\n", ""))
    with pytest.raises(ConfigError, match=r"only a kiosk prints tickets"):
        parse_config(kiosk.replace("role = \"kiosk\"", "role = \"door_screen\"").replace("rooms = []", "rooms = [\"r1\"]")
                     .replace("modes = [\"check_in\", \"payment\", \"reports\"]", ""))


def test_the_broker_url_gets_the_password_from_its_file_never_from_the_config(tmp_path):
    (tmp_path / "pw").write_text("s@cret/1\n")
    config = parse_config(HALL.format(pw=tmp_path / "pw"))
    assert broker_url(config) == "mqtt://hall-2:s%40cret%2F1@127.0.0.1:1883"
    (tmp_path / "pw").unlink()
    with pytest.raises(ConfigError, match="cannot read .*pw"):
        broker_url(config)


def test_settings_alone_are_validated_per_role():
    assert validate_settings("door_screen", {"rooms": ["r3"]}).rooms == ("r3",)
    with pytest.raises(ConfigError, match="exactly one room"):
        validate_settings("door_screen", {"rooms": ["r3", "r4"]})
    with pytest.raises(ConfigError, match="only apply to a kiosk"):
        validate_settings("hall_board", {"rooms": ["r3"], "modes": ["payment"]})
    with pytest.raises(ConfigError, match="default_language 'yue' is not in languages"):
        validate_settings("kiosk", {"default_language": "yue"})


def test_the_check_command_lists_every_problem(tmp_path, capsys):
    bad = tmp_path / "device.toml"
    bad.write_text(HALL.format(pw="x").replace("rooms = [\"r3\", \"r4\"]", "rooms = [\"r3\"]\nvolume = -1\nannounce_repeat = 9"))
    assert check_main([str(bad)]) == 1
    err = capsys.readouterr().err
    assert "settings.volume" in err and "settings.announce_repeat" in err
    assert check_main([str(tmp_path / "missing.toml")]) == 1
    assert "clinicflow provision" in capsys.readouterr().err
