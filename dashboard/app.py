"""The dashboard's HTTP server: pages, the read API, actions and live events.

FastAPI (on Starlette, served by uvicorn) because the read API is described by an OpenAPI
document generated from the same pydantic models the handlers return (checked in as
``dashboard/openapi.json`` and tested equal); aiohttp, already a dependency, has no such
generator, and a hand-written document drifts.

Every ``/api/orgs/{org}/…`` route and every ``/orgs/{org}/…`` page first checks the
session: none is 401 (a page redirects to the login), another organisation's is 403.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from fastapi import Body, Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from sse_starlette import EventSourceResponse

from dashboard.dead_letters import organization_dead_letters
from dashboard.exceptions import LoginRefusedError, NotConfiguredError
from dashboard.login import verify
from dashboard.sessions import COOKIE, Session, SessionStore
from dashboard.settings import DashboardSettings
from dashboard.tenant_link import TenantLink, TenantLinks
from dashboard.views import (
    AlertView,
    BackfillSummary,
    CommandAnswer,
    CommandBody,
    DashboardSummary,
    DashboardView,
    DeadLetterView,
    Login,
    MetricState,
    Problem,
    SessionView,
    TemplateParamView,
    TemplateView,
    TransformerHistory,
)
from schema import reads
from schema.db import Database
from schema.exceptions import ServiceUnavailableError
from streams.messages import COMMAND_ADAPTER
from streams.settings import Settings
from templates import load_templates

SESSION_CHECK_S = 5.0
"""How often a quiet event stream checks that its session still holds."""
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "not logged in"},
    422: {"model": Problem, "description": "a parameter or body that does not validate"},
    403: {"model": Problem, "description": "another organisation's"},
}


@dataclass
class Services:
    """What the handlers share: the settings, the database, sessions and Kafka links."""

    settings: Settings
    dashboard: DashboardSettings
    db: Database
    sessions: SessionStore
    links: TenantLinks


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


Svc = Annotated[Services, Depends(services)]


def session_of(request: Request, svc: Svc) -> Session:
    session = svc.sessions.get(request.cookies.get(COOKIE))
    if session is None:
        raise HTTPException(401, "not logged in")
    return session


def org_session(org: str, session: Annotated[Session, Depends(session_of)]) -> Session:
    """The session, if it is the organisation's the path names."""
    if session.organization_id != org:
        raise HTTPException(403, f"this is not organisation {session.organization_id!r}'s")
    return session


OrgSession = Annotated[Session, Depends(org_session)]


async def link_of(svc: Services, session: Session) -> TenantLink:
    """The organisation's Kafka link (opened again if it was closed)."""
    link = svc.links.get(session.organization_id)
    if link is None or link.password.get_secret_value() != session.password.get_secret_value():
        tenant = await verify(svc.settings, session.organization_id, session.password)
        link = await svc.links.open(tenant, session.password)
    return link


def one_line(exc: ValidationError) -> str:
    """A validation error as one line: where and what, for each problem."""
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"
        for error in exc.errors(include_url=False)
    )


