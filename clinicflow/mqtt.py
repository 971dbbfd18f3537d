"""``PahoMessageBus``: the one MQTT client wrapper every clinicflow process uses.

Threading: ``start()`` runs paho's network loop in its own thread, so message
handlers and connection callbacks run on that thread. UI code must hop to its
own thread (Kivy: ``Clock.schedule_once``) before touching widgets.

Guarantees callers rely on:
- subscriptions are (re)made in ``on_connect``, so they survive every reconnect,
  and retained room snapshots arrive again after each one;
- availability is announced as a retained birth (``online``) on connect and a
  retained last will (``offline``) on loss;
- a handler that raises, or a payload that does not decode, is logged and dropped:
  nothing is ever raised into the network loop;
- it speaks MQTT 5, so a message can carry an expiry (``publish(..., expiry=N)``): the
  broker drops it undelivered once N seconds passed, and while the link is down such a
  message is refused (``publish`` returns ``None``), never queued to go out late;
- other messages published while disconnected wait in a bounded queue (``OFFLINE_QUEUE``)
  and go out on reconnect; retrying starts ``RECONNECT_MIN_S`` after a loss and backs off
  to ``RECONNECT_MAX_S``, so a restarted broker is used again well within a second.
"""
from __future__ import annotations

import logging
import socket as _socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, overload
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import BaseModel

from protocol.errors import ProtocolError
from protocol.payloads import decode_payload, encode_payload
from protocol.topics import OFFLINE, ONLINE

if TYPE_CHECKING:
    from config.broker_settings import BrokerSettings

log = logging.getLogger(__name__)

RawHandler = Callable[[str, bytes, bool], None]
"""Called with (topic, payload bytes, retained flag) on the network thread."""
ConnectionListener = Callable[[bool], None]
"""Called with True on every (re)connect and False on every loss, on the network thread."""

M = TypeVar("M", bound=BaseModel)

OFFLINE_QUEUE = 10_000
"""Messages (without an expiry) kept while the broker is unreachable; beyond it publish fails."""
_UNSUPPORTED_PROTOCOL = 132  # CONNACK reason code (MQTT 5; paho maps a 3.1.1 broker's "1" to it)
RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 0.5
"""Retry delays after a lost link: a refused TCP connect costs the broker nothing, and a screen
that waits 2 s after the broker is back shows a stale room for 2 s (bench/reconnect_time.py)."""


