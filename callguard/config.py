"""Runtime settings, read once from the environment and the generated `.run/callguard.env`.

Secrets are referenced by file (`*_FILE`) so they never appear in process listings or logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ENV_FILE = PROJECT_ROOT / ".run" / "callguard.env"


class ConfigError(RuntimeError):
    """A setting is missing or malformed."""


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


@dataclass(frozen=True)
class Settings:
    database_url: str
    ari_url: str
    ari_user: str
    ari_password: str
    ari_app: str
    hmac_key: bytes
    api_token: str
    recordings_dir: Path
    recordings_asterisk_dir: str
    asterisk_root: str
    log_dir: Path
    fastagi_host: str
    fastagi_port: int
    api_host: str
    api_port: int
    max_recordings: int
    at_capacity_policy: str  # "congestion" | "unrecorded"
    ring_timeout_s: int
    # /metrics of each process and the Prometheus server, on 127.0.0.1 (issue 18).
    metrics_ari_port: int = 9461
    metrics_fastagi_port: int = 9462
    metrics_api_port: int = 9463
    prometheus_port: int = 9460
    # AMI on loopback, used only for MixMonitorMute (issue #14 pause/resume); "" = unavailable.
    ami_port: int = 5038
    ami_user: str = "callguard"
    ami_password: str = ""
    agi_secret: str = ""  # the first path segment of every FastAGI request (SEC-4)
    # A cluster node's asterisk.conf inside the root (`asterisk -C`, issue 12); "" = the default.
    asterisk_conf: str = ""
    # SCHED_RR priority of the ARI app and the FastAGI fallback, Asterisk's own with its
    # `highpriority` (callguard.realtime); 0 = normal scheduling.
    rt_priority: int = 10

    @property
    def ami_switch_file(self) -> Path:
        """The one Asterisk file the services write: AMI on or off (asterisk_conf/manager.conf,
        written by tools/stack.sh ami_switch), in this Asterisk's etc directory."""
        etc = str(Path(self.asterisk_conf).parent) if self.asterisk_conf else "/etc/asterisk"
        return Path(f"{self.asterisk_root}{etc}") / "manager_on_demand.conf"

    @property
    def journal_dir(self) -> Path:
        """Where call bookkeeping waits while the database is away (REL-2)."""
        return self.log_dir.parent / "journal"

    @property
    def async_database_url(self) -> str:
        return to_driver_url(self.database_url, "asyncpg")

    @property
    def sync_database_url(self) -> str:
        return to_driver_url(self.database_url, "psycopg")


def to_driver_url(url: str, driver: str) -> str:
    """`postgresql://...` → `postgresql+<driver>://...` (SQLAlchemy dialect selection)."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.startswith("postgresql"):
        raise ConfigError(f"unsupported database URL scheme: {scheme!r}")
    return f"postgresql+{driver}://{rest}"


def _secret(env: dict[str, str], name: str) -> str:
    if name in env:
        return env[name]
    path = env.get(f"{name}_FILE")
    if not path:
        raise ConfigError(f"{name} (or {name}_FILE) is not set; run `make run` to generate it")
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {name}_FILE={path}: {exc.strerror}") from exc


def load_settings(env_file: Path | None = None) -> Settings:
    env = _read_env_file(env_file or Path(os.environ.get("CALLGUARD_ENV", DEFAULT_ENV_FILE)))
    env.update({k: v for k, v in os.environ.items() if k.startswith("CALLGUARD_")})

    def get(name: str, default: str | None = None) -> str:
        value = env.get(f"CALLGUARD_{name}", default)
        if value is None:
            raise ConfigError(f"CALLGUARD_{name} is not set; run `make run` to generate it")
        return value

    def get_int(name: str, default: int) -> int:
        raw = get(name, str(default))
        try:
            return int(raw)
        except ValueError as exc:
            raise ConfigError(f"CALLGUARD_{name} must be an integer, got {raw!r}") from exc

    policy = get("AT_CAPACITY_POLICY", "congestion")
    if policy not in ("congestion", "unrecorded"):
        raise ConfigError("CALLGUARD_AT_CAPACITY_POLICY must be 'congestion' or 'unrecorded'")
    return Settings(
        database_url=get("DATABASE_URL"),
        ari_url=get("ARI_URL", "http://127.0.0.1:8088").rstrip("/"),
        ari_user=get("ARI_USER", "callguard"),
        ari_password=_secret(env, "CALLGUARD_ARI_PASSWORD"),
        ari_app=get("ARI_APP", "callguard"),
        hmac_key=bytes.fromhex(_secret(env, "CALLGUARD_HMAC_KEY")),
        api_token=_secret(env, "CALLGUARD_API_TOKEN"),
        recordings_dir=Path(get("RECORDINGS_DIR")),
        recordings_asterisk_dir=get("RECORDINGS_ASTERISK_DIR", "/var/spool/asterisk/callguard"),
        asterisk_root=get("ASTERISK_ROOT", ""),
        log_dir=Path(get("LOG_DIR", str(PROJECT_ROOT / ".run" / "log"))),
        fastagi_host=get("FASTAGI_HOST", "127.0.0.1"),
        fastagi_port=get_int("FASTAGI_PORT", 4573),
        api_host=get("API_HOST", "127.0.0.1"),
        api_port=get_int("API_PORT", 8089),
        max_recordings=get_int("MAX_RECORDINGS", 400),
        at_capacity_policy=policy,
        ring_timeout_s=get_int("RING_TIMEOUT", 30),
        metrics_ari_port=get_int("METRICS_ARI_PORT", 9461),
        metrics_fastagi_port=get_int("METRICS_FASTAGI_PORT", 9462),
        metrics_api_port=get_int("METRICS_API_PORT", 9463),
        prometheus_port=get_int("PROMETHEUS_PORT", 9460),
        ami_port=get_int("AMI_PORT", 5038),
        ami_user=get("AMI_USER", "callguard"),
        ami_password=(_secret(env, "CALLGUARD_AMI_PASSWORD")
                      if "CALLGUARD_AMI_PASSWORD" in env or "CALLGUARD_AMI_PASSWORD_FILE" in env
                      else ""),
        agi_secret=_secret(env, "CALLGUARD_AGI_SECRET"),
        asterisk_conf=get("ASTERISK_CONF", ""),
        rt_priority=get_int("RT_PRIORITY", 10),
    )
