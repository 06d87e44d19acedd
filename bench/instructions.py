"""`python -m bench instructions`: instructions per proxied request, counted by callgrind.

Requests per second on a shared 2-core machine swing by a factor of two; instruction counts do
not. Each proxy (ours, one worker, access log off; and nginx as a reverse proxy, one worker) runs
under `valgrind --tool=callgrind` with counting off, in front of a static nginx that runs
normally. After a warm-up, counting is switched on (`callgrind_control -i on`), exactly
`requests` GETs are sent over 32 keep-alive connections, counting is switched off and the counts
are dumped. The same code, load and machine give the same count to within about 0.5%.
Our proxy runs as `python -m bench.quiet_proxy` (as in `bench routing`): its admin side's
once-a-second samplers stopped, work paid per second, not per request, which callgrind's
fifty-fold slowdown would otherwise land on each request (about 5,000 instructions of a quiet
machine's run, and more the busier the machine: enough to put `proxy` above `proxy-log`).

What it does not count: time in the kernel (the socket reads and writes, the same four system
calls per request for both proxies) and waiting. It is the measure to use when changing the hot
path: compare two trees' `proxy_instructions_per_request`, then confirm with `bench proxy`.
Results: bench/results/instructions.json.
"""

from __future__ import annotations

import json
import re
import selectors
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from bench import nginx
from bench.load import apt_install
from bench.proxy import PROXY_ENV, RESULTS, ROOT, hot_path_mode, proxy_command
from stack.ports import free_port, wait_port

CONNECTIONS = 32
WARM_UP = 500
PATH = "/bookings/1?expand=all"
REQUEST = f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n".encode()
TOTALS = re.compile(rb"^totals: (\d+)", re.M)
# proxy: the hot path compiled where built (proxy/speedups.py); proxy-python: its .py sources;
# proxy-log: compiled, with the access log on (its default; written to /dev/null here).
ENVIRONMENTS = {
    "proxy": PROXY_ENV,
    "proxy-python": {**PROXY_ENV, "STRANGLER_NO_EXTENSIONS": "1"},
    "proxy-log": {**PROXY_ENV, "STRANGLER_ACCESS_LOG": "1"},
    "nginx": PROXY_ENV,  # proxy_buffering on, as in production
}


def valgrind_binary() -> str:
    """valgrind (which brings callgrind_control), installed with apt-get when missing."""
    found = apt_install("valgrind", "valgrind")
    if found is None:
        raise RuntimeError("valgrind is not installed and could not be installed")
    return found


def callgrind(out_file: Path) -> list[str]:
    """The command prefix running a program under callgrind with counting off."""
    return [
        valgrind_binary(), "--tool=callgrind", "--instr-atstart=no",
        f"--callgrind-out-file={out_file}",
    ]  # fmt: skip


def send_exactly(port: int, connections: int, total: int) -> None:
    """`total` GETs over `connections` keep-alive connections, each waiting for its answer.

    Every answer must be a complete 200 with a Content-Length body: anything else raises.
    """
    selector = selectors.DefaultSelector()
    buffers: dict[socket.socket, bytearray] = {}
    sent = done = 0
    for _ in range(min(connections, total)):
        sock = socket.create_connection(("127.0.0.1", port))
        buffers[sock] = bytearray()
        selector.register(sock, selectors.EVENT_READ)
        sock.sendall(REQUEST)
        sent += 1
    try:
        while done < total:
            ready = selector.select(timeout=60)
            if not ready:
                raise TimeoutError(f"no answer for 60 s after {done} of {total} requests")
            for key, _ in ready:
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                data = conn.recv(65536)
                if not data:
                    raise ConnectionError("the proxy closed a keep-alive connection")
                buffer = buffers[conn]
                buffer += data
                while (answered := complete_response(buffer)) is not None:
                    del buffer[:answered]
                    done += 1
                    if sent < total:
                        conn.sendall(REQUEST)
                        sent += 1
    finally:
        for sock in buffers:
            selector.unregister(sock)
            sock.close()


