"""nginx as our own process: a static upstream, and a reverse proxy with upstream keep-alive.

The reverse proxy runs as in production (access log off, upstream keep-alive, `proxy_buffering`
on, its default) unless `buffering=False`: the configuration earlier benchmarks compared
against, which slows nginx on small answers and flatters our ratio. Both are reported.
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
