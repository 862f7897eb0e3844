"""``peerpigeon send`` / ``peerpigeon receive``: a file crosses between two CLI peers."""

from __future__ import annotations

import io
import os
from pathlib import Path

import anyio
import pytest

from peerpigeon.cli import main
from peerpigeon.io.hub import PeerPigeonServer
from peerpigeon.transfer_cli import receive_files, send_file

pytestmark = pytest.mark.anyio
RECEIVER = "ab" * 20


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiortc is asyncio-only


async def test_send_and_receive_a_file(tmp_path: Path) -> None:
    data = os.urandom(1024 * 1024 + 7)
    src = tmp_path / "in" / "payload.bin"
    src.parent.mkdir()
    src.write_bytes(data)
    dest = tmp_path / "out"
    rx_log, tx_log = io.StringIO(), io.StringIO()
    with anyio.fail_after(20):
        async with PeerPigeonServer(port=0) as server, anyio.create_task_group() as tg:

            async def receive() -> None:
                code = await receive_files(
                    server.url,
                    dest,
                    network="cli-files",
                    peer_id=RECEIVER,
                    count=1,
                    loopback=True,
                    out=rx_log,
                )
                assert code == 0

            tg.start_soon(receive)
            code = await send_file(
                server.url, src, RECEIVER, network="cli-files", loopback=True, out=tx_log
            )
            assert code == 0, tx_log.getvalue()
    assert (dest / "payload.bin").read_bytes() == data
    assert "sha256 verified" in rx_log.getvalue()
    assert "MiB/s" in tx_log.getvalue()
    assert "(confirmed)" in tx_log.getvalue()


def test_subcommands_are_registered(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("send", "receive"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
    assert "--dir" in capsys.readouterr().out
