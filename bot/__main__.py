"""``python -m bot``: Socket Mode when SLACK_APP_TOKEN is set, or ``--http --port N`` for the Events API."""

from __future__ import annotations

import argparse
import logging
import sys
from zoneinfo import ZoneInfo

from common.exceptions import SettingsError
from common.logs import configure_logging
from common.settings import load_settings

log = logging.getLogger("bot")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    parser.add_argument("--http", action="store_true", help="serve the Events API over HTTP instead of Socket Mode")
    parser.add_argument("--host", default="0.0.0.0", help="HTTP bind address (default 0.0.0.0)")  # noqa: S104
    parser.add_argument("--port", type=int, default=3000, help="HTTP port (default 3000)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    required = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET") if args.http else ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN")
    try:
        settings = load_settings(*required)
    except SettingsError as exc:
        hint = "" if args.http else " (or run `python -m bot --http` with SLACK_SIGNING_SECRET)"
        print(f"bot: {exc}{hint}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)

    from bot.app import build_app
    from bot.slack_client import SlackTokenCheck, token_alive
    from bot.submit import JobSubmitter
    from store import live
    from store.queues import queue_depths, redis_connection, redis_reachable, registry_counts
    from store.slack import revoked_reason
    from telemetry import metrics
    from telemetry.endpoint import Health, serve_ops

    connection = redis_connection(settings)
    metrics.watch_queue_depths(lambda: queue_depths(connection), lambda: registry_counts(connection))
    metrics.watch_slack_token(lambda: revoked_reason(connection, settings.slack_bot_token))
    zone = ZoneInfo(settings.newsroom_timezone)
    metrics.watch_live_accuracy(lambda: live.gauge_samples(live.served_figures(connection, tz=zone)))
    app = build_app(
        settings, JobSubmitter(connection, settings.classify_job_timeout_s, settings.member_rate_per_minute)
    )
    # Readiness: Redis answers and the token works (auth.test, at most every few minutes, never waited for).
    # Liveness is the endpoint answering at all: the bot has no loop of its own to watch.
    token_ok = token_alive(SlackTokenCheck(app.client), connection, settings.slack_bot_token)
    if args.http:
        from bot.server import serve

        # The Slack port answers /healthz and /metrics too; OPS_PORT gives them the port every process has,
        # the one Prometheus scrapes (ops/prometheus.yml) whichever mode the bot runs in.
        if settings.ops_port:
            serve_ops(
                settings.ops_host,
                settings.ops_port,
                lambda: Health(checks={"redis": redis_reachable(connection), "slack_token": token_ok()}),
            )
        serve(
            app, connection, settings.slack_signing_secret or "", args.host, args.port, settings.metrics_on_slack_port
        )
    else:
        import signal

        from slack_bolt.adapter.socket_mode import SocketModeHandler

        handler = SocketModeHandler(app, settings.slack_app_token)

        def probe() -> Health:
            """Ready while the Socket Mode connection is up, Redis answers and the token works."""
            connected = bool(handler.client.is_connected())
            checks = {"socket_mode": connected, "redis": redis_reachable(connection), "slack_token": token_ok()}
            return Health(checks=checks)

        if settings.ops_port:
            serve_ops(settings.ops_host, settings.ops_port, probe)

        def stop(signum: int, _frame: object) -> None:
            log.info("signal %d: closing the Socket Mode connection", signum)
            handler.close()  # type: ignore[no-untyped-call]
            raise SystemExit(0)

        signal.signal(signal.SIGTERM, stop)
        handler.start()  # type: ignore[no-untyped-call]
    return 0


if __name__ == "__main__":
    sys.exit(main())
