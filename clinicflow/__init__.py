"""clinicflow: hospital self-service kiosks and waiting-room call screens.

This package holds what every app shares at run time (the MQTT bus, the broker
launcher, logging) and the command line that is the composition root of each app.
"""
__version__ = "0.1.0"
