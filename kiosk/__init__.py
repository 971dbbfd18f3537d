"""The self-service kiosk: check-in, walk-in registration, payment, report printing, help.

Layers (each testable without the one above it):

* ``kiosk.server_client``: the queue server's HTTP API as Python calls.
* ``kiosk.viewmodels``: one Kivy ``EventDispatcher`` per flow, no widgets; tests drive these.
* ``kiosk.ui``: thin kv screens bound to the view-models.
* ``kiosk.cli``: the composition root that picks printers, scanners and speakers.
"""
