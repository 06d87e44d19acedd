"""SQLite storage of the auth system: clients (hashed secrets) and access tokens (by digest).

    clients (client_id TEXT PRIMARY KEY, secret_hash TEXT, scope TEXT)
    tokens  (digest TEXT PRIMARY KEY, client_id TEXT, scope TEXT,
             issued_at INTEGER, expires_at INTEGER, revoked INTEGER)

Times are Unix seconds. A token is active while `now < expires_at` and it is not revoked;
expired rows are deleted when the next token is issued.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from source_systems.auth.clients import ClientSeed
from source_systems.auth.hashing import hash_secret, new_token, token_digest

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS clients (client_id TEXT PRIMARY KEY, "
    "secret_hash TEXT NOT NULL, scope TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tokens (digest TEXT PRIMARY KEY, "
    "client_id TEXT NOT NULL REFERENCES clients (client_id), scope TEXT NOT NULL, "
    "issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS ix_tokens_expires_at ON tokens (expires_at)",
)


@dataclass(frozen=True)
class Client:
    client_id: str
    secret_hash: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class Token:
    """What the store knows of an issued token (never the token itself)."""

    client_id: str
    scopes: tuple[str, ...]
    issued_at: int
    expires_at: int
    revoked: bool

    def active(self, now: int) -> bool:
        return not self.revoked and now < self.expires_at


class AuthStore:
    """Clients and tokens. Not thread-safe: one connection, used from one event loop."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @classmethod
    def open(cls, path: Path | str, seeds: Iterable[ClientSeed]) -> AuthStore:
        """Open (creating directories and tables); seed the clients when there are none."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Default isolation: `with conn:` is one transaction, committed or rolled back.
        conn = sqlite3.connect(str(path), check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        for statement in SCHEMA:
            conn.execute(statement)
        store = cls(conn)
        if conn.execute("SELECT count(*) FROM clients").fetchone()[0] == 0:
            store.add_clients(seeds)
        return store

    def add_clients(self, seeds: Iterable[ClientSeed]) -> None:
        rows = [(s.client_id, hash_secret(s.secret), " ".join(s.scopes)) for s in seeds]
        with self.conn:
            self.conn.executemany("INSERT INTO clients VALUES (?, ?, ?)", rows)

    def client(self, client_id: str) -> Client | None:
        row = self.conn.execute(
            "SELECT secret_hash, scope FROM clients WHERE client_id = ?", (client_id,)
        ).fetchone()
        return None if row is None else Client(client_id, str(row[0]), tuple(row[1].split()))

    def issue(self, client_id: str, scopes: tuple[str, ...], now: int, lifetime: int) -> str:
        """A new token for `client_id`, active from `now` for `lifetime` seconds."""
        token = new_token()
        with self.conn:
            self.conn.execute("DELETE FROM tokens WHERE expires_at <= ?", (now,))
            self.conn.execute(
                "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, 0)",
                (token_digest(token), client_id, " ".join(scopes), now, now + lifetime),
            )
        return token

    def token(self, token: str) -> Token | None:
        row = self.conn.execute(
            "SELECT client_id, scope, issued_at, expires_at, revoked FROM tokens WHERE digest = ?",
            (token_digest(token),),
        ).fetchone()
        if row is None:
            return None
        return Token(str(row[0]), tuple(row[1].split()), int(row[2]), int(row[3]), bool(row[4]))

    def revoke(self, token: str) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE tokens SET revoked = 1 WHERE digest = ?", (token_digest(token),)
            )

    def close(self) -> None:
        self.conn.close()
