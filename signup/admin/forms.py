"""Admin forms (Flask-WTF: each carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    """Fields `email`, `password`, `csrf_token` (the contract)."""

    email = StringField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class VolunteerForm(FlaskForm):
    """What organisers may change on a volunteer."""

    name = StringField("Name", validators=[Length(max=120)])
    notes = TextAreaField("Notes", validators=[Length(max=2000)])
    state = StringField("State", validators=[Length(max=64)])
    district = StringField("District", validators=[Length(max=64)])
    pincode = StringField("PIN code", validators=[Length(max=6)])
    language = StringField("Language", validators=[Length(max=2)])


class ConfirmForm(FlaskForm):
    """An empty form: its CSRF token is the confirmation of a destructive action."""
