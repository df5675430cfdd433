"""Credito's web page: a form built from the served model's schema (GET /v1/model on the REST
gateway), one applicant scored (POST /predict), and the answer in words: probability of default,
score, decision, the reasons, and the model that answered. Every refusal of the gateway gets its
own message. The HTTP lives in client.py.

Settings: gateway_url and api_key in .streamlit/secrets.toml of the working directory (or
~/.streamlit/secrets.toml, where Streamlit looks; see secrets.toml.example), else the environment
variables CREDITO_GATEWAY_URL and CREDITO_API_KEY. Run: cd ui && streamlit run app.py
"""
import math
import os
import re

import streamlit as st

import client

MODEL_CACHE_S = 60        # the form's schema is fetched again after this long
SECRETS_HELP = ("Copy `ui/.streamlit/secrets.toml.example` to `.streamlit/secrets.toml` in the "
                "folder Streamlit starts from (`cd ui && streamlit run app.py`: "
                "`ui/.streamlit/secrets.toml`) and set `gateway_url` and `api_key` (a key from "
                "`creditoctl apikey new`), or set `CREDITO_GATEWAY_URL` and `CREDITO_API_KEY`.")


def settings():
    """(gateway_url, api_key): secrets.toml first, then the environment."""
    url = key = None
    if st.secrets.load_if_toml_exists():
        url = st.secrets.get("gateway_url")
        key = st.secrets.get("api_key")
    url = url or os.environ.get("CREDITO_GATEWAY_URL")
    key = key or os.environ.get("CREDITO_API_KEY")
    # A pasted key often brings a newline; the gateway compares keys byte for byte.
    return str(url or "").strip(), str(key or "").strip()


def label(name):
    """A feature's name as a person reads it: credit_amount -> Credit amount."""
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def md(text):
    """text with Markdown's special characters escaped (categories hold <, *, / ...)."""
    return re.sub(r"([\\`*_\[\]<>#|~$])", r"\\\1", str(text))


def show_value(v):
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


@st.cache_data(ttl=MODEL_CACHE_S, show_spinner=False)
def load_model(url, key):
    """The served model, cached per gateway and key (errors are not cached)."""
    return client.Client(url, key).get_model()


# ---- errors ----

def explain(err, url, where):
    """One clear message in the page for a GatewayError raised while doing `where`."""
    if isinstance(err, client.AuthError):
        st.error("**The gateway refused the API key** (HTTP %s: %s). Check `api_key` in "
                 "`.streamlit/secrets.toml`; `creditoctl apikey new` makes one, and the "
                 "gateway must list its hash in `--api-keys-file`."
                 % (err.status, md(err.detail or "not authenticated")))
    elif isinstance(err, client.RateLimited):
        wait = ("Try again in %d second%s." % (err.retry_after,
                                               "" if err.retry_after == 1 else "s")
                if err.retry_after is not None else "Try again in a minute.")
        st.warning("**Too many requests** for this API key: %s. %s"
                   % (md(err.detail or "rate limit exceeded"), wait))
    elif isinstance(err, client.ValidationError):
        lines = ["**The gateway did not accept the applicant** (HTTP 422):"]
        for e in err.errors:
            lines.append("- %s: %s" % ("**%s**" % md(label(e.field)) if e.field else "the request",
                                       md(e.msg)))
        st.error("\n".join(lines))
    elif isinstance(err, client.Unavailable):
        if err.status is None:
            st.error("**Cannot reach the gateway** at `%s` while %s: %s. Is `credito-gateway` "
                     "running there, and is `gateway_url` right?" % (url, where, md(err.reason)))
        else:
            st.error("**The gateway is up but cannot score right now** (HTTP %s): %s. Try "
                     "again shortly." % (err.status, md(err.reason or err)))
    else:
        st.error("**The gateway answered with an error** while %s (HTTP %s): %s"
                 % (where, err.status if err.status is not None else "-", md(err)))
    if err.request_id:
        st.caption("Request id: `%s`" % err.request_id)


# ---- the form ----

def widget(f, version):
    """The input for one feature; returns its value (None: left empty, not sent)."""
    key = "v%d:%s" % (version, f.name)
    help_text = (f.description + " " if f.description else "") + "(`%s`%s)" % (
        f.name, "" if f.required else ", optional")
    if f.kind == client.CATEGORICAL and f.categories:
        index = f.categories.index(f.default) if f.default in f.categories else None
        return st.selectbox(label(f.name), f.categories, index=index, key=key, help=help_text,
                            placeholder="Choose one")
    if f.kind == client.CATEGORICAL:
        v = st.text_input(label(f.name), value=f.default or "", key=key, help=help_text)
        return v or None
    d = f.default
    if d is not None and float(d).is_integer() and abs(d) < 2 ** 53:
        return st.number_input(label(f.name), value=int(d), step=1, key=key, help=help_text)
    return st.number_input(label(f.name), value=None if d is None else float(d), key=key,
                           help=help_text, placeholder="Enter a number")


