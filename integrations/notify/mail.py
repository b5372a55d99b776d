"""E-mail over SMTP (stdlib smtplib): one connection per notice, STARTTLS and AUTH when configured.

The Message-ID is derived from the outbox key, so a notice sent twice (at-least-once delivery: the relay died
between the server's 250 and recording it) carries the same Message-ID both times and mail clients and
archives can recognise the duplicate.
"""

from __future__ import annotations

import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from core.config import Settings
from integrations.notify.base import (
    ChannelUnavailable,
    DeliveryError,
    OutgoingNotice,
    PermanentDeliveryError,
    key_digest,
)


def message_id(key: str, sender: str) -> str:
    """`<digest.notice@domain-of-the-From-address>`: the same for every attempt at the same outbox row."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "orderflow.invalid"
    return f"<{key_digest(key)}.notice@{domain}>"


class SmtpSender:
    channel = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        username: str = "",
        password: str = "",
        starttls: bool = True,
        timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpSender:
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_from,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
        )

    def message(self, notice: OutgoingNotice) -> EmailMessage:
        message = EmailMessage()
        try:
            message["From"] = self.sender
            message["To"] = Address(addr_spec=notice.recipient)
            message["Subject"] = notice.subject or notice.body.splitlines()[0]
        except (ValueError, IndexError) as exc:  # e.g. an address with a line break or no domain
            raise PermanentDeliveryError(f"cannot address an e-mail to {notice.recipient!r}: {exc}") from exc
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = message_id(notice.key, self.sender)
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies to this
        message.set_content(notice.body)
        return message

    def send(self, notice: OutgoingNotice) -> None:
        message = self.message(notice)
        try:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        except (smtplib.SMTPException, OSError) as exc:
            raise ChannelUnavailable(f"SMTP {self.host}:{self.port} unreachable: {exc!r}") from exc
        try:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:  # the only recipient was refused
            replies = list(exc.recipients.values())
            text = "; ".join(f"{code} {reply.decode(errors='replace')}" for code, reply in replies)
            if replies and all(500 <= code < 600 for code, _ in replies):
                raise PermanentDeliveryError(f"SMTP refused {notice.recipient}: {text}") from exc
            raise DeliveryError(f"SMTP deferred {notice.recipient}: {text}") from exc
        except smtplib.SMTPResponseException as exc:
            reply = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
            text = f"SMTP {exc.smtp_code} {reply}"
            if isinstance(exc, smtplib.SMTPDataError) and 500 <= exc.smtp_code < 600:
                raise PermanentDeliveryError(f"{text} (message refused)") from exc
            if isinstance(exc, smtplib.SMTPDataError):
                raise DeliveryError(text) from exc  # about this message: the next one may pass
            raise ChannelUnavailable(text) from exc  # greeting, STARTTLS, AUTH, MAIL FROM: the server or our config
        except (smtplib.SMTPException, OSError) as exc:
            raise ChannelUnavailable(f"SMTP {self.host}:{self.port}: {exc!r}") from exc
        finally:
            _quit(smtp)

    def close(self) -> None:
        """Nothing held between notices."""


def _quit(smtp: smtplib.SMTP) -> None:
    # The message is accepted once DATA got its 250: a QUIT that fails afterwards must not turn it into a retry.
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
