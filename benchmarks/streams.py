#!/usr/bin/env python
"""Stream throughput: `PeerPigeonMesh` streams vs a raw aiortc data-channel blast.

One run, two processes (this one sends; a child process receives), the same bytes twice:

* ``raw``: a bare aiortc data channel (offer/answer over the child's stdin/stdout), binary
  messages paced on ``bufferedAmount`` (high water 512 KiB, low water 128 KiB, the
  reference's marks), timed until the child has counted every byte. It runs with 16 KiB
  messages (the reference's chunk) and with 64 KiB messages (our chunk between Python
  peers), each once before the streams and once after (16, 64, streams, 64, 16), so load
  that drifts during the run weighs on both sides alike; the faster size is the baseline;
* ``stream``: our hub (in this process), two mesh peers, ``open_stream`` + ``send`` (the
  code path of ``send_file`` without the disk), timed until the child's reader has read
  every byte and the sha256 end check passed;
* ``send_file``: the same bytes, written beforehand to a temporary file in /tmp (deleted
  afterwards), sent with ``send_file`` over the same two mesh peers, timed the same way;
* ``js_stream``: the JS reference alone, for comparison: a reference ``PeerPigeonServer`` and
  two ``js_peer.mjs`` peers (``tests/interop/harness.py``), timed from the ``sendStream``
  command (``createStreamToPeer``, 256 KiB writes; the script first fills its buffer with a
  pattern, which is included) to the receiver's ``streamDone`` event. 256 MiB, or 32 MiB
  with ``--quick``. Needs Node and the npm modules of ``tests/interop/js``; without them the
  JS figures are null.

Data is generated on the fly: 1 GiB, or 32 MiB with ``--quick``. Peak RSS growth (VmHWM,
reset between phases through /proc/self/clear_refs) is reported for both processes. The
last line is JSON with ``ratio_vs_raw_aiortc`` (stream MiB/s / raw MiB/s),
``ratio_send_file_vs_raw_aiortc``, ``ratio_vs_js_stream`` (stream MiB/s / JS MiB/s) and
``peak_rss_growth_mib`` ({"sender", "receiver"}, of the stream phase).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_MIB = 1024 * 1024
_BLOCK = 256 * 1024
# The raw blast's message sizes: the reference's chunk and ours between Python peers. Each
# runs before and after the streams (A B ... B A); the faster is the baseline.
_RAW_SIZES = (16 * 1024, 64 * 1024)
_HIGH, _LOW = 512 * 1024, 128 * 1024  # the reference's pacing marks (32 and 8 16-KiB chunks)


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> int:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _rss_kib("VmRSS")


def _block(i: int) -> bytes:
    return (i.to_bytes(8, "big") * (_BLOCK // 8))[:_BLOCK]


# --- the receiving child ---------------------------------------------------------------------


async def _child(total: int) -> None:
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from peerpigeon.io.mesh import LOOPBACK_ICE_HOSTS, PeerPigeonMesh

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(**obj: Any) -> None:
        print(json.dumps(obj), flush=True)

    async def raw_phase() -> None:
        base = _reset_peak()
        offer = json.loads(await reader.readline())
        pc = RTCPeerConnection()
        done = asyncio.Event()
        count = 0

        def _on_message(message: bytes | str) -> None:
            nonlocal count
            count += len(message)
            if count >= total:
                done.set()

        @pc.on("datachannel")
        def _on_channel(channel: Any) -> None:
            channel.on("message", _on_message)

        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], offer["type"]))
        await pc.setLocalDescription(await pc.createAnswer())
        say(sdp=pc.localDescription.sdp, type=pc.localDescription.type)
        await done.wait()
        say(raw_done=count, rss_growth_kib=_rss_kib("VmHWM") - base)
        await pc.close()

    for _ in _RAW_SIZES:
        await raw_phase()

    # stream phase
    url = json.loads(await reader.readline())["url"]
    base = _reset_peak()
    async with PeerPigeonMesh(network_name="bench", ice_hosts=LOOPBACK_ICE_HOSTS) as mesh:
        await mesh.connect(url)
        say(peer_id=mesh.peer_id)
        for _ in range(2):  # open_stream + send, then send_file
            incoming = await mesh.accept_stream()
            got = 0
            async for chunk in incoming:
                got += len(chunk)
            say(
                stream_done=got,
                verified=incoming.verified,
                rss_growth_kib=_rss_kib("VmHWM") - base,
            )
            base = _reset_peak()
        await reader.readline()  # the parent says when to leave
    for _ in _RAW_SIZES:  # the raw blasts again, to average out drifting machine load
        await raw_phase()


# --- the sending parent ----------------------------------------------------------------------


async def _parent(total: int) -> dict[str, Any]:
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from peerpigeon.io.hub import PeerPigeonServer
    from peerpigeon.io.mesh import LOOPBACK_ICE_HOSTS, PeerPigeonMesh

    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--child",
        str(total),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    cin, cout = child.stdin, child.stdout

    async def hear() -> dict[str, Any]:
        line = await cout.readline()
        if not line:
            raise RuntimeError("the receiver died")
        result: dict[str, Any] = json.loads(line)
        return result

    def tell(**obj: Any) -> None:
        cin.write((json.dumps(obj) + "\n").encode())

    async def raw_phase(message: int) -> tuple[dict[str, Any], float, int]:
        """One raw blast of `total` bytes in `message`-byte messages: (the child's report,
        seconds, our RSS growth)."""
        base = _reset_peak()
        pc = RTCPeerConnection()
        channel = pc.createDataChannel("bench", ordered=True)
        opened = asyncio.Event()
        channel.on("open", opened.set)
        low = asyncio.Event()
        channel.bufferedAmountLowThreshold = _LOW
        channel.on("bufferedamountlow", low.set)
        await pc.setLocalDescription(await pc.createOffer())
        tell(sdp=pc.localDescription.sdp, type=pc.localDescription.type)
        answer = await hear()
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        await opened.wait()
        start = time.perf_counter()
        for i in range(total // _BLOCK):
            block = _block(i)
            for at in range(0, _BLOCK, message):
                channel.send(block[at : at + message])
            if channel.bufferedAmount > _HIGH:
                low.clear()
                await low.wait()
        report = await hear()
        elapsed = time.perf_counter() - start
        rss = _rss_kib("VmHWM") - base
        await pc.close()
        assert report["raw_done"] == total, report
        return report, elapsed, rss

    fd, tmp_name = tempfile.mkstemp(prefix="peerpigeon-bench-", suffix=".bin", dir="/tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            for i in range(total // _BLOCK):
                f.write(_block(i))

        raws = [await raw_phase(size) for size in _RAW_SIZES]
        # stream phase
        async with PeerPigeonServer(port=0) as server:
            base = _reset_peak()
            async with PeerPigeonMesh(network_name="bench", ice_hosts=LOOPBACK_ICE_HOSTS) as mesh:
                await mesh.connect(server.url)
                tell(url=server.url)
                peer = (await hear())["peer_id"]
                while peer not in mesh.connected_peers() or (
                    peer not in mesh.machine.python_neighbours()
                ):
                    mesh.connect_to_peer(peer)
                    await asyncio.sleep(0.05)
                start = time.perf_counter()
                writer = await mesh.open_stream(peer, type="file", total_size=total)
                for i in range(total // _BLOCK):
                    await writer.send(_block(i))
                await writer.aclose()
                stream_child = await hear()
                stream_s = time.perf_counter() - start
                stream_rss = _rss_kib("VmHWM") - base

                # send_file phase
                base = _reset_peak()
                start = time.perf_counter()
                sent = await mesh.send_file(peer, tmp_name)
                file_child = await hear()
                file_s = time.perf_counter() - start
                file_rss = _rss_kib("VmHWM") - base
                tell(bye=True)
        raws += [await raw_phase(size) for size in reversed(_RAW_SIZES)]
        assert stream_child["stream_done"] == total, stream_child
        assert stream_child["verified"], stream_child
        assert sent == total, sent
        assert file_child["stream_done"] == total, file_child
        assert file_child["verified"], file_child
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        if child.returncode is None:
            cin.close()
            try:
                await asyncio.wait_for(child.wait(), 10)
            except TimeoutError:
                child.kill()
    by_size = {  # both blasts of a size together
        size: 2 * total / _MIB / (raws[i][1] + raws[-1 - i][1]) for i, size in enumerate(_RAW_SIZES)
    }
    raw_size = max(by_size, key=lambda size: by_size[size])
    raw_mibs = by_size[raw_size]
    raw_rss = max(r[2] for r in raws)
    raw_child_rss = max(r[0]["rss_growth_kib"] for r in raws)
    stream_mibs = total / _MIB / stream_s
    file_mibs = total / _MIB / file_s
    return {
        "bytes": total,
        "raw_aiortc_mib_s": round(raw_mibs, 2),
        "raw_message_bytes": raw_size,
        "raw_mib_s_by_message_bytes": {str(k): round(v, 2) for k, v in by_size.items()},
        "stream_mib_s": round(stream_mibs, 2),
        "ratio_vs_raw_aiortc": round(stream_mibs / raw_mibs, 3),
        "send_file_mib_s": round(file_mibs, 2),
        "ratio_send_file_vs_raw_aiortc": round(file_mibs / raw_mibs, 3),
        "send_file_peak_rss_growth_mib": {
            "sender": round(file_rss / 1024, 1),
            "receiver": round(file_child["rss_growth_kib"] / 1024, 1),
        },
        "peak_rss_growth_mib": {
            "sender": round(stream_rss / 1024, 1),
            "receiver": round(stream_child["rss_growth_kib"] / 1024, 1),
        },
        "raw_peak_rss_growth_mib": {
            "sender": round(raw_rss / 1024, 1),
            "receiver": round(raw_child_rss / 1024, 1),
        },
    }


# --- the JS reference between two Node peers ------------------------------------------------

_JS_A, _JS_B = "aa" * 20, "55" * 20


def _js_stream(size: int) -> float | None:
    """MiB/s of the reference's ``createStreamToPeer`` between two Node peers, or None."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "interop"))
    try:
        import harness  # type: ignore[import-not-found]
    except ImportError as error:
        print(f"js_stream skipped: {error}", file=sys.stderr)
        return None
    harness.MAX_WAIT = 300.0  # the harness's per-wait cap (30 s, for tests); a big transfer
    try:
        harness.ensure_node_modules()
        group = harness.ProcessGroup()
        try:
            server = group.add(harness.JsServer())
            a = group.add(harness.JsPeer(server.url, peer_id=_JS_A, network="bench", quiet=True))
            b = group.add(harness.JsPeer(server.url, peer_id=_JS_B, network="bench", quiet=True))
            a.wait_connected(_JS_B, 60)
            b.wait_connected(_JS_A, 60)
            start = time.perf_counter()
            a.request({"cmd": "sendStream", "to": _JS_B, "size": size, "seed": 7}, 300)
            done = b.wait_for("streamDone", 300, peerId=_JS_A)
            elapsed = time.perf_counter() - start
        finally:
            group.close_all()
    except harness.HarnessError as error:
        print(f"js_stream failed: {error}", file=sys.stderr)
        return None
    if done["size"] != size:
        raise RuntimeError(f"JS stream delivered {done['size']} of {size} bytes")
    return size / _MIB / elapsed


def main() -> None:
    """Run the benchmark (or, with ``--child``, the receiving side)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="32 MiB instead of 1 GiB")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        asyncio.run(_child(args.child))
        return
    total = (32 if args.quick else 1024) * _MIB
    result = asyncio.run(_parent(total))
    js_size = (32 if args.quick else 256) * _MIB
    js_mibs = _js_stream(js_size)
    result["js_stream_bytes"] = js_size
    result["js_stream_mib_s"] = None if js_mibs is None else round(js_mibs, 2)
    result["ratio_vs_js_stream"] = (
        None if js_mibs is None else round(result["stream_mib_s"] / js_mibs, 3)
    )
    print(
        f"raw aiortc {result['raw_aiortc_mib_s']} MiB/s, "
        f"stream {result['stream_mib_s']} MiB/s, ratio {result['ratio_vs_raw_aiortc']}; "
        f"send_file {result['send_file_mib_s']} MiB/s, "
        f"ratio {result['ratio_send_file_vs_raw_aiortc']}; "
        f"JS stream {result['js_stream_mib_s']} MiB/s, ours/JS {result['ratio_vs_js_stream']}",
        file=sys.stderr,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
