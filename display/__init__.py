"""Waiting-room call screens: door screens (one room) and hall boards (many rooms).

Public entry without a window: ``display.runtime.CallScreen``. The Kivy app is
``display.app.CallScreenApp``; the command line ``display.cli:main`` is the composition root.
Importing this package imports nothing heavy (no Kivy).
"""
