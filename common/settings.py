"""One typed settings object per process, read from the environment (and ``.env``) once.

Every process calls :func:`load_settings` at start with the names it cannot run without; a missing one
stops the process with one clear line naming it. Nothing else in the code base reads ``os.environ``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from common.exceptions import SettingsError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# What each setting is for, used in the one-line error when a required one is missing.
_HELP: dict[str, str] = {
    "SLACK_BOT_TOKEN": "the bot token (xoxb-…) from your Slack app's 'OAuth & Permissions' page",
    "SLACK_APP_TOKEN": "the app-level token (xapp-…) with connections:write, for Socket Mode",
    "SLACK_SIGNING_SECRET": "the signing secret from your Slack app's 'Basic Information' page",
}


# The reaction each livedoor label gets in a watched channel (standard Slack emoji names), and the one for
# any other label (``*``). CATEGORY_EMOJI overrides some or all of them.
DEFAULT_CATEGORY_EMOJI: dict[str, str] = {
    "topic-news": "newspaper",
    "sports-watch": "soccer",
    "it-life-hack": "computer",
    "kaden-channel": "tv",
    "movie-enter": "movie_camera",
    "dokujo-tsushin": "woman",
    "smax": "iphone",
    "livedoor-homme": "man",
    "peachy": "lipstick",
    "*": "label",
}
# The defaults of TRAIN_DATA and BASE_MODEL, here only: the training options (training.options) take them from here.
LIVEDOOR_CORPUS_URL = "https://www.rondhuit.com/download/ldcc-20140209.tar.gz"  # the official archive
DEFAULT_BASE_MODEL = "tohoku-nlp/bert-base-japanese-v3"

_EMOJI_NAME = re.compile(r"[a-z0-9_+'-]+")


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """All settings of the product. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True)

    slack_bot_token: str | None = Field(default=None, description=_HELP["SLACK_BOT_TOKEN"])
    slack_app_token: str | None = Field(default=None, description=_HELP["SLACK_APP_TOKEN"])
    slack_signing_secret: str | None = Field(default=None, description=_HELP["SLACK_SIGNING_SECRET"])
    slack_api_url: str = Field(default="https://slack.com/api/", description="Base URL of the Slack Web API")
    redis_url: str = Field(default="redis://localhost:6379/0", description="Redis that carries the job queues")
    model_dir: str = Field(
        default="./models",
        description="Model registry root, a folder or s3://bucket/prefix; MODEL_DIR/current names the active version",
    )
    model_cache_dir: Path = Field(
        default=Path("./.cache/models"),
        description="Where workers keep the versions they download from an s3:// MODEL_DIR",
    )
    model_cache_keep: int = Field(
        default=3,
        ge=1,
        description="How many versions MODEL_CACHE_DIR keeps, the most recently used (older ones are deleted when a"
        " new one arrives)",
    )
    model_store_endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint for an s3:// MODEL_DIR on MinIO or another S3-compatible store (default: AWS)",
    )
    model_path: Path | None = Field(
        default=None, description="A save_pretrained folder to serve directly, overriding MODEL_DIR"
    )
    admin_user_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Slack user ids allowed to run /retrain and the newsroom commands (watch, route)",
    )
    fetch_allowed_networks: Annotated[list[IPNetwork], NoDecode] = Field(
        default_factory=list, description="CIDRs the link fetcher may reach although private (intranets, tests)"
    )
    log_level: str = Field(default="INFO", description="Python logging level")
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log lines as text, or one JSON object per line (json) for a log collector"
    )
    ops_host: str = Field(
        default="127.0.0.1",
        description="Address of the /healthz and /metrics endpoint: this host only by default; 0.0.0.0 where"
        " Prometheus or a healthcheck reaches it over a network (docker-compose.yml sets it)",
    )
    metrics_on_slack_port: bool = Field(
        default=False,
        description="Also serve /metrics on the bot's public Slack port (HTTP mode); by default only the ops port"
        " has them",
    )
    ops_port: int = Field(
        default=9100,
        ge=0,
        le=65535,
        description="Port of /healthz and /metrics of the bot and of each worker (0: none)",
    )

    # --- serving (worker) ---------------------------------------------------------------------------
    inference_device: str | None = Field(
        default=None, description="torch device for serving: cuda, cpu (default: cuda when present)"
    )
    serving_gpu_memory_fraction: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="Share of the GPU's memory a serving worker may use (the rest stays free for a training)",
    )
    max_length: int = Field(default=512, ge=16, le=512, description="Tokens per article at most (title + body)")
    truncation: Literal["head", "head_tail"] = Field(
        default="head", description="How long bodies are cut: keep the head, or head and tail"
    )
    classify_batch_size: int = Field(
        default=32, ge=1, le=1024, description="Most queued classify jobs run in one batch"
    )
    confidence_threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="When set, overrides the served model's own bar: an answer whose calibrated top probability is"
        " below it is unsure (default: the bar the model earned on its validation split for TARGET_PRECISION; 0.5"
        " for a model trained without one)",
    )
    target_precision: float = Field(
        default=0.99,
        gt=0.0,
        le=1.0,
        description='Training chooses each model\'s "sure" bar on its validation split so that sure answers are'
        " right at least this often; only sure answers get reactions, watched-channel replies and cross-posts",
    )
    max_links_per_message: int = Field(default=5, ge=1, le=50, description="Links fetched from one message at most")
    fetch_timeout_s: float = Field(default=10.0, gt=0, le=60, description="Total time to fetch one linked page")
    fetch_max_bytes: int = Field(default=5 * 1024 * 1024, gt=0, description="Bytes read from one linked page at most")
    classify_job_timeout_s: int = Field(
        default=60,
        ge=5,
        le=3600,
        description="Seconds a classify job (a whole batch) may run before it fails (and is retried); a worker killed"
        " mid-job has its jobs answered by another worker within about 20 s, whatever this is",
    )
    slack_timeout_s: float = Field(default=15.0, gt=0, le=120, description="HTTP timeout of one Slack Web API call")
    model_poll_interval_s: float = Field(
        default=5.0, gt=0, description="How often workers look for a new current model"
    )
    record_ttl_days: int = Field(
        default=90,
        ge=0,
        le=3650,
        description="Days a classification record (the article, for feedback) is kept when nobody gave feedback on it;"
        " records with feedback are kept for good (0: keep all)",
    )

    # --- Slack surface (bot) ------------------------------------------------------------------------
    classify_response_type: Literal["in_channel", "ephemeral"] = Field(
        default="in_channel", description="Who sees /classify-news results: the channel or only the user"
    )
    watch_reply: Literal["reaction", "thread", "both"] = Field(
        default="reaction",
        description="How an article in a watched channel is answered: a category reaction, a thread reply, or both",
    )
    category_emoji: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_CATEGORY_EMOJI),
        description="Reaction per label in watched channels, `label=emoji,…` over the defaults; `*=emoji` for"
        " labels not named",
    )
    slack_pace_s: float = Field(
        default=1.0,
        ge=0.0,
        le=60.0,
        description="Least seconds from the end of one reaction or post in a channel to the start of the next, across"
        " all workers (Slack's rate tiers)",
    )
    newsroom_timezone: str = Field(
        default="Asia/Tokyo",
        description='The newsroom\'s time zone (IANA name): where the App Home\'s "today" and "this week" begin',
    )
    member_rate_per_minute: int = Field(
        default=20,
        ge=0,
        description="Articles one member may ask the bot to classify per minute (mentions, DMs, /classify-news,"
        " the shortcut); 0: no limit",
    )
    editor_user_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Slack user ids of editors besides the admins: their corrections train the next model as they are,"
        " and they accept or reject other members' corrections in the App Home",
    )
    editor_usergroup: str | None = Field(
        default=None,
        description="A Slack user group id (S…) whose members are editors too (usergroups.users.list, scope"
        " usergroups:read)",
    )
    corrections_per_member_per_day: int = Field(
        default=20,
        ge=1,
        le=10000,
        description="Most corrections of one member per day (NEWSROOM_TIMEZONE) that a training counts; the others"
        " are kept, capped",
    )
    editor_holdout_share: float = Field(
        default=0.2,
        ge=0.0,
        le=0.9,
        description="Share of the editor-confirmed records held out of training: the promotion guard refuses a"
        " candidate worse on them than the current model (0: none)",
    )
    admins_include_workspace_admins: bool = Field(
        default=False,
        description="Also let this workspace's admins and owners (users.info) run /retrain;"
        " a Slack Connect partner's admins never",
    )

    # --- training -----------------------------------------------------------------------------------
    train_data: str = Field(
        default=LIVEDOOR_CORPUS_URL,
        description="Training data for /retrain: the livedoor corpus (archive path, URL, or extracted text/ folder),"
        " a CSV / JSON Lines / Parquet file (text, label, optional title, id), or a folder of .txt files per label",
    )
    labels_file: Path | None = Field(
        default=None,
        description="Display names of TRAIN_DATA's labels: YAML or JSON {label: {ja: …, en: …}} (default: the"
        " labels themselves; livedoor's names for the livedoor corpus)",
    )
    data_cache_dir: Path = Field(default=Path("./.cache/data"), description="Where downloaded corpora are cached")
    base_model: str = Field(default=DEFAULT_BASE_MODEL, description="Default base model for /retrain")
    promotion_tolerance: float = Field(
        default=0.0, ge=0.0, le=1.0, description="A new model is promoted if its test macro-F1 >= current - tolerance"
    )
    base_models_dir: Path = Field(
        default=Path("./models/base"),
        description="Folders that `/retrain base=<name>` may name (besides hub names org/name and MODEL_DIR versions)",
    )
    retrain_max_epochs: float = Field(default=20.0, gt=0, le=100, description="Largest epochs=N /retrain accepts")
    retrain_timeout_s: int = Field(default=6 * 3600, ge=60, description="A training job is stopped after this long")
    training_lock_ttl_s: int = Field(
        default=60,
        ge=3,
        le=3600,
        description="A running training renews its lock every third of this; a killed train worker's lapses after it",
    )
    progress_interval_s: float = Field(
        default=2.0, ge=0.0, le=60.0, description="Least time between two updates of the /retrain progress message"
    )
    train_run_dir: Path = Field(
        default=Path("./runs"), description="Where each training run keeps its checkpoints and TensorBoard logs"
    )

    @field_validator("model_dir", mode="before")
    @classmethod
    def _path_as_text(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @field_validator("admin_user_ids", "editor_user_ids", mode="before")
    @classmethod
    def _parse_admins(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("category_emoji", mode="before")
    @classmethod
    def _parse_emoji(cls, value: Any) -> Any:
        """``label=emoji,…`` (colons around the emoji optional) over the defaults."""
        if not isinstance(value, str):
            return value
        emoji = dict(DEFAULT_CATEGORY_EMOJI)
        for part in _split_csv(value):
            label, sep, name = part.partition("=")
            name = name.strip().strip(":")
            if not sep or not label.strip() or not _EMOJI_NAME.fullmatch(name):
                raise ValueError(f"expected label=emoji, got {part!r}")
            emoji[label.strip()] = name
        return emoji

    def emoji_for(self, label: str) -> str:
        """The reaction for ``label`` in a watched channel (the ``*`` one for a label not configured)."""
        return self.category_emoji.get(label) or self.category_emoji.get("*") or DEFAULT_CATEGORY_EMOJI["*"]

    @field_validator("newsroom_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Tokyo or UTC)") from None
        return value

    @property
    def newsroom_tz(self) -> tzinfo:
        """:attr:`newsroom_timezone` as a tzinfo."""
        return ZoneInfo(self.newsroom_timezone)

    @field_validator("fetch_allowed_networks", mode="before")
    @classmethod
    def _parse_networks(cls, value: Any) -> Any:
        parts = _split_csv(value)
        if isinstance(parts, list):
            return [ipaddress.ip_network(p, strict=False) if isinstance(p, str) else p for p in parts]
        return parts

    def require(self, *env_names: str) -> Settings:
        """Raise :class:`SettingsError` naming the first of ``env_names`` that is unset or empty."""
        for name in env_names:
            if not getattr(self, name.lower()):
                hint = _HELP.get(name, "")
                raise SettingsError(f"missing required setting {name}" + (f": {hint}" if hint else ""))
        return self


def load_settings(*required: str) -> Settings:
    """Read the settings once; raise :class:`SettingsError` with one line if any is missing or malformed."""
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise SettingsError(f"invalid setting {name}: {first['msg']}") from None
    return settings.require(*required)
