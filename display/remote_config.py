"""A call screen as the fleet sees it: probes and which pushed settings apply live (wired by ``display.runtime``).

* ``speech``: the announcer and speaker are healthy *and* the ALSA output they play
  through opens (``hardware.speech.output_probe``, at start and every ``probe_interval``
  s); without ``aplay`` nobody can tell, so it is "unknown", not ok. A speaker that plays
  nothing (fake, silent) keeps the runtime's own check.
* the Pi's own health: under-voltage, SD-card errors, temperature, disk free.
* settings: ``rooms``, ``languages``, ``announce_repeat`` apply live (``CallScreen.apply_settings``),
  and ``volume`` (``hardware.speech.volume``: the phrases are scaled) when the screen plays
  sound; ``orientation`` needs a restart (the window size is fixed at start; ``display.cli``
  reads the accepted push then); ``modes``, ``idle_timeout_s``, ``default_language`` are
  answered ``not_used`` (a call screen has no patient sessions, and no display mode of its own yet).

At start the screen applies the settings in force (the last accepted push, kept on disk by the
agent, over the command line's or file's) before it connects: a restart, or a broker that
restarted and lost its retained config, never falls back to the file's rooms, languages or volume.
The detail ``volume`` says the volume in force (percent of the synthesised level).
"""
from __future__ import annotations

import logging
from typing import Any

from hardware import health
from hardware.health import PeriodicProbe
from hardware.speech.volume import set_volume

log = logging.getLogger(__name__)

LIVE_KEYS = frozenset({"rooms", "languages", "announce_repeat"})
UNUSED_KEYS = frozenset({"modes", "idle_timeout_s", "default_language"})


def attach_display(screen: Any, *, audio_device: str | None = None, probe_interval: float = 60.0) -> list[PeriodicProbe]:
    """Register probes and the config handler on ``screen.status`` (a ``DeviceAgent``); returns the probes."""
    agent = screen.status
    probes: list[PeriodicProbe] = []
    player = getattr(screen.speaker, "player", None)  # None: a speaker that plays nothing (fake, silent)
    if player is not None:
        from hardware.speech.output_probe import probe_alsa_output

        device = audio_device if audio_device is not None else player.device
        output = PeriodicProbe(lambda: probe_alsa_output(device), interval=probe_interval, name="speech_output")
        probes.append(output)
        agent.add_refresher(output.refresh)

        def speech_ok() -> bool | None:
            if not (screen.announcer.healthy and screen.speaker.healthy):
                return False
            return output.latest.ok

        agent.add_check("speech", speech_ok)
        agent.add_detail("speech_output_detail", lambda: output.latest.detail or None)
    health.attach_to_agent(agent)

    def apply(settings: dict[str, Any]) -> None:
        screen.apply_settings(settings)  # may refuse (ValueError) before anything changed
        if player is not None:  # the volume the file or a push names; neither: as synthesised (not the schema's default)
            set_volume(screen.speaker, agent.asked_for(settings, "volume", 100))

    volume = {"volume"}
    agent.on_config(apply, live=LIVE_KEYS | (volume if player is not None else set()),
                    unused=UNUSED_KEYS | (set() if player is not None else volume))
    try:  # start with the last accepted push (kept on disk), even before the broker answers
        apply(agent.settings)
    except ValueError as exc:
        log.warning("kept the start-up settings: %s", exc)
    if player is not None:  # what is in force: a VolumePlayer's level, or the phrases as synthesised
        agent.add_detail("volume", lambda: getattr(screen.speaker.player, "volume", 100))
    return probes
