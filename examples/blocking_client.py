#!/usr/bin/env python3
"""Drive the signaling client machine from a plain socket loop, with no async framework.

    python examples/blocking_client.py ws://127.0.0.1:3000 [--peer-id ID] [--network NAME]
                                       [--seconds S]

`SignalingClient` decides everything: the announce, keepalive pings, timeouts, reconnects and
their backoff. This loop only moves bytes. websockets' sans-I/O `ClientProtocol` turns bytes
into WebSocket frames and back, and `select()` sleeps until a socket is ready or the machine's
next deadline. It prints one line per event and says goodbye after ``--seconds``.

This example speaks ``ws://`` only (for ``wss://``, wrap the socket with `ssl`).
"""

from __future__ import annotations

import argparse
import errno
import os
import random
import secrets
import select
import socket
import sys
import time
from dataclasses import dataclass
from typing import TypeAlias, assert_never

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from peerpigeon.protocol.client import (
    AnswerReceived,
    ClientConfig,
    ClientEvent,
    CloseSocket,
    ConnectionRejectedReceived,
    FrameRejected,
    IceCandidateReceived,
    OfferReceived,
    OpenSocket,
    PeerDiscovered,
    PeerLeft,
    SendText,
    ServerError,
    SignalingClient,
    SignalingConnected,
    SignalingDisconnected,
)
from peerpigeon.protocol.errors import PeerPigeonError
from peerpigeon.protocol.ids import PeerId


# --- what a socket tells the loop ----------------------------------------------------------
@dataclass(frozen=True)
class Opened:
    """The opening handshake succeeded."""


@dataclass(frozen=True)
class Message:
    """One whole WebSocket message."""

    data: str | bytes


@dataclass(frozen=True)
class Closed:
    """The connection ended after it had opened."""

    code: int
    reason: str


@dataclass(frozen=True)
class Failed:
    """The connection could not be opened."""

    reason: str


Fact: TypeAlias = Opened | Message | Closed | Failed


class Link:
    """One non-blocking TCP socket with websockets' sans-I/O client protocol on it."""

    def __init__(self, url: str, max_size: int) -> None:
        uri = parse_uri(url)
        if uri.secure:
            raise OSError("this example speaks ws:// only")
        family, kind, proto, _, address = socket.getaddrinfo(
            uri.host, uri.port, type=socket.SOCK_STREAM
        )[0]
        self.sock = socket.socket(family, kind, proto)
        self.sock.setblocking(False)
        err = self.sock.connect_ex(address)
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            self.sock.close()
            raise OSError(err, os.strerror(err))
        self.protocol = ClientProtocol(uri, max_size=max_size)
        self.tcp_connected = False
        self.opened = False
        self.done = False
        self.out = bytearray()
        self.eof_pending = False
        self.fragments: list[bytes] = []
        self.fragmented_text = False

    def fileno(self) -> int:
        """The socket, for `select`."""
        return self.sock.fileno()

    def wants_write(self) -> bool:
        """Whether to wait for writability: the TCP connect, or bytes still to send."""
        return not self.tcp_connected or bool(self.out)

    def send_text(self, text: str) -> list[Fact]:
        """Queue one text message (dropped if the connection is no longer open)."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_text(text.encode())
            self._take_output()
        return self._flush()

    def close(self, code: int, reason: str) -> None:
        """Send a close frame if open, flush what is queued (briefly), and drop the socket."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
            self._take_output()
        if self.tcp_connected and self.out:
            try:
                self.sock.settimeout(1.0)  # a goodbye is worth a short blocking wait
                self.sock.sendall(self.out)
            except OSError:
                pass
        self._drop()

    def on_writable(self) -> list[Fact]:
        """The TCP connect finished, or the socket can take more bytes."""
        if not self.tcp_connected:
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                return self._fail(os.strerror(err))
            self.tcp_connected = True
            self.protocol.send_request(self.protocol.connect())
            self._take_output()
        return self._flush()

    def on_readable(self) -> list[Fact]:
        """Read what arrived and turn it into facts."""
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return []
        except OSError as err:
            return self._fail(str(err))
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        facts: list[Fact] = []
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                if self.protocol.handshake_exc is None:
                    self.opened = True
                    facts.append(Opened())
            elif isinstance(event, Frame):
                facts.extend(self._on_frame(event))
        if self.protocol.handshake_exc is not None:
            return facts + self._fail(f"handshake failed: {self.protocol.handshake_exc}")
        self._take_output()
        facts += self._flush()
        if not data or self.protocol.state is State.CLOSED:
            if self.opened:
                code = self.protocol.close_code
                facts.append(
                    Closed(1006 if code is None else code, self.protocol.close_reason or "")
                )
            else:
                facts.append(Failed("connection closed during the handshake"))
            self._drop()
        return facts

    def _on_frame(self, frame: Frame) -> list[Fact]:
        # Pings are answered and closes echoed by the protocol object itself.
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            self.fragments = [bytes(frame.data)]
            self.fragmented_text = frame.opcode is Opcode.TEXT
        elif frame.opcode is Opcode.CONT:
            self.fragments.append(bytes(frame.data))
        else:
            return []
        if not frame.fin:
            return []
        data = b"".join(self.fragments)
        self.fragments = []
        return [Message(data.decode() if self.fragmented_text else data)]

    def _take_output(self) -> None:
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.out += chunk
            else:
                self.eof_pending = True

    def _flush(self) -> list[Fact]:
        if not self.tcp_connected or self.done:
            return []
        try:
            if self.out:
                del self.out[: self.sock.send(self.out)]
            if not self.out and self.eof_pending:
                self.eof_pending = False
                self.sock.shutdown(socket.SHUT_WR)
        except BlockingIOError:
            pass
        except OSError as err:
            return self._fail(str(err))
        return []

    def _fail(self, reason: str) -> list[Fact]:
        self._drop()
        if self.opened:
            return [Closed(1006, reason)]
        return [Failed(reason)]

    def _drop(self) -> None:
        self.done = True
        self.sock.close()


