"""Request dependencies and the query-parameter parsers the routers share."""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import re
import time
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from .config import Settings
from .db import Database
from .events import Broadcaster
from .metrics import Metrics
from .models import EPOCH, MAX_MS, MIN_MS, TIME_RANGE_TEXT
from .render import Renderer


def get_settings(request: Request) -> Settings:
    """The settings the app was built with (``create_app(settings)``)."""
    return request.app.state.settings


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_broadcaster(request: Request) -> Broadcaster:
    return request.app.state.broadcaster


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def get_renderer(request: Request) -> Renderer:
    return request.app.state.renderer


SettingsDep = Annotated[Settings, Depends(get_settings)]
DbDep = Annotated[Database, Depends(get_db)]
BroadcasterDep = Annotated[Broadcaster, Depends(get_broadcaster)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
RendererDep = Annotated[Renderer, Depends(get_renderer)]


READ_REALM = 'Basic realm="gestor logs"'
READ_AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "LOGGER_READ_TOKEN is set and the request does not carry it",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    }
}


def credentials_match(header: str, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token``: as a bearer
    token, or as the password of HTTP Basic auth (any user name), which is
    what a browser sends once its user typed it at the prompt."""
    scheme, _, given = header.strip().partition(" ")
    given = given.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(given, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        _user, colon, given = decoded.partition(":")
        if not colon:
            return False
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def require_read_token(request: Request) -> None:
    """401 with a Basic challenge unless the request carries LOGGER_READ_TOKEN
    (when one is set). Every read depends on it; /healthz and /metrics do not."""
    token = get_settings(request).read_token
    if not token:
        return
    if not credentials_match(request.headers.get("authorization", ""), token):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "reads need the read token: `Authorization: Bearer <token>`, or HTTP Basic"
            " auth with any user name and the token as password",
            headers={"WWW-Authenticate": READ_REALM},
        )


ReadAuth = Depends(require_read_token)


def invalid(location: str, name: str, message: str, value: Any = None) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors, naming the field."""
    detail: dict[str, Any] = {"type": "value_error", "loc": [location, name], "msg": message}
    if value is not None:
        detail["input"] = value
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=[detail])


_AWARE = TypeAdapter(AwareDatetime)
_RANGE = re.compile(r"^(\d{1,6})([smhdw])$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_time(name: str, value: str | None) -> int | None:
    """An RFC 3339 time (with a zone) or Unix seconds, as epoch milliseconds."""
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or not MIN_MS / 1000 <= seconds <= MAX_MS / 1000:
            raise invalid("query", name, f"time out of range: {TIME_RANGE_TEXT}", value)
        return int(seconds * 1000)
    try:
        moment = _AWARE.validate_python(value)
    except ValidationError as exc:
        msg = exc.errors(include_url=False)[0]["msg"]
        raise invalid(
            "query", name, f"expected RFC 3339 time with zone or Unix seconds: {msg}", value
        ) from None
    ms = (moment - EPOCH) // timedelta(milliseconds=1)
    if not MIN_MS <= ms <= MAX_MS:
        raise invalid("query", name, f"time out of range: {TIME_RANGE_TEXT}", value)
    return ms


def parse_range(value: str | None) -> int | None:
    """A duration like ``15m``, ``6h``, ``7d`` in milliseconds; ``all`` gives None."""
    if value is None or value == "all":
        return None
    match = _RANGE.match(value)
    if not match or int(match.group(1)) == 0:
        raise invalid("query", "range", "expected `all` or a duration such as 15m, 6h, 7d", value)
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def now_ms() -> int:
    return int(time.time() * 1000)
