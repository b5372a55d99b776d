"""Who a staff notice reaches: each active holder of a role (or one user), by the channels they chose."""

from __future__ import annotations

from sqlmodel import Session, col, select

from models.tables import User

Recipient = tuple[str, str, User | None]  # channel, address (a user name for 'internal'), the user


def staff_recipients(session: Session, role: str) -> list[Recipient]:
    """Each active holder of the role: the console's inbox, and the channels they chose that they have on file."""
    users = session.exec(
        select(User).where(User.role == role, col(User.disabled).is_(False)).order_by(col(User.name))
    ).all()
    return [recipient for user in users for recipient in _channels(user)]


def user_recipients(session: Session, name: str) -> list[Recipient]:
    """One active user, like a role's holder; nobody when there is no such user or they are disabled."""
    user = session.exec(select(User).where(User.name == name, col(User.disabled).is_(False))).first()
    return [] if user is None else _channels(user)


def _channels(user: User) -> list[Recipient]:
    recipients: list[Recipient] = [("internal", user.name, user)]
    if user.notify_email and user.email:
        recipients.append(("email", user.email, user))
    if user.notify_sms and user.phone:
        recipients.append(("sms", user.phone, user))
    return recipients
