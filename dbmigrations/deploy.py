"""The deploy mode (spec: migrate-vercel): which database, and whether to migrate at all."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .database import DIRECT_VARIABLES, DatabaseTarget
from .exceptions import ConfigurationError


@dataclass
class DeployDecision:
    apply: bool
    reason: str = ""
    warnings: list[str] = field(default_factory=list)


def deploy_decision(target: DatabaseTarget, environ: Mapping[str, str]) -> DeployDecision:
    """Refuse the embedded database; skip previews unless asked; warn about pooled URLs."""
    # Previews skip migrations anyway, so a preview without database variables is not an error.
    if (environ.get("VERCEL_ENV") or "").strip() == "preview" and (environ.get("SQL_MIGRATIONS_ON_PREVIEW") or "").strip() != "1":
        return DeployDecision(
            False,
            "Preview deployment (VERCEL_ENV=preview): migrations not applied, because previews often share the "
            "production database. Set SQL_MIGRATIONS_ON_PREVIEW=1 in Vercel's Preview environment when each "
            "preview has its own database (e.g. Neon branching).",
        )
    if target.is_embedded:
        raise ConfigurationError(
            "deploy mode needs an explicitly configured database: set DATABASE_URL_UNPOOLED or "
            "POSTGRES_URL_NON_POOLING (preferred) or DATABASE_URL; the embedded database is for laptops"
        )
    decision = DeployDecision(True)
    if target.pooled and target.source not in DIRECT_VARIABLES:
        decision.warnings.append(
            f"{target.source} points at a connection pooler; migrations run correctly through it (transaction-"
            "scoped lock), but set POSTGRES_URL_NON_POOLING or DATABASE_URL_UNPOOLED to a direct connection"
        )
    return decision
