"""The deploy mode (spec: migrate-vercel): which database, and whether to migrate at all."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from . import conf
from .database import DIRECT_VARIABLES, DatabaseTarget
from .exceptions import ConfigurationError


@dataclass
class DeployDecision:
    apply: bool
    reason: str = ""
    warnings: list[str] = field(default_factory=list)


def deploy_decision(target: DatabaseTarget, environ: Mapping[str, str] | None = None) -> DeployDecision:
    """Refuse the embedded database; skip previews unless asked; warn about pooled URLs.

    ``environ`` defaults to ``os.environ``, read now (see :mod:`dbmigrations.conf`).
    """
    # Previews skip migrations anyway, so a preview without database variables is not an error.
    if conf.is_preview(environ) and not conf.migrations_on_preview(environ):
        return DeployDecision(
            False,
            f"Preview deployment (VERCEL_ENV={conf.vercel_env(environ)}): migrations not applied, because previews "
            "often share the production database. Set SQL_MIGRATIONS_ON_PREVIEW=1 in Vercel's Preview environment "
            "when each preview has its own database (e.g. Neon branching).",
        )
    if target.is_embedded:
        why = "VERCEL=1" if conf.is_vercel_build(environ) else "--vercel"
        raise ConfigurationError(
            f"deploy mode needs an explicitly configured database ({why}): set DATABASE_URL_UNPOOLED or "
            "POSTGRES_URL_NON_POOLING (preferred) or DATABASE_URL; the embedded database is for laptops"
        )
    decision = DeployDecision(True)
    if target.pooled and target.source not in DIRECT_VARIABLES:
        decision.warnings.append(
            f"{target.source} points at a connection pooler; migrations run correctly through it (transaction-"
            "scoped lock), but set POSTGRES_URL_NON_POOLING or DATABASE_URL_UNPOOLED to a direct connection"
        )
    return decision
