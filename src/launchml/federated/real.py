"""Real federations: a Flower SuperLink (the coordinator) and one SuperNode per site,
separate processes talking over the network (Flower's Fleet API; TLS with
``federated.tls`` and ``--certificates``), the same ServerApp and ClientApp as the
simulation.

``serve`` starts the SuperLink, submits the run (``flwr run``: the ServerApp reads the
config, waits for ``federated.min_clients`` sites, runs the rounds and writes the
package) and stops the SuperLink when the run ends. ``join`` starts a SuperNode that
trains on this site's own table; a site that disappears mid-round is logged as
missing in that round and the federation continues with the others.

Certificates (``--certificates DIR``): ``ca.crt`` (both sides), ``server.pem`` and
``server.key`` (the server).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from launchml import console
from launchml.errors import ConfigError, RunError

APP_TOML = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "launchml-federation"
version = "1.0.0"
dependencies = []

[tool.flwr.app]
publisher = "launchml"

[tool.flwr.app.components]
serverapp = "launchml.federated.{module}:server_app"
clientapp = "launchml.federated.{module}:client_app"

[tool.flwr.app.config]
config = {config!r}
clients = {clients}
partition = ""
mode = "real"
round-timeout = {timeout}
"""


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _env(home: Path | None = None) -> dict[str, str]:
    # Flower starts its helpers (flower-superexec, flwr-serverapp ...) by name
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
           f"{os.environ.get('PATH', '')}"}
    if home is not None:
        env["FLWR_HOME"] = str(home)
    return env


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"address {address!r}: expected host:port, e.g. 127.0.0.1:9092")
    return host, int(port)


def _wait_listening(address: str, proc: subprocess.Popen, seconds: float = 120.0) -> None:
    host, port = _host_port(address)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunError(f"the Flower SuperLink exited (code {proc.returncode}) before it "
                           f"listened on {address}; see the lines above")
        with socket.socket() as s:
            s.settimeout(1.0)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise RunError(f"the Flower SuperLink did not listen on {address} within {seconds:.0f}s")


