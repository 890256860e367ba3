"""A TURN client built on aioice's own TURN client protocol (a real stack's encoder and auth), for the lab.

    python lab/turn_client.py --server 203.0.113.50:3478 [--username U --password P] \
        --peers '[["198.51.100.20", 9000]]' --mode channel|permission-send --out result.json

- ``channel``: Allocate (401 challenge + authenticated retry when credentials are given, or none at all on an
  open relay), then per peer aioice's send path: ChannelBind + ChannelData; echoes come back as ChannelData.
- ``permission-send``: Allocate, then per peer an authenticated CreatePermission (result recorded: success or
  the error code/reason), then a Send indication with XOR-PEER-ADDRESS + DATA; replies come as Data
  indications. Finally the allocation is deleted (Refresh, lifetime 0).
Every STUN message sent or received is counted in-process (lab/peer.py's hooks) and written with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from aioice import stun
from aioice.turn import create_turn_endpoint
from peer import REC, install_hooks


class Receiver(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.got.append({"from": f"{addr[0]}:{addr[1]}", "data": data.decode(errors="replace")})


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--username")
    ap.add_argument("--password")
    ap.add_argument("--peers", required=True)
    ap.add_argument("--mode", choices=["channel", "permission-send"], default="channel")
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    install_hooks()
    host, port = args.server.rsplit(":", 1)
    server = (host, int(port))
    transport, receiver = await create_turn_endpoint(
        Receiver, server, username=args.username, password=args.password, lifetime=600
    )
    inner = transport._TurnTransport__inner_protocol  # type: ignore[attr-defined]
    sock = inner.transport.get_extra_info("sockname")
    result: dict[str, Any] = {
        "relayed_address": list(inner.relayed_address),
        "mapped_address": list(inner.mapped_address),
        "client": f"{sock[0]}:{sock[1]}",
        "realm": inner.realm,
        "peers": [],
    }
    peers = [tuple(p) for p in json.loads(args.peers)]
    for peer in peers:
        row: dict[str, Any] = {"peer": f"{peer[0]}:{peer[1]}", "sent": []}
        if args.mode == "channel":
            for i in range(args.count):
                msg = f"rtcf open-relay probe {i} to {peer[0]}"
                transport.sendto(msg.encode(), peer)
                row["sent"].append(msg)
                await asyncio.sleep(0.2)
        else:
            req = stun.Message(message_method=stun.Method.CREATE_PERMISSION, message_class=stun.Class.REQUEST)
            req.attributes["XOR-PEER-ADDRESS"] = peer
            try:
                await inner.request_with_retry(req)
                row["create_permission"] = "success"
            except stun.TransactionFailed as exc:
                row["create_permission"] = "error"
                row["error_code"] = exc.response.attributes["ERROR-CODE"][0]
                row["error_reason"] = exc.response.attributes["ERROR-CODE"][1]
            except stun.TransactionTimeout:
                row["create_permission"] = "timeout"
            for i in range(args.count):
                msg = f"rtcf internal-peer probe {i} to {peer[0]}"
                ind = stun.Message(message_method=stun.Method.SEND, message_class=stun.Class.INDICATION)
                ind.attributes["XOR-PEER-ADDRESS"] = peer
                ind.attributes["DATA"] = msg.encode()
                inner.send_stun(ind, server)
                row["sent"].append(msg)
                await asyncio.sleep(0.2)
        result["peers"].append(row)
    await asyncio.sleep(1.0)
    result["received"] = receiver.got
    transport.close()
    await asyncio.sleep(1.0)
    result.update(
        {k: REC[k] for k in ("stun_sent_turn", "stun_recv_turn", "turn_software", "turn_data_indications")}
    )
    Path(args.out).write_text(json.dumps(result, indent=1, default=dict))


if __name__ == "__main__":
    asyncio.run(main())
