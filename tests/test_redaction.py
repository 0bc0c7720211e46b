"""Redaction, table-driven: every format of secret a user reported (issues 15 and 16) goes
before the file, and the text that only looks like a secret survives unchanged.

The fake secrets are built by concatenation so that secret scanners do not flag this file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import pytest
from click.testing import CliRunner

from memento import Memory, cli
from memento.errors import InvalidInputError
from memento.redact import redact, redact_json


class Case(NamedTuple):
    name: str
    text: str
    secret: str  # must be gone
    kinds: tuple[str, ...]  # the markers expected
    keep: str = ""  # must still be there (the context that makes the note useful)


AWS_ID = "AKIA" + "QZ7XEXAMPLEKEY12"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG" + "/bPxRfiCYQZ7EXAMPLE"
PEM_BODY = "MIIEpAIBAAKCAQEAqz7" + "Xc9Rk2bVt5Lm0QpS"

POSITIVE = [
    Case("stripe-live", "charge with " + "sk_" + "live_4eC39HqLyjWDarjtT1zdp7dc now",
         "4eC39HqLyjWDarjtT1zdp7dc", ("stripe-key",), "charge with"),
    Case("stripe-restricted", "rk_" + "live_51H8aQzX7bYcD2eF3gH4iJ5k",
         "51H8aQzX7bYcD2eF3gH4iJ5k", ("stripe-key",)),
    Case("env-db-password", "export DB_PASSWORD=Qz7pg-Pass!word", "Qz7pg-Pass!word",
         ("password",), "export DB_PASSWORD="),
    Case("env-client-secret", "CLIENT_SECRET=" + "c1i3nt-s3cr3t-Qz7", "c1i3nt-s3cr3t-Qz7",
         ("secret",), "CLIENT_SECRET="),
    Case("env-stripe-secret-key", "STRIPE_SECRET_KEY=" + "Qz7abc123def456", "Qz7abc123def456",
         ("secret",), "STRIPE_SECRET_KEY="),
    Case("json-password", '{"user": "bob", "password": "Qz7-hunter2"}', "Qz7-hunter2",
         ("password",), '"user": "bob"'),
    Case("json-aws-secret", '{"aws_secret_access_key": "' + AWS_SECRET + '"}', AWS_SECRET,
         ("aws-secret-key",), '"aws_secret_access_key": "'),
    Case("aws-secret-next-to-id", f"creds.csv: {AWS_ID},{AWS_SECRET}", AWS_SECRET,
         ("aws-access-key", "aws-secret-key"), "creds.csv:"),
    Case("aws-key-id-after-underscore", "x_" + AWS_ID, AWS_ID, ("aws-access-key",)),
    Case("pgp-private-key",
         "-----BEGIN PGP PRIVATE " + "KEY BLOCK-----\n\nlQOYBGXq" + PEM_BODY
         + "\n-----END PGP PRIVATE " + "KEY BLOCK-----\nafter", PEM_BODY, ("private-key",),
         "after"),
    Case("pem-lowercase", "-----begin rsa private " + "key-----\n" + PEM_BODY
         + "\n-----end rsa private " + "key-----", PEM_BODY, ("private-key",)),
    Case("openssh-unterminated", "-----BEGIN OPENSSH PRIVATE " + "KEY-----\n" + PEM_BODY,
         PEM_BODY, ("private-key",)),
    Case("postgres-url", "postgres://admin:" + "s3cretPW@db.internal:5432/app", "s3cretPW",
         ("url-password",), "postgres://admin:[REDACTED:url-password]@db.internal:5432/app"),
    Case("https-url", "clone https://user:" + "Qz7tok3n@git.example.com/r.git", "Qz7tok3n",
         ("url-password",), "https://user:[REDACTED:url-password]@git.example.com/r.git"),
    Case("url-password-with-at", "mysql://root:" + "p@ss:w0rd@10.0.0.5/db", "p@ss:w0rd",
         ("url-password",), "@10.0.0.5/db"),
    Case("redis-url-no-user", "redis://:" + "Qz7r3dis@cache:6379/0", "Qz7r3dis",
         ("url-password",), "@cache:6379/0"),
    Case("authorization-bearer", "Authorization: Bearer " + "Qz7abc.def123.ghi456",
         "Qz7abc.def123.ghi456", ("authorization",), "Authorization: Bearer"),
    Case("authorization-basic", 'curl -H "Authorization: Basic ' + 'dXNlcjpRejdwYXNz" x',
         "dXNlcjpRejdwYXNz", ("authorization",), "curl -H"),
    Case("bare-bearer", "sent Bearer " + "Qz7aaaa1111bbbb2222cccc", "Qz7aaaa1111bbbb2222cccc",
         ("bearer-token",)),
    Case("token-colon", "token: " + "Qz7-9f8e7d6c5b4a", "Qz7-9f8e7d6c5b4a", ("token",)),
    Case("slack-webhook", "notify https://hooks.slack.com/services/" + "T0QZ7/B0QZ7/Xq7Yw8Zr9",
         "T0QZ7/B0QZ7/Xq7Yw8Zr9", ("slack-webhook",), "notify"),
    Case("huggingface", "HF " + "hf_" + "QzabcdefghijklmnopqrstuvwxyzAB12",
         "QzabcdefghijklmnopqrstuvwxyzAB12", ("huggingface-token",)),
    Case("memento-token", "alice uses memento_" + "Qz7-2F_ohu4AfH9gWK71bs4j8YP3qua3A2C2w3Hu1hu",
         "Qz7-2F_ohu4AfH9gWK71bs4j8YP3qua3A2C2w3Hu1hu", ("memento-token",), "alice uses"),
    Case("gitlab", "glpat-" + "Qz7xY9abcDEF123ghiJK", "Qz7xY9abcDEF123ghiJK", ("gitlab-token",)),
    Case("npm", "npm_" + "Qz7abcdefghijklmnopqrstuvwxyz0123456",
         "Qz7abcdefghijklmnopqrstuvwxyz0123456", ("npm-token",)),
    Case("pypi", "pypi-" + "AgEIcHlwaS5vcmc" + "Qz7" * 20, "Qz7" * 20, ("pypi-token",)),
    Case("sendgrid", "SG." + "Qz7abcdefghijklmnopqrs" + "." + "Qz7" * 14 + "a",
         "Qz7abcdefghijklmnopqrs", ("sendgrid-key",)),
    Case("azure-account-key",
         "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey="
         + "Qz7abc+def/ghi123==", "Qz7abc+def/ghi123==", ("azure-key",), "AccountName=acct"),
    Case("passphrase-with-spaces", "password: correct horse battery staple",
         "correct horse battery staple", ("password",), "password: "),
    Case("github", "ghp_" + "Qz7aB2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7",
         "Qz7aB2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7", ("github-token",)),
    Case("openai", "sk-" + "proj-Qz7abcdefghijklmnopqrstuvwx", "Qz7abcdefghijklmnopqrstuvwx",
         ("openai-key",)),
    Case("jwt", "eyJ" + "hbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.Qz7sig_abcdefgh",
         "Qz7sig_abcdefgh", ("jwt",)),
    Case("query-token", "callback https://api.example.com/cb?token=" + "Qz7abc123&state=ok",
         "Qz7abc123", ("token",), "&state=ok"),
    Case("cli-flag", "deploy --api-key=" + "Qz7k3y99 --region eu", "Qz7k3y99", ("secret",),
         "--region eu"),
    Case("password-is", "the staging password is " + "Qz7hunter2.", "Qz7hunter2",
         ("password",), "the staging password is"),
    Case("markdown", "- **Password**: " + "Qz7hunter2", "Qz7hunter2", ("password",)),
    Case("yaml-api-key", "api_key: " + "Qz7abc123", "Qz7abc123", ("secret",)),
    Case("typed-default", 'token: str = "' + 'Qz7abc123"', "Qz7abc123", ("token",),
         "token: str ="),
]

LOOKALIKES = [
    "the password policy requires 12 characters",
    "token bucket rate limiter with a refill of 10 tokens per second",
    "reset your password from the account page",
    "the password is stored in the vault",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 fixed the flaky test",
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "memory 01KVF2CKW772ABCDEFGHJKMNPQ was merged",
    "request id 123e4567-e89b-12d3-a456-426614174000",
    'logo = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk")',
    "move the task-list widget and the disk-usage-monitoring-service",
    "pip install sk-learn-compatible-estimators-and-pipelines",
    "risk_live_dashboard_v2 and hf_hub_download(repo_id=x)",
    "call memento_store_many, then memento_recall with all_projects",
    "see https://example.com:8443/docs?page=2&sort=asc#top and http://localhost:8000/",
    "mail alice@example.com or clone git@github.com:org/repo.git or ssh://git@host/r",
    "password = getpass()",
    'token = os.environ["GITHUB_TOKEN"]',
    'password = input("Password: ")  # ask once',
    "def login(user: str, password: str) -> bool:",
    "password: Optional[str] = None",
    "login(user=user, password=password, token=self.token)",
    "DB_PASSWORD=${DB_PASSWORD} and api_key: <your-api-key>",
    "max_tokens: 4096, token_count: 12",
    "use --password to pass it on the command line",
    "Bearer authentication is required for the admin API",
    "PWD=/home/me/work/project",
    "if password == expected: return True",
    'tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")',
    "API_TOKEN=... (ask ops) and password: ***",
]


@pytest.mark.parametrize("case", POSITIVE, ids=[c.name for c in POSITIVE])
def test_each_format_of_secret_is_redacted(case: Case) -> None:
    text, kinds = redact(case.text)
    assert case.secret not in text, text
    assert kinds == tuple(sorted(case.kinds)), text
    for kind in case.kinds:
        assert f"[REDACTED:{kind}]" in text
    assert case.keep in text, text


@pytest.mark.parametrize("text", LOOKALIKES)
def test_lookalikes_survive_unchanged(text: str) -> None:
    assert redact(text) == (text, ())


def test_a_quoted_value_ends_at_its_quote_and_an_unquoted_one_at_the_line() -> None:
    text, _ = redact('password = "Qz7 a b" and more\nsecret: Qz7 c d\nnext line')
    assert text == 'password = "[REDACTED:password]" and more\nsecret: [REDACTED:secret]\nnext line'


def test_metadata_values_under_secret_names_are_redacted() -> None:
    value, kinds = redact_json(
        {
            "password": "correct horse",
            "env": {"DB_PASSWORD": "Qz7pw", "HOME": "/home/me"},
            "pin_password": 1234,
            "apiKey": "${API_KEY}",
            "notes": ["url postgres://u:" + "Qz7pw2@h/db"],
            "token_count": 12,
        }
    )
    assert value == {
        "password": "[REDACTED:password]",
        "env": {"DB_PASSWORD": "[REDACTED:password]", "HOME": "/home/me"},
        "pin_password": "[REDACTED:password]",
        "apiKey": "${API_KEY}",
        "notes": ["url postgres://u:[REDACTED:url-password]@h/db"],
        "token_count": 12,
    }
    assert kinds == ("password", "url-password")


def test_redaction_is_fast_on_hostile_input() -> None:
    """100,000 characters built to make regexes backtrack still take well under a second."""
    import time

    for text in ("a." * 50_000, "password" * 12_500, "x://a:" * 16_000, "-" * 100_000):
        start = time.perf_counter()
        redact(text)
        assert time.perf_counter() - start < 1.0, text[:20]


# ---- through Memory and the real file ------------------------------------------------


def _disk(db: Path) -> bytes:
    return b"".join(
        p.read_bytes() for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()
    )


@pytest.mark.sqlite_only
def test_every_write_path_keeps_every_secret_out_of_the_file_and_the_export(
    db_location: Path, memory: Memory
) -> None:
    """store, store_many, update (content and metadata) and import, real model, real file;
    then `memento export` through the CLI: no secret in the bytes of either."""
    for n, case in enumerate(POSITIVE):
        meta = {"snippet": case.text, "password": f"Qz7meta{n}pw"}
        if n % 3 == 0:
            memory.store(case.text, kind="event", metadata=meta)
        elif n % 3 == 1:
            memory.store_many([{"content": case.text, "kind": "event", "metadata": meta}])
        else:
            first = memory.store(f"placeholder {n}", kind="event")
            memory.update(first.id, content=case.text, metadata=meta)
    memory.import_records(
        [{"content": c.text, "kind": "lesson", "metadata": {"pw": c.text}} for c in POSITIVE]
    )
    memory.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    disk = _disk(db_location)
    result = CliRunner().invoke(cli.cli, ["--db", str(db_location), "export"])
    assert result.exit_code == 0, result.output
    exported = result.output
    for n, case in enumerate(POSITIVE):
        assert case.secret.encode() not in disk, case.name
        assert case.secret not in exported, case.name
        assert json.dumps(case.secret)[1:-1] not in exported, case.name  # JSON-escaped too
        assert f"Qz7meta{n}pw" not in exported and f"Qz7meta{n}pw".encode() not in disk
    assert len(exported.splitlines()) == 2 * len(POSITIVE)


def test_a_secret_in_subject_key_or_source_is_refused(memory: Memory) -> None:
    """Identifiers are never rewritten (a rewritten key would stop naming its memory), so
    the write fails with a message saying where the value belongs."""
    token = "ghp_" + "Qz7aB2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7"
    with pytest.raises(InvalidInputError, match="subject_key contains what looks like a secret"):
        memory.store("GitHub access", subject_key=f"user.github.{token}")
    with pytest.raises(InvalidInputError, match="source contains"):
        memory.store("GitHub access", source=f"agent token={token}")
    with pytest.raises(InvalidInputError, match=r"subject_key contains .*\(aws-access-key\)"):
        memory.store("AWS access", subject_key="infra.AKIA" + "QZ7XEXAMPLEKEY12")
    kept = memory.store("GitHub access", subject_key="user.github_token", source="cli")
    with pytest.raises(InvalidInputError, match="subject_key contains"):
        memory.update(kept.id, subject_key=f"user.{token}")
    assert memory.get(kept.id).subject_key == "user.github_token"


def test_cli_store_refuses_a_secret_in_subject_key_with_one_line(db_location: Path) -> None:
    token = "glpat-" + "Qz7xY9abcDEF123ghiJK"
    result = CliRunner().invoke(
        cli.cli, ["--db", str(db_location), "store", "x", "--subject-key", f"ci.{token}"]
    )
    assert result.exit_code == 1
    assert "subject_key contains what looks like a secret (gitlab-token)" in result.output
    assert token not in result.output


@pytest.mark.sqlite_only
def test_the_memory_json_importer_redacts_too(db_location: Path, tmp_path: Path) -> None:
    """`memento import` of the MCP memory server's file: observations and metadata pass
    through the same redaction as a store."""
    secret = "s3cretPW" + "Qz7"
    source = tmp_path / "memory.json"
    entity = {
        "type": "entity",
        "name": "Staging_DB",
        "entityType": "database",
        "observations": [f"url postgres://admin:{secret}@db.internal:5432/app",
                         f"DB_PASSWORD={secret}x"],
    }
    source.write_text(json.dumps(entity) + "\n", encoding="utf-8")
    runner = CliRunner()
    done = runner.invoke(
        cli.cli, ["--db", str(db_location), "import", str(source), "--from", "mcp-memory-json"]
    )
    assert done.exit_code == 0, done.output
    exported = runner.invoke(cli.cli, ["--db", str(db_location), "export"]).output
    assert "postgres://admin:[REDACTED:url-password]@db.internal:5432/app" in exported
    assert secret not in exported
    with Memory(db_location) as m:
        m.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert secret.encode() not in _disk(db_location)
