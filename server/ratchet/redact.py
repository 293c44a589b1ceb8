"""Secret redaction for anything stored, shown to a human or a model: records, packets, previews, listings.

`redact(text)` replaces what looks like a secret with `[REDACTED]` and leaves the rest as it was.
What is recognised (each has a case in tests/test_secrets.py):

- PEM private key blocks (`-----BEGIN ... PRIVATE KEY-----` to its END line; an unterminated block
  is redacted to the end of the text). Certificates and public keys are not secrets and stay.
- Token shapes: AWS access key ids (AKIA/ASIA...), GitHub (ghp_, gho_, ghu_, ghs_, ghr_,
  github_pat_), GitLab (glpat-), Slack (xox?-, hooks.slack.com URLs), Stripe (sk_/rk_ live and test),
  Google API keys (AIza...), OpenAI/Anthropic-style `sk-...`, npm (npm_), PyPI (pypi-...), Hugging
  Face (hf_), SendGrid (SG.x.y), DigitalOcean (dop_v1_), JWTs (eyJ...eyJ...sig).
- `NAME=VALUE` / `NAME: VALUE` where NAME contains a secret word (password, passwd, passphrase,
  secret, token, api key, access key, private key, credential, auth token...), in code, `.env` lines
  (`export SECRET=...`), YAML, JSON and JSON inside a JSON string (`{\\"password\\": \\"x\\"}`); a
  quoted value is redacted to its closing quote. Names that describe rather than hold a secret
  (`*_file`, `*_path`, `*_url`, `*_count`, `*_limit`, `max_tokens`, `password_reset`...) are kept.
- Command-line flags: `--password VALUE`, `--password=VALUE`, `--token VALUE`, `--secret`,
  `--api-key`, `--access-token`... (a value starting with `-` is the next option, not a secret);
  `-u`/`--user user:PASSWORD` (curl and friends: the part after the colon).
- `-pPASSWORD` and `-p VALUE` only in the MySQL/MariaDB family (`mysql`, `mysqldump`, `mysqladmin`,
  `mariadb`...; a separate word is the database there, redacted all the same, as the argv form must
  be) and `sshpass -p PASSWORD` / `-pPASSWORD`: elsewhere `-p` is a port or a plugin
  (`docker run -p 8080:80`, `ssh -p 2222`, `pytest -p no:x`).
- Secrets as their own argv word: the flags above followed by a separate value, in an argv kept as
  a JSON or Python list (`"--password", "VALUE"`), and `redact_argv` for a list of words.
- `Authorization: <scheme> VALUE` headers and `Bearer VALUE`.
- `scheme://user:PASSWORD@host` URLs.

Time is linear in the input: every pattern starts only where the previous character cannot belong
to the same token (so a long run is entered once, not at each of its characters), repetition is
possessive or bounded, and PEM blocks are found with `str.find`, not a lazy `.*?` over the text.
Inputs longer than `MAX_CHARS` are cut there and end with a marker: nothing past the cap is stored
or shown, so nothing past it can leak.
"""

from __future__ import annotations

import re

import anyio

MARK = "[REDACTED]"
MAX_CHARS = 4_000_000  # about 4 MB of text: more is cut (with a marker) before it is scanned
CUT = "\n[... cut by redaction: text over {} characters ...]"

_PEM_BEGIN = "-----BEGIN "
_PEM_LABEL = re.compile(r"-----BEGIN ([A-Z0-9 ]{0,40}+)-----")
_PEM_END = "-----END "


# A token must not continue a longer word on the left, so each run is entered once. The check sits
# after the token's first character (`x(?<!C.)`): a pattern that starts with a literal lets the
# regex engine skip ahead to candidate characters instead of trying every position.
def _token(first: str, rest: str, before: str = "A-Za-z0-9_-") -> str:
    return f"{re.escape(first)}(?<![{before}].){rest}"


_TOKENS = re.compile(
    "|".join(
        [
            _token("A", r"(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA)[0-9A-Z]{16}(?![0-9A-Z])", "A-Za-z0-9"),  # AWS key id
            _token("g", r"h[pousr]_[A-Za-z0-9]{30,}+", "A-Za-z0-9_"),  # GitHub
            _token("g", r"ithub_pat_[A-Za-z0-9_]{30,}+", "A-Za-z0-9_"),
            _token("g", r"lpat-[A-Za-z0-9_-]{20,}+"),  # GitLab
            _token("x", r"ox[abposre]-[A-Za-z0-9-]{10,}+"),  # Slack
            r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{10,}+",
            _token("s", r"k_(?:live|test)_[A-Za-z0-9]{10,}+", "A-Za-z0-9_"),  # Stripe
            _token("r", r"k_(?:live|test)_[A-Za-z0-9]{10,}+", "A-Za-z0-9_"),
            _token("A", r"Iza[0-9A-Za-z_-]{35}"),  # Google API key
            _token("s", r"k-[A-Za-z0-9_-]{20,}+"),  # OpenAI / Anthropic style
            _token("n", r"pm_[A-Za-z0-9]{36,}+", "A-Za-z0-9_"),  # npm
            _token("p", r"ypi-[A-Za-z0-9_-]{50,}+"),  # PyPI
            _token("h", r"f_[A-Za-z0-9]{30,}+", "A-Za-z0-9_"),  # Hugging Face
            _token("d", r"op_v1_[a-f0-9]{64}", "A-Za-z0-9_"),  # DigitalOcean
            _token("S", r"G\.[A-Za-z0-9_-]{16,}+\.[A-Za-z0-9_-]{16,}+", "A-Za-z0-9_.-"),  # SendGrid
            _token("e", r"yJ[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}+"),  # JWT
        ]
    )
)

