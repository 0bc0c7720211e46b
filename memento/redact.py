"""Secrets never reach the database file: they are replaced by a typed marker such as
``[REDACTED:github-token]`` before a memory is stored. ``MEMENTO_REDACT=off`` disables it.

What is redacted, in content and in every metadata value (``Memory`` calls :func:`redact`
and :func:`redact_json` on each write: store, store_many, update and both importers):

- tokens recognisable by their shape: private key blocks (PEM of any case, OpenSSH, PGP),
  AWS key ids (and a 40-character secret next to one), GitHub, GitLab, Slack (tokens and
  webhook URLs), Discord webhooks, OpenAI/Anthropic, Stripe, Hugging Face, npm, PyPI,
  SendGrid, Google API keys and JWTs;
- the password of a URL with credentials, any scheme: ``postgres://admin:[REDACTED:url-
  password]@db:5432/app`` (scheme, user and host stay, they are what makes the note useful);
- ``Authorization: Bearer ...`` / ``Basic ...`` headers and a bare ``Bearer <token>``;
- the value of anything named like a secret: ``password``, ``DB_PASSWORD``, ``CLIENT_SECRET``,
  ``STRIPE_SECRET_KEY``, ``api_key``, ``token``, Azure's ``AccountKey``..., written as
  ``key=value``, ``key: value``, ``"key": "value"``, ``**Password**: value``,
  ``--key=value``, ``--key Value1`` or ``?key=value``. A quoted value ends at its closing
  quote; an unquoted one runs to the end of the line, because passwords contain spaces,
  commas and semicolons (``password: correct horse battery staple``) and hiding a little
  too much is the safe way to be wrong (``DB_PASSWORD=x DB_HOST=y`` loses the host too).
  "the password is Qz7hunter2" loses the one word after "is" when it holds a digit or a
  symbol. In metadata, a string or number under such a key is replaced whole
  (``{"password": "[REDACTED:password]"}``).

What is deliberately left alone: code that *reads* or passes on a secret (``password =
getpass()``, ``token = os.environ["TOKEN"]``, ``login(password=password)``), type annotations
(``password: str``), placeholders (``${DB_PASSWORD}``, ``<your-token>``), prose ("the password
policy", "token bucket", "use --password to set it"), hashes, ids, and base64 that is not next
to a secret's name. A secret in a sentence with no name before it ("it is Qz7hunter2") cannot
be told from other text and is not found.

``subject_key`` and ``source`` are identifiers, never rewritten (a rewritten key would no
longer update the memory it names): :func:`check_identifier` refuses one that holds a secret.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable

from .errors import InvalidInputError

# Patterns start with (?<![A-Za-z0-9]) rather than \b: \b fails between "_" and a letter,
# so "DB_PASSWORD" or "x_AKIA..." would slip through.
_START = r"(?<![A-Za-z0-9])"
_END = r"(?![A-Za-z0-9])"

# Whole-match secrets: the match becomes the marker.
_TOKENS: list[tuple[str, re.Pattern[str]]] = [
    (
        "private-key",  # PEM (any case), OpenSSH and PGP; unterminated blocks run to the end
        re.compile(
            r"-----\s*BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?\s*-----.*?"
            r"(?:-----\s*END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?\s*-----|\Z)",
            re.DOTALL | re.IGNORECASE,
        ),
    ),
    ("slack-webhook", re.compile(r"https://hooks\.slack\.com/(?:services|workflows|triggers)/"
                                 r"[A-Za-z0-9_/-]+")),
    ("discord-webhook", re.compile(r"https://(?:\w+\.)?discord(?:app)?\.com/api/webhooks/"
                                   r"\d+/[A-Za-z0-9_-]+")),
    ("github-token", re.compile(_START + r"(?:gh[pousr]_[A-Za-z0-9]{36,}|"
                                r"github_pat_[A-Za-z0-9_]{22,})")),
    ("gitlab-token", re.compile(_START + r"gl(?:pat|dt|rt|ptt|cbt)-[A-Za-z0-9_-]{20,}")),
    ("slack-token", re.compile(_START + r"(?:xox[abposre]|xapp)-[A-Za-z0-9-]{10,}")),
    ("stripe-key", re.compile(_START + r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}")),
    ("stripe-key", re.compile(_START + r"whsec_[A-Za-z0-9]{20,}")),
    # A digit is required so that words such as "sk-learn-compatible-estimators" survive.
    # (The lookbehind also excludes "_" and "-", and the lookahead is bounded, so that a long
    # run such as "sk-sk-sk-..." is scanned once, not once per "sk-".)
    ("openai-key", re.compile(r"(?<![A-Za-z0-9_-])sk-(?=[A-Za-z0-9_-]{0,300}\d)"
                              r"(?:proj-|ant-)?[A-Za-z0-9_-]{20,}")),
    ("huggingface-token", re.compile(_START + r"hf_[A-Za-z0-9]{30,}" + _END)),
    # memento's own HTTP bearer tokens (memento.memory.tokens): the prefix and exactly the 43
    # characters of 32 URL-safe base64 bytes, so tool names such as memento_store_many stay
    ("memento-token", re.compile(_START + r"memento_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")),
    ("npm-token", re.compile(_START + r"npm_[A-Za-z0-9]{36}" + _END)),
    ("pypi-token", re.compile(_START + r"pypi-[A-Za-z0-9_-]{50,}")),
    ("sendgrid-key", re.compile(_START + r"SG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}")),
    ("google-api-key", re.compile(_START + r"AIza[0-9A-Za-z_-]{35}" + _END)),
    (
        "jwt",
        re.compile(
            r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
        ),
    ),
]

_AWS_KEY_ID = re.compile(_START + r"(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}" + _END)
# An AWS secret is 40 characters of base64; one with neither a key id nor a name nearby is
# indistinguishable from a hash or a blob in code, so it counts only near a key id.
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_AWS_NEAR = 120  # characters between a key id and its secret, as in a CSV row or a config

# Prefix-keeping secrets: group 1 stays, group 2 becomes the marker.
_PREFIXED: list[tuple[str, re.Pattern[str]]] = [
    (
        "url-password",  # scheme://user:PASSWORD@host; greedy up to the last "@" of the
        # authority, so a password containing "@" goes whole
        re.compile(
            r"(?i)(?<![A-Za-z0-9+.-])([a-z][a-z0-9+.-]*://[^\s:/?#@\[\]\"'<>]*:)"
            r"(?!\[REDACTED:)([^\s/?#\"'<>]+)(?=@)"
        ),
    ),
    (
        "authorization",
        re.compile(
            r"(?i)" + _START + r"((?:proxy-)?authorization\\?[\"']?[ \t]*[:=][ \t]*\\?[\"']?"
            r"[ \t]*(?:(?:bearer|basic|token|digest|bot|apikey)[ \t]+)?)"
            r"(?!\[REDACTED:)([^\s\"'`,]+)"
        ),
    ),
    (
        "bearer-token",  # a bare "Bearer <token>" (curl lines, logs); a digit is required
        # so that prose such as "Bearer authentication" survives
        re.compile(
            r"(?i)" + _START + r"(bearer[ \t]+)(?=[A-Za-z0-9._~+/-]{0,300}\d)"
            r"([A-Za-z0-9._~+/-]{16,}=*)"
        ),
    ),
]

# Names of secrets. The key may carry any prefix (DB_PASSWORD, dbPassword, aws_secret_access_key)
# but must end with one of these words; longer alternatives first. A space may join the parts
# ("API key: ...", "secret key = ...").
_SECRET_WORDS = (
    r"secret[ _.-]?access[ _.-]?key|shared[ _.-]?access[ _.-]?(?:key|signature)"
    r"|(?:api|secret|private|access|auth|signing|encryption|master|account|client|app)"
    r"[ _.-]?key"
    r"|apikey|client[ _.-]?secret|secret"
    r"|(?:access|refresh|auth|bearer|session|id|csrf|api)[ _.-]?token|token"
    r"|password|passwd|passphrase|pwd"
)
_SECRET_NAME = re.compile(r"(?i)[A-Za-z0-9_.-]*?(?:" + _SECRET_WORDS + r")")
_QUERY_KEYS = _SECRET_WORDS + r"|key|sig|signature|x-amz-signature|x-amz-security-token"

_QUERY = re.compile(
    r"(?i)(?<=[?&;])((?:" + _QUERY_KEYS + r")=)(?!\[REDACTED:)([^&#\s\"'<>]+)"
)
_FLAG = re.compile(  # --password=x, --password x, --api-key x
    r"(?i)(?<![A-Za-z0-9-])(--[A-Za-z0-9-]*?(?:" + _SECRET_WORDS + r")(?:=|[ \t]+))"
    r"(?!\[REDACTED:)(?!-)([^\s\"'`]+)"
)
# "the password is Qz7hunter2": one word, which must hold a digit or a symbol, so that prose
# ("the password is stored in the vault") survives.
_IS = re.compile(
    r"(?i)(?<![A-Za-z0-9_.-])([A-Za-z0-9_.-]*?(?:" + _SECRET_WORDS + r")" + _END
    + r"[ \t]+(?:is|was)[ \t]+)(?!\[REDACTED:)"
    r"((?=[^\s\"'`]{0,300}[0-9!#$%^&*+/=?@~])[^\s\"'`]*[^\s\"'`.,;:!?)])"
)
_KEY_VALUE = re.compile(
    r"(?i)(?<![A-Za-z0-9_.-])(?P<key>[A-Za-z0-9_.-]*?(?:" + _SECRET_WORDS + r"))" + _END +
    # a closing quote of a quoted key (JSON, also backslash-escaped JSON inside a string),
    # or markdown emphasis ("**Password**: ...")
    r"(?P<sep>(?:\\?[\"'`]|[*_]{1,2})?[ \t]*(?:=>|:=|=(?!=)|:)(?:[*_]{1,2})?[ \t]*)"
    r"(?!\\?[\"'`]?\[REDACTED:)"
    # an unquoted value runs to the end of the line: found with str.find, not the regex, so
    # that many keys on one long line are not each scanned to its end
    r"(?P<value>\"(?:[^\"\\\n]|\\.)+\"|'[^'\n]+'|`[^`\n]+`|(?=\S))"
)
# Values that name or fetch a secret instead of holding one (matched whole).
_REFERENCE = re.compile(
    r"""(?x)(?:
        [A-Za-z_][\w.]*                                    # getpass(), os.environ["X"]
        (?:\((?:[^()\n]|\([^()\n]*\))*\)|\[[^\[\]\n]*\])+
        [)\],;]*(?:[ \t]*(?:\#|//).*)?                    # closing brackets, a comment
      | \$\{?[A-Za-z_]\w*\}?[,;]?                         # $VAR, ${VAR}
      | %[A-Za-z_]\w*%                                      # %VAR%
      | \{\{[^{}\n]*\}\}                                   # {{ secrets.X }}
      | <[^<>\n]{1,40}>                                     # <your-password>
      | \[[A-Za-z_]{1,20}\]                                 # pad_token="[PAD]"
      | \.{3}|…|\*{3,}|x{3,}|X{3,}                          # elided: ..., ***, xxxx
      | None|null|nil|true|false
    )[ \t]*"""
)
# A reference followed by more text ("${DB_PASSWORD} and api_key: ..."): kept, and the rest is
# scanned on its own.
_REFERENCE_FIRST = re.compile(_REFERENCE.pattern + r"(?=[\s,;)\]}]|$)")
# A type annotation ("password: str", "token: Optional[str] = None"): the type is kept and
# what follows an "=" is judged as a value of its own.
_TYPE = re.compile(
    r"(?:str|bytes|SecretStr|SecretBytes|Optional\[\w+\]|\w+[ \t]*\|[ \t]*None)"
    r"(?=[ \t]*(?:[,)=]|$))"
)


# A variable that names the secret ("password=password", "token=self.token",
# "api_key=settings.API_KEY"): code passing a secret along, not the secret.
_NAMED = re.compile(r"[A-Za-z_][\w.]*(?=[ \t]*(?:[,)\]};]|$))")
_NAMED_WORD = re.compile(r"(?i)password|passwd|secret|token|key|pwd|credential")


def _key_kind(key: str) -> str:
    """The marker kind for a value found under ``key``."""
    name = re.sub(r"[ _.-]", "", key.lower())
    if name.endswith("secretaccesskey"):
        return "aws-secret-key"
    if name.endswith(("accountkey", "sharedaccesskey", "sharedaccesssignature")):
        return "azure-key"
    if name.endswith(("password", "passwd", "passphrase", "pwd")):
        return "password"
    if name.endswith("token"):
        return "token"
    return "secret"


def _is_reference(key: str, value: str) -> bool:
    """True when ``value`` under a secret's name points at a secret rather than holding it."""
    if _REFERENCE.fullmatch(value):
        return True
    # $PWD, the shell's working directory, is a path, not a password.
    return key.lower() in ("pwd", "cwd") and value.startswith(("/", "~"))


def _aws_secrets(text: str, found: set[str]) -> str:
    starts = [m.start() for m in _AWS_KEY_ID.finditer(text)]  # sorted; ids are 20 long
    if not starts:
        return text

    def replace(match: re.Match[str]) -> str:
        value = match.group()
        start, end = match.span()
        # the first key id starting after start - 20 - _AWS_NEAR is the nearest candidate
        i = bisect.bisect_left(starts, start - 20 - _AWS_NEAR)
        near = i < len(starts) and starts[i] <= end + _AWS_NEAR
        # Real secrets mix cases and digits; a 40-character hex digest or a word does not.
        mixed = (
            re.search(r"[a-z]", value)
            and re.search(r"[A-Z]", value)
            and re.search(r"[0-9/+]", value)
            and not re.fullmatch(r"[0-9a-fA-F]+", value)
        )
        if near and mixed:
            found.add("aws-secret-key")
            return "[REDACTED:aws-secret-key]"
        return value

    return _AWS_SECRET.sub(replace, text)


def _prefixed(
    pattern: re.Pattern[str],
    kind: str | Callable[[str], str],
    text: str,
    found: set[str],
    keep: Callable[[str], bool] = lambda value: False,
) -> str:
    def replace(match: re.Match[str]) -> str:
        if _is_reference("", match.group(2)) or keep(match.group(2)):
            return match.group()
        name = kind if isinstance(kind, str) else kind(match.group(1))
        found.add(name)
        return f"{match.group(1)}[REDACTED:{name}]"

    return pattern.sub(replace, text)


def _judge(key: str, value: str) -> tuple[str, bool]:
    """(the value with a secret replaced, whether it was), for an unquoted value under
    ``key``: a reference or a type annotation stays, and only what follows a type's "="
    default is judged again."""
    if _is_reference(key, value.strip()):
        return value, False
    if _REFERENCE_FIRST.match(value):
        return value, False
    named = _NAMED.match(value)
    if named and _NAMED_WORD.search(named.group()) and (
        named.group().lower() == key.lower() or re.search(r"[_.]", named.group())
    ):
        return value, False
    typed = _TYPE.match(value)
    if typed:
        rest = value[typed.end() :]
        default = re.match(r"[ \t]*=[ \t]*", rest)
        if not default:
            return value, False
        head = value[: typed.end()] + default.group()
        tail, changed = _judge(key, rest[default.end() :])
        return head + tail, changed
    if not value.strip() or value.lstrip().startswith(("\"[REDACTED:", "'[REDACTED:")):
        return value, False
    if value[0] in "\"'`" and len(value) > 1 and value.rstrip().endswith(value[0]):
        quote = value[0]
        if _is_reference(key, value.rstrip()[1:-1]):
            return value, False
        return f"{quote}[REDACTED:{_key_kind(key)}]{quote}", True
    return f"[REDACTED:{_key_kind(key)}]", True


def _key_values(text: str, found: set[str]) -> str:
    out: list[str] = []
    pos = 0
    while True:
        match = _KEY_VALUE.search(text, pos)
        if match is None:
            out.append(text[pos:])
            return "".join(out)
        key, value = match.group("key", "value")
        end = match.end()
        quoted = bool(value)  # else the value is unquoted and runs to the end of the line
        if not quoted:
            end = text.find("\n", end)
            end = len(text) if end < 0 else end
            value = text[match.start("value") : end]
            start = match.start("key")
            if value[0] in "\"'`" and start and text[start - 1] == value[0]:
                # input("Password: ") -- the string ends where a value would begin
                out.append(text[pos : match.start("value")])
                pos = match.start("value")
                continue
        if quoted:
            changed = not _is_reference(key, value[1:-1])
            new = f"{value[0]}[REDACTED:{_key_kind(key)}]{value[0]}" if changed else value
        else:
            new, changed = _judge(key, value)
        out.append(text[pos : match.start("value")])
        if changed:
            found.add(_key_kind(key))
            out.append(new)
            pos = end
        else:  # look for other secrets inside what was kept ("password: str, token: x")
            pos = match.start("value")


def redact(text: str) -> tuple[str, tuple[str, ...]]:
    """The text with secrets replaced, and the sorted kinds of secret that were found.

    Shapes go first (their markers name the service), then the prefix-keeping forms, then
    named values; each later pass skips a value that is already a marker."""
    found: set[str] = set()
    text = _aws_secrets(text, found)
    for name, pattern in _TOKENS:
        if pattern.search(text):
            found.add(name)
            text = pattern.sub(f"[REDACTED:{name}]", text)
    if _AWS_KEY_ID.search(text):
        found.add("aws-access-key")
        text = _AWS_KEY_ID.sub("[REDACTED:aws-access-key]", text)
    for name, pattern in _PREFIXED:
        text = _prefixed(pattern, name, text, found)
    text = _prefixed(_QUERY, lambda key: _key_kind(key.rstrip("=")), text, found)
    text = _prefixed(
        _FLAG,
        lambda key: _key_kind(key.rstrip("= \t")),
        text,
        found,
        # "--password hunter2" but not "use --password to set it": a lowercase word after a
        # space is prose (lowercase-only passwords are rare, and "=" is always a value)
        keep=lambda value: value.isalpha() and value.islower(),
    )
    text = _prefixed(_IS, lambda key: _key_kind(key.split()[0]), text, found)
    text = _key_values(text, found)
    return text, tuple(sorted(found))


def is_secret_name(key: str) -> bool:
    """Whether a metadata key names a secret (``password``, ``DB_PASSWORD``, ``apiKey``)."""
    return _SECRET_NAME.fullmatch(key.strip()) is not None


def redact_json(value: object) -> tuple[object, tuple[str, ...]]:
    """``value`` (JSON-ready metadata) with secrets redacted in every string, keys included,
    and the sorted kinds of secret that were found. A string or number under a key that
    names a secret (``{"password": "..."}``, ``{"pin_password": 1234}``) becomes the marker,
    unless it holds a recognisable secret already (whose marker is more precise) or is a
    reference such as ``${TOKEN}``."""
    found: set[str] = set()

    def walk(item: object, key: str | None = None) -> object:
        secret_key = key is not None and is_secret_name(key)
        if isinstance(item, str):
            text, kinds = redact(item)
            found.update(kinds)
            if secret_key and not kinds and text.strip() and not _is_reference(
                str(key), text.strip()
            ):
                kind = _key_kind(str(key))
                found.add(kind)
                return f"[REDACTED:{kind}]"
            return text
        if secret_key and isinstance(item, (int, float)) and not isinstance(item, bool):
            kind = _key_kind(str(key))  # a PIN or a numeric password
            found.add(kind)
            return f"[REDACTED:{kind}]"
        if isinstance(item, dict):
            return {walk(k): walk(v, k if isinstance(k, str) else None) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [walk(v, key) for v in item]
        return item

    return walk(value), tuple(sorted(found))


def check_identifier(value: str | None, name: str) -> str | None:
    """``value`` unchanged, or :class:`InvalidInputError` when it holds a secret.

    ``subject_key`` and ``source`` are identifiers: rewriting one would silently break the
    memory it names (a second store would no longer update the first), and storing it
    verbatim would put the secret in the file, so the write is refused instead."""
    if value is None:
        return None
    _, kinds = redact(value)
    if kinds:
        raise InvalidInputError(
            f"{name} contains what looks like a secret ({', '.join(kinds)}): use a "
            "descriptive name such as user.github_token and put the value in content, "
            "where it is redacted"
        )
    return value
