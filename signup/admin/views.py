"""The organisers' admin pages: thin views over signup.admin.services."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext, lazy_gettext
from flask_login import current_user, login_user
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from signup import clock, moments
from signup.admin import auth, dashboard, imports, params, services
from signup.admin.forms import ConfirmForm, LoginForm, VolunteerForm
from signup.admin.models import ImportStatus
from signup.admin.pages import error_page
from signup.admin.tasks import read_import
from signup.bodies import body_limit
from signup.campaigns import services as campaigns
from signup.errors import ValidationError
from signup.extensions import db, limiter
from signup.logs import event
from signup.messaging import segments, texts
from signup.messaging.models import MessageKind
from signup.messaging.tasks import send_message
from signup.phones import mask, normalise
from signup.tasking import publish
from signup.users import services as user_services
from signup.users.models import User
from signup.volunteers import importer
from signup.volunteers.export import CsvExport, VolunteerFilter

bp = Blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
log = logging.getLogger(__name__)
LOGIN_FAILED = lazy_gettext("Email or password is incorrect.")


@bp.before_request
def idle_timeout() -> BaseResponse | None:
    """End idle sessions before any admin page runs."""
    return auth.enforce_idle_timeout()


@bp.app_template_filter("phone")
def phone_filter(phone: str | None) -> str:
    """Show a number in full, or masked for viewers."""
    if not phone:
        return ""
    return mask(phone) if auth.current_access().masks_phones else phone


@bp.app_template_filter("local")
def local_filter(moment: Any) -> str:
    """A timestamp in the organisers' time zone."""
    from zoneinfo import ZoneInfo

    if moment is None:
        return ""
    zone = ZoneInfo(current_app.config["SIGNUP_TIMEZONE"])
    return str(moment.astimezone(zone).strftime("%Y-%m-%d %H:%M"))


@bp.errorhandler(429)
def throttled(error: HTTPException) -> HTTPException | tuple[str, int]:
    """Too many failed logins: the same answer whether or not the account exists.

    Elsewhere (a viewer's phone searches) the admin's own error page.
    """
    if request.endpoint != "admin.login":
        return error_page(error)
    return render_template(
        "admin/login.html",
        form=LoginForm(),
        error=gettext("Too many attempts. Wait a while and try again."),
    ), 429


# A viewer's searches by phone number, per account, shared by every route that reads `q`.
viewer_phone_searches = limiter.shared_limit(
    lambda: current_app.config["ADMIN_VIEWER_SEARCH_LIMIT"],
    scope="viewer-phone-search",
    key_func=auth.searcher_key,
    exempt_when=auth.unthrottled_search,
)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(
    lambda: current_app.config["ADMIN_LOGIN_ACCOUNT_LIMIT"],
    key_func=auth.account_key,
    methods=["POST"],
    deduct_when=auth.login_failed,
)
@limiter.limit(
    lambda: current_app.config["ADMIN_LOGIN_ADDRESS_LIMIT"],
    methods=["POST"],
    deduct_when=auth.login_failed,
)
def login() -> BaseResponse | str | tuple[str, int]:
    """Log in with email and password."""
    form = LoginForm()
    if request.method == "GET":
        expired = (
            gettext("Your session ended after a while without use.")
            if request.args.get("expired")
            else None
        )
        return render_template("admin/login.html", form=form, error=expired)
    user = (
        auth.authenticate(form.email.data or "", form.password.data or "")
        if form.validate_on_submit()
        else None
    )
    if user is None:
        event(log, logging.WARNING, "admin.login_failed", remote=request.remote_addr)
        return render_template("admin/login.html", form=form, error=LOGIN_FAILED), 200
    db.session.commit()
    login_user(user)
    from flask import session

    session.permanent = True
    event(log, logging.INFO, "admin.login", user_id=user.id)
    return redirect(params.safe_next(request.args.get("next")))


@bp.post("/logout")
@auth.login_required
def logout() -> BaseResponse:
    """End the session: this copy and every other copy of it, on the server."""
    auth.log_out()
    db.session.commit()
    return redirect(url_for("admin.login"))


@bp.get("/")
@auth.login_required
def index() -> str:
    """The admin's home: the dashboard."""
    access = auth.current_access()
    board = dashboard.build(access, current_app.config["SIGNUP_TIMEZONE"])
    return render_template("admin/dashboard.html", board=board, access=access)


def _filters() -> VolunteerFilter:
    """The list's and the export's filters, from the query string, in the account's scope."""
    return VolunteerFilter(
        campaign=params.text_arg("campaign"),
        status=params.text_arg("status"),
        q=params.text_arg("q"),
        state=params.text_arg("state"),
        district=params.text_arg("district"),
        joined_from=params.date_arg("joined_from"),
        joined_to=params.date_arg("joined_to"),
        scope=auth.current_access(),
    )


