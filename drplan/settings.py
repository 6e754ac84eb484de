"""drplan's settings: one model, read from ``DRPLAN_*`` environment variables once, at an entry point (the CLI
or a flow), and passed down. Nothing reads the environment at import time."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every ``DRPLAN_*`` knob (the README's settings table is this model)."""

    model_config = SettingsConfigDict(env_prefix="DRPLAN_", extra="ignore", frozen=True)

    max_workers: int = Field(
        128,
        ge=1,
        description="task threads per flow run; a task is submitted only when its upstream finished, so "
        "this is the real concurrency (also the HTTPS connection pool per host)",
    )
    max_commits: int = Field(
        128, ge=1, description="commits, reprotects and drill cleanups running at once, per kind"
    )
    record_wait_seconds: float = Field(
        60.0, ge=0, description="how long the CLI waits for the API to record every task run before it exits"
    )
    approval_poll_seconds: float = Field(
        5.0, gt=0, description="how often a paused run checks whether it was resumed"
    )
    approval_timeout: float = Field(
        24 * 3600.0, gt=0, description="how long an approval waits before the run gives up on it"
    )
    lock_dir: Path | None = Field(
        None,
        description="where this host's locks live: one per plan (default `$PREFECT_HOME/drplan-locks`) and "
        "the claims on VMs (default `~/.drplan/drplan-locks`, one for every Prefect home)",
    )
    drill_stop_wait: float = Field(
        3600.0,
        gt=0,
        description="how long a stopping drill waits for test failovers under way before cleaning up anyway",
    )
    sim_endpoint: str | None = Field(
        None,
        validation_alias=AliasChoices("DRPLAN_SIM_ENDPOINT", "DRPLAN_ASR_ENDPOINT"),
        description="an external simulator's ASR endpoint (what `drplan sim start` prints)",
    )
    sim_ca_file: str | None = Field(
        None,
        validation_alias=AliasChoices("DRPLAN_SIM_CA_FILE", "DRPLAN_ASR_CA_FILE"),
        description="the CA file that external simulator's certificate is signed with",
    )
    sim_token: SecretStr | None = Field(
        None,
        description="that external simulator's bearer token (`drplan sim start` prints it; any other is "
        "refused with 401)",
    )


def settings_table() -> str:
    """The README's settings table, generated from the model (a test keeps the README in step)."""
    lines = ["| variable | default | what |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        env = alias.choices[0] if isinstance(alias, AliasChoices) else f"DRPLAN_{name.upper()}"
        default = (
            "-"
            if field.default is None
            else f"{field.default:g}"
            if isinstance(field.default, float)
            else field.default
        )
        lines.append(f"| `{env}` | {default} | {field.description} |")
    return "\n".join(lines)
