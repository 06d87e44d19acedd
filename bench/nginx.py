"""nginx as our own process: a static upstream, and a reverse proxy with upstream keep-alive.

The reverse proxy runs as in production (access log off, upstream keep-alive, `proxy_buffering`
on, its default) unless `buffering=False`: the configuration earlier benchmarks compared
against, which slows nginx on small answers and flatters our ratio. Both are reported.

For large bodies (`bench.streaming`): a file server (`sendfile on`) and a streaming reverse proxy,
buffering on with 64 KiB buffers and no temporary file (`STREAM_PROXY` says why).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench.load import apt_install

COMMON = """
worker_processes 1;
daemon off;
master_process off;
pid {dir}/nginx-{name}.pid;
error_log {dir}/nginx-{name}.error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body-{name};
    proxy_temp_path {dir}/proxy-{name};
    fastcgi_temp_path {dir}/fastcgi-{name};
    uwsgi_temp_path {dir}/uwsgi-{name};
    scgi_temp_path {dir}/scgi-{name};
    keepalive_requests 1000000;
{body}
}}
"""

STATIC = """
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location / {{ default_type application/json; return 200 '{{"id": 1, "ok": true}}'; }}
    }}
"""

PROXY = """
    upstream backend {{ server 127.0.0.1:{upstream}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering {buffering};
        }}
    }}
"""

FILES = """
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        sendfile on;
        tcp_nopush on;
        location / {{ root {root}; default_type application/octet-stream; }}
    }}
"""

# Buffering on, as in production, with 64 KiB buffers (issue 17): the head in one, the body
# through eight more, two of them at most busy sending to the client (twice the buffer, nginx's
# default ratio). At most 576 KiB of a response in memory, the same order as our proxy's bound
# (BodyStream's 256 KiB high-water mark, the write batch's 64 KiB and the transport's buffer).
# No temporary file: nginx's default would spill up to 1 GiB to disk when the client reads slower
# than the backend answers; with 0 it stops reading the backend instead, as our proxy does, and
# both are measured holding the body in bounded memory.
STREAM_PROXY = """
    upstream backend {{ server 127.0.0.1:{upstream}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering on;
            proxy_buffer_size 64k;
            proxy_buffers 8 64k;
            proxy_busy_buffers_size 128k;
            proxy_max_temp_file_size 0;
        }}
    }}
"""


def nginx_binary() -> str:
    """The nginx executable, installed with apt-get when missing."""
    found = apt_install("nginx", "nginx")
    if found is None:
        raise RuntimeError("nginx is not installed and could not be installed")
    return found


def command(directory: Path, name: str, body: str) -> list[str]:
    """Write nginx-<name>.conf in `directory`; the command line that runs it in the foreground."""
    conf = directory / f"nginx-{name}.conf"
    conf.write_text(COMMON.format(dir=directory, name=name, body=body))
    return [nginx_binary(), "-c", str(conf), "-p", str(directory), "-e", "stderr"]


def start(directory: Path, name: str, body: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command(directory, name, body), stderr=subprocess.DEVNULL)


def start_static(directory: Path, port: int) -> subprocess.Popen[bytes]:
    return start(directory, "static", STATIC.format(port=port))


def proxy_command(
    directory: Path, port: int, upstream: int, *, buffering: bool = True
) -> list[str]:
    body = PROXY.format(port=port, upstream=upstream, buffering="on" if buffering else "off")
    return command(directory, "proxy" if buffering else "proxy-unbuffered", body)


def start_proxy(
    directory: Path, port: int, upstream: int, *, buffering: bool = True
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        proxy_command(directory, port, upstream, buffering=buffering), stderr=subprocess.DEVNULL
    )


def start_files(directory: Path, port: int, root: Path) -> subprocess.Popen[bytes]:
    """A static file server on `port`, serving `root` with sendfile."""
    return start(directory, "files", FILES.format(port=port, root=root))


def start_stream_proxy(directory: Path, port: int, upstream: int) -> subprocess.Popen[bytes]:
    """The reverse proxy for large bodies: buffering on, 64 KiB buffers, no temporary file."""
    return start(directory, "stream-proxy", STREAM_PROXY.format(port=port, upstream=upstream))
