"""Load generation with wrk (installed with apt-get when missing) and parsing of its report."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0  # responses completed within the run (wrk's "N requests in")


def apt_install(package: str, binary: str) -> str | None:
    """The path of `binary`, installing the Debian package when it is missing (None if it fails)."""
    path = "/usr/sbin:/usr/bin:/sbin:/bin"
    found = shutil.which(binary) or shutil.which(binary, path=path)
    if found is None:
        env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": path}
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True)
        found = shutil.which(binary) or shutil.which(binary, path=path)
    return found


def lua_string(text: str) -> str:
    """A Lua string literal: `a"b` -> `"a\\"b"`."""
    return json.dumps(text)


def lua_script(paths: Sequence[str], headers: Mapping[str, str]) -> str:
    """A wrk script sending `headers` on every request and cycling through `paths` in order."""
    lines = [f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items()]
    if paths:
        lines.append(f"local paths = {{{', '.join(lua_string(path) for path in paths)}}}")
        lines.append("local i = 0")
        lines.append("request = function()")
        lines.append("  i = i % #paths + 1")
        lines.append('  return wrk.format("GET", paths[i])')
        lines.append("end")
    return "\n".join(lines) + "\n"


def run_load(
    url: str,
    connections: int,
    seconds: float,
    *,
    paths: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
) -> Result:
    """`wrk -t1 -c N -d S --latency url`, parsed; the Python generator if wrk is unavailable.

    With `paths`, requests cycle through them (on the host of `url`); `headers` go with each.
    """
    headers = headers or {}
    wrk = apt_install("wrk", "wrk")
    if wrk is None:
        command = [sys.executable, "-m", "bench.pyload", url, str(connections), str(seconds)]
        command += [f"--path={path}" for path in paths]
        command += [f"--header={name}: {value}" for name, value in headers.items()]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        return Result(**json.loads(out))
    seconds_arg = f"-d{max(1, round(seconds))}s"
    command = [wrk, "-t1", f"-c{connections}", seconds_arg, "--latency"]
    if not paths and not headers:
        return wrk_result([*command, url])
    with tempfile.TemporaryDirectory(prefix="strangler-wrk-") as tmp:
        script = Path(tmp) / "requests.lua"
        script.write_text(lua_script(paths, headers))
        return wrk_result([*command, "-s", str(script), url])


def wrk_result(command: list[str]) -> Result:
    return parse(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def parse(report: str) -> Result:
    """Requests/sec, 50% and 99% latency, error count and completed requests from wrk's text
    report."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", report).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"^\s*(\d+) requests in ", report, re.M).group(1))  # type: ignore[union-attr]
    percentiles = {
        pct: float(value) * UNITS[unit]
        for pct, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", report, re.M)
    }
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", report))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
    errors += int(non2xx.group(1)) if non2xx else 0
    return Result(rps, percentiles["50"], percentiles["99"], errors, requests)
