"""sockbox benchmark: the same workloads, natively and under sockbox and its peers.

    .venv/bin/python bench/run.py [--quick] [--editable] [--out DIR]

Installs sockbox from this checkout into a fresh virtualenv (or, with --editable, uses
.venv's editable install), compiles the C workloads in bench/c/ (64- and 32-bit),
starts loopback servers, runs every (workload, tool) pair R times round-robin, and
writes table.txt, results.json and overhead_vs_threads.png to DIR (default
bench/results/). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
EDITABLE = ROOT / ".venv"
TOOLS = ("native", "sockbox", "strace", "firejail", "sandlock")
WRAPPERS = TOOLS[:4]  # the tools that run a command line; sandlock runs from Python
# (program, its 32-bit build too): a 32-bit build is NAME32, made with gcc -m32, whose
# glibc makes every socket call through socketcall(102).
PROGRAMS = (("server", False), ("connect_storm", True), ("setsockopt_storm", True),
            ("udp_send", False), ("send_recv", False), ("cpu_file", False), ("forker", False))
THREADS = (1, 8, 64)
PROFILE = "localhost"  # what sockbox runs every workload under, except where one names its own
FAMILY_PROFILE = BENCH / "family.toml"
API_RUNS = BENCH / "api_runs.py"
TIMEOUT = 600  # seconds for one command: a hang is reported, never waited out


@dataclass(frozen=True)
class Config:
    rounds: int
    storm_n: int  # connects per storm, split across the threads
    storm32_n: int  # connects in the i386 storm (three stops each: fewer, in the same time)
    udp_n: int
    sendrecv_n: int
    family_n: int  # round trips under the family rule (two stops each)
    cpu_n: int
    startup_reps: int  # `true` runs per tool per round
    http_k: int  # requests in the K-URL curl invocation
    children: int  # forks for the supervisor memory workload
    stops_n: int  # ops in the one extra sockbox --log run per workload
    sockopt_n: int  # setsockopt calls per storm
    api_n: int  # timed runs of `true` from Python per sample


FULL = Config(rounds=5, storm_n=40000, storm32_n=10000, udp_n=40000, sendrecv_n=100000,
              family_n=25000, cpu_n=5000, startup_reps=30, http_k=1000, children=10000,
              stops_n=2000, sockopt_n=50000, api_n=40)
QUICK = Config(rounds=3, storm_n=10000, storm32_n=4000, udp_n=10000, sendrecv_n=20000,
               family_n=8000, cpu_n=2000, startup_reps=10, http_k=400, children=10000,
               stops_n=1000, sockopt_n=20000, api_n=20)


class BenchError(Exception):
    """A tool failed on a workload: reported in the table, not raised further."""


class NotAvailable(BenchError):
    """A tool cannot do this workload at all (e.g. an API the installed sockbox lacks):
    shown as n/a and not tried again."""


@dataclass(frozen=True)
class Sockbox:
    """The sockbox that is measured."""

    cli: str  # its `sockbox` command
    python: str  # the interpreter that imports it, for the API rows
    source: str  # how it was installed, for the header


def install_sockbox(work: Path) -> Sockbox:
    """Install this checkout into a fresh virtualenv, as a user would have it (a built
    wheel, its bytecode compiled by pip), so that what is measured is what ships."""
    venv = work / "venv"
    base = getattr(sys, "_base_executable", sys.executable)  # the interpreter behind .venv
    for argv in ([base, "-m", "venv", str(venv)],
                 [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(ROOT)]):
        done = subprocess.run(argv, check=False, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"bench: {' '.join(argv[:3])} failed:\n{done.stderr[-2000:]}")
    return Sockbox(str(venv / "bin" / "sockbox"), str(venv / "bin" / "python"),
                   "pip install of the checkout into a fresh venv")


def editable_sockbox() -> Sockbox:
    # Bytecode written now, as an installed package has it: where PYTHONDONTWRITEBYTECODE
    # is set, an editable checkout would otherwise compile its sources at every start.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "sandbox")], check=True)
    return Sockbox(str(EDITABLE / "bin" / "sockbox"), str(EDITABLE / "bin" / "python"),
                   "the checkout's editable .venv")


# --- running commands ----------------------------------------------------------------


def wrap(s: Setting, tool: str, cmd: list[str], trapped: str, profile: str = PROFILE) -> list[str]:
    """`cmd` as run under `tool`. `trapped` is the strace -e trace= set: the socket calls
    sockbox stops at for this workload, so that both tracers do the same stops."""
    if tool == "native":
        return cmd
    if tool == "sockbox":
        return [s.sockbox.cli, "run", "-q", "-p", profile, "--", *cmd]
    if tool == "strace":
        return ["strace", "-f", "-qq", "--seccomp-bpf", "-o", "/dev/null", "-e", f"trace={trapped}", *cmd]
    if tool == "firejail":
        return ["firejail", "--quiet", "--noprofile", "--protocol=unix,inet,inet6", "--", *cmd]
    raise ValueError(tool)


def pinned(cpu: int | None) -> Callable[[], None] | None:
    """A preexec_fn that pins the child (and whatever it execs) to one CPU."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def execute(argv: list[str], cpu: int | None = None) -> subprocess.CompletedProcess[str]:
    try:
        # preexec_fn is safe here: no thread of ours runs while workloads are measured.
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=TIMEOUT,
                              preexec_fn=pinned(cpu))
    except subprocess.TimeoutExpired:
        raise BenchError(f"timed out after {TIMEOUT} s") from None
    except OSError as error:
        raise BenchError(f"cannot run {argv[0]}: {error.strerror}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise BenchError(f"exit {done.returncode}: {last[:120]}")
    return done


def report_of(output: str) -> dict[str, float]:
    """The "key value" lines a workload prints."""
    values = {}
    for line in output.splitlines():
        key, _, value = line.partition(" ")
        try:
            values[key] = float(value)
        except ValueError:
            pass
    return values


def run_workload(argv: list[str], cpu: int | None = None) -> dict[str, float]:
    report = report_of(execute(argv, cpu).stdout)
    if "per_op_us" not in report:
        raise BenchError("no per_op_us line in the output")
    return report


def per_op_us(argv: list[str], cpu: int | None = None) -> float:
    return run_workload(argv, cpu)["per_op_us"]


def wall_seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    execute(argv)
    return time.perf_counter() - start


def sockbox_summary(s: Setting, cmd: list[str], cpu: int | None = None, profile: str = PROFILE) -> dict:
    """Run `cmd` once more under sockbox with --log; the log's last line is the summary."""
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as log:
        argv = [s.sockbox.cli, "run", "-q", "-p", profile, "--log", log.name, "--", *cmd]
        done = execute(argv, cpu)
        lines = Path(log.name).read_text().strip().splitlines()
    if not lines:
        raise BenchError("empty --log file")
    summary = json.loads(lines[-1])
    summary["report"] = report_of(done.stdout)
    return summary


# --- the setting: binaries, servers, tools ---------------------------------------------


def compile_programs(build: Path) -> dict[str, str]:
    binaries = {}
    for name, also_32 in PROGRAMS:
        for built, flags in ((name, []), (f"{name}32", ["-m32"]))[:1 + also_32]:
            out = build / built
            argv = ["gcc", "-O2", "-Wall", "-pthread", *flags, "-o", str(out), str(BENCH / "c" / f"{name}.c")]
            done = subprocess.run(argv, check=False, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"bench: cannot compile {name}.c {' '.join(flags)}:\n{done.stderr}")
            binaries[built] = str(out)
    return binaries


def favoured() -> None:
    """Servers run real-time (SCHED_FIFO, else at nice -20): on 2 cores, 64 connecting
    threads otherwise starve the accept loop, the accept queue (4096) overflows, and each
    dropped SYN stalls a connect for a second. They block when idle, so they cannot hog
    a CPU."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except OSError:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, -20)
        except OSError:
            pass


def start_server(argv: list[str], cpu: int | None = None) -> tuple[subprocess.Popen, int]:
    """Start a loopback server that prints "port N" once it listens."""
    def prepare() -> None:
        favoured()
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            preexec_fn=prepare)  # noqa: PLW1509 (started before any thread)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("port "):
        proc.kill()
        raise SystemExit(f"bench: server {argv} did not start")
    return proc, int(line.split()[1])


HTTP_SERVER = """
import http.server, sys
class Quiet(http.server.SimpleHTTPRequestHandler):  # HTTP/1.0: closes after each response
    def log_message(self, *args): pass
handler = lambda *a, **k: Quiet(*a, directory=sys.argv[1], **k)
server = http.server.HTTPServer(("127.0.0.1", 0), handler)
print("port", server.server_address[1], flush=True)
server.serve_forever()
"""


@dataclass
class Setting:
    config: Config
    sockbox: Sockbox
    bin: dict[str, str]
    work: Path
    ports: dict[str, int] = field(default_factory=dict)
    servers: list[subprocess.Popen] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # tool -> why
    cpu: int = 0  # where send/recv and its echo server run together
    slowest: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # storm -> tool -> ms
    first_run: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # API row -> tool -> ms

    def start_servers(self) -> None:
        # send/recv and its echo server share one CPU: a round trip between two vCPUs
        # costs an inter-processor wakeup that varies 4-70 us on this kind of VM and
        # would drown a 5 us loop in noise.
        self.cpu = max(os.sched_getaffinity(0))
        for mode in ("accept", "echo", "udp"):
            proc, port = start_server([self.bin["server"], mode], self.cpu if mode == "echo" else None)
            self.servers.append(proc)
            self.ports[mode] = port
        www = self.work / "www"
        www.mkdir()
        (www / "index.html").write_text("<p>" + "sockbox bench " * 60 + "</p>\n")
        proc, port = start_server([sys.executable, "-c", HTTP_SERVER, str(www)])
        self.servers.append(proc)
        self.ports["http"] = port

    def stop_servers(self) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait()

    def check_tools(self) -> None:
        """A tool that cannot run `true` here is reported as unavailable, not run."""
        for tool in WRAPPERS[1:]:
            try:
                execute(wrap(self, tool, ["true"], "%network"))
            except BenchError as error:
                self.unavailable[tool] = str(error)
        try:
            execute(api_cmd(self, "sandlock", 1))
        except BenchError as error:
            self.unavailable["sandlock"] = f"{error} (it comes with the bench extra: pip install -e '.[bench]')"

    def tools(self) -> list[str]:
        return [tool for tool in TOOLS if tool not in self.unavailable]


# --- the workloads: each measures one sample for one tool -----------------------------


def storm_cmd(s: Setting, threads: int, n: int, program: str = "connect_storm") -> list[str]:
    return [s.bin[program], str(s.ports["accept"]), str(n), str(threads)]


def connect_storm(s: Setting, tool: str, threads: int, program: str = "connect_storm") -> float:
    """us per connect (wall time of the storm / connects)."""
    n = s.config.storm32_n if program.endswith("32") else s.config.storm_n
    report = run_workload(wrap(s, tool, storm_cmd(s, threads, n, program), "connect"))
    # The slowest single connect: how long a thread can wait for its turn at the tracer.
    key = f"connect_x{threads}" + ("_i386" if program.endswith("32") else "")
    s.slowest.setdefault(key, {}).setdefault(tool, []).append(report.get("max_connect_us", 0) / 1000)
    return report["per_op_us"]


def sockopt_cmd(s: Setting, n: int, program: str) -> list[str]:
    return [s.bin[program], str(n)]


def setsockopt_storm(s: Setting, tool: str, program: str) -> float:
    """us per setsockopt(TCP_NODELAY) on one socket."""
    return per_op_us(wrap(s, tool, sockopt_cmd(s, s.config.sockopt_n, program), "setsockopt"))


def udp_cmd(s: Setting, n: int) -> list[str]:
    return [s.bin["udp_send"], str(s.ports["udp"]), str(n)]


def udp(s: Setting, tool: str) -> float:
    """us per sendto naming a loopback destination."""
    return per_op_us(wrap(s, tool, udp_cmd(s, s.config.udp_n), "sendto"))


def sendrecv_cmd(s: Setting, n: int) -> list[str]:
    return [s.bin["send_recv"], str(s.ports["echo"]), str(n)]


def send_recv(s: Setting, tool: str, profile: str = PROFILE, n: int | None = None) -> float:
    """us per round trip; strace stops at every send and recv (%network), sockbox at none
    under `localhost`, at each under a rule that needs the socket's family."""
    cmd = sendrecv_cmd(s, n or s.config.sendrecv_n)
    return per_op_us(wrap(s, tool, cmd, "%network", profile), s.cpu)


def cpu_cmd(s: Setting, n: int) -> list[str]:
    return [s.bin["cpu_file"], str(n)]


def cpu_file(s: Setting, tool: str) -> float:
    """us per round of hash + pwrite + pread: no socket call at all."""
    return per_op_us(wrap(s, tool, cpu_cmd(s, s.config.cpu_n), "%network"))


def startup(s: Setting, tool: str) -> float:
    """ms for the whole command `true`, timed from outside: median of a few runs."""
    argv = wrap(s, tool, [shutil.which("true") or "/bin/true"], "%network")
    return 1000 * statistics.median(wall_seconds(argv) for _ in range(s.config.startup_reps))


# The Python API rows: which way of running `true` (bench/api_runs.py) each tool stands for.
API_WAYS = {"sandbox.run": {"native": "subprocess", "sockbox": "run", "sandlock": "sandlock"},
            "box.run": {"native": "subprocess", "sockbox": "box", "sandlock": "sandlock"}}


def api_key(row: str) -> str:
    return f"api_{row.split('.')[0]}"


def api_cmd(s: Setting, way: str, n: int) -> list[str]:
    """bench/api_runs.py under the Python that has what `way` runs: the measured sockbox's
    for sockbox's ways, this (the bench's) for sandlock and the baseline."""
    python = s.sockbox.python if way in ("run", "box") else sys.executable
    return [python, str(API_RUNS), way, str(n), PROFILE]


def api_runs(s: Setting, tool: str, row: str) -> float:
    """ms per run of `true` from one Python process, after one untimed run (imports and
    set-up: kept apart as the first run)."""
    done = subprocess.run(api_cmd(s, API_WAYS[row][tool], s.config.api_n), check=False,
                          capture_output=True, text=True, timeout=TIMEOUT)
    if done.stdout.startswith("unavailable "):
        raise NotAvailable(done.stdout.split(" ", 1)[1].strip())
    if done.returncode != 0:
        raise BenchError(f"exit {done.returncode}: {(done.stderr.strip().splitlines() or ['no message'])[-1][:120]}")
    report = report_of(done.stdout)
    s.first_run.setdefault(api_key(row), {}).setdefault(tool, []).append(report["first_run_us"] / 1000)
    return report["per_op_us"] / 1000


def curl_cmd(s: Setting, k: int) -> list[str]:
    """One curl invocation fetching k pages, a new connection each (the server speaks
    HTTP/1.0). The URLs are in a config file (-K): firejail refuses more than 128
    arguments."""
    config = s.work / f"curl-{k}.conf"
    if not config.exists():
        url = f"http://127.0.0.1:{s.ports['http']}/index.html"
        config.write_text(f'url = "{url}"\noutput = "/dev/null"\n' * k)
    return ["curl", "-s", "-f", "-K", str(config)]


def http(s: Setting, tool: str) -> float:
    """us per request: (time for K URLs - time for 1) / (K-1), so the client's (and the
    sandbox's) start cancels out. K is large and the 1-URL run a median of three because
    a sandbox's start varies by milliseconds, which the difference would carry."""
    k = s.config.http_k
    many = wall_seconds(wrap(s, tool, curl_cmd(s, k), "connect"))
    one = statistics.median(wall_seconds(wrap(s, tool, curl_cmd(s, 1), "connect")) for _ in range(3))
    return 1e6 * (many - one) / (k - 1)


@dataclass(frozen=True)
class Workload:
    key: str
    label: str
    unit: str  # of the median: "us" per op, or "ms"
    measure: Callable[[Setting, str], float]
    stops: Callable[[Setting], dict] | None  # sockbox stops per op, from --log runs: stops_of
    tools: tuple[str, ...] = WRAPPERS  # the tools it runs under (others show "-")


def stops_of(s: Setting, cmd: list[str], cpu: int | None = None, profile: str = PROFILE) -> dict:
    """Stops per op the workload reports (per run if it reports none), and the summary."""
    summary = sockbox_summary(s, cmd, cpu, profile)
    return {"per_op": summary["stops"] / summary["report"].get("ops", 1), "in_c": in_c(summary),
            "runs": [summary]}


def storm_stops(s: Setting, threads: int, program: str = "connect_storm") -> dict:
    return stops_of(s, storm_cmd(s, threads, s.config.stops_n, program))


def sockopt_stops(s: Setting, program: str) -> dict:
    return stops_of(s, sockopt_cmd(s, s.config.stops_n, program))


def http_stops(s: Setting) -> dict:
    """(stops with K requests - stops with 1) / (K-1): curl's own start-up stops cancel."""
    k = s.config.http_k
    many, one = sockbox_summary(s, curl_cmd(s, k)), sockbox_summary(s, curl_cmd(s, 1))
    return {"per_op": (many["stops"] - one["stops"]) / (k - 1), "in_c": in_c(many), "runs": [many, one]}


def in_c(summary: dict) -> float | None:
    """The share of the stops that repeated a connect decided before: served in C."""
    return summary["repeats"] / summary["stops"] if summary["stops"] else None


def workloads() -> list[Workload]:
    true = shutil.which("true") or "/bin/true"
    storms = [Workload(f"connect_x{t}", f"connect storm, {t} thread{'s' * (t > 1)}", "us/connect",
                       partial(connect_storm, threads=t), partial(storm_stops, threads=t))
              for t in THREADS]
    i386 = [Workload("connect_x1_i386", "connect storm, 1 thread, i386", "us/connect",
                     partial(connect_storm, threads=1, program="connect_storm32"),
                     partial(storm_stops, threads=1, program="connect_storm32"))]
    sockopts = [Workload(f"setsockopt{suffix}", f"setsockopt storm{label}", "us/call",
                         partial(setsockopt_storm, program=program), partial(sockopt_stops, program=program))
                for suffix, label, program in (("", "", "setsockopt_storm"),
                                               ("_i386", ", i386", "setsockopt_storm32"))]
    api = [Workload(api_key(row), f"Python: {row}(true)", "ms/run", partial(api_runs, row=row), None,
                    tuple(ways))
           for row, ways in API_WAYS.items()]
    family = str(FAMILY_PROFILE)
    return storms + i386 + sockopts + [
        Workload("udp", "UDP sendto to loopback", "us/sendto", udp,
                 lambda s: stops_of(s, udp_cmd(s, s.config.stops_n))),
        Workload("send_recv", "send/recv round trip", "us/trip", send_recv,
                 lambda s: stops_of(s, sendrecv_cmd(s, s.config.stops_n), s.cpu)),
        Workload("send_recv_family", "send/recv, family rule", "us/trip",
                 lambda s, tool: send_recv(s, tool, family, s.config.family_n),
                 lambda s: stops_of(s, sendrecv_cmd(s, s.config.stops_n), s.cpu, family),
                 ("native", "sockbox")),
        Workload("cpu_file", "CPU + file (no sockets)", "us/round", cpu_file,
                 lambda s: stops_of(s, cpu_cmd(s, s.config.stops_n // 10))),
        Workload("startup", "startup of `true`", "ms", startup, lambda s: stops_of(s, [true])),
        *api,
        Workload("http", "HTTP GET, curl, new conn.", "us/request", http, http_stops),
    ]


# --- the supervisor's memory across many short-lived children --------------------------


def vm_rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def supervisor_memory(s: Setting) -> dict:
    """Run the forker under sockbox; sample the supervisor's VmRSS every 0.2 s. The
    supervisor is the process started here: `sockbox run` supervises in-process."""
    n = s.config.children
    argv = wrap(s, "sockbox", [s.bin["forker"], str(s.ports["accept"]), str(n)], "connect")
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, text=True)
        start = time.monotonic()
        samples: list[tuple[float, int]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                rss = vm_rss_kib(proc.pid)
                if rss is not None:
                    samples.append((time.monotonic() - start, rss))
                done.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        watchdog = threading.Timer(TIMEOUT, proc.kill)  # the stdout loop must not hang
        watchdog.start()
        marks, report = {}, {}
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("children "):
                marks[int(line.split()[1])] = time.monotonic() - start
            report.update(report_of(line))
        status = proc.wait()
        watchdog.cancel()
        done.set()
        sampler.join()
        errors.seek(0)
        message = errors.read().strip()
    if status != 0 or n not in marks:
        raise BenchError(f"exit {status}: {(message.splitlines() or ['no message'])[-1][:120]}")
    if not samples:
        raise BenchError(f"could not read /proc/{proc.pid}/status")
    early = min((count for count in marks if count >= 1000), default=n)
    at_early, at_end = rss_after(samples, marks[early]), rss_after(samples, marks[n])
    return {"children": n, "early_children": early, "rss_early_kib": at_early, "rss_end_kib": at_end,
            "growth_kib": at_end - at_early, "rss_max_kib": max(rss for _, rss in samples),
            "per_child_us": report.get("per_op_us"), "samples": samples, "marks": marks}


def rss_after(samples: list[tuple[float, int]], moment: float) -> int:
    """The first sample taken at or after `moment` (the last one if none was)."""
    return next((rss for t, rss in samples if t >= moment), samples[-1][1])


# --- statistics, table, plot -------------------------------------------------------------


def median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def added(results: dict, key: str, tool: str) -> float | None:
    row = results[key]["median"]
    if row.get(tool) is None or row.get("native") is None:
        return None
    return row[tool] - row["native"]


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b not in (None, 0) else None


def added_ratio(a: float | None, b: float | None) -> float | None:
    """a / b for two added times: 0 where `a` adds nothing measurable, infinite where
    only `b` adds nothing (so that a target on the ratio is then not met)."""
    if a is None or b is None:
        return None
    if a <= 0:
        return 0.0
    return a / b if b > 0 else math.inf


def i386_line(results: dict, what: str, key64: str, key32: str) -> dict:
    """The added time per op of the i386 program against the x86_64 one's."""
    a32, a64 = added(results, key32, "sockbox"), added(results, key64, "sockbox")
    return {"name": f"i386 {what}: added per op, i386 / x86_64 ({_num(a32, 3)} us / {_num(a64, 3)} us)",
            "value": added_ratio(a32, a64), "target": 1.5, "fmt": "x{:.2f}"}


def derive(results: dict, memory: dict | None, config: Config) -> list[dict]:
    """The lines the README quotes, each with its target."""
    med = {key: row["median"] for key, row in results.items()}
    lines: list[dict[str, Any]] = []
    for key in ("send_recv", "cpu_file"):
        lines.append({"name": f"untrapped work, {results[key]['label']}: sockbox/native",
                      "value": ratio(med[key].get("sockbox"), med[key].get("native")),
                      "target": 1.05, "fmt": "x{:.3f}"})
    for threads in THREADS:
        key = f"connect_x{threads}"
        sb, st = added(results, key, "sockbox"), added(results, key, "strace")
        line: dict[str, Any] = {"name": f"checked connect, {threads} thread(s): sockbox added / strace added "
                        f"({_num(sb)} us / {_num(st)} us)",
                "value": ratio(sb, st), "target": 1.5, "fmt": "x{:.2f}"}
        if st is not None and st <= 0:  # strace within noise of native: no ratio to take
            line.update(value=None, error="strace adds nothing measurable here")
        lines.append(line)
    lines.append(i386_line(results, "checked connect", "connect_x1", "connect_x1_i386"))
    lines.append(i386_line(results, "setsockopt", "setsockopt", "setsockopt_i386"))
    lines.append({"name": "send/recv under `calls = [\"*\"], family = [\"inet\"]`: sockbox/native",
                  "value": ratio(med["send_recv_family"].get("sockbox"), med["send_recv_family"].get("native")),
                  "target": 3.0, "fmt": "x{:.2f}"})
    lines.append({"name": "startup of `true`: sockbox/firejail",
                  "value": ratio(med["startup"].get("sockbox"), med["startup"].get("firejail")),
                  "target": 1.0, "fmt": "x{:.2f}"})
    box, run, sandlock = (med["api_box"].get("sockbox"), med["api_sandbox"].get("sockbox"),
                          med["api_box"].get("sandlock"))
    line = {"name": f"many runs from Python: box.run / sandlock's run, per run ({_num(box, 3)} ms / "
                    f"{_num(sandlock, 3)} ms; sandbox.run {_num(run, 3)} ms)",
            "value": ratio(box, sandlock), "target": 1.0, "fmt": "x{:.2f}"}
    if results["api_box"]["unavailable"].get("sockbox"):
        line["error"] = f"n/a ({results['api_box']['unavailable']['sockbox']})"
    lines.append(line)
    if memory is not None and "error" not in memory:
        lines.append({"name": f"supervisor RSS after {memory['early_children']} children "
                              f"{memory['rss_early_kib']} KiB, after {memory['children']} "
                              f"{memory['rss_end_kib']} KiB: growth",
                      "value": memory["growth_kib"], "target": 1024, "fmt": "{:+d} KiB"})
    else:
        lines.append({"name": "supervisor RSS growth", "value": None, "target": 1024, "fmt": "{}",
                      "error": (memory or {}).get("error", "not measured")})
    runs = results["http"].get("stop_runs") or [{"stops": "?"}, {"stops": "?"}]
    lines.append({"name": f"HTTP: sockbox stops per request ({runs[0]['stops']} stops for "
                          f"{config.http_k} requests, {runs[1]['stops']} for 1)",
                  "value": results["http"].get("stops"),
                  "target": 1.0, "fmt": "{:.2f}"})
    for line in lines:
        line["met"] = None if line["value"] is None else line["value"] <= line["target"]
    return lines


def _num(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return "?"
    return f"{value:.{digits}g}" if digits else f"{value:.1f}"


def fmt_value(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) >= 1 else f"{value:.2f}"


def cell(results: dict, key: str, tool: str, unavailable: dict[str, str]) -> str:
    row = results[key]
    if tool not in row["tools"]:
        return "-"
    if tool in unavailable or tool in row["unavailable"]:
        return "n/a"
    if row["failures"].get(tool) and not row["samples"].get(tool):
        return "FAILED"
    value = row["median"].get(tool)
    text = fmt_value(value)
    if tool != "native":
        r = row["ratio"].get(tool)
        text += f" (x{r:.2f})" if r is not None else ""
    if row["failures"].get(tool):
        text += "*"  # some samples failed: see below the table
    return text


def table(results: dict, derived: list[dict], memory: dict | None, s: Setting, header: str) -> str:
    width = [30, 11, 10, 18, 18, 18, 18, 10, 8]
    heads = ["workload", "unit", "native", "sockbox", "strace", "firejail", "sandlock", "sb stops", "in C"]
    rows = [heads, ["-" * (w - 1) for w in width]]
    for key, row in results.items():
        stops, share = row.get("stops"), row.get("in_c")
        rows.append([row["label"], row["unit"], *(cell(results, key, t, s.unavailable) for t in TOOLS),
                     "-" if stops is None else f"{stops:.3g}",
                     "-" if share is None else f"{100 * share:.1f}%"])
    out = [header, ""]
    out += ["".join(text.ljust(w) for text, w in zip(r, width)).rstrip() for r in rows]
    out.append("")
    out.append("medians of the rounds; (xN) = tool / native; sb stops = sockbox stops per op "
               "(per run for startup); in C = the share of them served by the C fast path")
    for tool, why in s.unavailable.items():
        out.append(f"{tool}: not run, it fails here: {why}")
    for row in results.values():
        for tool, why in row["unavailable"].items():
            out.append(f"{row['label']} / {tool}: n/a ({why})")
        for tool, errors in row["failures"].items():
            out.append(f"{row['label']} / {tool}: {len(errors)} failed run(s): {errors[0]}")
        for run in row.get("stop_runs", []):
            if undecided(run):
                out.append(f"{row['label']}: sockbox made {undecided(run)} of its {run['stops']} stops "
                           f"without a decision in the summary (decisions: {run['decisions']})")
        if row.get("stops_error"):
            out.append(f"{row['label']}: sockbox --log run failed: {row['stops_error']}")
    out += ["", ("slowest single connect in a storm, ms (median over the rounds; a dropped SYN "
                 "would show as >= 1000):")]
    out += by_tool_lines(results, s.slowest, WRAPPERS)
    out += ["", "Python API, the untimed first run (imports, set-up, one run), ms (median over the rounds):"]
    out += by_tool_lines(results, s.first_run, ("native", "sockbox", "sandlock"))
    out += ["", "derived (target):"]
    for line in derived:
        if line["value"] is None:
            value, verdict = "n/a", line.get("error", "missing numbers")
        else:
            value = line["fmt"].format(line["value"])
            verdict = "met" if line["met"] else "NOT met"
        target = f"<= {line['target']}" if "KiB" not in line["fmt"] else f"<= {line['target']} KiB (flat)"
        out.append(f"  {line['name']}: {value}  [target {target}: {verdict}]")
    if memory and "error" not in memory:
        out.append(f"  (memory workload: {memory['children']} children, {memory['per_child_us']:.0f} us "
                   f"per child under sockbox, peak RSS {memory['rss_max_kib']} KiB)")
    return "\n".join(out)


def by_tool_lines(results: dict, values: dict[str, dict[str, list[float]]], tools: tuple[str, ...]) -> list[str]:
    """A small table of per-tool medians, a row per workload."""
    out = ["  " + "".ljust(30) + "".join(tool.ljust(10) for tool in tools)]
    for key, by_tool in values.items():
        medians = (fmt_value(median_or_none(by_tool.get(tool, []))) for tool in tools)
        out.append(("  " + results[key]["label"].ljust(30) + "".join(v.ljust(10) for v in medians)).rstrip())
    return out


def plot(results: dict, path: Path) -> str | None:
    """Per-connect added time (tool - native) against threads; returns an error or None."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        return f"no plot: {error}"
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    # Each tool's labels at their own height beside the point, so that close values stay legible.
    styles = {"sockbox": ("tab:red", "o", 8), "strace": ("tab:blue", "s", -12),
              "firejail": ("tab:green", "^", 8)}
    for tool, (colour, marker, label_dy) in styles.items():
        points = [(t, added(results, f"connect_x{t}", tool)) for t in THREADS]
        points = [(t, v) for t, v in points if v is not None]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker=marker, color=colour, label=tool, linewidth=2)
            for x, y in points:
                ax.annotate(f"{y:.1f}", (x, y), textcoords="offset points", xytext=(6, label_dy),
                            fontsize=8, color=colour)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.margins(y=0.12)  # room for the labels above the highest point
    ax.set_xscale("log", base=2)
    ax.set_xticks(THREADS, [str(t) for t in THREADS])
    ax.set_xlim(0.8, 100)  # room for the labels at 64
    ax.set_xlabel("connecting threads (same total connects, split)")
    ax.set_ylabel("added time per connect vs native (us)")
    ax.set_title("Loopback TCP connect storm: cost of checking each connect\n"
                 "(median per-connect time minus native; lower is better)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return None


# --- the run ------------------------------------------------------------------------------


def measure_rounds(s: Setting, loads: list[Workload]) -> dict:
    """R rounds; in each, every workload under every tool, the tools' order rotated per
    round so that machine noise and order effects fall on all of them alike."""
    results: dict[str, dict[str, Any]] = {
        w.key: {"label": w.label, "unit": w.unit, "tools": w.tools, "samples": {}, "failures": {},
                "unavailable": {}, "seconds": 0.0}
        for w in loads}
    tools = s.tools()
    for r in range(s.config.rounds):
        order = tools[r % len(tools):] + tools[:r % len(tools)]
        for w in loads:
            row = results[w.key]
            for tool in order:
                if tool not in w.tools or tool in row["unavailable"]:
                    continue
                began = time.monotonic()
                try:
                    value = w.measure(s, tool)
                    row["samples"].setdefault(tool, []).append(value)
                except NotAvailable as error:
                    row["unavailable"][tool] = str(error)
                except Exception as error:  # noqa: BLE001 any failure is a table entry, not a traceback
                    why = str(error) if isinstance(error, BenchError) else f"{type(error).__name__}: {error}"
                    row["failures"].setdefault(tool, []).append(why)
                row["seconds"] += time.monotonic() - began
        print(f"  round {r + 1}/{s.config.rounds} done ({time.strftime('%H:%M:%S')})", flush=True)
    for w in loads:
        row = results[w.key]
        row["median"] = {tool: median_or_none(row["samples"].get(tool, [])) for tool in TOOLS}
        row["ratio"] = {tool: ratio(row["median"][tool], row["median"]["native"]) for tool in TOOLS}
    return results


def count_stops(s: Setting, loads: list[Workload], results: dict) -> None:
    """One more sockbox run per workload, with --log, for its stops (not timed)."""
    if "sockbox" in s.unavailable:
        return
    for w in loads:
        if w.stops is None or "sockbox" in results[w.key]["unavailable"]:
            continue
        try:
            count = w.stops(s)
            results[w.key].update(stops=count["per_op"], in_c=count["in_c"], stop_runs=count["runs"])
        except Exception as error:  # noqa: BLE001 reported in the table
            results[w.key]["stops"] = None
            results[w.key]["stops_error"] = str(error)


def undecided(summary: dict) -> int:
    """Stops the summary counts that no decision accounts for."""
    decided = sum(n for actions in summary.get("decisions", {}).values() for n in actions.values())
    return summary["stops"] - decided


def versions(s: Setting) -> dict[str, str]:
    out = {"kernel": platform.release(), "cpus": str(len(os.sched_getaffinity(0))),
           "python": platform.python_version(), "sockbox_source": s.sockbox.source}
    sandlock_version = [sys.executable, "-c", "import importlib.metadata as m; print(m.version('sandlock'))"]
    for name, argv in {"sockbox": [s.sockbox.cli, "--version"], "sandlock": sandlock_version,
                       "strace": ["strace", "-V"],
                       "firejail": ["firejail", "--version"], "curl": ["curl", "--version"],
                       "gcc": ["gcc", "--version"]}.items():
        try:
            done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=30)
            out[name] = (done.stdout.strip().splitlines() or ["?"])[0]
        except (OSError, subprocess.TimeoutExpired) as error:
            out[name] = f"unavailable: {error}"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and smaller N")
    parser.add_argument("--editable", action="store_true",
                        help="measure .venv's editable install instead of a fresh pip install")
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="where results go")
    args = parser.parse_args()
    config = QUICK if args.quick else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    began, load_before = time.time(), os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="sockbox-bench-") as work:
        if args.editable:
            sockbox = editable_sockbox()
        else:
            print(f"bench: installing sockbox from {ROOT} into a fresh venv", flush=True)
            sockbox = install_sockbox(Path(work))
        s = Setting(config, sockbox, compile_programs(Path(work)), Path(work))
        s.check_tools()
        environment = versions(s)
        try:
            s.start_servers()
            loads = workloads()
            print(f"bench: {config.rounds} rounds, tools {', '.join(s.tools())}", flush=True)
            results = measure_rounds(s, loads)
            count_stops(s, loads, results)
            memory = None
            if "sockbox" not in s.unavailable:
                print("  supervisor memory across forks...", flush=True)
                try:
                    memory = supervisor_memory(s)
                except Exception as error:  # noqa: BLE001 reported in the table
                    memory = {"error": str(error)}
        finally:
            s.stop_servers()

    derived = derive(results, memory, config)
    elapsed = time.time() - began
    header = (f"sockbox bench ({'quick' if args.quick else 'full'}): {config.rounds} rounds, "
              f"{len(os.sched_getaffinity(0))} CPUs, load {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}, "
              f"{elapsed:.0f} s; sockbox: {sockbox.source}")
    text = table(results, derived, memory, s, header)
    plot_error = plot(results, args.out / "overhead_vs_threads.png")
    if plot_error:
        text += f"\n{plot_error}"
    print(text)
    (args.out / "table.txt").write_text(text + "\n")
    record = {"quick": args.quick, "config": config.__dict__, "environment": environment,
              "elapsed_s": elapsed, "unavailable": s.unavailable, "workloads": results,
              "derived": derived, "memory": memory,
              "slowest_connect_ms": s.slowest, "first_run_ms": s.first_run}
    (args.out / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"\nwrote {args.out}/table.txt, results.json, overhead_vs_threads.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
