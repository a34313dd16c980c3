"""A till's sales software, as far as a concurrency test needs it: plain ``http.client``.

Run as its own process (``python till_client.py``). Reads one JSON line from standard input,
``{"port": ..., "token": ..., "threads": N, "requests": [[method, path, body], ...]}``, opens
one kept-alive connection per thread, prints ``ready`` and waits for a ``go`` line, so that
every process and thread starts sending at once. Prints one JSON line: for each request, in
order, ``[status, detail]`` (``detail`` is the answer's problem detail or transaction id), or
``[0, "ExceptionName: ..."]`` when the connection failed. Uses the standard library only.
"""
from __future__ import annotations

import http.client
import json
import sys
import threading


def _answer(response: http.client.HTTPResponse) -> list:
    payload = response.read()
    try:
        body = json.loads(payload)
    except ValueError:
        return [response.status, payload[:200].decode("utf-8", "replace")]
    if isinstance(body, dict):
        return [response.status, body.get("detail") or body.get("id")]
    return [response.status, None]


def _send_share(job: dict, share: list[tuple[int, list]], results: list, start: threading.Barrier) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", job["port"], timeout=120)
    headers = {"Authorization": f"Bearer {job['token']}", "Content-Type": "application/json"}
    start.wait()
    for index, (method, path, body) in share:
        try:
            conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers)
            results[index] = _answer(conn.getresponse())
        except (OSError, http.client.HTTPException) as exc:
            results[index] = [0, f"{type(exc).__name__}: {exc}"]
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", job["port"], timeout=120)
    conn.close()


def main() -> None:
    job = json.loads(sys.stdin.readline())
    requests = list(enumerate(job["requests"]))
    threads = job["threads"]
    results: list = [None] * len(requests)
    start = threading.Barrier(threads + 1)
    workers = [
        threading.Thread(target=_send_share, args=(job, requests[i::threads], results, start)) for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        start.abort()
        sys.exit(2)
    start.wait()
    for worker in workers:
        worker.join()
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
