"""The ``screenshot`` device command: the Kivy window as a PNG, for the fleet page.

    agent.on_command("screenshot", kivy_screenshot_command())

The capture runs on Kivy's main thread (the only thread that may read the window) and
the command waits for it; a UI thread that does not draw within ``timeout`` is itself the
answer ("the screen is frozen"). The PNG travels base64-encoded in the response's
``data.png_base64``; the server keeps the last one per device.
"""
from __future__ import annotations

import base64
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


def kivy_screenshot_command(*, timeout: float = 5.0) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A ``DeviceAgent`` command handler that captures the app's window."""

    def screenshot(args: dict[str, Any]) -> dict[str, Any]:
        from kivy.clock import Clock
        from kivy.core.window import Window

        done = threading.Event()
        result: dict[str, Any] = {}

        def capture(_dt: float) -> None:
            try:
                with tempfile.TemporaryDirectory(prefix="clinicflow-shot-") as folder:
                    written = Window.screenshot(name=str(Path(folder) / "screen.png"))
                    result["png"] = Path(written).read_bytes()
                    result["size"] = [int(Window.width), int(Window.height)]
            except Exception as exc:  # reported to the technician, not raised on the UI thread
                result["error"] = exc
            finally:
                done.set()

        Clock.schedule_once(capture, 0)
        if not done.wait(float(args.get("timeout", timeout))):
            raise TimeoutError(f"the screen did not draw within {timeout:.0f} s: the app's UI thread may be frozen")
        if "error" in result:
            raise RuntimeError(f"screenshot failed: {result['error']}")
        return {"png_base64": base64.b64encode(result["png"]).decode("ascii"), "size": result["size"]}

    return screenshot
