"""Streams between a Python peer and a real JS PeerPigeon peer, both ways, byte for byte.

JS 1.0.6 sends ``__STREAM_INIT__``/``__STREAM_CHUNK__`` (+ binary frame)/``__STREAM_END__``
(``createStreamToPeer``); ``js_peer.mjs`` gained a ``sendStream`` command and reports every
stream it read to the end as ``streamDone`` (size, sha256). Python paces on the channel's
buffered amount towards JS (no credit), and JS ignores our optional fields.
"""

from __future__ import annotations

import hashlib
from typing import Any

import anyio
import anyio.to_thread
import pytest

from peerpigeon.io.mesh import LOOPBACK_ICE_HOSTS, PeerPigeonMesh
from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.mesh import MeshConfig

from .conftest import JsPeerFactory, OurHubFactory
from .harness import MAX_WAIT

pytestmark = [pytest.mark.interop, pytest.mark.anyio]

NETWORK = "streams-interop"
JS_ID = "ee" * 20  # the larger ID: it dials
PY_ID = "22" * 20
SIZE = 1024 * 1024 + 321


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiortc is asyncio-only


def pattern(size: int, seed: int) -> bytes:
    return bytes((i * 31 + seed) & 0xFF for i in range(size))


async def test_file_streams_both_ways(our_hub: OurHubFactory, js_peer: JsPeerFactory) -> None:
    url = str(our_hub().url)
    config = MeshConfig(peer_id=PeerId(PY_ID), network_name=NETWORK, allow_global_fallback=False)
    with anyio.fail_after(150):
        async with PeerPigeonMesh(config=config, ice_hosts=LOOPBACK_ICE_HOSTS) as mesh:
            await mesh.connect(url)
            js = await anyio.to_thread.run_sync(lambda: js_peer(url, JS_ID, NETWORK))
            with anyio.move_on_after(60):
                while PeerId(JS_ID) not in mesh.connected_peers():
                    await anyio.sleep(0.1)
            assert PeerId(JS_ID) in mesh.connected_peers()

            # JS -> Python
            received = bytearray()

            async def receive() -> None:
                incoming = await mesh.accept_stream()
                assert incoming.meta.filename == "from-js.bin"
                assert incoming.meta.total_size == SIZE
                async for chunk in incoming:
                    received.extend(chunk)

            async with anyio.create_task_group() as tg:
                tg.start_soon(receive)
                cmd: dict[str, Any] = {"cmd": "sendStream", "to": PY_ID, "size": SIZE, "seed": 7}
                await anyio.to_thread.run_sync(lambda: js.request(cmd, MAX_WAIT))
            assert bytes(received) == pattern(SIZE, 7)

            # Python -> JS
            data = pattern(SIZE, 99)
            writer = await mesh.open_stream(JS_ID, type="file", filename="py.bin", total_size=SIZE)
            assert not writer.flow_controlled  # a JS peer: pacing on the buffered amount
            await writer.send(data)
            await writer.aclose()
            done = await anyio.to_thread.run_sync(
                lambda: js.wait_for("streamDone", MAX_WAIT, peerId=PY_ID)
            )
            assert done["size"] == SIZE
            assert done["sha256"] == hashlib.sha256(data).hexdigest()
            assert done["metadata"]["filename"] == "py.bin"
            assert mesh.stats().data_frames_rejected == 0
