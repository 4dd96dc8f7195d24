"""Who may see and do what: roles, and the campaigns or states an account is limited to."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, select, true

from signup.extensions import db
from signup.users.models import Role, User, UserCampaign, UserState
from signup.volunteers.models import Subscription, Volunteer


@dataclass(frozen=True, slots=True)
class Access:
    """An account's role and scope; None in a scope means 'all'."""

    user_id: int
    role: Role
    campaign_ids: frozenset[int] | None = None
    states: frozenset[str] | None = None

    @property
    def can_edit(self) -> bool:
        """Admins and organisers edit volunteers."""
        return self.role in (Role.ADMIN, Role.ORGANISER)

    @property
    def can_export(self) -> bool:
        """Admins and organisers export; viewers never see full numbers."""
        return self.role in (Role.ADMIN, Role.ORGANISER)

    @property
    def is_admin(self) -> bool:
        """Admins manage users, campaigns, opt-outs and erasure."""
        return self.role is Role.ADMIN

    @property
    def masks_phones(self) -> bool:
        """Viewers see numbers like +91 99XXX XX181."""
        return self.role is Role.VIEWER

    def condition(self) -> ColumnElement[bool]:
        """The WHERE clause limiting volunteers to this account's campaigns and states."""
        clause: ColumnElement[bool] = true()
        if self.campaign_ids is not None:
            clause = clause & Volunteer.id.in_(
                select(Subscription.volunteer_id).where(
                    Subscription.campaign_id.in_(self.campaign_ids)
                )
            )
        if self.states is not None:
            clause = clause & Volunteer.state.in_(self.states)
        return clause

    def sees_campaign(self, campaign_id: int) -> bool:
        """True when the account may see this campaign."""
        return self.campaign_ids is None or campaign_id in self.campaign_ids


def access_for(user: User) -> Access:
    """Read an account's role and scope."""
    campaign_ids = frozenset(
        db.session.scalars(select(UserCampaign.campaign_id).where(UserCampaign.user_id == user.id))
    )
    states = frozenset(
        db.session.scalars(select(UserState.state).where(UserState.user_id == user.id))
    )
    return Access(user.id, Role(user.role), campaign_ids or None, states or None)