def _stop(proc: subprocess.Popen) -> None:
    """End a process this module started, and its helpers (its own process group)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _tls(certificates: Path | None, tls: bool, files: tuple[str, ...]) -> list[Path] | None:
    if not tls:
        return None
    if certificates is None:
        raise ConfigError("federated.tls: true needs --certificates DIR holding "
                          f"{', '.join(files)}. Fix: give it, or federated.tls: false")
    paths = [certificates / f for f in files]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ConfigError(f"--certificates: {', '.join(missing)} missing")
    return paths


def serve(config: Path, *, clients: int, address: str | None = None,
          certificates: Path | None = None, round_timeout: float = 600.0) -> int:
    """Run the coordinator until the federation ends; the exit code of ``flwr run``."""
    from launchml.config import RunConfig

    cfg = RunConfig.load(config)
    fed = cfg.federated
    if fed is None:
        raise ConfigError(f"'{config}' has no federated: section. Fix: add e.g. "
                          "federated: {rounds: 10, strategy: fedavg, min_clients: 3}")
    address = address or fed.address
    host, port = _host_port(address)
    tls = _tls(certificates, fed.tls, ("ca.crt", "server.pem", "server.key"))
    work = Path(tempfile.mkdtemp(prefix="launchml-federation-"))
    (work / "app").mkdir()
    (work / "app" / "pyproject.toml").write_text(APP_TOML.format(
        config=str(Path(config).resolve()), clients=clients, timeout=round_timeout,
        module="secagg" if fed.secagg else "app"))
    home = work / "flwr"
    home.mkdir()
    conn = f'address = "{address}"\n' + (
        f'root-certificates = "{tls[0]}"\n' if tls else "insecure = true\n")
    (home / "config.toml").write_text(f'[superlink]\ndefault = "local"\n\n'
                                      f"[superlink.local]\n{conn}")
    link_cmd = [_bin("flower-superlink"), "--disable-runtime-dependency-installation",
                "--host", host, "--port", str(port)]
    link_cmd += (["--ssl-ca-certfile", str(tls[0]), "--ssl-certfile", str(tls[1]),
                  "--ssl-keyfile", str(tls[2])] if tls else ["--insecure"])
    console.info(f"federate server: SuperLink on {address} ({'TLS' if tls else 'no TLS'}); "
                 f"waiting for {fed.min_clients} of {clients} sites")
    with contextlib.suppress(ValueError):  # not in the main thread: no handler
        # a server stopped with SIGTERM still runs ``finally``: its SuperLink, in its own
        # session, would outlive it otherwise
        signal.signal(signal.SIGTERM, _terminated)
    link = subprocess.Popen(link_cmd, env=_env(home), start_new_session=True)
    try:
        _wait_listening(address, link)
        return subprocess.call([_bin("flwr"), "run", str(work / "app"), "local", "--stream"],
                               env=_env(home))
    finally:
        _stop(link)
        shutil.rmtree(work, ignore_errors=True)  # the app and Flower's home of this run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _check_server(server: str, ca: Path | None, site: str) -> None:
    """Wait until the server listens, then check it speaks TLS exactly when this site
    expects it and, with TLS, that ``ca`` verifies its certificate for ``server``'s
    host. A mismatch is refused here, naming the fix; Flower itself would retry a
    plain connection to a TLS server without end."""
    host, port = _host_port(server)
    waiting = False
    while True:  # a site may start before its server, as Flower's SuperNode allows
        try:
            sock = socket.create_connection((host, port), timeout=10.0)
            break
        except OSError:
            if not waiting:
                console.info(f"federate client {site}: waiting for the server at {server}")
                waiting = True
            time.sleep(1.0)
    if ca is not None:
        ctx = ssl.create_default_context(cafile=str(ca))
    else:  # only to learn whether the server speaks TLS
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with ctx.wrap_socket(sock, server_hostname=host):
            speaks_tls = True
    except ssl.SSLCertVerificationError as e:
        raise ConfigError(
            f"client {site}: the server at {server} speaks TLS but its certificate is not "
            f"verified by '{ca}' ({e.verify_message}). Fix: --certificates DIR holding the "
            "federation's ca.crt (the CA that signed the server's server.pem), and a "
            f"server certificate that names {host}") from None
    except (ssl.SSLError, OSError):
        speaks_tls = False
    finally:
        sock.close()
    if speaks_tls and ca is None:
        raise ConfigError(
            f"client {site}: the server at {server} speaks TLS and this site's config has "
            "federated.tls: false. Fix: federated.tls: true (the server's config) and "
            "--certificates DIR holding the federation's ca.crt")
    if not speaks_tls and ca is not None:
        raise ConfigError(
            f"client {site}: the server at {server} does not speak TLS (its config has "
            "federated.tls: false) and this site's has federated.tls: true. Fix: the same "
            "federated.tls on both sides")


def join(data: Path, *, server: str, site: str, certificates: Path | None = None,
         tls: bool = False) -> int:
    """Run this site's SuperNode until it is stopped (Ctrl-C) or the server goes away."""
    if not data.exists():
        raise ConfigError(f"--data '{data}' does not exist")
    _host_port(server)
    ca = _tls(certificates, tls, ("ca.crt",))
    _check_server(server, ca[0] if ca else None, site)
    cmd = [_bin("flower-supernode"), "--superlink", server, "--port", str(_free_port()),
           "--node-config", f"data='{data.resolve()}' site='{site}'"]
    cmd += ["--root-certificates", str(ca[0])] if ca else ["--insecure"]
    console.info(f"federate client {site}: joining {server} with '{data}'")
    # in this process's group: stopping the client (Ctrl-C, a kill of its group) stops it
    node = subprocess.Popen(cmd, env=_env())
    try:
        return node.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        if node.poll() is None:
            node.terminate()
            try:
                node.wait(timeout=10)
            except subprocess.TimeoutExpired:
                node.kill()
