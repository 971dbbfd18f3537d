"""The link between HTTP worker processes and the queue core (``clinicflow server --http-workers N``).

Python runs one thread at a time per process, and on a two-core Raspberry Pi one process
leaves a core idle. With ``--http-workers``, the server process keeps what must exist once
(the ``QueueService`` with its in-memory calling order, the store's writer thread, MQTT
publishing, long-wait checks) and HTTP, JSON and validation run in worker processes that
share the listening socket. A worker calls the core's service methods over its channel:

- each worker is handed its end of a ``socket.socketpair()`` when it is started: the channel
  has no address, so no other process can connect to it (nothing in ``/proc/net/unix``, nothing
  on a command line);
- frames are a 4-byte big-endian length and a JSON text of plain data (``queueserver.codec``):
  only the result, argument and error kinds the codec lists are rebuilt, so even a forged frame
  cannot make either end run code (no pickle);
- ``{"k": "call", "id", "op", "args", "kwargs"}`` is answered by ``{"k": "result", "id", "ok",
  "value"}``; domain errors cross as their own class (by name, from a fixed table), so the HTTP
  answers are the same as in one process;
- the core pushes ``{"k": "changed", ...}`` after every commit (live pages) and
  ``{"k": "hospital", ...}`` after a configuration change.

The core does its work on its event loop's thread: the calls that arrived together run as
one group commit (``Store.run_batch``) and quick reads run inline, so no second thread
competes for the interpreter; slow views (statistics, the console) use a small thread pool.
A call the core does not answer in ``CALL_TIMEOUT_S``, or that is in flight when the core
goes away, raises ``Unavailable`` (503 with Retry-After: a retry with the same
Idempotency-Key settles it). If the core dies the workers exit (a worker is useless without
it, and must not hold the port when the server restarts).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import struct
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

from queueserver import codec
from queueserver.errors import Unavailable

if TYPE_CHECKING:
    from queueserver.hospital.port import HospitalBackend
    from queueserver.hospital_file import Hospital
    from queueserver.service import QueueService

log = logging.getLogger(__name__)
_HEADER = struct.Struct(">I")
MAX_FRAME = 32 * 1024 * 1024  # a hospital configuration is the largest thing sent; far below this
CALL_TIMEOUT_S = 30.0

# What a worker may ask of the core: the service's operations and views, nothing else.
WRITES = frozenset({"check_in", "walk_in", "call_next", "call_ticket", "recall", "no_show", "start_service",
                    "finish", "transfer", "return_with_results", "cancel", "set_room_status", "end_of_day",
                    "survey"})
QUICK_READS = frozenset({"hello", "ticket", "ticket_detail", "room_state", "today", "mqtt_connected"})
READS = frozenset({"hello", "ticket", "ticket_detail", "room_state", "console", "queue", "stats", "stats_csv", "today",
                   "check_alerts", "replace_hospital", "republish_all", "mqtt_connected", "publish_alert"})


class FrameError(ConnectionError):
    """A frame longer than ``MAX_FRAME``: the stream cannot be trusted any more."""


async def _send(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    data = codec.dumps(message).encode()
    writer.write(_HEADER.pack(len(data)) + data)  # one write: header and body in one segment
    await writer.drain()


async def _receive(reader: asyncio.StreamReader) -> bytes:
    size = _HEADER.unpack(await reader.readexactly(_HEADER.size))[0]
    if size > MAX_FRAME:
        raise FrameError(f"a frame of {size} bytes (more than {MAX_FRAME})")
    return await reader.readexactly(size)


def _call_of(data: bytes) -> tuple[int, str, list[Any], dict[str, Any]]:
    """A worker's call, decoded and checked for shape (``codec.DecodeError`` otherwise)."""
    message = codec.loads(data)
    if not isinstance(message, dict) or message.get("k") != "call":
        raise codec.DecodeError("not a call")
    call_id, name, args, kwargs = message.get("id"), message.get("op"), message.get("args"), message.get("kwargs")
    if not (isinstance(call_id, int) and isinstance(name, str) and isinstance(args, (list, tuple))
            and isinstance(kwargs, dict)):
        raise codec.DecodeError("a call needs id, op, args and kwargs")
    return call_id, name, list(args), kwargs


