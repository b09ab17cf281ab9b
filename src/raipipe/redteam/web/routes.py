"""Routes of the human red-team page: who is red teaming, the conversations, sending, flagging, and
the findings as JSON for scripts."""

from __future__ import annotations

from fastapi import FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from raipipe.errors import RaipipeError, StoreError, UsageError
from raipipe.redteam.web.app import FLAG_FIELDS, RED_TEAMER_COOKIE, Page, check_red_teamer, status_of
from raipipe.web_support import see_other


def _login(page: Page, raw: str) -> Response:
    try:
        who = check_red_teamer(raw)
    except UsageError as exc:
        return page.render("login.html.j2", status=400, error=str(exc), typed=raw)
    resp = see_other("/")
    resp.set_cookie(RED_TEAMER_COOKIE, who, max_age=180 * 86400, httponly=True, samesite="lax")
    return resp


def add_session_routes(app: FastAPI, page: Page) -> None:
    """Who is red teaming (an id in a cookie), the home page, and starting a conversation."""

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request, red_teamer: str | None = Query(None)) -> Response:
        if red_teamer is not None:
            return _login(page, red_teamer)
        who = page.red_teamer(request)
        if who is None:
            return page.render("login.html.j2", error="", typed="")
        return page.render("home.html.j2", who=who, conversations=page.run.conversations(who),
                           flags=page.run.flags()[:100], out_dir=str(page.run.out))

    @app.post("/red-teamer")
    def set_red_teamer(red_teamer: str = Form("")) -> Response:
        return _login(page, red_teamer)

    @app.post("/logout")
    def logout() -> Response:
        resp = see_other("/")
        resp.delete_cookie(RED_TEAMER_COOKIE)
        return resp

    @app.post("/conversations")
    def new_conversation(request: Request) -> Response:
        who = page.red_teamer(request)
        return see_other(f"/c/{page.run.start(who)}") if who else see_other("/")


def add_chat_routes(app: FastAPI, page: Page) -> None:
    """One conversation: read it, send the next message, flag a turn. Plain `def` routes run in the
    server's thread pool, so a slow target does not stall other pages."""

    @app.get("/c/{conv_id}", response_class=HTMLResponse)
    def show(request: Request, conv_id: str, flagged: str = Query("")) -> Response:
        who = page.red_teamer(request)
        if who is None:
            return see_other("/")
        try:
            return page.chat(who, conv_id, flagged=flagged)
        except StoreError as exc:
            return page.render("error.html.j2", status=404, who=who, error=str(exc))

    @app.post("/c/{conv_id}/send")
    def send(request: Request, conv_id: str, message: str = Form("")) -> Response:
        who = page.red_teamer(request)
        if who is None:
            return see_other("/")
        try:
            page.run.send(conv_id, message, who)
        except RaipipeError as exc:
            return _failed(page, who, conv_id, exc, {"message": message})
        return see_other(f"/c/{conv_id}")  # no #fragment: browsers skip autofocus when a URL has one

    @app.post("/c/{conv_id}/flag")
    def flag(request: Request, conv_id: str, turn: str = Form(""), policy_id: str = Form(""),
             note: str = Form(""), benign: str = Form("")) -> Response:
        who = page.red_teamer(request)
        if who is None:
            return see_other("/")
        form = dict(zip(FLAG_FIELDS, (turn, policy_id, note, benign), strict=True))
        try:
            record = page.run.flag(conv_id, form, who)
        except RaipipeError as exc:
            return _failed(page, who, conv_id, exc, form)
        return see_other(f"/c/{conv_id}?flagged={record.id}")

    @app.get("/api/findings")
    def api_findings() -> JSONResponse:
        return JSONResponse([r.model_dump(mode="json") for r in page.run.flags()])


def _failed(page: Page, who: str, conv_id: str, exc: RaipipeError, form: dict[str, str]) -> Response:
    """The conversation again, with the error and the typed text; a missing conversation is a plain 404."""
    try:
        return page.chat(who, conv_id, status=status_of(exc), error=exc, form=form)
    except StoreError as missing:
        return page.render("error.html.j2", status=404, who=who, error=str(missing))