@bp.get("/volunteers")
@auth.login_required
@viewer_phone_searches
def volunteers() -> str | tuple[str, int]:
    """Search, filter, sort and page through the volunteers this account may see."""
    access = auth.current_access()
    visible = services.campaigns_for(access)
    try:
        page = services.list_page(
            _filters(),
            sort=params.text_arg("sort") or "joined",
            cursor=params.text_arg("after"),
        )
    except ValidationError as exc:
        return render_template(
            "admin/volunteers.html",
            page=None,
            error=str(exc),
            campaigns=visible,
            access=access,
            query=_shown_query(access),
        ), 400
    next_args = {**request.args.to_dict(), "after": page.next_cursor}
    return render_template(
        "admin/volunteers.html",
        page=page,
        error=None,
        campaigns=visible,
        access=access,
        next_args=next_args,
        query=_shown_query(access),
    )


def _shown_query(access: services.Access) -> str:
    """The search as typed, except that a viewer's phone search is shown masked."""
    query = request.args.get("q", "")
    phone = normalise(query).e164 if query else None
    return mask(phone) if phone and access.masks_phones else query


@bp.route("/volunteers/<int:volunteer_id>", methods=["GET", "POST"])
@auth.login_required
def volunteer(volunteer_id: int) -> BaseResponse | str | tuple[str, int]:
    """One volunteer: calls, messages, consent history; organisers edit details."""
    access = auth.current_access()
    form = VolunteerForm()
    if request.method == "POST":
        if not access.can_edit:
            abort(403)
        if not form.validate_on_submit():
            abort(400)
        try:
            changed = services.edit(volunteer_id, access, request.form.to_dict())
            db.session.commit()
        except LookupError:
            abort(404)
        except ValidationError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            saved = gettext("Saved (%(fields)s).", fields=", ".join(changed))
            flash(saved if changed else gettext("Nothing changed."), "info")
        return redirect(url_for("admin.volunteer", volunteer_id=volunteer_id))
    try:
        record = services.history(volunteer_id, access)
    except LookupError:
        abort(404)
    return render_template(
        "admin/volunteer.html", record=record, form=form, access=access, confirm=ConfirmForm()
    )


def _confirmed_action(volunteer_id: int, action: str) -> BaseResponse | str:
    access = auth.current_access()
    if not access.is_admin:
        abort(403)
    try:
        record = services.history(volunteer_id, access)
    except LookupError:
        abort(404)
    form = ConfirmForm()
    if request.method == "GET" or not form.validate_on_submit():
        return render_template("admin/confirm.html", record=record, action=action, form=form)
    to_send: list[int] = []
    try:
        if action == "opt-out":
            to_send = services.opt_out(volunteer_id, access)
        else:
            services.erase(volunteer_id, access)
    except PermissionError:
        abort(403)
    db.session.commit()
    for message_id in to_send:
        publish(send_message, message_id)
    opted_out = gettext("Opted out of every campaign you can see.")
    flash(opted_out if action == "opt-out" else gettext("Erased."), "info")
    if action == "erase":
        return redirect(url_for("admin.volunteers"))
    return redirect(url_for("admin.volunteer", volunteer_id=volunteer_id))


@bp.route("/volunteers/<int:volunteer_id>/opt-out", methods=["GET", "POST"])
@auth.login_required
def opt_out(volunteer_id: int) -> BaseResponse | str:
    """Admins opt a person out (a confirmation page first)."""
    return _confirmed_action(volunteer_id, "opt-out")


@bp.route("/volunteers/<int:volunteer_id>/erase", methods=["GET", "POST"])
@auth.login_required
def erase(volunteer_id: int) -> BaseResponse | str:
    """Admins erase a person (a confirmation page first)."""
    return _confirmed_action(volunteer_id, "erase")


