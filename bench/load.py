"""Load generation with wrk (installed with apt-get when missing) and parsing of its report."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
        found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed and could not be installed")
    return found


def run_wrk(url: str, connections: int, seconds: float) -> Result:
    """`wrk -t1 -c N -d S --latency url`, parsed."""
    out = subprocess.run(
        [wrk_binary(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return parse(out)


def parse(report: str) -> Result:
    """Requests/sec, 50% and 99% latency and error count from wrk's text report."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", report).group(1))  # type: ignore[union-attr]
    percentiles = {
        pct: float(value) * UNITS[unit]
        for pct, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", report, re.M)
    }
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", report))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
    errors += int(non2xx.group(1)) if non2xx else 0
    return Result(rps, percentiles["50"], percentiles["99"], errors)
