"""What plumber keeps out of its artefacts: the values of secrets on a command line or in a message.

A profile, its report and a gate baseline (meant to be committed) record the
script's command line and how it ended. A script is often given credentials
as arguments (``--token=...``, ``--api-key KEY``, ``wandb.api_key=...``) or
URLs that carry them (``https://user:pass@host``, presigned
``?X-Amz-Signature=...``). This module holds the one rule that decides what
is a secret, so that every place that records a command line or a message
applies the same one. The script itself always gets the real values.

The rule, by name: an option or ``key=value`` argument, or a URL query or
fragment parameter, is secret when a word of its name is one of
:data:`SECRET_WORDS` (words split at ``-``, ``_``, ``.`` and camelCase), or
a word ends with one of :data:`SECRET_ENDINGS` (``hftoken``, ``oauth``) or
begins with one of :data:`SECRET_BEGINNINGS` (``passwords``). Single-letter
options (``-p``) are never taken as secret: their meaning (port? password?)
is the script's. A secret option written as two arguments (``--token X``)
has the next argument redacted unless that one starts with ``--``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

#: What a redacted value is replaced with: a plain word, so that a quoted
#: command line (``shlex.join``) stays readable.
MARK = "REDACTED"

#: Whole words of a name that make its value a secret.
SECRET_WORDS = frozenset({
    "token", "secret", "secrets", "password", "passwd", "pwd", "passphrase", "credential",
    "credentials", "creds", "auth", "authorization", "apikey", "key", "signature", "sig",
    "cookie",
})
#: Endings of a word that make it secret (``hftoken``, ``clientsecret``, ``oauth``).
SECRET_ENDINGS = ("token", "secret", "password", "passwd", "apikey", "accesskey", "secretkey",
                  "privatekey", "auth")
#: Beginnings of a word that make it secret (``secretaccesskey``, ``passwords``).
SECRET_BEGINNINGS = ("secret", "passw", "credential")

#: Secret values shorter than this are not searched for in free text: a
#: token of ``1`` would redact every ``1`` of a message.
MIN_KNOWN_LENGTH = 4

_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
#: A URL with its scheme. The scheme is bounded (RFC 3986 sets no limit, real ones
#: are short) so that a long word is scanned in linear time, not once per letter.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s'\"<>]+")
#: ``name=value`` as a bare argument (``db.password=x``, Hydra's ``+api_key=x``).
_ASSIGNMENT = re.compile(r"^(?P<name>[+~]*[A-Za-z_][\w.-]*)=(?P<value>.*)$", re.DOTALL)
#: A query string in free text, with or without the URL's scheme and host.
_QUERY_IN_TEXT = re.compile(r"\?[^\s'\"<>()?]*=[^\s'\"<>()]*")
#: Punctuation that ends a sentence or clause after a query string, kept when it is cut.
_TRAILING_PUNCTUATION = ".,;:!"


def looks_secret(name: str) -> bool:
    """True when a parameter called ``name`` holds a secret by the module's rule."""
    words = _WORD_SPLIT.split(_CAMEL_BOUNDARY.sub("-", name).lower())
    return any(
        word in SECRET_WORDS or word.endswith(SECRET_ENDINGS) or word.startswith(SECRET_BEGINNINGS)
        for word in words if word
    )


def redact_arguments(args: Sequence[str]) -> tuple[str, ...]:
    """``args`` (a command line) with the values of secret options and URL credentials replaced.

    ``--token=X`` becomes ``--token=REDACTED``, ``--token X`` keeps
    ``--token`` and loses ``X``, ``a.password=X`` becomes
    ``a.password=REDACTED``, and every URL in any argument loses its
    userinfo and secret query parameters (see :func:`redact_url`).
    """
    return tuple(shown for shown, _ in _redacted(args))


def secret_values(args: Sequence[str]) -> tuple[str, ...]:
    """The values :func:`redact_arguments` hides, to be searched for in free text."""
    return tuple(
        value for _, hidden in _redacted(args) for value in hidden
        if len(value) >= MIN_KNOWN_LENGTH
    )


def redact_url(url: str) -> str:
    """``url`` without its userinfo (``user:pass@``) and with secret query/fragment values hidden.

    The whole userinfo goes, user name included: a token is often passed as
    the user (``https://TOKEN@github.com/...``). Parameters whose names are
    not secret (``versionId``, ``X-Amz-Date``) are kept: they say which data
    was read.
    """
    return _url_redacted(url)[0]


