"""systemd's notify protocol (``man sd_notify``): readiness, status, watchdog pings, stopping.

A notification is one datagram of ``KEY=VALUE`` lines sent to the AF_UNIX socket named in
``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace).  Without that variable
every call does nothing, so ctid behaves the same outside systemd.  The watchdog pings come
from a task on the event loop: a loop that stops turning stops the pings, and systemd
restarts ctid after ``WatchdogSec``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Mapping

import structlog

log = structlog.get_logger("ctid")


def notify_address(environ: Mapping[str, str]) -> str | None:
    """Where to send notifications, as :func:`socket.sendto` wants it; ``None``: nowhere."""
    name = environ.get("NOTIFY_SOCKET", "")
    if name.startswith("@"):
        return "\0" + name[1:]
    if name.startswith("/"):
        return name
    if name:
        # e.g. "vsock:...", which systemd uses for virtual machines; not a case for ctid.
        log.warning("sd_notify_unsupported_socket", socket=name)
    return None


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between pings (half of ``WATCHDOG_USEC``, as ``man sd_watchdog_enabled`` advises);
    ``None`` when systemd asks for none, or asks another process (``WATCHDOG_PID``)."""
    owner = environ.get("WATCHDOG_PID")
    if owner and owner != str(pid):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2_000_000 if usec > 0 else None


def message(*fields: str) -> bytes:
    """``KEY=VALUE`` fields as one datagram; a newline inside a value would start a new field."""
    return "\n".join(" ".join(field.splitlines()) for field in fields).encode()


class SystemdNotifier:
    """Sends notifications; never raises, since systemd's bookkeeping must not stop ctid."""

    def __init__(self, address: str | None, watchdog_seconds: float | None = None) -> None:
        self.address = address
        self.watchdog_seconds = watchdog_seconds if address is not None else None
        self._socket: socket.socket | None = None
        self._failing = False
        self._stopping = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> SystemdNotifier:
        env = os.environ if environ is None else environ
        return cls(notify_address(env), watchdog_interval(env, os.getpid()))

    def send(self, *fields: str) -> None:
        if self.address is None:
            return
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                # A full receive queue must not stall the event loop: drop the datagram.
                self._socket.setblocking(False)
            self._socket.sendto(message(*fields), self.address)
        except OSError as err:
            if not self._failing:
                log.warning("sd_notify_failed", socket=self.address, error=str(err))
            self._failing = True
            return
        if self._failing:
            log.info("sd_notify_recovered", socket=self.address)
        self._failing = False

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def stopping(self) -> None:
        """Once, at the start of shutdown; later calls do nothing."""
        if not self._stopping:
            self._stopping = True
            self.send("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    @contextlib.asynccontextmanager
    async def watchdog(self) -> AsyncIterator[None]:
        """Pings ``WATCHDOG=1`` while the context is open (nothing if systemd asked for none)."""
        if self.watchdog_seconds is None:
            yield
            return
        pinger = asyncio.create_task(self._ping_forever(self.watchdog_seconds), name="watchdog")
        try:
            yield
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger

    async def _ping_forever(self, interval: float) -> None:
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(interval)
