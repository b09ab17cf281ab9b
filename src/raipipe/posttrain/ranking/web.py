"""The ranking page: a small server-rendered FastAPI app for people ranking candidate responses.

No external assets (raters may work offline or behind strict networks). Each rater sees the
candidates in their own fixed shuffled order, so position bias does not line up across raters, and
never sees a candidate's origin (e.g. whether a safety system prompt produced it). Form posts
validate and redirect (post/redirect/get); the JSON endpoints serve exports and dashboards."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from sqlalchemy import select

from raipipe.policy import load_pack
from raipipe.posttrain.ranking.agreement import agreement
from raipipe.posttrain.ranking.jsonl import export_dicts
from raipipe.posttrain.ranking.store_ops import (
    HUMAN_RATING_KEYS,
    Item,
    RankingError,
    check_rater,
    find_policy,
    list_rankings,
    load_item,
    next_item,
    progress,
    save_ranking,
)
from raipipe.store import open_store
from raipipe.store.posttrain_tables import Ranking
from raipipe.web_support import page_env, see_other, templates_root

RATER_COOKIE, SKIP_COOKIE = "raipipe_rater", "raipipe_skipped"
_MAX_SKIP_COOKIE = 3000  # bytes; the oldest skips are forgotten first


def templates_dir() -> Path:
    return templates_root() / "rank"


def display_order(item: Item, rater_id: str) -> list[int]:
    """Candidate ids in this rater's fixed shuffled order (same rater + item → same order)."""
    def key(cid: int) -> str:
        return hashlib.sha256(f"{rater_id}|{item.batch_id}|{item.record_id}|{cid}".encode()).hexdigest()

    return sorted(item.candidate_ids, key=key)


def _read_skips(request: Request) -> list[tuple[str, str]]:
    raw = request.cookies.get(SKIP_COOKIE, "")
    try:
        data = json.loads(base64.urlsafe_b64decode(raw.encode()).decode()) if raw else []
        return [(str(b), str(r)) for b, r in data]
    except (ValueError, TypeError):
        return []


def _skip_cookie(skips: list[tuple[str, str]]) -> str:
    while True:
        value = base64.urlsafe_b64encode(json.dumps(skips).encode()).decode()
        if len(value) <= _MAX_SKIP_COOKIE or not skips:
            return value
        skips = skips[1:]


def _item_url(batch_id: str, record_id: str, **extra: str) -> str:
    return "/item?" + urlencode({"batch": batch_id, "record": record_id, **extra})


def parse_form_ratings(form: dict[str, Any]) -> dict[str, dict[str, str]]:
    """help_<id> / adh_<id> form fields → {id: {'helpfulness': v, 'adherence': v}} (blank ones left out)."""
    names = {"help": HUMAN_RATING_KEYS[0], "adh": HUMAN_RATING_KEYS[1]}
    out: dict[str, dict[str, str]] = {}
    for key, value in form.items():
        prefix, _, cid = key.partition("_")
        if prefix in names and cid and str(value).strip():
            out.setdefault(cid, {})[names[prefix]] = str(value).strip()
    return out