class CoreServer:
    """The queue core's end: serves each worker's channel and tells the workers of every change."""

    def __init__(self, service: "QueueService", *, mqtt_connected: Callable[[], bool],
                 worker_settings: dict[str, Any] | None = None) -> None:
        self.service = service
        self._mqtt_connected = mqtt_connected
        self._settings = dict(worker_settings or {})  # handed over in "hello", never on a command line
        self._reads = ThreadPoolExecutor(max_workers=8, thread_name_prefix="core-read")
        self._clients: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._batch: list[tuple[Callable[[], Any], Future[Any]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        service.add_listener(self._changed)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    def channel(self) -> socket.socket:
        """A new worker's channel: returns the worker's end (to inherit); the core serves the other."""
        assert self._loop is not None, "start() first"
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        task = self._loop.create_task(self._attach(ours))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return theirs

    async def _attach(self, sock: socket.socket) -> None:
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        await self._serve(reader, writer)

    async def close(self) -> None:
        for writer in list(self._clients):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        self._reads.shutdown(wait=False, cancel_futures=True)

    def _changed(self, rooms: set[str], tickets: set[str]) -> None:  # any thread, after a commit
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._broadcast, {"k": "changed", "rooms": rooms, "tickets": tickets})

    def _broadcast(self, message: dict[str, Any]) -> None:
        for writer in list(self._clients):
            asyncio.ensure_future(self._safe_send(writer, message))

    async def _safe_send(self, writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
        try:
            await _send(writer, message)
        except (ConnectionError, RuntimeError):
            self._clients.discard(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while True:
                data = await _receive(reader)
                try:
                    call_id, name, args, kwargs = _call_of(data)
                except codec.DecodeError as exc:  # frames stay aligned: drop this one, keep the worker
                    log.warning("dropped a malformed message from an HTTP worker: %s", exc)
                    continue
                asyncio.ensure_future(self._answer(writer, call_id, name, args, kwargs))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    def _local(self, name: str) -> Callable[..., Any]:
        if name == "hello":
            return lambda: {"site": self.service.site, "public_url": self.service.public_url,
                            "hospital": self.service.hospital, **self._settings}
        if name == "mqtt_connected":
            return self._mqtt_connected
        if name == "publish_alert":
            return lambda alert: self.service.publisher and self.service.publisher.publish_alert(alert)
        if name == "replace_hospital":
            return self._replace_hospital
        return getattr(self.service, name)  # type: ignore[no-any-return]

    def _commit_batch(self) -> None:
        batch, self._batch = self._batch, []
        self.service.store.run_batch(batch)

    def _replace_hospital(self, hospital: "Hospital") -> None:
        self.service.replace_hospital(hospital)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._broadcast, {"k": "hospital", "hospital": hospital})

    async def _answer(self, writer: asyncio.StreamWriter, call_id: int, name: str, args: list[Any],
                      kwargs: dict[str, Any]) -> None:
        try:
            if name in WRITES and self.service.store.groups_commits:
                future: Future[Any] = Future()
                if not self._batch:  # the first of a group: commit once the calls already here are read
                    asyncio.get_running_loop().call_soon(self._commit_batch)
                self._batch.append((partial(getattr(self.service, name), *args, **kwargs), future))
                value = await asyncio.wrap_future(future)
            elif name in QUICK_READS:
                value = self._local(name)(*args, **kwargs)
            elif name in WRITES or name in READS:
                assert self._loop is not None
                value = await self._loop.run_in_executor(self._reads, partial(self._local(name), *args, **kwargs))
            else:
                raise PermissionError(f"the queue core does not offer {name!r}")
            message: dict[str, Any] = {"k": "result", "id": call_id, "ok": True, "value": value}
            try:
                await _send(writer, message)
                return
            except TypeError as exc:  # a value the codec does not carry: the worker gets the error
                raise RuntimeError(f"the answer to {name} cannot be sent: {exc}") from None
        except Exception as exc:
            message = {"k": "result", "id": call_id, "ok": False, "value": exc}
        await self._safe_send(writer, message)


class RemoteQueueService:
    """A worker's stand-in for ``QueueService``: the same methods, carried out by the queue core.

    ``hospital``, ``rules``, ``tz``, ``site`` and ``public_url`` are copies kept up to date by
    the core; ``backend`` is the worker's own connection to the hospital backend (bills,
    payments and reports are read there directly); ``settings`` is what the core handed over
    at hello (the broker URL), so that no secret is on the worker's command line.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 backend: "HospitalBackend", hello: dict[str, Any], timeout: float = CALL_TIMEOUT_S) -> None:
        self._reader, self._writer = reader, writer
        self._loop = asyncio.get_running_loop()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._listeners: list[Callable[[set[str], set[str]], None]] = []
        self.timeout = timeout
        self.backend = backend
        self.site: str = hello["site"]
        self.public_url: str = hello["public_url"]
        self.settings = {k: v for k, v in hello.items() if k not in ("site", "public_url", "hospital")}
        self.publisher = _RemotePublisher(self)
        self._set_hospital(hello["hospital"])
        self.closed = self._loop.create_future()
        self._task = asyncio.ensure_future(self._read_loop())

    @classmethod
    async def connect(cls, sock: socket.socket, *, backend: "HospitalBackend",
                      timeout: float = CALL_TIMEOUT_S) -> "RemoteQueueService":
        """Say hello to the core over ``sock`` (this worker's end of its channel)."""
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        await _send(writer, {"k": "call", "id": 0, "op": "hello", "args": [], "kwargs": {}})
        answer = codec.loads(await asyncio.wait_for(_receive(reader), timeout))
        if not isinstance(answer, dict) or answer.get("k") != "result" or not answer.get("ok"):
            raise RuntimeError(f"the queue core refused the worker: {answer}")
        return cls(reader, writer, backend=backend, hello=answer["value"], timeout=timeout)

    def _set_hospital(self, hospital: "Hospital") -> None:
        self.hospital, self.rules, self.tz = hospital, hospital.rules, hospital.tz

    def _dispatch(self, message: Any) -> None:
        kind = message.get("k") if isinstance(message, dict) else None
        if kind == "result":
            future = self._pending.pop(message["id"], None)
            if future is not None and not future.done():
                if message["ok"]:
                    future.set_result(message["value"])
                else:
                    error = message["value"]
                    future.set_exception(error if isinstance(error, BaseException) else RuntimeError(str(error)))
        elif kind == "changed":
            for fn in self._listeners:
                fn(set(message["rooms"]), set(message["tickets"]))
        elif kind == "hospital":
            self._set_hospital(message["hospital"])
        else:
            raise codec.DecodeError(f"unexpected message {kind!r}")

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await _receive(self._reader)
                try:
                    self._dispatch(codec.loads(data))
                except Exception:  # one bad message (or a failing listener) must not end the worker
                    log.exception("dropped a message from the queue core")
        except (asyncio.IncompleteReadError, ConnectionError):
            log.error("lost the queue core")
        finally:
            gone = Unavailable("The queue server is restarting; please try again in a moment.")
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(gone)
            if not self.closed.done():
                self.closed.set_result(None)

    async def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Carry out ``method(*args, **kwargs)`` at the core (on this event loop).

        Positional-only: the service's own keywords (``name=`` of a walk-in) pass through untouched.
        ``Unavailable`` when the core is gone or does not answer within ``timeout`` seconds.
        """
        if self.closed.done():
            raise Unavailable("The queue server is restarting; please try again in a moment.")
        call_id = next(self._ids)
        future = self._loop.create_future()
        self._pending[call_id] = future
        try:
            try:
                await _send(self._writer, {"k": "call", "id": call_id, "op": method, "args": list(args),
                                           "kwargs": kwargs})
            except (ConnectionError, RuntimeError):  # RuntimeError: the transport closed under us
                raise Unavailable("The queue server is restarting; please try again in a moment.") from None
            return await asyncio.wait_for(future, self.timeout)
        except asyncio.TimeoutError:
            raise Unavailable(f"The queue server did not answer within {self.timeout:g} s; "
                              "please try again.") from None
        finally:
            self._pending.pop(call_id, None)

    def call_sync(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """The same from a worker thread (FastAPI's thread pool), waiting for the answer."""
        return asyncio.run_coroutine_threadsafe(self.call(method, *args, **kwargs), self._loop).result()

    def add_listener(self, fn: Callable[[set[str], set[str]], None]) -> None:
        self._listeners.append(fn)

    def __getattr__(self, name: str) -> Any:
        if name in WRITES or name in READS:
            return partial(self.call_sync, name)
        raise AttributeError(name)


class _RemotePublisher:
    """Alerts raised in a worker (kiosk help requests) go out through the core's MQTT connection."""

    def __init__(self, remote: RemoteQueueService) -> None:
        self._remote = remote

    def publish_alert(self, alert: Any) -> None:
        self._remote.call_sync("publish_alert", alert)
