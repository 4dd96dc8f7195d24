"""export cells stored on volunteers: csv_head and csv_tail, generated columns

Revision ID: d41e7c9b2a60
Revises: cf66aee031c4
Create Date: 2026-12-02 08:05:00

The CSV export's cells (formula-safe, CSV-quoted text; ISO 8601 times in Asia/Kolkata) are
written once, when a volunteer row is written, instead of on every export: PostgreSQL spent
most of an export formatting them. `csv_head` is `phone,name,status,` and `csv_tail` is
`,call_count,first_call_at,…,language` and a newline; the export puts the campaigns cell
between them (signup/volunteers/pgcopy.py). The zone is fixed here and named by
signup_csv_zone(); an export in any other SIGNUP_TIMEZONE formats its cells at export time.

Adding the columns rewrites the table (about 10 s per million volunteers, under an exclusive
lock): run it outside a drive. PostgreSQL only; the SQLite export is written by Python.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'd41e7c9b2a60'
down_revision = 'cf66aee031c4'
branch_labels = None
depends_on = None


ZONE = "Asia/Kolkata"
# Asia/Kolkata has been +05:30 since 1945-10-14 18:00 UTC; earlier times take the general path.
FIXED_SINCE = "1945-10-15 00:00:00+00"

ZONE_FUNCTION = f"""
CREATE FUNCTION signup_csv_zone() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT '{ZONE}'::text $$
"""

TEXT_FUNCTION = """
-- safe_cell() and then the csv module's quoting: ' before a formula prefix, no CR, quotes
-- around a cell with a quote, comma or newline; '' for NULL and empty. Inlined by the planner.
CREATE FUNCTION signup_csv_text(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN v IS NULL OR v = '' THEN ''
    WHEN v !~ '[",\\n\\r=+@\\t-]' THEN v
    WHEN ascii(v) IN (61, 43, 45, 64, 9, 13) THEN
      CASE WHEN v ~ '[",\\n]' THEN '"''' || replace(replace(v, E'\\r', ''), '"', '""') || '"'
           ELSE '''' || replace(v, E'\\r', '') END
    WHEN v ~ '[",\\n]' THEN '"' || replace(replace(v, E'\\r', ''), '"', '""') || '"'
    ELSE replace(v, E'\\r', '')
  END
$$
"""

TIME_FUNCTION = f"""
-- datetime.isoformat(timespec="seconds") in {ZONE}, offset seconds included, for any time.
CREATE FUNCTION signup_csv_time(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN t IS NULL THEN ''
    WHEN (t AT TIME ZONE '{ZONE}') >= (t AT TIME ZONE 'UTC') THEN
      to_char(t AT TIME ZONE '{ZONE}', 'YYYY-MM-DD"T"HH24:MI:SS+')
      || to_char((t AT TIME ZONE '{ZONE}') - (t AT TIME ZONE 'UTC'),
                 CASE WHEN date_part('second', (t AT TIME ZONE '{ZONE}') - (t AT TIME ZONE 'UTC'))
                      = 0 THEN 'HH24:MI' ELSE 'HH24:MI:SS' END)
    ELSE
      to_char(t AT TIME ZONE '{ZONE}', 'YYYY-MM-DD"T"HH24:MI:SS-')
      || to_char((t AT TIME ZONE 'UTC') - (t AT TIME ZONE '{ZONE}'),
                 CASE WHEN date_part('second', (t AT TIME ZONE 'UTC') - (t AT TIME ZONE '{ZONE}'))
                      = 0 THEN 'HH24:MI' ELSE 'HH24:MI:SS' END)
  END
$$
"""

TAIL_FUNCTION = f"""
-- One call per row write: PL/pgSQL plans this once per session, where a SQL function calling
-- to_char (not immutable, so never inlined) would cost several microseconds per call.
CREATE FUNCTION signup_csv_tail(
  n integer, a timestamptz, b timestamptz, c timestamptz, d timestamptz,
  s text, di text, p text, la text
) RETURNS text LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  RETURN ',' || n
    || ',' || CASE WHEN a IS NULL THEN '' WHEN a >= '{FIXED_SINCE}'::timestamptz
         THEN to_char(a AT TIME ZONE '{ZONE}', 'YYYY-MM-DD"T"HH24:MI:SS"+05:30"')
         ELSE signup_csv_time(a) END
    || ',' || CASE WHEN b IS NULL THEN '' WHEN b >= '{FIXED_SINCE}'::timestamptz
         THEN to_char(b AT TIME ZONE '{ZONE}', 'YYYY-MM-DD"T"HH24:MI:SS"+05:30"')
         ELSE signup_csv_time(b) END
    || ',' || CASE WHEN c IS NULL THEN '' WHEN c >= '{FIXED_SINCE}'::timestamptz
         THEN to_char(c AT TIME ZONE '{ZONE}', 'YYYY-MM-DD"T"HH24:MI:SS"+05:30"')
         ELSE signup_csv_time(c) END
    || ',' || CASE WHEN d IS NULL THEN '' WHEN d >= '{FIXED_SINCE}'::timestamptz
         THEN to_char(d AT TIME ZONE '{ZONE}', 'YYYY-MM-DD"T"HH24:MI:SS"+05:30"')
         ELSE signup_csv_time(d) END
    || ',' || signup_csv_text(s) || ',' || signup_csv_text(di)
    || ',' || signup_csv_text(p) || ',' || signup_csv_text(la) || E'\\n';
END
$$
"""

COLUMNS = """
ALTER TABLE volunteers
  ADD COLUMN csv_head text GENERATED ALWAYS AS (
    phone || ',' || signup_csv_text(name) || ',' || signup_csv_text(status) || ','
  ) STORED,
  ADD COLUMN csv_tail text GENERATED ALWAYS AS (
    signup_csv_tail(call_count, first_call_at, last_call_at, consent_at, opted_out_at,
                    state, district, pincode, language)
  ) STORED
"""


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    bind = op.get_bind()  # the driver's own SQL: no bind parameters parsed out of the bodies
    for statement in (ZONE_FUNCTION, TEXT_FUNCTION, TIME_FUNCTION, TAIL_FUNCTION, COLUMNS):
        bind.exec_driver_sql(statement)


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE volunteers DROP COLUMN csv_tail, DROP COLUMN csv_head")
    op.execute("DROP FUNCTION signup_csv_tail(integer, timestamptz, timestamptz, timestamptz,"
               " timestamptz, text, text, text, text)")
    op.execute("DROP FUNCTION signup_csv_time(timestamptz)")
    op.execute("DROP FUNCTION signup_csv_text(text)")
    op.execute("DROP FUNCTION signup_csv_zone()")