class _Site:
    """What every route needs: the store, the batch it serves, the policy pack and the page templates."""

    def __init__(self, store_url: str | Path, batch_id: str | None, pack: Any):
        self.sf = open_store(store_url)
        self.batch_id = batch_id
        if pack is None:
            pack = load_pack()
        self.pack = pack
        self.env = page_env("rank")

    def render(self, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(name).render(batch_id=self.batch_id, **ctx), status_code=status)

    @staticmethod
    def rater_of(request: Request) -> str | None:
        raw = request.cookies.get(RATER_COOKIE)
        if not raw:
            return None
        try:
            return check_rater(raw, "human")
        except RankingError:
            return None

    def item_page(self, request: Request, rater: str, item: Item, error: str = "", status: int = 200,
                  saved: str = "", saved_url: str = "") -> HTMLResponse:
        with self.sf() as s:
            prog = progress(s, self.batch_id, rater)
            prev = s.scalars(select(Ranking).where(Ranking.batch_id == item.batch_id,
                             Ranking.record_id == item.record_id, Ranking.rater_id == rater)).first()
        by_id = {c.id: c for c in item.candidates}
        shown = [by_id[cid] for cid in display_order(item, rater)]
        return self.render("item.html.j2", status=status, rater=rater, item=item, cands=shown, n=len(shown),
                           progress=prog, policy=find_policy(self.pack, item.policy_id), prev=prev, error=error,
                           saved=saved, saved_url=saved_url, skipped=len(_read_skips(request)))

    def wrong_batch(self, batch: str, status: int) -> PlainTextResponse | None:
        if self.batch_id is not None and batch != self.batch_id:
            return PlainTextResponse(f"this server ranks batch {self.batch_id!r} only", status_code=status)
        return None


def create_app(store_url: str | Path, batch_id: str | None = None, pack: Any = None) -> FastAPI:
    """The ranking app over a store; `batch_id` limits it to one sample batch."""
    site = _Site(store_url, batch_id, pack)
    app = FastAPI(title="raipipe ranking", docs_url=None, redoc_url=None)
    _add_session_routes(app, site)
    _add_page_routes(app, site)
    _add_rank_routes(app, site)
    _add_api_routes(app, site)
    return app


def _set_rater(site: _Site, rater_id: str) -> Response:
    try:
        who = check_rater(rater_id, "human")
    except RankingError as exc:
        return site.render("login.html.j2", status=400, error=str(exc))
    resp = see_other("/")
    resp.set_cookie(RATER_COOKIE, who, max_age=180 * 86400, httponly=True, samesite="lax")
    resp.delete_cookie(SKIP_COOKIE)
    return resp


def _add_session_routes(app: FastAPI, site: _Site) -> None:
    """Who is rating (a rater id in a cookie), and the skip list."""

    @app.post("/rater")
    def set_rater(rater_id: str = Form(...)) -> Response:
        return _set_rater(site, rater_id)

    @app.post("/logout")
    def logout() -> Response:
        resp = see_other("/")
        resp.delete_cookie(RATER_COOKIE)
        resp.delete_cookie(SKIP_COOKIE)
        return resp

    @app.post("/skip")
    def skip(request: Request, batch_id_: str = Form(..., alias="batch_id"),
             record_id: str = Form(...)) -> Response:
        skips = [k for k in _read_skips(request) if k != (batch_id_, record_id)] + [(batch_id_, record_id)]
        resp = see_other("/")
        resp.set_cookie(SKIP_COOKIE, _skip_cookie(skips), httponly=True, samesite="lax")
        return resp

    @app.post("/unskip")
    def unskip() -> Response:
        resp = see_other("/")
        resp.delete_cookie(SKIP_COOKIE)
        return resp