# --- the loop ------------------------------------------------------------------------------


def describe(event: ClientEvent, now: float) -> str:
    """One line per event."""
    match event:
        case SignalingConnected(url=url):
            return f"connected {url}"
        case SignalingDisconnected(code=code, reason=reason, reconnect_at=at):
            retry = "no retry" if at is None else f"retry in {at - now:.1f}s"
            return f"disconnected {code} {reason or '-'} ({retry})"
        case PeerDiscovered(peer_id=peer, is_hub=is_hub):
            return f"discovered {peer}" + (" (hub)" if is_hub else "")
        case PeerLeft(peer_id=peer, reason=reason):
            return f"left {peer} {reason}"
        case OfferReceived(from_peer_id=peer):
            return f"offer from {peer}"
        case AnswerReceived(from_peer_id=peer):
            return f"answer from {peer}"
        case IceCandidateReceived(from_peer_id=peer):
            return f"ice-candidate from {peer}"
        case ConnectionRejectedReceived(from_peer_id=peer, data=data):
            return f"rejected by {peer}: {data.get('reason')}"
        case ServerError(text=text):
            return f"server error: {text}"
        case FrameRejected(field=field, reason=reason):
            return f"bad frame: {field}: {reason}"
        case _:
            assert_never(event)


def perform(machine: SignalingClient, link: Link | None, now: float) -> Link | None:
    """Carry out the machine's actions, feeding back what they cause; print its events."""
    while True:
        facts: list[Fact] = []
        for action in machine.drain_actions():
            match action:
                case OpenSocket(url=url):
                    try:
                        link = Link(url, machine.config.max_frame_bytes)
                    except OSError as err:
                        link = None
                        facts.append(Failed(str(err)))
                case SendText(text=text):
                    if link is not None:
                        facts += link.send_text(text)
                case CloseSocket(code=code, reason=reason):
                    if link is not None:
                        link.close(code, reason)
                    link, facts = None, []  # the machine wants no more news of that socket
                case _:
                    assert_never(action)
        for event in machine.drain_events():
            print(describe(event, now), flush=True)
        if link is not None and link.done:
            link = None
        if not facts:
            return link
        feed(machine, facts, now)


def feed(machine: SignalingClient, facts: list[Fact], now: float) -> None:
    """Report what a socket did to the machine."""
    for fact in facts:
        match fact:
            case Opened():
                machine.socket_opened(now)
            case Message(data=data):
                machine.receive_frame(data, now)
            case Closed(code=code, reason=reason):
                machine.socket_closed(now, code=code, reason=reason)
            case Failed(reason=reason):
                machine.socket_failed(now, reason)
            case _:
                assert_never(fact)


def run(url: str, peer_id: str, network: str, seconds: float) -> int:
    """Connect, print events for `seconds`, then leave."""
    config = ClientConfig(peer_id=PeerId(peer_id), urls=(url,), network_name=network)
    machine = SignalingClient(
        config, rng=random.Random(), wall_offset_s=time.time() - time.monotonic()
    )
    print(f"peer {peer_id}", flush=True)
    stop_at = time.monotonic() + seconds
    machine.connect(time.monotonic())
    link: Link | None = None
    try:
        while True:
            link = perform(machine, link, time.monotonic())
            now = time.monotonic()
            if now >= stop_at:
                break
            deadline = machine.next_deadline()
            wake_at = stop_at if deadline is None else min(deadline, stop_at)
            readers = [link] if link is not None else []
            writers = [link] if link is not None and link.wants_write() else []
            readable, writable, _ = select.select(readers, writers, [], max(0.0, wake_at - now))
            now = time.monotonic()
            facts: list[Fact] = []
            if link is not None and writable:
                facts += link.on_writable()
            if link is not None and not link.done and readable:
                facts += link.on_readable()
            feed(machine, facts, now)
            if deadline is not None and now >= deadline:  # due-driven: input cannot starve it
                machine.handle_timer(now)
    except KeyboardInterrupt:
        pass
    machine.disconnect(time.monotonic())
    perform(machine, link, time.monotonic())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("url", help="hub URL, e.g. ws://127.0.0.1:3000")
    parser.add_argument("--peer-id", default=None, help="40 hex characters (default: random)")
    parser.add_argument("--network", default="global", help="namespace (default: global)")
    parser.add_argument("--seconds", type=float, default=10.0, help="run time (default: 10)")
    args = parser.parse_args(argv)
    try:
        return run(args.url, args.peer_id or secrets.token_hex(20), args.network, args.seconds)
    except PeerPigeonError as err:  # a bad URL, peer ID or network name
        print(f"blocking_client: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
