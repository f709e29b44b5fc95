"""The link to the engine: one non-blocking UDP socket and daw_bridge.protocol's Bridge on it, polled once per
defer cycle; starts the engine when it is configured to and does not answer."""
from __future__ import annotations

import os
import socket
import subprocess
import tempfile

from daw_bridge import protocol as p

from .settings import say


class Engine:
    """One UDP socket to the engine and the protocol Bridge on it; `pump(now)` once per defer cycle. `ready` once
    the engine answered the handshake; `error` when it cannot be reached (after starting it, when a command is
    configured)."""

    def __init__(self, config: dict, client_name: str):
        self.config = config
        self.address = (config["host"], int(config["port"]))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1" if self.address[0] in ("127.0.0.1", "localhost") else "0.0.0.0", 0))
        self.sock.setblocking(False)
        self.bridge = p.Bridge(client_name, timing=p.Timing(connect_timeout=float(config["connect_timeout"])))
        self.ready = False
        self.error: str | None = None
        self.hello: p.Query | None = None
        self.process = None
        self.boot_deadline: float | None = None

    def close(self) -> None:
        self.sock.close()

    def pump(self, now: float) -> None:
        while True:
            try:
                data, _ = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # Windows reports an unreachable port of an earlier datagram here
                break
            self.bridge.handle_datagram(data, now)
        self._handshake(now)
        for datagram in self.bridge.poll(now):
            try:
                self.sock.sendto(datagram, self.address)
            except OSError:
                pass  # a full buffer or no route: the protocol sends again

    def _handshake(self, now: float) -> None:
        if self.ready or self.error:
            return
        if self.hello is None:
            self.hello = self.bridge.hello()
            return
        if self.hello.state == "done":
            self.ready = True
            if self.process is not None:
                say("the engine is up")
            return
        if self.hello.state != "failed":
            return
        code, message = self.hello.error
        if code != p.NO_ENGINE:
            self.error = f"the engine refused the handshake: {code}: {message}"
        elif self.process is None and self.config.get("engine_command"):
            self._start_engine(now)
        elif self.process is not None and self.process.poll() is not None:
            self.error = (f"the engine started by the scripts exited (code {self.process.returncode}); its output "
                          f"is in {self.log_path}")
        elif self.boot_deadline is not None and now < self.boot_deadline:
            self.hello = self.bridge.hello()
        elif self.process is not None:
            self.error = (f"the engine did not answer within {self.config['boot_timeout']:g} s of being started; "
                          f"its output is in {self.log_path}")
        else:
            self.error = self.no_engine_message()

    def no_engine_message(self) -> str:
        host, port = self.address
        port_option = "" if port == p.DEFAULT_PORT else f" --port {port}"
        return (f"no engine answered on {host}:{port}. Start it in a terminal, from the environment where the "
                f"engine is installed:  python -m engine serve{port_option}  and run the action again (or run "
                f"`python -m daw_bridge install reaper` from that environment, so the scripts can start it "
                f"themselves). Nothing was changed in the project.")

    @property
    def log_path(self) -> str:
        return self.config.get("engine_log") or os.path.join(tempfile.gettempdir(), "ddsp-engine.log")

    def _start_engine(self, now: float) -> None:
        command = self.config["engine_command"]
        say(f"starting the engine: {' '.join(command)} (output in {self.log_path})")
        options = {}
        if os.name == "nt":
            options["creationflags"] = 0x00000008 | 0x00000200  # DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP
        else:
            options["start_new_session"] = True
        try:
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(command, cwd=self.config.get("engine_cwd") or None,
                                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                                **options)
        except OSError as error:
            self.error = f"could not start the engine ({' '.join(command)}): {error}"
            return
        self.boot_deadline = now + float(self.config["boot_timeout"])
        self.hello = self.bridge.hello()
