"""A deadline on a whole request to Twilio, where requests' own timeouts are per phase (the
connect, then each read), so one request can last several of them.

A call creation must have ended, answered or cut, by a known moment: after it, reconcile may ask
Twilio whether the call exists, and a request still on its way then would create a call that
reconcile does not see, and the number would ring twice. Inside `within(seconds)`, the thread's
requests through `Adapter`:
- are not sent once the deadline has passed: checked when a connection has been opened (a slow
  name lookup, connect or TLS handshake) and right before a request is written, raising
  ConnectTimeout (never sent);
- are cut when it passes: a watchdog shuts the connection's socket down, and the request fails
  as a lost answer (requests.ConnectionError: it may have been sent).

Its connections are also not used again after IDLE_REUSE_SECONDS idle (see there).
"""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.lock = threading.Lock()
        self.over = False
        self.cut = False
        self.connection: HTTPConnection | None = None

    def admit(self, connection: HTTPConnection) -> None:
        with self.lock:
            if self.over or time.monotonic() >= self.at:
                raise ConnectTimeoutError(connection, "the request's deadline passed before it")
            self.connection = connection

    def expire(self) -> None:
        with self.lock:
            if self.over:
                return
            self.over = self.cut = True
            sock = self.connection.sock if self.connection is not None else None
        if sock is None:
            return
        # Through a duplicate of its descriptor, so a TLS socket's state is left to its thread:
        # the shutdown wakes that thread's blocked read or write with an error.
        try:
            with socket.socket(fileno=socket.dup(sock.fileno())) as duplicate:
                duplicate.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # closed meanwhile

    def close(self) -> bool:
        """No more requests; whether the watchdog cut one."""
        with self.lock:
            self.over = True
            return self.cut


_current = threading.local()


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """The thread's requests inside end within `seconds` (see the module's docstring)."""
    deadline = _Deadline(seconds)
    watchdog = threading.Timer(max(seconds, 0.0), deadline.expire)
    watchdog.daemon = True
    _current.deadline = deadline
    watchdog.start()
    try:
        yield
    finally:
        _current.deadline = None
        cut = deadline.close()
        watchdog.cancel()
    if cut:
        # Whatever the client made of the answer it had so far (a status line and no body
        # reads as an empty 201): the request was cut, and may have been acted on.
        raise requests.ConnectionError("the request was cut at its deadline")


def _admit(connection: HTTPConnection) -> None:
    deadline: _Deadline | None = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.admit(connection)


class _Connection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _admit(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _admit(self)
        super().request(*args, **kwargs)


class _TLSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _admit(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _admit(self)
        super().request(*args, **kwargs)


# A kept connection idle this long is closed rather than used again: servers close idle ones
# after a few seconds (uvicorn, serving the sandbox, after 5), and a request written as the
# server closes its connection is lost without an answer. For a call creation that is
# ambiguous: the call waits for reconcile and is dialed anew, its credits released and reserved
# again.
IDLE_REUSE_SECONDS = 4.0


class _ClosesIdle(HTTPConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> Any:
        connection = super()._get_conn(timeout)
        idle_since = getattr(connection, "idle_since", None)
        if idle_since is not None and time.monotonic() - idle_since > IDLE_REUSE_SECONDS:
            connection.close()  # as urllib3 closes one found dropped: the request opens it again
        return connection

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            conn.idle_since = time.monotonic()
        super()._put_conn(conn)


class _Pool(_ClosesIdle):
    ConnectionCls = _Connection


class _TLSPool(_ClosesIdle, HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


class Adapter(HTTPAdapter):
    """requests' adapter, with connections that keep to the thread's deadline and are not used
    again once long idle."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}
