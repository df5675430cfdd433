"""A small client of Credito's REST gateway (docs/gateway.md) for the Streamlit UI: the served
model's schema (GET /v1/model) and one prediction (POST /predict), every failure as a typed error.

Standard library only, so it runs and is tested without Streamlit:

    c = Client("http://127.0.0.1:8080", api_key)
    model = c.get_model()              # ModelInfo: features with kinds, categories, defaults
    p = c.predict(model.defaults())    # Prediction: probability, score, decision, reasons

Errors (all GatewayError): AuthError (401/403), ValidationError (422, one FieldError per problem),
RateLimited (429, with retry_after seconds), Unavailable (the gateway cannot be reached or did not
answer in time, or it answered 502/503/504), GatewayError itself for any other answer.
"""
import email.utils
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.client import HTTPException

DEFAULT_TIMEOUT = 5.0          # seconds, for connecting and for each read
MAX_RESPONSE = 4 << 20         # bytes read from any answer; more is refused
USER_AGENT = "credito-ui/1"

NUMERIC = "numeric"
CATEGORICAL = "categorical"
_KINDS = {"FEATURE_KIND_NUMERIC": NUMERIC, "FEATURE_KIND_CATEGORICAL": CATEGORICAL,
          1: NUMERIC, 2: CATEGORICAL}


# ---- errors ----