@bp.get("/volunteers/export.csv")
@auth.require(lambda access: access.can_export)
@viewer_phone_searches
def export() -> BaseResponse:
    """The volunteers CSV, filtered like the list, streamed, and audited."""
    try:
        filters = _filters()
        filters.condition()
    except ValidationError as exc:
        return Response(str(exc) + "\n", status=400, mimetype="text/plain")
    access = auth.current_access()
    detail = {
        k: v
        for k, v in request.args.items()
        if k in ("campaign", "status", "q", "state", "district", "joined_from", "joined_to")
    }
    if "q" in detail:
        detail["q"] = "[search]"  # a search may be a phone number: never in the log
    entry = services.audit(access, "export", detail)
    db.session.commit()
    entry_id = entry.id
    stream = CsvExport(filters, current_app.config["SIGNUP_TIMEZONE"])

    def generate() -> Any:
        yield from stream
        finished = db.session.get(services.AuditEntry, entry_id)
        if finished is not None:
            finished.row_count = stream.rows
            db.session.commit()

    filename = f"volunteers-{date.today().isoformat()}.csv"
    return Response(
        stream_with_context(generate()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.get("/audit")
@auth.require(lambda access: access.is_full_admin)
def audit() -> str:
    """Admins read the audit log."""
    return render_template("admin/audit.html", entries=services.audit_rows())


@bp.route("/import", methods=["GET", "POST"])
@body_limit("IMPORT_MAX_BYTES")
@auth.require(imports.may_import)
def import_upload() -> BaseResponse | str | tuple[str, int]:
    """Upload a CSV or XLSX list: stored as it is, then read by the import task, never here."""
    form = ConfirmForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            return render_template("admin/import.html", form=form, error="Choose a file."), 400
        try:
            batch = imports.upload(auth.current_access(), upload.filename, upload.read())
            db.session.commit()
        except ValidationError as exc:
            db.session.rollback()
            return render_template("admin/import.html", form=form, error=str(exc)), 400
        publish(read_import, batch.id)
        return redirect(url_for("admin.import_preview", batch_id=batch.id))
    return render_template("admin/import.html", form=form, error=None)


@bp.errorhandler(413)
def too_large(error: HTTPException) -> BaseResponse | HTTPException | tuple[str, int]:
    """An upload over IMPORT_MAX_BYTES gets the import page with one line, not a bare 413."""
    if request.endpoint != "admin.import_upload" or not current_user.is_authenticated:
        return error
    message = importer.size_error(current_app.config["IMPORT_MAX_BYTES"])
    form = ConfirmForm(formdata=None)  # the body is never read: it is over the limit
    return render_template("admin/import.html", form=form, error=message), 413


@bp.route("/import/<int:batch_id>", methods=["GET", "POST"])
@auth.require(imports.may_import)
def import_preview(batch_id: int) -> BaseResponse | str:
    """The list being read (a self-refreshing progress page), its error, or its preview."""
    access = auth.current_access()
    try:
        batch = imports.batch_for(access, batch_id)
    except LookupError:
        abort(404)
    form = ConfirmForm()
    if batch.status in (ImportStatus.WAITING, ImportStatus.READING):
        return render_template("admin/import_progress.html", batch=batch)
    if batch.status == ImportStatus.FAILED:
        return render_template("admin/import.html", form=form, error=batch.error, batch=batch)
    if request.method == "POST" and form.validate_on_submit():
        try:
            result = imports.confirm(access, batch_id)
            db.session.commit()
        except ValidationError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            flash(
                f"Imported: {result.created} new, {result.updated} updated, "
                f"{result.skipped} skipped.",
                "info",
            )
        return redirect(url_for("admin.volunteers", status="imported"))
    rows = imports.rows_of(batch)
    bad = [row for row in rows if row.error]
    return render_template(
        "admin/import_preview.html",
        batch=batch,
        rows=rows,
        bad=bad,
        form=form,
        good=len(rows) - len(bad),
    )


def _user_form_values() -> dict[str, Any]:
    form = request.form
    return {
        "role": form.get("role", ""),
        "active": form.get("active") == "on",
        "campaign_ids": params.row_ids(form.getlist("campaigns")),
        "states": form.get("states", "").split(","),
    }


@bp.route("/users", methods=["GET", "POST"])
@auth.require(lambda access: access.is_full_admin)
def users() -> BaseResponse | str | tuple[str, int]:
    """Admins list accounts and create new ones (with their role and scope)."""
    form = ConfirmForm()
    error = None
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        values = _user_form_values()
        try:
            created = user_services.create_user(
                email=request.form.get("email", ""),
                role=values["role"],
                password=request.form.get("password", ""),
            )
            user_services.update_user(
                created,
                active=True,
                acting_user_id=auth.current_access().user_id,
                **{k: values[k] for k in ("role", "campaign_ids", "states")},
            )
            services.audit(
                auth.current_access(), "user_create", {"user": created.id, "role": created.role}
            )
            db.session.commit()
        except ValidationError as exc:
            db.session.rollback()
            error = str(exc)
        else:
            flash(gettext("Created %(email)s.", email=created.email), "info")
            return redirect(url_for("admin.users"))
    accounts = [(u, *user_services.scope_of(u)) for u in user_services.list_users()]
    page = render_template(
        "admin/users.html",
        accounts=accounts,
        form=form,
        error=error,
        campaigns=campaigns.list_campaigns(),
        access=auth.current_access(),
    )
    return (page, 400) if error else page


@bp.post("/users/<int:user_id>")
@auth.require(lambda access: access.is_full_admin)
def user_update(user_id: int) -> BaseResponse:
    """Admins change an account's role, status and scope."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    account = db.session.get(User, user_id)
    if account is None:
        abort(404)
    try:
        user_services.update_user(
            account, acting_user_id=auth.current_access().user_id, **_user_form_values()
        )
        services.audit(
            auth.current_access(),
            "user_update",
            {"user": account.id, "role": account.role, "active": account.active},
        )
        db.session.commit()
    except ValidationError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        flash(gettext("Saved %(email)s.", email=account.email), "info")
    return redirect(url_for("admin.users"))


def _campaign_values() -> dict[str, str | None]:
    """The campaign settings in the form; an empty field is None (cleared, or the default)."""
    return {key: (request.form.get(key) or "").strip() or None for key in campaigns.SETTINGS}


@bp.route("/campaigns", methods=["GET", "POST"])
@auth.require(lambda access: access.manages_campaigns)
def campaigns_page() -> BaseResponse | str | tuple[str, int]:
    """Admins list the campaigns they manage; unscoped admins create new ones."""
    form = ConfirmForm()
    error = None
    if request.method == "POST":
        if not auth.current_access().is_full_admin:
            abort(403)
        if not form.validate_on_submit():
            abort(400)
        values = _campaign_values()
        try:
            given = {key: value for key, value in values.items() if value is not None}
            created = campaigns.create_campaign(
                slug=request.form.get("slug", ""),
                settings=campaigns.CampaignSettings(**{"name": "", "number": "", **given}),
            )
            services.audit(auth.current_access(), "campaign_create", {"campaign": created.slug})
            db.session.commit()
        except ValidationError as exc:
            db.session.rollback()
            error = str(exc)
        else:
            return redirect(url_for("admin.campaign_page", slug=created.slug))
    page = render_template(
        "admin/campaigns.html",
        items=services.campaigns_for(auth.current_access()),
        form=form,
        error=error,
        access=auth.current_access(),
    )
    return (page, 400) if error else page


@bp.route("/campaigns/<slug>", methods=["GET", "POST"])
@auth.require(lambda access: access.manages_campaigns)
def campaign_page(slug: str) -> BaseResponse | str | tuple[str, int]:
    """Admins change a campaign, its DLT registration and templates, and its blackouts."""
    campaign = campaigns.get_by_slug(slug)
    if campaign is None or not auth.current_access().manages_campaign(campaign.id):
        abort(404)
    form = ConfirmForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        try:
            _apply_campaign_change(campaign, request.form.get("action", "settings"))
            db.session.commit()
        except ValidationError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            flash(gettext("Saved."), "info")
        return redirect(url_for("admin.campaign_page", slug=slug))
    texts_shown = campaign_texts(campaign)
    return render_template(
        "admin/campaign.html",
        campaign=campaign,
        form=form,
        texts=texts_shown,
        templates=campaigns.templates(campaign),
        blackouts=campaigns.blackouts(campaign.id, clock.now()),
        access=auth.current_access(),
    )


def _apply_campaign_change(campaign: Any, action: str) -> None:
    form = request.form
    access = auth.current_access()
    if action == "settings":
        campaigns.update_campaign(campaign, **_campaign_values())
    elif action == "dlt":
        campaigns.set_dlt(
            campaign, entity_id=form.get("entity_id", ""), header=form.get("header", "")
        )
    elif action == "template":
        campaigns.set_template(
            campaign,
            kind=form.get("kind", ""),
            template_id=form.get("template_id", ""),
            text=form.get("text", ""),
        )
    elif action == "blackout":
        zone = ZoneInfo(current_app.config["SIGNUP_TIMEZONE"])
        starts = moments.parse_moment(form.get("starts_at", ""), gettext("From (local time)"), zone)
        ends = moments.parse_moment(form.get("ends_at", ""), gettext("To (local time)"), zone)
        campaigns.add_blackout(campaign, starts_at=starts, ends_at=ends, reason=form.get("reason"))
    else:
        abort(400)
    services.audit(access, f"campaign_{action}", {"campaign": campaign.slug})


def campaign_texts(campaign: Any) -> list[tuple[str, str, Any]]:
    """Each SMS the campaign sends, rendered, with its segment count."""
    kinds = [MessageKind.ONBOARDING, MessageKind.OPTOUT_CONFIRMATION, MessageKind.HELP]
    shown = []
    for kind in kinds:
        body = texts.render(kind, campaign)
        shown.append((kind.value, body, segments.count(body)))
    return shown
