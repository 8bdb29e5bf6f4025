"""The ``pigeonhole`` command: operator tasks against the local stack, no flags needed.

pigeonhole tokens create --name NAME --scope admin   (prints the token on its last line)
pigeonhole tokens list     (id, name, scopes, created, last used, revoked; never a secret)
pigeonhole tokens revoke ID   (refused by every publisher from the next request on)
pigeonhole db migrate
pigeonhole kafka create-topics
pigeonhole caps rebuild   (reload the frequency-cap sets in Redis from PostgreSQL)
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from services.publisher.auth import SCOPES, create_token
from services.publisher.ingest import dead_letters
from services.publisher.keys import repository as keys
from services.publisher.keys.routes import token_view
from shared.cap_hits import rebuild as rebuild_caps
from shared.db import create_pool, migrate
from shared.kafka import ensure_topics
from shared.redis_client import connect as connect_redis
from shared.settings import CommonSettings

cli = typer.Typer(help="Pigeonhole operator commands.", no_args_is_help=True)
tokens = typer.Typer(help="Management API tokens.", no_args_is_help=True)
db = typer.Typer(help="Database schema.", no_args_is_help=True)
kafka = typer.Typer(help="Kafka topics.", no_args_is_help=True)
dlq = typer.Typer(help="The dead-letter topic.", no_args_is_help=True)
caps = typer.Typer(help="Frequency caps.", no_args_is_help=True)
cli.add_typer(tokens, name="tokens")
cli.add_typer(db, name="db")
cli.add_typer(kafka, name="kafka")
cli.add_typer(dlq, name="dlq")
cli.add_typer(caps, name="caps")


@tokens.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(help="who or what uses the token")],
    scope: Annotated[
        list[str] | None,
        typer.Option(help=f"repeatable; one of {', '.join(SCOPES)}; default admin"),
    ] = None,
    requests_per_minute: Annotated[
        int | None,
        typer.Option(help="this token's rate limit; default: the publisher's setting"),
    ] = None,
) -> None:
    """Create an API token; it is shown once, on the last line."""
    scopes = scope or ["admin"]

    async def run() -> str:
        pool = await create_pool(CommonSettings().database_url, max_size=1)
        try:
            return await create_token(pool, name, scopes, requests_per_minute)
        finally:
            await pool.close()

    try:
        token = asyncio.run(run())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scope") from exc
    typer.echo(f"token for {name!r} with scopes {', '.join(sorted(set(scopes)))}:")
    typer.echo(token)


@tokens.command("list")
def tokens_list() -> None:
    """Every API token, oldest first: id, name, scopes, created, last used, revoked."""

    async def run() -> list[dict[str, Any]]:
        pool = await create_pool(CommonSettings().database_url, max_size=1)
        try:
            return [token_view(row) for row in await keys.list_tokens(pool)]
        finally:
            await pool.close()

    for token in asyncio.run(run()):
        revoked = f"revoked {token['revokedAt']}" if token["revokedAt"] else "active"
        typer.echo(
            f"{token['id']}  {token['name']!r}  scopes={','.join(token['scopes'])}  "
            f"created {token['createdAt']}  last used {token['lastUsedAt'] or 'never'}  {revoked}"
        )


@tokens.command("revoke")
def tokens_revoke(token_id: Annotated[str, typer.Argument(help="as `tokens list` shows")]) -> None:
    """Revoke an API token: every publisher refuses it from its next request on."""

    async def run() -> dict[str, Any] | None:
        pool = await create_pool(CommonSettings().database_url, max_size=1)
        try:
            row = await keys.revoke_token(pool, token_id)
            return token_view(row) if row is not None else None
        finally:
            await pool.close()

    token = asyncio.run(run())
    if token is None:
        raise typer.BadParameter(f"no API token with id {token_id!r}", param_hint="ID")
    typer.echo(f"revoked {token['id']} ({token['name']!r}) at {token['revokedAt']}")


@db.command("migrate")
def db_migrate() -> None:
    """Apply every migration not applied yet."""
    applied = asyncio.run(migrate(CommonSettings().database_url))
    typer.echo(f"applied {len(applied)} migration(s){': ' + ', '.join(applied) if applied else ''}")


@kafka.command("create-topics")
def kafka_create_topics() -> None:
    """Create every contract topic that does not exist yet."""
    created = asyncio.run(ensure_topics(CommonSettings().kafka_bootstrap))
    typer.echo(f"created {len(created)} topic(s){': ' + ', '.join(created) if created else ''}")


@dlq.command("show")
def dlq_show(
    last: Annotated[int, typer.Option(help="how many of the newest to show")] = 20,
) -> None:
    """The newest dead letters: where each came from, why it failed, what it was."""
    letters = asyncio.run(dead_letters.read(CommonSettings().kafka_bootstrap, last))
    for offset, letter in letters:
        typer.echo(
            f"#{offset} {letter.occurred_at:%Y-%m-%d %H:%M:%S} {letter.source_topic} "
            f"[{letter.consumer}] key={letter.key!r}\n  error: {letter.error[:500]}\n"
            f"  value: {letter.value[:500]}"
        )
    typer.echo(f"{len(letters)} dead letter(s)")


@dlq.command("replay")
def dlq_replay(
    offset: Annotated[list[int], typer.Argument(help="DLQ offsets, as `dlq show` prints them")],
) -> None:
    """Send dead-lettered events back to their topics (after fixing what failed)."""
    try:
        replayed = asyncio.run(dead_letters.replay(CommonSettings().kafka_bootstrap, offset))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    for line in replayed:
        typer.echo(f"replayed {line}")


@caps.command("rebuild")
def caps_rebuild() -> None:
    """Reload the frequency-cap sets in Redis from PostgreSQL (after Redis lost data; safe
    to run at any time: hits already in Redis are not counted twice)."""

    async def run() -> tuple[int, int, float]:
        settings = CommonSettings()
        pool = await create_pool(settings.database_url, max_size=1)
        redis = connect_redis(settings.redis_url, socket_connect_timeout=5)
        try:
            done = await rebuild_caps(pool, redis)
            return done.hits, done.members, done.seconds
        finally:
            await redis.aclose()
            await pool.close()

    hits, members, seconds = asyncio.run(run())
    typer.echo(f"rebuilt the cap sets from {hits} hit(s) ({members} members) in {seconds:.1f}s")


def main() -> None:
    cli()
