"""Who may see and do what: roles, and the campaigns or states an account is limited to.

Every collection the admin shows (volunteers, subscriptions, messages, consent events, calls,
campaign slugs, dashboard figures) is filtered by the clauses here, and only here.

A scoped account (limited to some campaigns or states, whatever its role) never reaches beyond
its scope: a scoped admin may do what an organiser does within it, opt a volunteer out of the
campaigns in it, and change the settings of the campaigns it is limited to (when it is not also
limited to states: a campaign spans states). Managing accounts (so never widening its own
scope), creating campaigns, the audit log, imports and calls to no campaign need an unscoped
account.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, exists, func, select, true

from signup.calls.models import Call, CallOutcome
from signup.extensions import db
from signup.users.models import Role, User, UserCampaign, UserState
from signup.volunteers.export import Derived
from signup.volunteers.models import (
    ConsentEvent,
    ConsentEventType,
    Subscription,
    Volunteer,
    VolunteerStatus,
)

# The outcomes of calls counted in a volunteer's call_count (services.count_call ran for them).
COUNTED_CALLS = (
    CallOutcome.JOINED,
    CallOutcome.REJOINED,
    CallOutcome.REPEAT,
    CallOutcome.OPTED_OUT,
    CallOutcome.ALREADY_OPTED_OUT,
)


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
    def is_scoped(self) -> bool:
        """True when the account is limited to some campaigns or states."""
        return self.campaign_ids is not None or self.states is not None

    @property
    def is_full_admin(self) -> bool:
        """An unscoped admin: manages accounts, creates campaigns, reads the audit log."""
        return self.is_admin and not self.is_scoped

    @property
    def manages_campaigns(self) -> bool:
        """Admins change campaigns, unless limited to states (a campaign spans states)."""
        return self.is_admin and self.states is None

    def manages_campaign(self, campaign_id: int) -> bool:
        """True when this account may open and change this campaign."""
        return self.manages_campaigns and self.sees_campaign(campaign_id)

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

    def campaign_condition(self, campaign_id: Any) -> ColumnElement[bool]:
        """The WHERE clause limiting rows tied to a campaign (by this column) to the scope's."""
        if self.campaign_ids is None:
            return true()
        condition: ColumnElement[bool] = campaign_id.in_(sorted(self.campaign_ids))
        return condition

    def calls_condition(self) -> ColumnElement[bool]:
        """The WHERE clause limiting calls: to the scope's campaigns, and callers in its states."""
        clause = self.campaign_condition(Call.campaign_id)
        if self.states is not None:
            clause = clause & Call.caller.in_(
                select(Volunteer.phone).where(Volunteer.state.in_(self.states))
            )
        return clause

    def derived(self) -> Derived:
        """A volunteer's status, call count and times as this account sees them.

        Limited to campaigns: worked out from those campaigns' subscriptions, calls and consent
        events alone (active only while subscribed to one of them), so a person who left them
        is not shown as active for a call to another. Otherwise the row's own columns.
        """
        if self.campaign_ids is None:
            return Derived.stored()
        ids = sorted(self.campaign_ids)
        subs = (Subscription.volunteer_id == Volunteer.id, Subscription.campaign_id.in_(ids))
        active = exists().where(*subs, Subscription.status == VolunteerStatus.ACTIVE)
        status = case(
            (active, VolunteerStatus.ACTIVE.value),
            (Volunteer.status == VolunteerStatus.ACTIVE, VolunteerStatus.OPTED_OUT.value),
            else_=Volunteer.status,
        )
        opted_out_at = case(
            (active, None),
            else_=select(func.max(Subscription.opted_out_at)).where(*subs).scalar_subquery(),
        )
        calls = (
            Call.caller == Volunteer.phone,
            Call.campaign_id.in_(ids),
            Call.outcome.in_([o.value for o in COUNTED_CALLS]),
        )
        given = [ConsentEventType.GIVEN.value, ConsentEventType.REGIVEN.value]
        consent_at = select(func.max(ConsentEvent.recorded_at)).where(
            ConsentEvent.volunteer_id == Volunteer.id,
            ConsentEvent.campaign_id.in_(ids),
            ConsentEvent.event.in_(given),
        )
        return Derived(
            status,
            select(func.count()).where(*calls).scalar_subquery(),
            select(func.min(Call.received_at)).where(*calls).scalar_subquery(),
            select(func.max(Call.received_at)).where(*calls).scalar_subquery(),
            consent_at.scalar_subquery(),
            opted_out_at,
            scoped=True,
            subscribed=active,
        )

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
