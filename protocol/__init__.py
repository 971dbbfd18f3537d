"""The contract every part of clinicflow shares: MQTT topics, payload models, HTTP API models.

Nothing here does I/O: these modules are pure data and pure functions, so the
queue server, the kiosk, the call screens and the tests all agree on one definition.
"""
from protocol.errors import ClinicflowError, ProtocolError
from protocol.payloads import (
    PROTOCOL_VERSION,
    Alert,
    CallEvent,
    CallKind,
    CurrentCall,
    DeviceStatus,
    Notice,
    RoomState,
    RoomStatus,
    decode_payload,
    encode_payload,
)
from protocol.privacy import mask_name
from protocol import topics

__all__ = [
    "PROTOCOL_VERSION",
    "Alert",
    "CallEvent",
    "CallKind",
    "ClinicflowError",
    "CurrentCall",
    "DeviceStatus",
    "Notice",
    "ProtocolError",
    "RoomState",
    "RoomStatus",
    "decode_payload",
    "encode_payload",
    "mask_name",
    "topics",
]