# The value after a secret name or flag: a quoted string (to its closing quote, escaped quotes and
# all) or an unquoted word. `\\?["']` also takes the escaped quotes of JSON inside a JSON string.
_VALUE = (
    # JSON nests escapes: a quote may come as ", \", \\\" ... (up to 7 backslashes: 3 levels deep).
    r"""(?:\\{0,7}+"(?:[^"\\\n]|\\(?!\\{0,7}+")[^\n])++"""
    r"""|\\{0,7}+'(?:[^'\\\n]|\\(?!\\{0,7}+')[^\n])++"""
    r"""|(?:[^\s"'\\,;&|)]|\\[^"'\s])++)"""
)
_SECRET_WORD = (
    r"(?:password|passwd|passphrase|secret|api[_-]?key|apikey|access[_-]?key|private[_-]?key|"
    r"credentials?|auth[_-]?token|access[_-]?token|refresh[_-]?token|session[_-]?token|token)"
)
# Names that describe a secret rather than hold one.
_NOT_A_SECRET = (
    r"(?![\w.-]{0,40}?(?:_|-|\b)(?:file|path|dir|url|uri|endpoint|count|limit|length|len|size|type|"
    r"name|id|hint|field|policy|reset|prompt|expires?|expiry|timeout|ttl|min|max|used|usage|env|var)\b)"
    r"(?!s\b|i[sz]e)"
)
_ASSIGNMENT = re.compile(
    r"(?i)(?=[pPsSaAcCtTrR])("  # the words' first letters: lets the engine skip ahead
    + _SECRET_WORD
    + _NOT_A_SECRET
    + r"[\w.-]{0,40}+(?:\\{0,7}+[\"'])?[ \t]{0,8}+[:=][ \t]{0,8}+)("
    + _VALUE
    + r")"
)
# Between a flag and its value: `=`, blanks, or the separator of two words of an argv written as a
# JSON or Python list (`"--password", "VALUE"`), as records, subjects and results store it.
_WORDS = r"""(?:\\{0,7}+["'][ \t]{0,8}+,[ \t]{0,8}+)"""
_FLAG_NAME = (
    r"-(?<![\w-]-)-?(?:[a-z0-9]{1,20}+-)?(?:password|passwd|passphrase|secret|token|api-?key|"
    r"access-?key|access-token|auth-token|client-secret)"
)
_FLAG = re.compile(
    r"(" + _FLAG_NAME + r"(?:=|[ \t]{1,8}+|" + _WORDS + r"))(?!-|\\{0,7}+[\"']-)(" + _VALUE + r")", re.IGNORECASE
)
_FLAG_WORD = re.compile(_FLAG_NAME, re.IGNORECASE)
_USER = re.compile(
    r"(-(?<![\w-]-)(?:u|-user|-proxy-user)(?:=|[ \t]{0,8}+|" + _WORDS + r")"
    r"(?:\\{0,7}+[\"']){0,5}+[^\s:\"'@\\]{1,256}+:)"
    r"((?:[^\s\"'\\]|\\(?![\\\"']))++)"
)
_MYSQL = re.compile(
    r"(?=[ms])(?<![\w.-])(?:mysql|mysqldump|mysqladmin|mysqlimport|mysqlcheck|mysqlshow|mysqlpump|mariadb|"
    r"mariadb-dump|mariadb-admin|sshpass)(?![\w.-])[^\n;&|]*+"
)
_DASH_P = re.compile(r"((?<=\s)-p)(?!\s)(\S++)")
_DASH_P_WORD = re.compile(r"""((?<=["'])-p""" + _WORDS + r"""\\{0,7}+["'])(?!-)([^\s"'\\,]++)""")  # `"-p", "VALUE"`
_SSHPASS_P = re.compile(r"((?<=\s)-p[ \t]{1,8}+)(?!-)(\S++)")
_AUTHORIZATION = re.compile(
    r"(?i)(?=[aApP])((?<![\w-])(?:proxy-)?authorization\\?[\"']?[ \t]{0,8}+[:=][ \t]{0,8}+\\?[\"']?"
    r"(?:(?:bearer|basic|token|digest|bot)[ \t]{1,8}+)?)([^\s\"'\\,;]++)"
)
_BEARER = re.compile(r"(?i)(?=[bB])((?<![\w-])bearer[ \t]{1,8}+)([A-Za-z0-9._~+/=-]{8,}+)")
_URL_CREDENTIALS = re.compile(r"(:(?<=[A-Za-z0-9]:)//[^/\s:@\"']{1,256}+:)([^\s/\"']{1,256})(@)")