def _add_page_routes(app: FastAPI, site: _Site) -> None:
    """The pages a rater reads: the next item, one item, and the agreement summary."""

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request, rater: str | None = Query(None), saved: str = Query(""),
             saved_batch: str = Query("")) -> Response:
        if rater is not None:
            return _set_rater(site, rater)
        who = site.rater_of(request)
        if who is None:
            return site.render("login.html.j2", error="")
        with site.sf() as s:
            item = next_item(s, who, site.batch_id, exclude=set(_read_skips(request)))
            prog = progress(s, site.batch_id, who)
            mine = [] if item else list_rankings(s, batch_id=site.batch_id, rater_id=who)
        saved_url = _item_url(saved_batch, saved) if saved and saved_batch else ""
        if item is None:
            done = [(r.record_id, _item_url(r.batch_id, r.record_id)) for r in mine]
            return site.render("done.html.j2", rater=who, progress=prog, skipped=len(_read_skips(request)),
                               saved=saved, saved_url=saved_url, done=done)
        extra = {"saved": saved, "saved_batch": saved_batch} if saved else {}
        return see_other(_item_url(item.batch_id, item.record_id, **extra))

    @app.get("/item", response_class=HTMLResponse)
    def show_item(request: Request, batch: str = Query(...), record: str = Query(...),
                  saved: str = Query(""), saved_batch: str = Query("")) -> Response:
        who = site.rater_of(request)
        if who is None:
            return see_other("/")
        if (refused := site.wrong_batch(batch, 404)) is not None:
            return refused
        with site.sf() as s:
            item = load_item(s, batch, record)
        if item is None:
            return PlainTextResponse(f"no candidates for record {record!r} in batch {batch!r}", status_code=404)
        return site.item_page(request, who, item, saved=saved,
                              saved_url=_item_url(saved_batch, saved) if saved and saved_batch else "")

    @app.get("/agreement", response_class=HTMLResponse)
    def agreement_page(request: Request) -> Response:
        with site.sf() as s:
            report = agreement(list_rankings(s, batch_id=site.batch_id))
            prog = progress(s, site.batch_id, site.rater_of(request))
        return site.render("agreement.html.j2", rater=site.rater_of(request), report=report, progress=prog)


def _add_rank_routes(app: FastAPI, site: _Site) -> None:
    """Saving a ranking: a bad one re-renders the item with the error, nothing half-saved."""

    @app.post("/rank")
    async def rank(request: Request) -> Response:
        who = site.rater_of(request)
        if who is None:
            return see_other("/")
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        b, r = form.get("batch_id", ""), form.get("record_id", "")
        if (refused := site.wrong_batch(b, 400)) is not None:
            return refused
        order = [x for x in form.get("order", "").split(",") if x.strip()]
        try:
            with site.sf() as s:
                save_ranking(s, b, r, who, order, rater_kind="human", ratings=parse_form_ratings(form),
                             note=form.get("note", ""))
                s.commit()
        except RankingError as exc:
            with site.sf() as s:
                item = load_item(s, b, r)
            if item is None:
                return PlainTextResponse(str(exc), status_code=400)
            return site.item_page(request, who, item, error=str(exc), status=400)
        resp = see_other("/?" + urlencode({"saved": r, "saved_batch": b}))
        resp.set_cookie(SKIP_COOKIE, _skip_cookie([k for k in _read_skips(request) if k != (b, r)]),
                        httponly=True, samesite="lax")
        return resp


def _add_api_routes(app: FastAPI, site: _Site) -> None:
    """JSON/JSONL for scripts: rankings, progress, agreement."""

    @app.get("/api/rankings")
    def api_rankings(kind: str | None = Query(None, pattern="^(human|ai)$")) -> JSONResponse:
        with site.sf() as s:
            return JSONResponse(export_dicts(s, site.batch_id, kind))

    @app.get("/api/rankings.jsonl")
    def api_rankings_jsonl(kind: str | None = Query(None, pattern="^(human|ai)$")) -> PlainTextResponse:
        with site.sf() as s:
            body = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in export_dicts(s, site.batch_id, kind))
        return PlainTextResponse(body, media_type="application/jsonl",
                                 headers={"Content-Disposition": 'attachment; filename="rankings.jsonl"'})

    @app.get("/api/progress")
    def api_progress(rater: str | None = Query(None)) -> JSONResponse:
        with site.sf() as s:
            return JSONResponse(progress(s, site.batch_id, rater).model_dump())

    @app.get("/api/agreement")
    def api_agreement() -> JSONResponse:
        with site.sf() as s:
            return JSONResponse(agreement(list_rankings(s, batch_id=site.batch_id)).model_dump())


def serve(store_url: str | Path, batch_id: str | None = None, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Run the ranking page with uvicorn (local by default: the page has no login beyond a rater id)."""
    import uvicorn

    uvicorn.run(create_app(store_url, batch_id), host=host, port=port, log_level="info")
