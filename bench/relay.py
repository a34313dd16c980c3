"""``python -m bench.relay``: a TCP hop with a delay each way, to stand in for a store's network.

Several tills share one PostgreSQL server, so all but one of them reach it over the store's LAN,
where a round trip costs a few tenths of a millisecond; on this machine the bench's PostgreSQL is
on the loopback, where it costs a few hundredths. Point a server's database URL at the relay's
port to measure what the round trips cost it:

    .venv/bin/python -m bench.relay --port 6543 --to 127.0.0.1:5432 --delay-us 100 &
    POS_LOYALTY_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:6543/DB pos-loyalty serve ...

Each chunk is passed on ``--delay-us`` after it arrived, in both directions, each direction on
threads of its own: chunks that arrive together leave together, as on a network, and one
connection's wait holds up no other. The wait is a busy one (a sleep is too coarse for a tenth
of a millisecond): it costs a core while data is in flight, so it is for one till's latency, not
for load. Not used by ``python -m bench``; docs/PERFORMANCE.md says where it was.
"""
from __future__ import annotations

import argparse
import queue
import socket
import threading
import time


def _carry(source: socket.socket, target: socket.socket, delay: float) -> None:
    """Read chunks as they come and hand each to a sender that passes it on ``delay`` after it came."""
    chunks: queue.SimpleQueue = queue.SimpleQueue()

    def send() -> None:
        try:
            while (item := chunks.get()) is not None:
                due, data = item
                while time.perf_counter() < due:
                    pass
                target.sendall(data)
        except OSError:
            pass
        finally:
            try:
                target.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        while data := source.recv(65536):
            chunks.put((time.perf_counter() + delay, data))
    except OSError:
        pass
    finally:
        chunks.put(None)
        sender.join()


def _connect(client: socket.socket, to: tuple[str, int], delay: float) -> None:
    try:
        server = socket.create_connection(to)
    except OSError:
        client.close()
        return
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    there = threading.Thread(target=_carry, args=(client, server, delay), daemon=True)
    there.start()
    _carry(server, client, delay)
    there.join()
    client.close()
    server.close()


def serve(port: int, to: tuple[str, int], delay: float) -> None:
    listener = socket.create_server(("127.0.0.1", port))
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_connect, args=(client, to, delay), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=6543, help="where the relay listens (127.0.0.1)")
    parser.add_argument("--to", default="127.0.0.1:5432", help="HOST:PORT it passes everything on to")
    parser.add_argument("--delay-us", type=float, default=100.0, help="how long each chunk takes, each way")
    args = parser.parse_args(argv)
    host, _, port = args.to.rpartition(":")
    serve(args.port, (host or "127.0.0.1", int(port)), args.delay_us / 1e6)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
