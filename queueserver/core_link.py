"""The link between HTTP worker processes and the queue core (``clinicflow server --http-workers N``).

Python runs one thread at a time per process, and on a two-core Raspberry Pi one process
leaves a core idle. With ``--http-workers``, the server process keeps what must exist once
(the ``QueueService`` with its in-memory calling order, the store's writer thread, MQTT
publishing, long-wait checks) and HTTP, JSON and validation run in worker processes that
share the listening socket. A worker calls the core's service methods over a local socket:

- frames are a 4-byte big-endian length and a pickle (both ends are this same code, started
  by the core, on one machine; the socket is Linux's abstract namespace, reachable only
  from this host, with a random name handed to the workers);
- ``("call", id, method, args, kwargs)`` answered by ``("result", id, ok, value-or-error)``;
  domain errors (409, 404...) cross as themselves, so the HTTP answers are the same;
- the core pushes ``("changed", rooms, tickets)`` after every commit (live pages) and
  ``("hospital", hospital)`` after a configuration change.

The core does its work on its event loop's thread: the calls that arrived together run as
one group commit (``Store.run_batch``) and quick reads run inline, so no second thread
competes for the interpreter; slow views (statistics, the console) use a small thread pool.
If the core dies the workers exit (a worker is useless without it, and must not hold the
port when the server restarts).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import pickle
import socket
import struct
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from queueserver.hospital.port import HospitalBackend
    from queueserver.hospital_file import Hospital
    from queueserver.service import QueueService

log = logging.getLogger(__name__)
_HEADER = struct.Struct(">I")

# What a worker may ask of the core: the service's operations and views, nothing else.
WRITES = frozenset({"check_in", "walk_in", "call_next", "call_ticket", "recall", "no_show", "start_service",
                    "finish", "transfer", "return_with_results", "cancel", "set_room_status", "end_of_day",
                    "survey"})
QUICK_READS = frozenset({"hello", "ticket", "ticket_detail", "room_state", "today", "mqtt_connected"})
READS = frozenset({"hello", "ticket", "ticket_detail", "room_state", "console", "queue", "stats", "stats_csv", "today",
                   "check_alerts", "replace_hospital", "republish_all", "mqtt_connected", "publish_alert"})


async def _send(writer: asyncio.StreamWriter, message: tuple) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(_HEADER.pack(len(data)) + data)
    await writer.drain()


async def _receive(reader: asyncio.StreamReader) -> tuple:
    size = _HEADER.unpack(await reader.readexactly(_HEADER.size))[0]
    return pickle.loads(await reader.readexactly(size))


def _portable(exc: BaseException) -> BaseException:
    """The error as the worker will raise it (an error that cannot be pickled becomes a RuntimeError)."""
    try:
        pickle.dumps(exc)
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


class CoreServer:
    """The queue core's end: serves workers' calls on ``address`` and tells them of every change."""

    def __init__(self, service: "QueueService", *, mqtt_connected: Callable[[], bool]) -> None:
        self.service = service
        self.address = "\0clinicflow-core-" + os.urandom(8).hex()  # abstract socket: no file, this host only
        self._mqtt_connected = mqtt_connected
        self._reads = ThreadPoolExecutor(max_workers=8, thread_name_prefix="core-read")
        self._clients: set[asyncio.StreamWriter] = set()
        self._batch: list[tuple[Callable[[], Any], Future[Any]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        service.add_listener(self._changed)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.address)  # by socket: event loops differ in how they take an abstract name
        self._server = await asyncio.start_unix_server(self._serve, sock=listener)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._clients):
            writer.close()
        self._reads.shutdown(wait=False, cancel_futures=True)

    def _changed(self, rooms: set[str], tickets: set[str]) -> None:  # any thread, after a commit
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._broadcast, ("changed", rooms, tickets))

    def _broadcast(self, message: tuple) -> None:
        for writer in list(self._clients):
            asyncio.ensure_future(self._safe_send(writer, message))

    async def _safe_send(self, writer: asyncio.StreamWriter, message: tuple) -> None:
        try:
            await _send(writer, message)
        except (ConnectionError, RuntimeError):
            self._clients.discard(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while True:
                kind, call_id, name, args, kwargs = await _receive(reader)
                if kind == "call":
                    asyncio.ensure_future(self._answer(writer, call_id, name, args, kwargs))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    def _local(self, name: str) -> Callable[..., Any]:
        if name == "hello":
            return lambda: {"site": self.service.site, "public_url": self.service.public_url,
                            "hospital": self.service.hospital}
        if name == "mqtt_connected":
            return self._mqtt_connected
        if name == "publish_alert":
            return lambda alert: self.service.publisher and self.service.publisher.publish_alert(alert)
        if name == "replace_hospital":
            return self._replace_hospital
        return getattr(self.service, name)

    def _commit_batch(self) -> None:
        batch, self._batch = self._batch, []
        self.service.store.run_batch(batch)

    def _replace_hospital(self, hospital: "Hospital") -> None:
        self.service.replace_hospital(hospital)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._broadcast, ("hospital", hospital))

    async def _answer(self, writer: asyncio.StreamWriter, call_id: int, name: str, args: tuple,
                      kwargs: dict) -> None:
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
            message: tuple = ("result", call_id, True, value)
        except Exception as exc:
            message = ("result", call_id, False, _portable(exc))
        await self._safe_send(writer, message)


class RemoteQueueService:
    """A worker's stand-in for ``QueueService``: the same methods, carried out by the queue core.

    ``hospital``, ``rules``, ``tz``, ``site`` and ``public_url`` are copies kept up to date by
    the core; ``backend`` is the worker's own connection to the hospital backend (bills,
    payments and reports are read there directly).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 backend: "HospitalBackend", hello: dict) -> None:
        self._reader, self._writer = reader, writer
        self._loop = asyncio.get_running_loop()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._listeners: list[Callable[[set[str], set[str]], None]] = []
        self.backend = backend
        self.site: str = hello["site"]
        self.public_url: str = hello["public_url"]
        self.publisher = _RemotePublisher(self)
        self._set_hospital(hello["hospital"])
        self.closed = self._loop.create_future()
        self._task = asyncio.ensure_future(self._read_loop())

    @classmethod
    async def connect(cls, address: str, *, backend: "HospitalBackend") -> "RemoteQueueService":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(address)
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        await _send(writer, ("call", 0, "hello", (), {}))
        kind, _, ok, hello = await _receive(reader)
        if kind != "result" or not ok:
            raise RuntimeError(f"the queue core refused the worker: {hello}")
        return cls(reader, writer, backend=backend, hello=hello)

    def _set_hospital(self, hospital: "Hospital") -> None:
        self.hospital, self.rules, self.tz = hospital, hospital.rules, hospital.tz

    async def _read_loop(self) -> None:
        try:
            while True:
                message = await _receive(self._reader)
                if message[0] == "result":
                    _, call_id, ok, value = message
                    future = self._pending.pop(call_id, None)
                    if future is not None and not future.done():
                        future.set_result(value) if ok else future.set_exception(value)
                elif message[0] == "changed":
                    for fn in self._listeners:
                        fn(message[1], message[2])
                elif message[0] == "hospital":
                    self._set_hospital(message[1])
        except (asyncio.IncompleteReadError, ConnectionError):
            log.error("lost the queue core")
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("the queue core is gone"))
            if not self.closed.done():
                self.closed.set_result(None)

    async def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Carry out ``method(*args, **kwargs)`` at the core (on this event loop).

        Positional-only: the service's own keywords (``name=`` of a walk-in) pass through untouched.
        """
        if self.closed.done():
            raise ConnectionError("the queue core is gone")
        call_id = next(self._ids)
        future = self._loop.create_future()
        self._pending[call_id] = future
        await _send(self._writer, ("call", call_id, method, args, kwargs))
        return await future

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
