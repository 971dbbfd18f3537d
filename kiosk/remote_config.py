"""A kiosk as the fleet sees it: probes, live settings, commands (wired by ``kiosk.cli``).

    agent = DeviceAgent(bus, site=..., device_id=..., role="kiosk", settings=...)
    probes = attach_kiosk(agent, vm, devices, audio_device=args.audio_device)

What it reports, each probed at start and every ``probe_interval`` seconds (and afresh on
a remote ``self_test``), never "ok" for a part nobody asked:

* ``ticket_printer``: the ESC/POS real-time status (paper ok / low / out, cover open,
  offline); a printer that cannot answer is "unknown"; a failed print since is fresher
  than the last probe and wins;
* ``report_printer``: the CUPS queue's state (idle, processing, stopped, unreachable);
* ``speech``: the ALSA output opens (``hardware.speech.output_probe``) and the speaker
  has not failed; no speaker configured is no check at all;
* the Pi's own health: under-voltage, SD-card errors, temperature, disk free.

Pushed settings applied live: ``idle_timeout_s``, ``languages`` / ``default_language``
(the kiosk's screens speak zh and en; a push offering neither is refused; ``yue`` beside ``zh``
reads the Chinese screens aloud in Cantonese), ``volume`` of
the voice mode (``hardware.speech.volume``) when the kiosk has a speaker. Keys a kiosk has
no use for (``rooms``, ``announce_repeat``, ``orientation``, ``modes``) are answered as
``not_used``. A ``reboot`` waits while a patient is mid-session.
Commands added: ``screenshot`` (the window as PNG).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from hardware import health
from hardware.health import PeriodicProbe, Probe
from hardware.speech.volume import set_volume

log = logging.getLogger(__name__)

KIOSK_LANGUAGES = ("zh", "en")
LIVE_KEYS = frozenset({"idle_timeout_s", "languages", "default_language"})
UNUSED_KEYS = frozenset({"rooms", "announce_repeat", "orientation", "modes"})


def attach_kiosk(agent: Any, vm: Any, devices: dict[str, Any], *, audio_device: str | None = None,
                 probe_interval: float = 60.0, ui_call: Callable[[Callable[[], None]], None] | None = None,
                 screenshot: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> list[PeriodicProbe]:
    """Register the kiosk's checks, details, config handler, busy predicate and commands on ``agent``.

    ``ui_call`` runs a function on the UI thread (Kivy's ``Clock``); None runs it inline (tests).
    Returns the periodic probes (stop them when the app ends).
    """
    run_on_ui = ui_call or (lambda fn: fn())
    probes: list[PeriodicProbe] = []

    def periodic(name: str, probe: Callable[[], Probe]) -> PeriodicProbe:
        runner = PeriodicProbe(probe, interval=probe_interval, name=name)
        probes.append(runner)
        agent.add_refresher(runner.refresh)
        return runner

    printer = devices.get("printer")
    if printer is None:
        agent.add_detail("ticket_printer", lambda: "none")
    else:
        ticket = periodic("ticket_printer", lambda: health.ticket_printer(printer))

        def ticket_now() -> Probe:
            probe = ticket.latest
            fault = getattr(vm, "printer_fault", "")
            if fault == "paper_out" and probe.value != "out":  # a print failed since the last probe: that is fresher
                return Probe("ticket_printer", False, "out", "out of paper (the last print failed)")
            return probe

        health.attach_probe(agent, "ticket_printer", ticket_now)
    report = devices.get("report_printer")
    if report is None:
        agent.add_detail("report_printer", lambda: "none")
    else:
        runner = periodic("report_printer", lambda: health.report_printer(report))
        health.attach_probe(agent, "report_printer", lambda: runner.latest)
    speaker = devices.get("speaker")
    player = getattr(speaker, "player", None)
    if speaker is not None and player is None:  # a speaker that plays nothing (fake): only its own health
        agent.add_check("speech", lambda: bool(getattr(speaker, "healthy", True)))
    elif speaker is not None:
        from hardware.speech.output_probe import probe_alsa_output

        device = audio_device if audio_device is not None else player.device
        output = periodic("speech_output", lambda: probe_alsa_output(device))

        def speech_ok() -> bool | None:
            probe = output.latest
            if probe.ok is None:
                return None
            return bool(probe.ok) and bool(getattr(speaker, "healthy", True))

        agent.add_check("speech", speech_ok)
        agent.add_detail("speech_output_detail", lambda: output.latest.detail or None)
    health.attach_to_agent(agent)
    agent.add_check("server", lambda: bool(vm.server_reachable))

    def apply(settings: dict[str, Any], *, ui: Callable[[Callable[[], None]], None] = run_on_ui,
              announce: bool = True) -> None:
        offered = [lang for lang in settings.get("languages", ()) if lang in KIOSK_LANGUAGES]
        if not offered:
            raise ValueError(f"this kiosk's screens are in {', '.join(KIOSK_LANGUAGES)} only "
                             f"(got languages {list(settings.get('languages', ()))})")
        default = settings.get("default_language")
        language = default if default in offered else offered[0]
        idle = float(settings.get("idle_timeout_s", vm.settings.idle_timeout))
        if player is not None:  # the volume the file or a push names; neither: as synthesised (not the schema's default)
            set_volume(speaker, agent.asked_for(settings, "volume", 100))

        # A pushed ``yue`` beside ``zh``: the Chinese screens are read in Cantonese; without a pushed list the
        # start-up choice (--voice, or the device file's languages) stays.
        pushed_languages = "languages" in agent.pushed_keys
        cantonese = "yue" in settings.get("languages", ()) and "zh" in offered

        def on_ui() -> None:
            vm.settings.idle_timeout = idle
            if pushed_languages and cantonese:
                vm.settings.spoken_language["zh"] = "yue"
            elif pushed_languages:
                vm.settings.spoken_language.pop("zh", None)
            if vm.patient is None and vm.screen == "home" and vm.language != language:
                vm.set_language(language, touched=False)  # a patient mid-session keeps theirs
            if announce:  # the status shows what is now in force
                agent.publish_status_now()

        ui(on_ui)

    volume = {"volume"}
    agent.on_config(apply, live=LIVE_KEYS | (volume if player is not None else set()),
                    unused=UNUSED_KEYS | (set() if player is not None else volume))
    try:  # start with the last accepted push (kept on disk), even before the broker answers
        apply(agent.settings, ui=lambda fn: fn(), announce=False)  # called before the window runs: inline
    except ValueError as exc:
        log.warning("kept the start-up settings: %s", exc)
    agent.add_detail("idle_timeout_s", lambda: vm.settings.idle_timeout)  # what is in force, not what was asked
    agent.add_detail("language", lambda: vm.language)
    agent.add_detail("voice", lambda: vm.settings.spoken_language.get(vm.language, vm.language))
    agent.set_busy(lambda: vm.patient is not None or vm.screen != "home")
    if screenshot is not None:
        agent.on_command("screenshot", screenshot)
    return probes


FAKE_ENV = "CLINICFLOW_ALLOW_FAKE_HARDWARE"


def refuse_fake_hardware(config: Any) -> None:
    """A provisioned kiosk drives real parts: a device file naming a ``fake`` adapter is refused (ConfigError).

    Demos and tests that mean it set ``CLINICFLOW_ALLOW_FAKE_HARDWARE=1``.
    """
    import os

    from config.schema import ConfigError

    if os.environ.get(FAKE_ENV) == "1":
        return
    hw = config.hardware
    fakes = [f"hardware.{name}.adapter" for name, section in (("printer", hw.printer), ("speaker", hw.speaker),
                                                               ("card_reader", hw.card_reader))
             if section.adapter == "fake"]
    if fakes:
        raise ConfigError(f"{', '.join(fakes)}: \"fake\" would pretend to print, speak or read cards on a real kiosk. "
                          f"Fix: name the real adapter (or \"none\" if the part is not fitted); "
                          f"for a demo set {FAKE_ENV}=1")