def create_app(settings: Settings, dashboard: DashboardSettings) -> FastAPI:
    secret = dashboard.session_secret
    svc = Services(
        settings=settings,
        dashboard=dashboard,
        db=Database(settings.database_url.get_secret_value(), max_size=4),
        sessions=SessionStore(
            secret.get_secret_value() if secret else secrets.token_urlsafe(32),
            dashboard.session_ttl_s,
        ),
        links=TenantLinks(),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await svc.links.close_all()
            await svc.db.close()

    app = FastAPI(
        title="metricloom dashboard",
        version="1",
        summary="An organisation's metrics, charts, templates, transformers and dead letters.",
        description=(
            "Log in with `POST /api/login` (the organisation's Kafka password); the session"
            " cookie then authorises `/api/orgs/{org}/…` for that organisation only."
        ),
        lifespan=lifespan,
    )
    app.state.services = svc

    @app.exception_handler(ServiceUnavailableError)
    async def unavailable(request: Request, exc: ServiceUnavailableError) -> JSONResponse:
        return JSONResponse({"detail": str(exc).splitlines()[0][:500]}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        """A body or parameter that does not validate: one line, like every refusal."""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        return JSONResponse({"detail": problems}, status_code=422)

    @app.exception_handler(NotConfiguredError)
    async def not_configured(request: Request, exc: NotConfiguredError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    # --- sessions ------------------------------------------------------------------

    @app.post(
        "/api/login",
        responses={401: {"model": Problem}, 422: {"model": Problem}},
        tags=["session"],
    )
    async def login(body: Login, response: Response, svc: Svc) -> SessionView:
        """Log in as an organisation with its Kafka password (checked by the broker)."""
        try:
            tenant = await verify(svc.settings, body.organization_id, body.password)
        except LoginRefusedError as exc:
            raise HTTPException(401, str(exc)) from exc
        await svc.links.open(tenant, body.password)
        session, cookie = svc.sessions.create(body.organization_id, body.password)
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=int(svc.sessions.ttl_s),
            httponly=True,
            samesite="strict",
            secure=svc.dashboard.cookie_secure,
        )
        return SessionView(organization_id=session.organization_id)

    @app.post("/api/logout", status_code=204, tags=["session"])
    async def logout(request: Request, svc: Svc) -> Response:
        session = svc.sessions.get(request.cookies.get(COOKIE))
        if session is not None:
            svc.sessions.drop(session)
            if session.organization_id not in svc.sessions.organizations():
                await svc.links.close(session.organization_id)
        response = Response(status_code=204)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/api/session", responses=ERRORS, tags=["session"])
    async def current(session: Annotated[Session, Depends(session_of)]) -> SessionView:
        return SessionView(organization_id=session.organization_id)

    # --- the read API ---------------------------------------------------------------

    @app.get("/api/templates", tags=["read"])
    async def templates() -> list[TemplateView]:
        """The template catalogue: what a metric can be made from, with its parameters."""
        return [
            TemplateView(
                id=t.id,
                name=t.name,
                description=t.description,
                provider=t.provider,
                params=[TemplateParamView(name=p.name, pattern=p.pattern) for p in t.params],
                default_poll_frequency=t.default_poll_frequency,
                default_chart_type=t.default_chart_type,
                has_history=t.historical is not None,
                historical_data_limit_days=t.historical_data_limit_days,
                unit=t.unit,
            )
            for t in sorted(load_templates().values(), key=lambda t: t.id)
        ]

    @app.get("/api/orgs/{org}/metrics", responses=ERRORS, tags=["read"])
    async def metrics(org: str, session: OrgSession, svc: Svc) -> list[MetricState]:
        """The organisation's metrics with their state and backfill progress."""
        async with svc.db.transaction() as conn:
            return [MetricState.of(found) for found in await reads.metrics(conn, org)]

    @app.get("/api/orgs/{org}/metrics/{metric_id}", responses=ERRORS, tags=["read"])
    async def metric(org: str, metric_id: UUID, session: OrgSession, svc: Svc) -> MetricState:
        async with svc.db.transaction() as conn:
            found = await reads.metric(conn, org, metric_id)
        if found is None:
            raise HTTPException(404, f"organisation {org!r} has no metric {metric_id}")
        return MetricState.of(found)

    @app.get("/api/orgs/{org}/dashboards", responses=ERRORS, tags=["read"])
    async def dashboards(org: str, session: OrgSession, svc: Svc) -> list[DashboardSummary]:
        async with svc.db.transaction() as conn:
            return [DashboardSummary.of(found) for found in await reads.dashboards(conn, org)]

    @app.get("/api/orgs/{org}/dashboards/{dashboard_id}", responses=ERRORS, tags=["read"])
    async def dashboard_view(
        org: str, dashboard_id: str, session: OrgSession, svc: Svc
    ) -> DashboardView:
        """A dashboard's charts with their current config and their metric's state."""
        async with svc.db.transaction() as conn:
            board = await reads.dashboard(conn, org, dashboard_id)
            shown = [chart.metric_id for chart in board.charts] if board else []
            states = await reads.metrics(conn, org, shown)
        found = DashboardView.of(board, states) if board else None
        if found is None:
            raise HTTPException(404, f"organisation {org!r} has no dashboard {dashboard_id!r}")
        return found

    @app.get("/api/orgs/{org}/transformers", responses=ERRORS, tags=["read"])
    async def transformers(org: str, session: OrgSession, svc: Svc) -> list[TransformerHistory]:
        """Every transformer the organisation's metrics and charts use, each version's code."""
        async with svc.db.transaction() as conn:
            return [TransformerHistory.of(found) for found in await reads.transformers(conn, org)]

    @app.get("/api/orgs/{org}/dead-letters", responses=ERRORS, tags=["read"])
    async def dead_letters(org: str, session: OrgSession, svc: Svc) -> list[DeadLetterView]:
        """The organisation's dead letters (30 days), newest first."""
        return await organization_dead_letters(svc.settings, org)

    @app.get("/api/orgs/{org}/backfill", responses=ERRORS, tags=["read"])
    async def backfill(org: str, session: OrgSession, svc: Svc) -> list[BackfillSummary]:
        """Each backfill on ``backfill-progress.<org>`` (7 days): chunks written of all."""
        link = await link_of(svc, session)
        return [tally.summary() for tally in link.backfill.values()]

    @app.get("/api/orgs/{org}/alerts", responses=ERRORS, tags=["read"])
    async def alerts(org: str, session: OrgSession, svc: Svc) -> list[AlertView]:
        """The organisation's alerts (``alerts.<org>``), newest first."""
        link = await link_of(svc, session)
        return [AlertView.model_validate(alert.model_dump()) for alert in reversed(link.alerts)]

    # --- actions and live events -----------------------------------------------------

    @app.post(
        "/api/orgs/{org}/commands",
        responses={**ERRORS, 504: {"model": Problem}},
        tags=["commands"],
    )
    async def command(
        org: str, body: Annotated[CommandBody, Body()], session: OrgSession, svc: Svc
    ) -> CommandAnswer:
        """Send a command to ``commands.<org>`` as the organisation (like any producer)
        and answer with the worker's result. The body is a command of the README's
        Commands section; ``organization_id`` may be left out."""
        named = body.get("organization_id", org)
        if named != org:
            raise HTTPException(422, f"the command names organisation {named!r}, not {org!r}")
        try:
            parsed = COMMAND_ADAPTER.validate_python({**body, "organization_id": org})
        except ValidationError as exc:
            raise HTTPException(422, one_line(exc)) from exc
        link = await link_of(svc, session)
        try:
            result = await link.send(parsed, svc.dashboard.command_timeout_s)
        except TimeoutError as exc:
            raise HTTPException(504, "no worker answered in time (is a worker running?)") from exc
        return CommandAnswer.model_validate(result.model_dump())

    @app.get("/api/orgs/{org}/events", responses=ERRORS, tags=["live"])
    async def events(
        request: Request, org: str, session: OrgSession, svc: Svc
    ) -> EventSourceResponse:
        """Server-sent events from the organisation's topics: ``chart`` (a
        ChartConfigMessage: the newest of each chart first, then each new one), ``alert``,
        ``backfill`` (a backfill's tally) and ``result``. The stream ends when the session
        does (logout, expiry)."""
        link = await link_of(svc, session)
        cookie = request.cookies.get(COOKIE)

        async def stream() -> AsyncIterator[dict[str, str]]:
            async with link.listen() as queue:
                while True:
                    try:
                        event = await asyncio.wait_for(queue.get(), SESSION_CHECK_S)
                    except TimeoutError:
                        if svc.sessions.get(cookie) is None:
                            return
                        continue
                    if event is None:  # the link stopped
                        return
                    yield {"event": event.kind, "data": json.dumps(event.data)}

        return EventSourceResponse(stream(), ping=15)

    # --- pages -----------------------------------------------------------------------

    index = dashboard.web_dir / "index.html"

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    async def home(request: Request, svc: Svc) -> Response:
        session = svc.sessions.get(request.cookies.get(COOKIE))
        target = f"/orgs/{session.organization_id}" if session else "/login"
        return RedirectResponse(target, status_code=303)

    @app.get("/login", include_in_schema=False)
    async def login_page() -> FileResponse:
        return FileResponse(index)

    @app.get("/orgs/{org}", include_in_schema=False)
    @app.get("/orgs/{org}/{rest:path}", include_in_schema=False)
    async def page(request: Request, org: str, svc: Svc) -> Response:
        """The app's pages, for the session's own organisation only."""
        session = svc.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        if session.organization_id != org:
            return HTMLResponse(
                "<!doctype html><title>Refused</title><h1>403: another organisation's page</h1>"
                f"<p>You are logged in as {session.organization_id!r}.</p>",
                status_code=403,
            )
        return FileResponse(index)

    if (dashboard.web_dir / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=dashboard.web_dir / "assets"), name="assets")
    return app
