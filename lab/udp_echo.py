"""UDP echo for the lab: answers every datagram with b"echo:" + data; logs what arrived as JSON on exit.

python lab/udp_echo.py --bind 10.99.0.5:9000 --log out.json [--ready FILE]
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--ready")
    args = ap.parse_args()
    host, port = args.bind.rsplit(":", 1)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((host.strip("[]"), int(port)))
    s.settimeout(0.5)
    got: list[dict] = []
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.ready:
        Path(args.ready).write_text("ok")
    while running:
        try:
            data, addr = s.recvfrom(2048)
        except (TimeoutError, InterruptedError):
            continue
        got.append({"from": f"{addr[0]}:{addr[1]}", "data": data.decode(errors="replace"), "t": time.time()})
        s.sendto(b"echo:" + data, addr)
    Path(args.log).write_text(json.dumps({"bind": args.bind, "received": got}, indent=1))


if __name__ == "__main__":
    main()
