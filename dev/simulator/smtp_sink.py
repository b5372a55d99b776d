"""A loopback SMTP server (aiosmtpd) that keeps every message it accepts in memory: the far end of the e-mail
channel for the tests and the embedded demo stack.

    with running_smtp_sink() as sink:          # a free port on 127.0.0.1
        settings = Settings(smtp_host=sink.host, smtp_port=sink.port, smtp_starttls=False, ...)
        ...
        sink.messages                          # [ReceivedMail], oldest first; one per accepted DATA

Faults: `fail_next(n, reply)` answers the next n DATA commands with `reply` (a 451 by default: try again later,
a 5xx refuses the message), and recipients in `refused_recipients` get a 550 at RCPT TO. With a username and
password the sink offers AUTH (PLAIN/LOGIN, without TLS: loopback only) and refuses mail from unauthenticated
clients. It has no STARTTLS: senders talk to it with smtp_starttls off.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


def _not_login_data_deprecation(record: logging.LogRecord) -> bool:
    # aiosmtpd itself sets the deprecated Session.login_data on every AUTH and warns about it.
    return "login_data is deprecated" not in record.getMessage()


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    authenticated_as: str | None

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"] or "").strip()  # a long one arrives folded

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        content = part.get_content() if isinstance(part, EmailMessage) else ""
        return str(content).replace("\r\n", "\n")


class SmtpSink:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, username: str = "", password: str = "") -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.refused_recipients: set[str] = set()
        self._lock = threading.Lock()
        self._messages: list[ReceivedMail] = []
        self._faults: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- what tests read and set ---------------------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._faults.clear()
        self.refused_recipients.clear()

    def fail_next(self, times: int = 1, reply: str = "451 4.3.0 Mail server temporarily unavailable") -> None:
        with self._lock:
            self._faults.extend([reply] * times)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        """The messages once at least `count` have arrived; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            received = self.messages
            if len(received) >= count:
                return received
            time.sleep(0.02)
        raise TimeoutError(f"SMTP sink received {len(self.messages)} of {count} messages in {timeout}s")

    # --- aiosmtpd handler hooks ----------------------------------------------------------------------------

    async def handle_MAIL(  # aiosmtpd calls its hooks handle_<VERB>
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if self.username and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refused_recipients:
            return f"550 5.1.1 <{address}>: Recipient address rejected: user unknown"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            if self._faults:
                return self._faults.pop(0)
            content = envelope.original_content or b""
            login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
            self._messages.append(
                ReceivedMail(str(envelope.mail_from or ""), tuple(envelope.rcpt_tos), bytes(content), login)
            )
        return "250 2.0.0 Message accepted for delivery"

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == self.username.encode()
            and data.password == self.password.encode()
        )
        return AuthResult(success=ok, auth_data=data if ok else None)

    # --- lifecycle -----------------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        # Bind here: port 0 gives a free port with no race, and the port is known before anyone connects.
        logging.getLogger("mail.log").addFilter(_not_login_data_deprecation)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = int(sock.getsockname()[1])
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failed: list[BaseException] = []

        def factory() -> SMTP:
            return SMTP(
                self,
                hostname="orderflow-smtp-sink",
                ident="orderflow SMTP sink",
                authenticator=self._authenticate if self.username else None,
                auth_require_tls=False,
                loop=loop,
            )

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                server = loop.run_until_complete(loop.create_server(factory, sock=sock))
            except BaseException as exc:  # handed to start(), which raises it
                failed.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                server.close()
                pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(server.wait_closed())
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"smtp-sink-{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or failed:
            raise RuntimeError(f"SMTP sink on {self.host}:{self.port} did not start") from (
                failed[0] if failed else None
            )

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop = self._thread = None


@contextmanager
def running_smtp_sink(
    host: str = "127.0.0.1", port: int = 0, *, username: str = "", password: str = ""
) -> Iterator[SmtpSink]:
    sink = SmtpSink(host, port, username=username, password=password)
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()
