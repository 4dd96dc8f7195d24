"""Create accounts and check passwords with Argon2id."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select

from signup.errors import ValidationError
from signup.extensions import db
from signup.users.models import Role, User

# OWASP's Argon2id guidance: at least 19 MiB of memory, 2 iterations, 1 degree of parallelism.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 12


def create_user(*, email: str, role: str, password: str) -> User:
    """Validate and add an account (flushes); raises ValidationError with one clear line."""
    email = email.strip().lower()
    if not EMAIL_RE.match(email) or len(email) > 254:
        raise ValidationError(f"{email!r} is not an email address")
    if role not in {r.value for r in Role}:
        raise ValidationError(f"role must be one of {', '.join(r.value for r in Role)}")
    if len(password) < MIN_PASSWORD:
        raise ValidationError(f"password must be at least {MIN_PASSWORD} characters")
    if db.session.scalar(select(User.id).where(func.lower(User.email) == email)) is not None:
        raise ValidationError(f"a user with email {email} already exists")
    user = User(email=email, role=role, password_hash=HASHER.hash(password))
    db.session.add(user)
    db.session.flush()
    return user


def check_password(user: User, password: str) -> bool:
    """True when the password matches the stored Argon2id hash."""
    try:
        return HASHER.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