def redact(text: str) -> str:
    """Replace anything that looks like a secret with a marker; the rest is left as it was."""
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS] + CUT.format(MAX_CHARS)
    if _PEM_BEGIN in text:
        text = _pem(text)
    text = _TOKENS.sub(MARK, text)
    if "://" in text:
        text = _URL_CREDENTIALS.sub(lambda m: m.group(1) + MARK + m.group(3), text)
    lowered = text.lower()
    # Cheap substring checks first: most text holds none of these, and `in` is far faster than a scan.
    if "authorization" in lowered:
        text = _AUTHORIZATION.sub(_keep_key, text)
    if "bearer" in lowered:
        text = _BEARER.sub(_keep_key, text)
    if "-" in text:
        text = _FLAG.sub(_keep_key, text)
        text = _USER.sub(_keep_key, text)
    if "mysql" in lowered or "mariadb" in lowered or "sshpass" in lowered:
        text = _MYSQL.sub(_client_flags, text)
    return _ASSIGNMENT.sub(_keep_key, text)


_OPENING_QUOTE = re.compile(r"\\{0,7}[\"']")
_PASSWORD_P = frozenset(
    {"mysql", "mysqldump", "mysqladmin", "mysqlimport", "mysqlcheck", "mysqlshow", "mysqlpump", "mariadb"}
    | {"mariadb-dump", "mariadb-admin", "sshpass"}
)


def redact_argv(argv: list[str]) -> list[str]:
    """`redact` each word of an argv, and the word after a secret flag given on its own: `--password
    VALUE`, `--token VALUE`, `--api-key VALUE`, `-u USER:VALUE`, and `-p VALUE` where the program means a
    password by it (the MySQL family, sshpass). A value starting with `-` is the next option."""
    out = [redact(word) for word in argv]
    password_p = any(word.rsplit("/", 1)[-1] in _PASSWORD_P for word in argv)
    for i in range(1, len(argv)):
        flag, value = argv[i - 1], argv[i]
        if value.startswith("-") or not value:
            continue
        if _FLAG_WORD.fullmatch(flag) or (password_p and flag == "-p"):
            out[i] = MARK
        elif flag in ("-u", "--user", "--proxy-user") and ":" in value:
            out[i] = value.split(":", 1)[0] + ":" + MARK
    return out


def _keep_key(m: re.Match[str]) -> str:
    value = m.group(2)
    opening = _OPENING_QUOTE.match(value)
    quote = opening.group(0) if opening else ""
    return m.group(1) + quote + MARK if value != MARK else m.group(0)


def _client_flags(m: re.Match[str]) -> str:
    """`-pPASSWORD` and `-p VALUE` in a MySQL-family or sshpass command (as text or as argv words)."""
    segment = m.group(0)
    segment = _SSHPASS_P.sub(_keep_key, segment)  # `-p VALUE`: sshpass's password; mysql's database, kept out too
    segment = _DASH_P_WORD.sub(_keep_key, segment)  # a separate word after -p: a password to these programs
    return _DASH_P.sub(_keep_key, segment)


def _pem(text: str) -> str:
    """Cut every private key block; each BEGIN is found once and its END searched once from there."""
    out: list[str] = []
    pos = 0
    while (start := text.find(_PEM_BEGIN, pos)) >= 0:
        label = _PEM_LABEL.match(text, start)
        if label is None or "PRIVATE KEY" not in label.group(1):
            out.append(text[pos : start + len(_PEM_BEGIN)])
            pos = start + len(_PEM_BEGIN)
            continue
        end = text.find(_PEM_END, label.end())
        if end < 0:
            out.append(text[pos:start] + MARK)
            return "".join(out)
        close = text.find("-----", end + len(_PEM_END))
        stop = len(text) if close < 0 else close + 5
        out.append(text[pos:start] + MARK)
        pos = stop
    out.append(text[pos:])
    return "".join(out)


OFF_LOOP_CHARS = 64 * 1024  # longer texts are redacted in a worker thread, off the event loop


async def redact_all(*texts: str) -> list[str]:
    """`redact` each text; when they are long, in a worker thread so the server keeps answering."""
    if sum(len(t) for t in texts) <= OFF_LOOP_CHARS:
        return [redact(t) for t in texts]
    return await anyio.to_thread.run_sync(lambda: [redact(t) for t in texts])