def redact_urls(text: str) -> str:
    """``text`` with every URL in it passed through :func:`redact_url`."""
    return _URL.sub(lambda match: redact_url(match[0]), text)


def redact_message(text: str, known: Iterable[str] = ()) -> str:
    """A free-text message (an error, a note) fit to record.

    The ``known`` secret values (from :func:`secret_values`) are replaced
    wherever they appear, URLs lose their userinfo, and every query string
    is cut (``?...``): in a message a URL is often relative
    (``/bucket/key?X-Amz-Signature=...``), so its query cannot be told from
    the surrounding words, and a message never needs one.
    """
    for value in sorted(set(known), key=len, reverse=True):
        if len(value) >= MIN_KNOWN_LENGTH:
            text = text.replace(value, MARK)
    text = _URL.sub(lambda match: _without_userinfo(match[0]), text)
    return _QUERY_IN_TEXT.sub(_cut_query, text)


def _redacted(args: Sequence[str]) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Each argument as shown, with the secret values it hid."""
    value_follows = False
    for arg in args:
        if value_follows and not arg.startswith("--"):
            value_follows = False
            yield MARK, (arg,)
            continue
        value_follows = False
        option = _option_name(arg)
        if option is not None and looks_secret(option):
            name, eq, value = arg.partition("=")
            value_follows = not eq
            yield (f"{name}={MARK}", (value,)) if eq else (arg, ())
            continue
        assignment = _ASSIGNMENT.match(arg) if option is None else None
        if assignment is not None and looks_secret(assignment["name"].lstrip("+~")):
            yield f"{assignment['name']}={MARK}", (assignment["value"],)
            continue
        shown, hidden = arg, []
        for match in reversed(list(_URL.finditer(arg))):
            url, secrets = _url_redacted(match[0])
            shown = shown[:match.start()] + url + shown[match.end():]
            hidden.extend(secrets)
        yield shown, tuple(hidden)


def _cut_query(match: re.Match[str]) -> str:
    """``?...`` in place of a query string, with the punctuation that followed it."""
    query = match[0]
    return "?..." + query[len(query.rstrip(_TRAILING_PUNCTUATION)):]


def _option_name(arg: str) -> str | None:
    """The name of an option argument (``--api-key=x`` -> ``api-key``), None for other arguments.

    ``-p`` and other single letters are not named options (their meaning is
    the script's), nor is ``--`` or a negative number.
    """
    if not arg.startswith("-"):
        return None
    name = arg.lstrip("-").split("=", 1)[0]
    if len(name) < 2 or not name[0].isalpha():
        return None
    return name


def _split_authority(url: str) -> tuple[str, str | None, str, str]:
    """``scheme://``, the userinfo (None when absent), the host[:port] and the rest of ``url``."""
    scheme, sep, rest = url.partition("://")
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    authority, tail = rest[:min(ends, default=len(rest))], rest[min(ends, default=len(rest)):]
    userinfo, at, host = authority.rpartition("@")
    return scheme + sep, userinfo if at else None, host, tail


def _url_redacted(url: str) -> tuple[str, list[str]]:
    """``url`` as :func:`redact_url` shows it, and the secret values it hid."""
    prefix, userinfo, host, tail = _split_authority(url)
    hidden = [] if userinfo is None else [userinfo]
    before_fragment, hash_sign, fragment = tail.partition("#")
    path, question, query = before_fragment.partition("?")
    shown = f"{prefix}{'' if userinfo is None else MARK + '@'}{host}{path}"
    for sign, parameters in ((question, query), (hash_sign, fragment)):
        if sign:
            text, secrets = _parameters_redacted(parameters)
            shown += sign + text
            hidden.extend(secrets)
    return shown, hidden


def _parameters_redacted(query: str) -> tuple[str, list[str]]:
    """``a=1&token=x`` -> ``a=1&token=REDACTED``, and the hidden values (``x``)."""
    parts, hidden = [], []
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        if eq and looks_secret(name):
            parts.append(f"{name}={MARK}")
            hidden.append(value)
        else:
            parts.append(part)
    return "&".join(parts), hidden


def _without_userinfo(url: str) -> str:
    prefix, userinfo, host, tail = _split_authority(url)
    return url if userinfo is None else f"{prefix}{MARK}@{host}{tail}"
