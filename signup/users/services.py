"""Create accounts and check passwords with Argon2id."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, select

from signup.errors import ValidationError
from signup.extensions import db
from signup.greenlets import off_loop
from signup.users.models import Role, User, UserCampaign, UserState

# OWASP's Argon2id guidance: at least 19 MiB of memory, 2 iterations, 1 degree of parallelism.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 12


def create_user(*, email: str, role: str, password: str) -> User:
    """Validate and add an account (flushes); raises ValidationError with one clear line."""
    email = email.strip().lower()
    if not EMAIL_RE.match(email) or len(email) > 254:
        raise ValidationError(_l("%(email)s is not an email address", email=repr(email)))
    if role not in {r.value for r in Role}:
        raise ValidationError(_l("role must be one of %(roles)s", roles=", ".join(Role)))
    if len(password) < MIN_PASSWORD:
        raise ValidationError(_l("password must be at least %(n)s characters", n=MIN_PASSWORD))
    if db.session.scalar(select(User.id).where(func.lower(User.email) == email)) is not None:
        raise ValidationError(_l("a user with email %(email)s already exists", email=email))
    user = User(email=email, role=role, password_hash=off_loop(HASHER.hash, password))
    db.session.add(user)
    db.session.flush()
    return user


def check_password(user: User, password: str) -> bool:
    """True when the password matches the stored Argon2id hash."""
    try:
        return off_loop(HASHER.verify, user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def find_by_email(email: str) -> User | None:
    """The account with this email, whatever its case."""
    return db.session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def set_password(user: User, password: str) -> None:
    """Replace an account's password (flushes); every session of the account ends."""
    if len(password) < MIN_PASSWORD:
        raise ValidationError(_l("password must be at least %(n)s characters", n=MIN_PASSWORD))
    user.password_hash = off_loop(HASHER.hash, password)
    user.end_sessions()
    db.session.flush()


def list_users() -> list[User]:
    """Every account, by email."""
    return list(db.session.scalars(select(User).order_by(User.email)))


def scope_of(user: User) -> tuple[list[int], list[str]]:
    """The campaign ids and states an account is limited to (empty: all)."""
    campaigns = list(
        db.session.scalars(select(UserCampaign.campaign_id).where(UserCampaign.user_id == user.id))
    )
    states = list(
        db.session.scalars(
            select(UserState.state).where(UserState.user_id == user.id).order_by(UserState.state)
        )
    )
    return campaigns, states


def update_user(
    user: User,
    *,
    role: str,
    active: bool,
    campaign_ids: list[int],
    states: list[str],
    acting_user_id: int,
) -> None:
    """Change an account's role, status and scope; an admin cannot lock themselves out."""
    if role not in {r.value for r in Role}:
        raise ValidationError(_l("role must be one of %(roles)s", roles=", ".join(Role)))
    if user.id == acting_user_id and (role != Role.ADMIN or not active):
        raise ValidationError(_l("you cannot remove your own admin role or deactivate yourself"))
    cleaned_states = sorted({s.strip()[:64] for s in states if s.strip()})
    _require_campaigns(set(campaign_ids))
    old_campaigns, old_states = scope_of(user)
    old = (user.role, user.active, sorted(old_campaigns), old_states)
    if old != (role, active, sorted(set(campaign_ids)), cleaned_states):
        user.end_sessions()  # a new role, status or scope starts from a fresh login
    user.role, user.active = role, active
    db.session.execute(delete(UserCampaign).where(UserCampaign.user_id == user.id))
    db.session.execute(delete(UserState).where(UserState.user_id == user.id))
    db.session.add_all([UserCampaign(user_id=user.id, campaign_id=c) for c in set(campaign_ids)])
    db.session.add_all([UserState(user_id=user.id, state=s) for s in cleaned_states])
    db.session.flush()


def _require_campaigns(campaign_ids: set[int]) -> None:
    """Refuse a scope naming a campaign that does not exist (a clear error, not a key violation)."""
    from signup.campaigns.models import Campaign

    if not campaign_ids:
        return
    known = set(db.session.scalars(select(Campaign.id).where(Campaign.id.in_(campaign_ids))))
    unknown = sorted(campaign_ids - known)
    if unknown:
        ids = ", ".join(map(str, unknown[:5]))
        raise ValidationError(_l("no campaign with id %(ids)s", ids=ids))


def set_language(user: User, language: str | None) -> None:
    """Choose the account's admin language (flushes); None follows the browser's."""
    from signup.i18n import LANGUAGES

    if language is not None and language not in LANGUAGES:
        raise ValidationError(_l("language must be one of %(codes)s", codes=", ".join(LANGUAGES)))
    user.language = language
    db.session.flush()
