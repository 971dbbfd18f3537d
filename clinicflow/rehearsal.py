"""The field rehearsal: deploy a whole site on this machine exactly as docs/technicians.md says, then check it.

    sudo python -m clinicflow.rehearsal            (scripts/field-rehearsal.sh runs this)

The commands are not written here: they are read from the ``<!-- rehearsal: NAME -->`` code
blocks of docs/technicians.md and run with this machine's stand-ins put in (``SUBSTITUTIONS``):
a private directory for ``/var/lib/clinicflow`` and ``/etc``, free loopback ports, a device
root per Pi. Everything else is real: Debian's Mosquitto started as Debian's unit starts it
(as root, dropping to user ``mosquitto``, with ``include_dir conf.d``), the queue server from
the unit ``server-units`` wrote, each device from the unit ``provision`` wrote (kiosks and call
screens are real Kivy windows; the button box has gpiozero mock pins, the one stand-in for
hardware). The machine's own Mosquitto, services and /etc are never touched.

Each step prints ``PASS`` or ``FAIL`` with what it saw; the exit code is the number of failures.
``tests/test_field_rehearsal.py`` runs the same steps in the test suite.
"""
from __future__ import annotations

import contextlib
import json
import os
import pwd
import queue
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from clinicflow.broker import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "technicians.md"
BLOCK = re.compile(r"<!-- rehearsal: (?P<name>[\w-]+) -->\s*```sh\n(?P<body>.*?)```", re.S)
WANTED_ROLES = {"kiosk": 2, "door_screen": 1, "hall_board": 1, "button_box": 1}


def doc_commands(path: Path = DOC) -> dict[str, list[list[str]]]:
    """Block name -> its commands, each a list of words (``\\`` continuations joined, comments dropped)."""
    blocks: dict[str, list[list[str]]] = {}
    for match in BLOCK.finditer(path.read_text(encoding="utf-8")):
        text = match["body"].replace("\\\n", " ")
        blocks[match["name"]] = [words for line in text.splitlines() if (words := shlex.split(line, comments=True))]
    return blocks


def split_and(words: list[str]) -> list[list[str]]:
    """``a && b`` -> [a, b]; ``sudo`` dropped (the rehearsal already runs as root)."""
    parts: list[list[str]] = [[]]
    for word in words:
        if word == "&&":
            parts.append([])
        else:
            parts[-1].append(word)
    return [p[1:] if p and p[0] == "sudo" else p for p in parts if p]


@dataclass
class StepResult:
    name: str
    ok: bool
    detail: str = ""


class Abort(Exception):
    """A step the rest depends on failed."""