def complete_response(buffer: bytearray) -> int | None:
    """The size of the complete 200 response at the start of `buffer`, None if incomplete."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).lower()
    if not head.startswith(b"http/1.1 200 "):
        raise ValueError(f"unexpected answer: {head[:80]!r}")
    found = re.search(rb"\r\ncontent-length: *(\d+)", head)
    if found is None:
        raise ValueError("an answer without Content-Length")
    size = end + 4 + int(found.group(1))
    return size if len(buffer) >= size else None


def quiet(command: list[str]) -> list[str]:
    """`python -m proxy …` as `python -m bench.quiet_proxy …`: the admin samplers stopped."""
    if command[1:3] != ["-m", "proxy"]:
        raise ValueError(f"not a proxy command line: {command}")
    return [command[0], "-m", "bench.quiet_proxy", *command[3:]]


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def count_running(proc: subprocess.Popen[bytes], port: int, out_file: Path, requests: int) -> float:
    """Instructions per request of `proc`, a server under callgrind answering on `port`: the
    warm-up, then `requests` counted and dumped to `<out_file>.1`."""
    send_exactly(port, CONNECTIONS, WARM_UP)
    control(proc.pid, "-i", "on")
    send_exactly(port, CONNECTIONS, requests)
    control(proc.pid, "-i", "off")
    control(proc.pid, "-d")
    return dumped_instructions(out_file) / requests


def kill(proc: subprocess.Popen[bytes]) -> None:
    """Killed: the counts are dumped already, and nginx under valgrind sometimes sleeps through
    SIGTERM."""
    proc.kill()
    proc.wait()


def control(pid: int, *args: str) -> None:
    """callgrind_control (installed with valgrind) on the process `pid`."""
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def dumped_instructions(out_file: Path) -> int:
    """The instructions in the explicit dump (`<out_file>.1`; `out_file` itself, written at a
    clean exit, only as a fallback)."""
    for path in (out_file.with_name(out_file.name + ".1"), out_file):
        if path.exists():
            found = TOTALS.search(path.read_bytes())
            if found is not None:
                return int(found.group(1))
    raise RuntimeError(f"no callgrind counts in {out_file}")


def measure(directory: Path, requests: int) -> dict[str, float]:
    """Instructions per request of our proxy and of nginx, in front of one static nginx.

    The four servers start under valgrind together (a Python process takes 10 to 20 s to start
    there, nearly all of this bench's time when they start one after the other), and are counted
    one at a time: nginx at once, our three once all of them listen, so that each is counted
    while the others are idle, as when each ran alone. Only the wall time changes: a count is
    of the counted process's own instructions.
    """
    upstream = free_port()
    static = nginx.start_static(directory, upstream)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        wait_port(upstream)
        ports = {name: free_port() for name in ENVIRONMENTS}
        commands = {
            "proxy": quiet(proxy_command(directory, ports["proxy"], upstream)),
            "proxy-python": quiet(proxy_command(directory, ports["proxy-python"], upstream)),
            "proxy-log": quiet(proxy_command(directory, ports["proxy-log"], upstream)),
            "nginx": nginx.proxy_command(directory, ports["nginx"], upstream),
        }
        outs = {name: directory / f"{name}.callgrind" for name in commands}
        for name, command in commands.items():
            procs[name] = start(callgrind(outs[name]) + command, ENVIRONMENTS[name])
        counted = {}
        for name in ("nginx", *(name for name in commands if name != "nginx")):
            for running in [name] if name == "nginx" else list(procs):
                wait_port(ports[running], timeout=180)
            counted[name] = count_running(procs[name], ports[name], outs[name], requests)
            kill(procs.pop(name))
        return {name: counted[name] for name in commands}
    finally:
        for proc in procs.values():
            kill(proc)
        static.send_signal(signal.SIGTERM)
        static.wait(10)


def run(requests: int) -> dict[str, float]:
    """Count both proxies, print the table and write bench/results/instructions.json."""
    with tempfile.TemporaryDirectory(prefix="strangler-instructions-") as tmp:
        per_request = measure(Path(tmp), requests)
    ratio = per_request["nginx"] / per_request["proxy"]
    report = {
        "hot_path": hot_path_mode(),
        "requests": requests,
        "connections": CONNECTIONS,
        "instructions_per_request": {name: round(value) for name, value in per_request.items()},
        "nginx_vs_proxy_instructions": ratio,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "instructions.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"instructions per request ({requests} requests over {CONNECTIONS} connections):")
    for name, value in per_request.items():
        print(f"  {name:<12} {value:>10,.0f}")
    print(f"hot path of `proxy`: {report['hot_path']}")
    print(f"nginx_vs_proxy_instructions: {ratio:.3f}")
    print(f"written: {RESULTS / 'instructions.json'}")
    return per_request
