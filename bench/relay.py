"""``python -m bench.relay``: a TCP hop with a delay each way, to stand in for a store's network.

Several tills share one PostgreSQL server, so all but one of them reach it over the store's LAN,
where a round trip costs a few tenths of a millisecond; on this machine the bench's PostgreSQL is
on the loopback, where it costs a few hundredths. Point a server's database URL at the relay's
port to measure what the round trips cost it:

    .venv/bin/python -m bench.relay --port 6543 --to 5432 --delay-us 100 &
    POS_LOYALTY_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:6543/DB pos-loyalty serve ...

Each chunk read is held ``--delay-us`` before it is passed on, in both directions. The delay is
a busy wait (the event loop's timers are too coarse for a tenth of a millisecond) and holds up
the relay's other connections meanwhile: it is for one till's latency, not for load.
Not used by ``python -m bench``; docs/PERFORMANCE.md says where it was.
"""
from __future__ import annotations

import argparse
import asyncio
import time


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    try:
        while data := await reader.read(65536):
            if delay:
                end = time.perf_counter() + delay
                while time.perf_counter() < end:
                    pass
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve(port: int, to_host: str, to_port: int, delay: float) -> None:
    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(to_host, to_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, server_writer, delay), _pipe(server_reader, client_writer, delay))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=6543, help="where the relay listens (127.0.0.1)")
    parser.add_argument("--to", default="127.0.0.1:5432", help="HOST:PORT it passes everything on to")
    parser.add_argument("--delay-us", type=float, default=100.0, help="each chunk held this long, each way")
    args = parser.parse_args(argv)
    host, _, port = args.to.rpartition(":")
    asyncio.run(serve(args.port, host or "127.0.0.1", int(port), args.delay_us / 1e6))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