def form(model):
    """The applicant form; returns (submitted, features, slots): the values to send and an
    empty slot under each field for its error."""
    values, slots = {}, {}
    with st.form("applicant"):
        st.markdown("**Applicant**: every field starts at the training data's typical value.")
        cols = st.columns(2)
        for i, f in enumerate(model.features):
            with cols[i % 2]:
                values[f.name] = widget(f, model.version)
                slots[f.name] = st.empty()
        submitted = st.form_submit_button("Score the applicant", type="primary")
    features = {k: v for k, v in values.items() if v is not None}
    return submitted, features, slots


# ---- the answer ----

def reason_words(r, features, model):
    """One reason as a sentence: the feature, the applicant's value, how much it raised the
    odds of default (impact is its share of the log-odds)."""
    name = label(r.feature)
    if r.feature in features:
        what = "**%s** is **%s**" % (md(name), md(show_value(features[r.feature])))
    else:
        what = "**%s** was not given" % md(name)
    odds = math.exp(min(r.impact, 50.0))
    return "%s: this raised the risk of default, multiplying its odds by %.2f." % (what, odds)


def show(p, features, model):
    st.subheader("Result")
    c1, c2, c3 = st.columns(3)
    c1.metric("Probability of default", "%.1f%%" % (100.0 * p.probability))
    c2.metric("Score", "%.0f" % p.score)
    c3.metric("Decision", p.decision.capitalize())
    threshold = model.scorecard.get("threshold")
    at = " (threshold %.0f%%)" % (100.0 * threshold) if threshold else ""
    if p.decision == "approve":
        st.success("**Approve**: the probability of default is %.1f%%%s."
                   % (100.0 * p.probability, at))
    else:
        st.error("**Decline**: the probability of default is %.1f%%%s."
                 % (100.0 * p.probability, at))
    if p.reasons:
        st.markdown("**Why**: the features that raised the risk of default most, strongest first")
        st.markdown("\n".join("%d. %s" % (i + 1, reason_words(r, features, model))
                              for i, r in enumerate(p.reasons)))
    else:
        st.markdown("**Why**: no feature raised the risk of default for this applicant.")
    st.caption("Scored by model **%s** version **%d**%s · request `%s`"
               % (md(p.model_name), p.model_version,
                  " (alias %s)" % md(p.model_alias) if p.model_alias else "", p.request_id))


def sidebar(model, url):
    st.sidebar.header("Model")
    st.sidebar.markdown("**%s** version **%d**%s" % (md(model.name), model.version,
                                                     " (%s)" % md(model.alias)
                                                     if model.alias else ""))
    for key, name in (("test_roc_auc", "Test AUC"), ("test_gini", "Gini"), ("test_ks", "KS")):
        if key in model.metrics:
            st.sidebar.metric(name, "%.3f" % model.metrics[key])
    st.sidebar.caption("Gateway: `%s`" % url)


def main():
    st.set_page_config(page_title="Credito", layout="wide")
    st.title("Credito: credit scoring")
    url, key = settings()
    if not url or not key:
        st.error("**No gateway configured.** " + SECRETS_HELP)
        st.stop()
    try:
        model = load_model(url, key)
    except ValueError as e:
        st.error("**`gateway_url` is not usable**: %s. %s" % (md(e), SECRETS_HELP))
        st.stop()
    except client.GatewayError as e:
        explain(e, url, "reading the model")
        st.button("Try again")
        st.stop()
    sidebar(model, url)
    submitted, features, slots = form(model)
    if not submitted:
        return
    try:
        with st.spinner("Scoring..."):
            p = client.Client(url, key).predict(features)
    except client.ValidationError as e:
        for name, msgs in e.by_field().items():
            if name in slots:
                slots[name].error("; ".join(msgs))
        explain(e, url, "scoring")
        # The form matches the model it was built from; a new model may want other fields.
        load_model.clear()
        st.button("Reload the form from the served model")
        return
    except client.GatewayError as e:
        explain(e, url, "scoring")
        return
    if p.model_version != model.version or p.model_name != model.name:
        load_model.clear()  # another model answered: the next run rebuilds the form
    show(p, features, model)


main()