@dataclass
class Rehearsal:
    """One rehearsal in ``work`` (a fresh private directory); ``run()`` does every step."""

    work: Path
    out: object = sys.stdout
    results: list[StepResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.work = Path(self.work)
        self.data = self.work / "var/lib/clinicflow"
        self.etc = self.work / "etc"
        self.port, self.server_port, self.http_port = free_port(), free_port(), free_port()
        self.substitutions = {  # what the doc says -> this machine's stand-in
            "/var/lib/clinicflow": str(self.data), "/etc/mosquitto": str(self.etc / "mosquitto"),
            "/etc/systemd/system": str(self.etc / "systemd/system"),
            "queue.hospital.local:8000": f"127.0.0.1:{self.http_port}", "broker.hospital.local": "127.0.0.1",
        }
        self.extra_args = {  # appended to these commands (argparse: the last value wins)
            "broker-config": ["--port", str(self.port), "--server-port", str(self.server_port), "--bind", "127.0.0.1"],
            "server-units": ["--host", "127.0.0.1", "--port", str(self.http_port), "--exec", "clinicflow"],
        }
        self.mosquitto: subprocess.Popen[bytes] | None = None
        self.server: subprocess.Popen[bytes] | None = None
        self.devices: dict[str, subprocess.Popen[bytes]] = {}
        self.roles: dict[str, str] = {}
        self.events: queue.Queue[tuple[float, str, bytes]] = queue.Queue()
        self.seen: list[tuple[float, str, bytes]] = []
        self.watcher = None

    # ------------------------------------------------------------------ reporting
    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def step(self, name: str, *, critical: bool = False) -> Iterator[list[str]]:
        """Record PASS, or FAIL with the exception's text; a critical failure stops the rehearsal."""
        notes: list[str] = []
        try:
            yield notes
        except Exception as exc:  # every failure is reported, never raised past the step
            self.results.append(StepResult(name, False, f"{type(exc).__name__}: {exc}"))
            self.say(f"FAIL  {name}: {type(exc).__name__}: {exc}")
            if critical:
                raise Abort(name) from exc
        else:
            self.results.append(StepResult(name, True, "; ".join(notes)))
            self.say(f"PASS  {name}" + (f" ({'; '.join(notes)})" if notes else ""))

    # ------------------------------------------------------------ running doc commands
    def substitute(self, words: list[str]) -> list[str]:
        out = []
        for word in words:
            for doc_value, here in self.substitutions.items():
                word = word.replace(doc_value, here)
            out.append(word)
        return out

    def clinicflow(self, args: list[str], *, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``clinicflow ARGS`` from this checkout (``python -m clinicflow``)."""
        done = subprocess.run([sys.executable, "-m", "clinicflow", *args], cwd=ROOT, env=env or self.env(),
                              capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise RuntimeError(f"clinicflow {' '.join(args[:3])} exited {done.returncode}: {done.stderr.strip()[-500:]}")
        return done

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLINICFLOW_")}
        env.update({"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "KIVY_NO_ARGS": "1", "KIVY_NO_CONSOLELOG": "1"})
        env.update(extra)
        return env

    def run_doc(self, words: list[str], notes: list[str]) -> None:
        """Run one command of the doc, as this machine can."""
        for command in split_and(self.substitute(words)):
            head = command[0]
            if head == "clinicflow":
                args = command[1:]
                self.clinicflow(args + self.extra_args.get(args[0], []))
            elif head == "useradd":
                notes.append("useradd skipped: the rehearsal runs every service as root")
            elif head == "install" and "-d" in command:
                mode = command[command.index("-m") + 1] if "-m" in command else "0755"
                target = Path(command[-1])
                target.mkdir(parents=True, exist_ok=True)
                target.chmod(int(mode, 8))
            elif head == "ln":
                source, dest = Path(command[-2]), Path(command[-1])
                dest.mkdir(parents=True, exist_ok=True)
                link = dest / source.name
                link.unlink(missing_ok=True)
                link.symlink_to(source)
            elif head == "systemctl":
                self.systemctl(command[1:])
            else:
                raise RuntimeError(f"the rehearsal cannot run {' '.join(command)!r}: teach clinicflow/rehearsal.py")

    def systemctl(self, args: list[str]) -> None:
        verb, units = args[0], [a for a in args[1:] if not a.startswith("-")]
        if verb == "daemon-reload":
            return
        now = "--now" in args
        for unit in units:
            name = unit.removesuffix(".service")
            if name == "mosquitto":
                {"restart": self.restart_mosquitto, "reload": self.reload_mosquitto}[verb]()
            elif name == "clinicflow-server":
                if verb in ("restart", "start") or (verb == "enable" and now):
                    self.restart_server()
            elif unit.endswith(".timer"):
                unit_file = self.etc / "systemd/system" / unit
                if not unit_file.exists():
                    raise RuntimeError(f"{unit} was not written")
            else:
                raise RuntimeError(f"the rehearsal knows no unit {unit!r}")

    # ------------------------------------------------------------------ Mosquitto
    def write_debian_mosquitto_conf(self) -> Path:
        """Debian 12's /etc/mosquitto/mosquitto.conf, in the rehearsal's directories."""
        conf_dir = self.etc / "mosquitto"
        (conf_dir / "conf.d").mkdir(parents=True, exist_ok=True)
        mosquitto = pwd.getpwnam("mosquitto")
        for d in ("run/mosquitto", "var/log/mosquitto", "var/lib/mosquitto"):  # the unit's ExecStartPre
            path = self.work / d
            path.mkdir(parents=True, exist_ok=True, mode=0o740)
            os.chown(path, mosquitto.pw_uid, -1)
        conf = conf_dir / "mosquitto.conf"
        conf.write_text(f"pid_file {self.work}/run/mosquitto/mosquitto.pid\npersistence true\n"
                        f"persistence_location {self.work}/var/lib/mosquitto/\n"
                        f"log_dest file {self.work}/var/log/mosquitto/mosquitto.log\n"
                        f"include_dir {conf_dir}/conf.d\n")
        return conf

    @property
    def broker_log(self) -> Path:
        return self.work / "var/log/mosquitto/mosquitto.log"

    def restart_mosquitto(self) -> None:
        self.stop_process(self.mosquitto)
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self.etc / "mosquitto/mosquitto.conf"
        self.mosquitto = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE)
        if not wait_for_port("127.0.0.1", self.port, 10):
            err = self.mosquitto.stderr.read().decode(errors="replace") if self.mosquitto.poll() is not None else ""
            raise RuntimeError(f"mosquitto did not start: {err.strip()} {self.tail(self.broker_log)}")

    def reload_mosquitto(self) -> None:
        assert self.mosquitto is not None and self.mosquitto.poll() is None, "mosquitto is not running"
        self.mosquitto.send_signal(signal.SIGHUP)
        time.sleep(0.5)

    # ------------------------------------------------------------------ the server
    def unit(self, path: Path) -> tuple[list[str], dict[str, str], Path | None]:
        """ExecStart (as words), the environment and WorkingDirectory of a systemd unit file."""
        env: dict[str, str] = {}
        exec_start: list[str] = []
        workdir = None
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key == "Environment":
                name, _, val = value.partition("=")
                env[name] = val
            elif key == "EnvironmentFile":
                for env_line in Path(value).read_text().splitlines():
                    if "=" in env_line and not env_line.startswith("#"):
                        name, _, val = env_line.partition("=")
                        env[name] = val
            elif key == "ExecStart":
                exec_start = shlex.split(value)
            elif key == "WorkingDirectory":
                workdir = Path(value)
        return exec_start, env, workdir

    def restart_server(self) -> None:
        self.stop_process(self.server)
        command, env, workdir = self.unit(self.etc / "systemd/system/clinicflow-server.service")
        assert command[0] == "clinicflow", f"unexpected ExecStart {command}"
        log = open(self.work / "server.log", "ab")
        self.server = subprocess.Popen([sys.executable, "-m", "clinicflow", *command[1:]], cwd=workdir or ROOT,
                                       env=self.env(**env), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while True:
            if self.server.poll() is not None:
                raise RuntimeError(f"the server exited {self.server.returncode}: {self.tail(self.work / 'server.log')}")
            try:
                if httpx.get(f"{self.http}/api/v1/health", timeout=2).json().get("mqtt_connected"):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not connect to the broker: {self.tail(self.work / 'server.log')}")
            time.sleep(0.2)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def token(self, name: str) -> str:
        return json.loads((self.data / "tokens.json").read_text())[name]["token"]

    def fleet(self) -> dict[str, dict]:
        answer = httpx.get(f"{self.http}/api/v1/fleet", headers={"Authorization": f"Bearer {self.token('admin')}"},
                           timeout=5)
        answer.raise_for_status()
        return {d["device"]: d for d in answer.json()["devices"]}

    def wait_online(self, devices: list[str], timeout: float = 45.0) -> dict[str, dict]:
        deadline = time.monotonic() + timeout
        while True:
            fleet = self.fleet()
            missing = [d for d in devices if not fleet.get(d, {}).get("online")]
            if not missing:
                return fleet
            for device in missing:
                proc = self.devices.get(device)
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"{device} exited {proc.returncode}: {self.tail(self.device_log(device))}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"not online on /fleet after {timeout:.0f} s: {', '.join(missing)}")
            time.sleep(0.5)

    # ------------------------------------------------------------------ devices
    def device_root(self, device: str) -> Path:
        return self.work / "pi" / device

    def device_log(self, device: str) -> Path:
        return self.work / f"{device}.log"

    def provision(self, device: str, notes: list[str]) -> None:
        """The doc's provisioning block for ``device``, into its own root (the Pi's /)."""
        bundle = self.data / "bundles" / f"{device}.cfbundle"
        for words in doc_commands()["provision"]:
            words = [str(bundle) if w == "hall-2.cfbundle" else w for w in words]
            for command in split_and(words):
                self.clinicflow(command[1:] + ["--root", str(self.device_root(device))])
        root = self.device_root(device)
        config = root / "etc/clinicflow/device.toml"
        # The device's files point at /etc/clinicflow on the Pi: here they are under its root. The
        # button box's lgpio pins are gpiozero mock pins (the only hardware stand-in).
        text = config.read_text().replace('"/etc/clinicflow/', f'"{root}/etc/clinicflow/')
        config.write_text(text.replace('pin_factory = "lgpio"', 'pin_factory = "mock"'))
        self.roles[device] = re.search(r'role = "(\w+)"', text)[1]  # type: ignore[index]

    def start_device(self, device: str) -> None:
        root = self.device_root(device)
        units = list((root / "etc/systemd/system").glob("clinicflow-*.service"))
        assert len(units) == 1, f"{device}: expected one unit, found {units}"
        command, env, workdir = self.unit(units[0])
        # An updatable device's unit starts the A/B launcher, which runs `python -m clinicflow` of its current release.
        assert command[0].endswith("clinicflow") or command[0] == "/opt/clinicflow/launch", command
        env = {k: (v.replace("/etc/clinicflow/", f"{root}/etc/clinicflow/").replace("/var/lib/clinicflow/",
                                                                                      f"{root}/var/lib/clinicflow/"))
               for k, v in env.items()}
        env = {k: (f"{root}{v}" if v == "/opt/clinicflow" else v) for k, v in env.items()}
        env["GPIOZERO_PIN_FACTORY"] = "mock"
        if "DISPLAY" in env and os.environ.get("DISPLAY"):
            env["DISPLAY"] = os.environ["DISPLAY"]  # the rehearsal's X server (xvfb-run), not the Pi's :0
        cwd = Path(str(workdir).replace("/var/lib/clinicflow/", f"{root}/var/lib/clinicflow/")) if workdir else ROOT
        log = open(self.device_log(device), "ab")
        self.devices[device] = subprocess.Popen([sys.executable, "-m", "clinicflow", *command[1:]], cwd=cwd,
                                                env=self.env(**env), stdout=log, stderr=subprocess.STDOUT)
        log.close()

    # ------------------------------------------------------------------ watching MQTT
    def start_watcher(self) -> None:
        from clinicflow.mqtt import PahoMessageBus
        from protocol import topics

        env = dict(line.split("=", 1) for line in (self.data / "broker/server.env").read_text().splitlines()
                   if "=" in line and not line.startswith("#"))
        self.watcher = PahoMessageBus(env["CLINICFLOW_BROKER"], ca_certs=env["SSL_CERT_FILE"])
        for suffix in ("availability", "response"):
            self.watcher.subscribe(topics.all_devices("demo", suffix),
                                   lambda t, p, r: self.events.put((time.monotonic(), t, p)))
        self.watcher.start()
        if not self.watcher.wait_connected(10):
            raise RuntimeError("the watcher (as the queue server) could not connect")

    def drain(self) -> list[tuple[float, str, bytes]]:
        while True:
            try:
                self.seen.append(self.events.get_nowait())
            except queue.Empty:
                return self.seen

    def offline_since(self, mark: float) -> list[str]:
        return [t.split("/")[-2] for when, t, p in self.drain() if when >= mark and t.endswith("/availability")
                and p == b"offline"]

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def tail(path: Path, lines: int = 15) -> str:
        if not path.exists():
            return ""
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])

    @staticmethod
    def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def secrets(self) -> dict[str, str]:
        """Every secret of the site: MQTT passwords, API tokens (name -> value)."""
        from config.bundle import read_bundle

        found = {f"token {n}": e["token"] for n, e in json.loads((self.data / "tokens.json").read_text()).items()}
        found["queueserver MQTT password"] = (self.data / "broker/queueserver-mqtt-password").read_text().strip()
        for bundle in (self.data / "bundles").glob("*.cfbundle"):
            found[f"{bundle.stem} MQTT password"] = read_bundle(bundle).mqtt_password
        return found

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        for proc in self.devices.values():
            self.stop_process(proc)
        self.stop_process(self.server)
        self.stop_process(self.mosquitto)

    # ------------------------------------------------------------------ the rehearsal
    def run(self) -> list[StepResult]:
        try:
            self._run()
        except Abort as exc:
            self.say(f"STOP  the rest depends on {exc}")
        finally:
            self.stop()
        return self.results

    def _run(self) -> None:  # noqa: C901 - one step after another, as a technician does them
        blocks = doc_commands()
        with self.step("docs/technicians.md has the server, devices, provision and one-more blocks", critical=True):
            missing = {"server", "devices", "provision", "one-more"} - set(blocks)
            assert not missing, f"no rehearsal block {sorted(missing)}"
            assert os.geteuid() == 0, "run as root: Mosquitto must start as Debian starts it and drop to user mosquitto"
            self.work.chmod(0o755)
            self.write_debian_mosquitto_conf()

        with self.step("server set-up as documented: broker-config, Mosquitto, server units", critical=True) as notes:
            for words in blocks["server"]:
                self.run_doc(words, notes)

        with self.step("Mosquitto runs as user mosquitto and reads its 0640 root:mosquitto files", critical=True) as notes:
            uid = pwd.getpwnam("mosquitto").pw_uid
            status = Path(f"/proc/{self.mosquitto.pid}/status").read_text()  # type: ignore[union-attr]
            assert f"\t{uid}\t" in next(line for line in status.splitlines() if line.startswith("Uid:")), "not dropped to mosquitto"
            for name in ("passwd", "server.key", "acl"):
                st = (self.data / "broker" / name).stat()
                assert st.st_mode & 0o777 == 0o640 and st.st_gid == pwd.getpwnam("mosquitto").pw_gid, f"{name} mode"
            assert (self.data / "broker/ca.key").stat().st_mode & 0o077 == 0, "ca.key readable by others"
            conf = (self.data / "broker/clinicflow.conf").read_text()
            listeners = [line for line in conf.splitlines() if line.startswith("listener")]
            assert len(listeners) == 2 and conf.count("certfile") == 2, f"every listener is TLS: {listeners}"
            notes.append(f"pid {self.mosquitto.pid}, listeners {self.port} (devices) and {self.server_port} (server), TLS")  # type: ignore[union-attr]

        with self.step("devices added as documented, reload, server restarted", critical=True) as notes:
            for words in blocks["devices"]:
                self.run_doc(words, notes)
            records = json.loads((self.data / "devices.json").read_text())["devices"]
            counts = {role: sum(r["role"] == role for r in records) for role in WANTED_ROLES}
            assert counts == WANTED_ROLES, f"the doc's block adds {counts}, the rehearsal needs {WANTED_ROLES}"
            self.start_watcher()

        first = [r["id"] for r in records]
        with self.step("each device provisioned as documented (dry run, then for real) and started from its unit",
                       critical=True) as notes:
            for device in first:
                self.provision(device, notes)
                self.start_device(device)
            notes.append(", ".join(f"{d} ({self.roles[d]})" for d in first))

        with self.step("server, 2 kiosks, door screen, hall board and button box online on /fleet over TLS",
                       critical=True) as notes:
            fleet = self.wait_online(first)
            log = self.broker_log.read_text(errors="replace")
            for device in first:
                assert f"u'{device}'" in log, f"{device} did not log in with its own user"
            assert httpx.get(f"{self.http}/api/v1/health", timeout=5).json().get("mqtt_connected")
            notes.append(", ".join(f"{d}: {fleet[d]['state']}" for d in first))

        with self.step("clinicflow selftest on the hall board publishes its result") as notes:
            root = self.device_root("hall-2")
            mark = time.monotonic()
            done = self.clinicflow(["selftest", "--config", str(root / "etc/clinicflow/device.toml"), "--no-input"],
                                   check=False, env=self.env(DISPLAY=os.environ.get("DISPLAY", "")))
            assert "result published" in done.stderr, done.stderr.strip()[-300:]
            deadline = time.monotonic() + 10
            while not any(t.endswith("hall-2/response") and b"self_test" in p for w, t, p in self.drain() if w >= mark):
                assert time.monotonic() < deadline, "no self_test response seen"
                time.sleep(0.1)
            self.wait_online(["hall-2"], timeout=20)  # it shares the board's credential: the board takes it back
            notes.append(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "")

        with self.step("reserved broker names are refused") as notes:
            before = (self.data / "broker/passwd").read_text()
            for name in ("queueserver", "campus-east", "clinicflow-server-demo-1"):
                done = self.clinicflow(["devices", "--data-dir", str(self.data), "add", "--role", "kiosk", "--name", name,
                                        "--server-url", self.http], check=False)
                assert done.returncode != 0 and "refused" in done.stderr, f"{name}: {done.returncode} {done.stderr}"
            assert (self.data / "broker/passwd").read_text() == before, "the password file changed"
            notes.append("queueserver, campus-east, clinicflow-server-demo-1")

        with self.step("another device added as documented: the reload keeps every client connected") as notes:
            time.sleep(1.0)
            mark = time.monotonic()
            log_mark = self.broker_log.stat().st_size
            for words in blocks["one-more"]:
                self.run_doc(words, notes)
            time.sleep(3.0)
            dropped = self.offline_since(mark)
            assert not dropped, f"went offline after the reload: {dropped}"
            after = self.broker_log.read_bytes()[log_mark:].decode(errors="replace")
            assert "disconnected" not in after and "closed its connection" not in after, after[-400:]
            assert httpx.get(f"{self.http}/api/v1/health", timeout=5).json().get("mqtt_connected")
            self.wait_online(first, timeout=5)

        new = "door-9"
        with self.step("a client-id takeover is refused (door-9's credential asks for hall-2's client id)") as notes:
            self._takeover(new, victim="hall-2")
            notes.append("the broker gave it its own user name as client id; hall-2 stayed online")

        with self.step("the new device is provisioned and comes online") as notes:
            self.provision(new, notes)
            self.start_device(new)
            self.wait_online([new, *first])
            assert not self.offline_since(mark), f"offline meanwhile: {self.offline_since(mark)}"

        with self.step("no secret in any /proc/*/cmdline") as notes:
            leaks = self.cmdline_leaks()
            assert not leaks, "; ".join(f"pid {pid} ({cmd}) holds the {what}" for pid, cmd, what in leaks)
            notes.append(f"{len(self.secrets())} secrets checked against every process")

    def _takeover(self, credential: str, *, victim: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from config.bundle import read_bundle

        bundle = read_bundle(self.data / "bundles" / f"{credential}.cfbundle")
        mark = time.monotonic()
        log_mark = self.broker_log.stat().st_size
        answer: queue.Queue[object] = queue.Queue()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=victim)
        client.tls_set(ca_certs=str(self.data / "broker/ca.crt"), cert_reqs=ssl.CERT_REQUIRED)
        client.username_pw_set(credential, bundle.mqtt_password)
        client.on_connect = lambda c, u, f, rc, p: answer.put(rc)
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        try:
            rc = answer.get(timeout=10)
            assert not getattr(rc, "is_failure", True), f"{credential} could not log in at all: {rc}"
            time.sleep(2.0)
            assert victim not in self.offline_since(mark), f"{victim} was knocked off"
            after = self.broker_log.read_bytes()[log_mark:].decode(errors="replace")
            assert f"as {credential} " in after, f"the broker did not bind the client id to the user: {after[-300:]}"
            assert "already connected" not in after, after[-300:]
        finally:
            client.disconnect()
            client.loop_stop()

    def cmdline_leaks(self) -> list[tuple[int, str, str]]:
        secrets = self.secrets()
        leaks = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                raw = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            for what, value in secrets.items():
                if value and value in raw:
                    leaks.append((int(entry.name), " ".join(raw.split("\0"))[:80], what))
        return leaks


def main(argv: list[str] | None = None) -> int:
    """Run the rehearsal in a fresh private directory; exit code = number of failed steps."""
    import argparse

    parser = argparse.ArgumentParser(prog="field-rehearsal", description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the rehearsal directory (logs, files) afterwards")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="clinicflow-rehearsal-"))
    rehearsal = Rehearsal(work)
    results = rehearsal.run()
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed" + (f"; files in {work}" if args.keep else ""))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return len(failed) or (0 if len(results) > 1 else 1)


if __name__ == "__main__":
    sys.exit(main())