@dataclass(frozen=True)
class BrokerAddress:
    """Where a broker listens, parsed from ``mqtt://user:password@host:port`` or ``mqtts://...``."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> "BrokerAddress":
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"broker URL {url!r} must start with mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError(f"broker URL {url!r} has no host")
        tls = parts.scheme in ("mqtts", "ssl")
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


class PahoMessageBus:
    """A paho-mqtt 2.x client with birth/will, resubscription on reconnect and log-and-drop decoding."""

    def __init__(
        self,
        url: str,
        *,
        client_id: str | None = None,
        availability_topic: str | None = None,
        ca_certs: str | None = None,
        max_inflight: int = 100,
    ) -> None:
        self.address = BrokerAddress.from_url(url)
        self.client_id = client_id or f"clinicflow-{uuid.uuid4().hex[:12]}"
        self._availability_topic = availability_topic
        self._subscriptions: dict[str, tuple[SubscribeOptions, list[RawHandler]]] = {}
        self._listeners: list[ConnectionListener] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._stopping = False
        self._subscribe_mid: int | None = None
        self._link_up = False  # CONNACK received: new filters are subscribed at once (ready or not)
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        # Must come before connect() (see FIELD_NOTES): bursts of calls must not stall on the inflight window.
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(OFFLINE_QUEUE)
        self._client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)  # type: ignore[arg-type]
        if self.address.username:
            self._client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            self._client.tls_set(ca_certs=ca_certs)
        if availability_topic:
            self._client.will_set(availability_topic, OFFLINE, qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    @classmethod
    def from_settings(cls, settings: "BrokerSettings", **kwargs: Any) -> "PahoMessageBus":
        """The bus for a device's broker settings (``config.broker_settings``): URL, user, password and CA."""
        return cls(settings.url_with_credentials(), ca_certs=settings.readable_ca(), **kwargs)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Connect in the background; keeps retrying while the broker is down (safe at boot)."""
        self._stopping = False
        # clean_start: every connect is a fresh session (subscriptions are remade in on_connect).
        self._client.connect_async(self.address.host, self.address.port, keepalive=15, clean_start=True)
        self._client.loop_start()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Block until connected and subscribed to every filter so far (True), or the timeout passes (False)."""
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        """Connected and every subscription so far acknowledged."""
        return self._connected.is_set()

    @property
    def link_up(self) -> bool:
        """The broker accepted the connection (CONNACK) and it has not been seen lost since."""
        return self._link_up

    def stop(self) -> None:
        """Say ``offline`` (retained) if we have an availability topic, then disconnect. Idempotent."""
        self._stopping = True
        if self._connected.is_set() and self._availability_topic:
            info = self._client.publish(self._availability_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(2)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    def __enter__(self) -> "PahoMessageBus":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------- subscribing
    def add_connection_listener(self, listener: ConnectionListener) -> None:
        self._listeners.append(listener)

    def subscribe(self, topic_filter: str, handler: RawHandler, *, qos: int = 1, no_local: bool = False) -> None:
        """Call ``handler(topic, payload, retained)`` for every message matching ``topic_filter``.

        ``no_local``: not for messages this client published itself (MQTT 5), e.g. a publisher
        that only wants to see what others left retained.
        """
        # Under the lock that on_connect also takes: a filter added while connecting is either in
        # on_connect's list or subscribed here, never lost in between.
        with self._lock:
            entry = self._subscriptions.setdefault(topic_filter, (SubscribeOptions(qos=qos, noLocal=no_local), []))
            entry[1].append(handler)
            if self._link_up:
                self._client.subscribe([(topic_filter, self._options(entry[0]))])

    def subscribe_model(
        self, topic_filter: str, model: type[M], handler: Callable[[str, M, bool], None], *, qos: int = 1
    ) -> None:
        """Like ``subscribe`` but decodes into ``model``; payloads that do not decode are logged and dropped."""

        def decode_then_handle(topic: str, payload: bytes, retained: bool) -> None:
            try:
                message = decode_payload(model, payload)
            except ProtocolError as exc:
                log.warning("dropped payload on %s: %s", topic, exc)
                return
            handler(topic, message, retained)

        self.subscribe(topic_filter, decode_then_handle, qos=qos)

    def _options(self, options: SubscribeOptions) -> SubscribeOptions | int:
        """Subscription options as this connection's protocol takes them (3.1.1: the QoS alone)."""
        return options if self._client.protocol == mqtt.MQTTv5 else options.QoS

    # --------------------------------------------------------------- publishing
    @overload
    def publish(self, topic: str, payload: BaseModel | bytes | str, *, retain: bool = False,
                qos: int = 1) -> mqtt.MQTTMessageInfo: ...

    @overload
    def publish(self, topic: str, payload: BaseModel | bytes | str, *, retain: bool = False, qos: int = 1,
                expiry: int) -> mqtt.MQTTMessageInfo | None: ...

    def publish(self, topic: str, payload: BaseModel | bytes | str, *, retain: bool = False, qos: int = 1,
                expiry: int | None = None) -> mqtt.MQTTMessageInfo | None:
        """Queue a message; models are encoded as v1 JSON. Returns paho's info (``wait_for_publish`` to block).

        ``expiry``: seconds after which the broker drops the message undelivered. Such a message is
        worthless late, so while the broker is unreachable it is not queued: the result is ``None``.
        """
        data = encode_payload(payload) if isinstance(payload, BaseModel) else payload
        properties = None
        if expiry is not None:
            if not self._link_up:
                return None
            if self._client.protocol == mqtt.MQTTv5:
                properties = Properties(PacketTypes.PUBLISH)
                properties.MessageExpiryInterval = max(1, int(expiry))
        return self._client.publish(topic, data, qos=qos, retain=retain, properties=properties)

    # ---------------------------------------------------------- paho callbacks
    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason_code: object, properties: object) -> None:
        if getattr(reason_code, "is_failure", False):
            if getattr(reason_code, "value", None) == _UNSUPPORTED_PROTOCOL and client.protocol == mqtt.MQTTv5:
                # An MQTT 3.1.1 broker (the demo's embedded amqtt): speak 3.1.1 from the next attempt on.
                # Calls then carry no broker-side expiry; screens still refuse late calls by their ts.
                log.warning("broker %s:%s speaks only MQTT 3.1.1: message expiry is not available",
                            self.address.host, self.address.port)
                client._protocol = mqtt.MQTTv311  # paho has no public setter; read at every (re)connect
                client._clean_session = True
                return
            log.error("broker %s:%s refused connection: %s", self.address.host, self.address.port, reason_code)
            return
        log.info("connected to broker %s:%s as %s", self.address.host, self.address.port, self.client_id)
        sock = client.socket()
        try:  # paho leaves Nagle on: with the broker's delayed ACKs each small QoS 1 message then waits ~40 ms
            if sock is not None:
                sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        except OSError:
            log.debug("could not set TCP_NODELAY", exc_info=True)
        with self._lock:
            subscriptions = [(f, self._options(options)) for f, (options, _) in self._subscriptions.items()]
            self._link_up = True
            self._subscribe_mid = client.subscribe(subscriptions)[1] if subscriptions else None
            if self._subscribe_mid is None:
                self._connected.set()
            # else: connected once the broker acknowledges the subscriptions (_on_subscribe), so a
            # caller of wait_connected() cannot publish into a subscription that is not there yet.
        if self._availability_topic:
            client.publish(self._availability_topic, ONLINE, qos=1, retain=True)
        self._notify(True)

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reason_codes: object, properties: object) -> None:
        with self._lock:
            if mid == self._subscribe_mid:
                self._subscribe_mid = None
                self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason_code: object, properties: object) -> None:
        with self._lock:
            was_up, self._link_up = self._link_up, False
            self._connected.clear()
        if was_up and not self._stopping:
            log.warning("lost broker %s:%s (%s); reconnecting", self.address.host, self.address.port, reason_code)
            self._notify(False)

    def _notify(self, connected: bool) -> None:
        for listener in list(self._listeners):
            try:
                listener(connected)
            except Exception:  # a listener's bug must not kill the network thread
                log.exception("connection listener failed")

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            matching = [h for f, (_, hs) in self._subscriptions.items() if mqtt.topic_matches_sub(f, message.topic) for h in hs]
        for handler in matching:
            try:
                handler(message.topic, message.payload, bool(message.retain))
            except Exception:  # log and drop: a bad message never stops the loop
                log.exception("handler failed for message on %s", message.topic)
