# syntax=docker/dockerfile:1
#
# One image for every process: web (gunicorn, the default command), worker and beat (celery),
# and the one-shot `signup db upgrade`. See docker-compose.yml and docs/deployment.md.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SIGNUP_INSTANCE_PATH=/app/instance

# Every process runs as this unprivileged user. The code stays owned by root, so the user can
# read it but not change it; it writes only to its home and to /app/instance (beat's schedule).
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app \
        --shell /usr/sbin/nologin app

WORKDIR /app

# The dependencies first, in a layer of their own, so that changing the code doesn't reinstall
# them. They are read from pyproject.toml, which stays their only list.
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep=chr(10))" \
        > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# Then the project itself, installed in editable mode so that it runs from /app: signup finds
# its Alembic migrations at ../migrations relative to its own source (signup.MIGRATIONS), which
# is /app/migrations only while the code is imported from /app/signup. A plain `pip install .`
# would import signup from site-packages, where no migrations/ folder sits beside it.
COPY . .
RUN pip install --no-deps -e . \
 && python -m compileall -q signup workers \
 && mkdir -p /app/instance \
 && chown app:app /app/instance
# Fail the build, rather than the first `signup db upgrade`, if signup is imported from
# anywhere but /app (checked from another directory, as the console scripts run).
RUN cd / && python -c "import signup, sys; sys.exit(None if signup.MIGRATIONS == '/app/migrations' else 'signup.MIGRATIONS is ' + signup.MIGRATIONS)"

USER app

EXPOSE 8000

# The web process. docker-compose.yml spells out the same command and overrides it for the
# worker, beat and migrate services.
CMD ["gunicorn", "--bind=0.0.0.0:8000", "--workers=2", "--worker-class=gevent", "--worker-connections=1000", \
     "--timeout=30", "--access-logfile=-", "--worker-tmp-dir=/dev/shm", "signup:create_app()"]