class GatewayError(Exception):
    """The gateway refused or failed the request. status is the HTTP status (None when no
    answer came), detail the body's "detail" (a string, or FastAPI's list for 422), request_id
    the gateway's X-Request-ID when it sent one."""

    def __init__(self, message, status=None, detail=None, request_id=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = detail
        self.request_id = request_id


class AuthError(GatewayError):
    """401 (no key, a wrong key) or 403: the API key was not accepted."""


@dataclass
class FieldError:
    """One problem of a 422: the feature it concerns (None when it concerns the whole body,
    such as JSON that does not parse), pydantic's error type, its message, the value sent."""
    field: object
    type: str
    msg: str
    input: object = None
    ctx: dict = None


class ValidationError(GatewayError):
    """422: the applicant did not match the model's schema. errors lists every problem."""

    def __init__(self, message, errors, **kw):
        super().__init__(message, **kw)
        self.errors = errors

    def by_field(self):
        """{feature: [message, ...]} for the problems tied to a feature."""
        out = {}
        for e in self.errors:
            if e.field is not None:
                out.setdefault(e.field, []).append(e.msg)
        return out


class RateLimited(GatewayError):
    """429: a rate limit is used up. retry_after is the wait in whole seconds (None when the
    gateway did not say)."""

    def __init__(self, message, retry_after=None, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class Unavailable(GatewayError):
    """The gateway cannot be reached (connection refused, unknown host, no answer within the
    timeout: status None, and reason says which in a few words), or it answered that no
    predictor could serve (502, 503, 504)."""

    def __init__(self, message, reason=None, **kw):
        super().__init__(message, **kw)
        self.reason = reason


# ---- what the gateway answers ----

@dataclass
class Feature:
    """One input of the model: name, NUMERIC or CATEGORICAL, its categories, whether a request
    must carry it, a typical value for a form (None when the model gives none), a description."""
    name: str
    kind: str
    categories: list = field(default_factory=list)
    required: bool = True
    default: object = None
    description: str = ""


@dataclass
class ModelInfo:
    """The served model, from GET /v1/model. metrics maps each metric's key to its value;
    scorecard holds pdo, base_score, base_odds and threshold; raw is the whole answer."""
    name: str
    version: int
    alias: str
    features: list
    target: str = ""
    positive_label: str = ""
    metrics: dict = field(default_factory=dict)
    scorecard: dict = field(default_factory=dict)
    trained_at_ms: int = 0
    sha256: str = ""
    run_id: str = ""
    raw: dict = field(default_factory=dict)

    def feature(self, name):
        """The Feature called name, or None."""
        for f in self.features:
            if f.name == name:
                return f
        return None

    def defaults(self):
        """A complete applicant made of the defaults (the form's starting values)."""
        return {f.name: f.default for f in self.features if f.default is not None}


@dataclass
class Reason:
    """One reason code: a feature that raised the risk, by how much (log-odds), in words."""
    feature: str
    impact: float
    text: str


@dataclass
class Prediction:
    """The answer of POST /predict."""
    probability: float
    score: float
    decision: str
    reasons: list
    request_id: str
    model_name: str
    model_version: int
    model_alias: str
    raw: dict = field(default_factory=dict)


def _get(d, snake, default=None):
    """d[snake], or its protobuf JSON camelCase twin (the gateway emits the proto names; both
    are valid protobuf JSON)."""
    if snake in d:
        return d[snake]
    head, *rest = snake.split("_")
    camel = head + "".join(w.title() for w in rest)
    return d.get(camel, default)


def _feature(d):
    kind = _KINDS.get(d.get("kind"))
    if kind is None:
        raise GatewayError("the model has a feature of an unknown kind: %r" % (d,))
    dv = _get(d, "default_value") or {}
    default = dv.get("number") if kind == NUMERIC else dv.get("text")
    return Feature(name=d["name"], kind=kind, categories=list(d.get("categories") or []),
                   required=bool(d.get("required", False)), default=default,
                   description=d.get("description") or "")


def parse_model(d):
    """A ModelInfo from GET /v1/model's JSON; GatewayError when it is not that shape."""
    try:
        schema = d.get("schema") or {}
        return ModelInfo(
            name=d.get("name", ""), version=int(d.get("version", 0)), alias=d.get("alias", ""),
            features=[_feature(f) for f in schema.get("features", [])],
            target=schema.get("target", ""), positive_label=_get(schema, "positive_label", ""),
            metrics={m["key"]: m["value"] for m in d.get("metrics") or []},
            scorecard=dict(d.get("scorecard") or {}),
            trained_at_ms=int(_get(d, "trained_at_ms", 0)), sha256=d.get("sha256", ""),
            run_id=_get(d, "run_id", ""), raw=d)
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise GatewayError("the gateway's model description is not understood: %s" % e)


def parse_prediction(d):
    """A Prediction from POST /predict's JSON; GatewayError when it is not that shape."""
    try:
        model = d.get("model") or {}
        return Prediction(
            probability=float(d["probability"]), score=float(d["score"]),
            decision=str(d["decision"]),
            reasons=[Reason(r["feature"], float(r["impact"]), r.get("text", ""))
                     for r in d.get("reasons") or []],
            request_id=d.get("request_id", ""), model_name=model.get("name", ""),
            model_version=int(model.get("version", 0)), model_alias=model.get("alias", ""),
            raw=d)
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise GatewayError("the gateway's prediction is not understood: %s" % e)


# ---- the client ----

def _retry_after(headers, now=None):
    """Seconds to wait from Retry-After (seconds or an HTTP date), else X-RateLimit-Reset (Unix
    seconds); None when neither says."""
    now = time.time() if now is None else now
    v = (headers.get("Retry-After") or "").strip()
    if v.isdigit():
        return int(v)
    if v:
        try:
            return max(0, int(email.utils.parsedate_to_datetime(v).timestamp() - now + 0.999))
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    reset = (headers.get("X-RateLimit-Reset") or "").strip()
    if reset.isdigit():
        return max(0, int(reset) - int(now))
    return None


def _field_errors(detail):
    if not isinstance(detail, list):
        return [FieldError(None, "value_error", str(detail))]
    out = []
    for e in detail:
        if not isinstance(e, dict):
            out.append(FieldError(None, "value_error", str(e)))
            continue
        loc = e.get("loc") or []
        # ["body", "duration"] names a feature; ["body", 4] is a byte position in the JSON.
        name = loc[-1] if len(loc) >= 2 and isinstance(loc[-1], str) else None
        out.append(FieldError(name, str(e.get("type", "")), str(e.get("msg", "")),
                              e.get("input"), e.get("ctx")))
    return out


class Client:
    """Talks to one gateway with one API key. Methods raise GatewayError subclasses."""

    def __init__(self, base_url, api_key, timeout=DEFAULT_TIMEOUT):
        u = urllib.parse.urlsplit(base_url or "")
        if u.scheme not in ("http", "https") or not u.netloc:
            raise ValueError("gateway_url must be an http:// or https:// URL, not %r"
                             % (base_url,))
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or ""
        self.timeout = timeout

    def get_model(self):
        """The served model: GET /v1/model."""
        return parse_model(self._call("GET", "/v1/model"))

    def predict(self, features):
        """Scores one applicant (a dict of feature name to number or category): POST /predict.
        ValueError when features is not a dict or holds NaN or an infinity."""
        if not isinstance(features, dict):
            raise ValueError("features must be a dict")
        body = json.dumps(features, allow_nan=False).encode()
        return parse_prediction(self._call("POST", "/predict", body))

    # -- HTTP --

    def _call(self, method, path, body=None):
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        if body is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base_url + path, data=body, headers=headers,
                                     method=method)
        try:
            status, hdrs, data = self._exchange(req)
        except urllib.error.URLError as e:
            raise self._unreachable(e.reason)
        except (OSError, HTTPException) as e:
            raise self._unreachable(e)
        return self._answer(self.base_url + path, status, hdrs, data)

    def _exchange(self, req):
        """(status, headers, body) of one request, whatever the status."""
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return r.status, r.headers, self._read(r)
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.headers, self._read(e)

    def _unreachable(self, cause):
        """The Unavailable error for a failed exchange (cause: an exception or a string)."""
        if isinstance(cause, (socket.timeout, TimeoutError)):
            reason = "no answer within %g s" % self.timeout
        elif isinstance(cause, OSError) and cause.strerror:
            reason = cause.strerror            # "Connection refused", not "[Errno 111] ..."
        else:
            reason = str(cause) or type(cause).__name__
        return Unavailable("cannot reach the gateway at %s: %s" % (self.base_url, reason),
                           reason=reason)

    def _read(self, r):
        data = r.read(MAX_RESPONSE + 1)
        if len(data) > MAX_RESPONSE:
            raise GatewayError("the gateway's answer is larger than %d bytes" % MAX_RESPONSE)
        return data

    def _answer(self, where, status, hdrs, data):
        rid = hdrs.get("X-Request-ID")
        try:
            doc = json.loads(data.decode("utf-8")) if data else None
        except (UnicodeDecodeError, ValueError):
            doc = None
        if 200 <= status < 300:
            if not isinstance(doc, dict):
                raise GatewayError("the gateway answered %s with something that is not a JSON "
                                   "object" % where, status=status, request_id=rid)
            return doc
        detail = doc.get("detail") if isinstance(doc, dict) else None
        text = detail if isinstance(detail, str) else (
            data[:200].decode("utf-8", "replace") if detail is None else "")
        kw = {"status": status, "detail": detail, "request_id": rid}
        if status in (401, 403):
            raise AuthError("the API key was refused (%d): %s" % (status, text), **kw)
        if status == 422:
            errors = _field_errors(detail)
            raise ValidationError("%d field%s not accepted" % (len(errors),
                                                               "" if len(errors) == 1 else "s"),
                                  errors, **kw)
        if status == 429:
            wait = _retry_after(hdrs)
            raise RateLimited("rate limited (429): %s" % text, retry_after=wait, **kw)
        if status in (502, 503, 504):
            raise Unavailable("the gateway could not reach a predictor (%d): %s"
                              % (status, text), reason=text, **kw)
        raise GatewayError("the gateway answered %s with HTTP %d: %s" % (where, status, text),
                           **kw)
