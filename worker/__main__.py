"""``python -m worker``: load the model once, then serve the ``classify`` queue (or ``--queues train``)."""

from __future__ import annotations

import argparse
import logging
import sys

from common.exceptions import SettingsError
from common.jobs import CLASSIFY_QUEUE
from common.logs import configure_logging
from common.settings import load_settings
from store.queues import SERIALIZER, WORKER_TTL_S, redis_connection

log = logging.getLogger("worker")


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text}")
    return port


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument("--queues", nargs="+", default=[CLASSIFY_QUEUE], help="queues to serve (default: classify)")
    parser.add_argument("--burst", action="store_true", help="exit once the queues are empty (benchmarks, tests)")
    parser.add_argument("--name", default=None, help="worker name shown in RQ (default: generated)")
    parser.add_argument(
        "--ops-port",
        type=_port,
        default=None,
        help="port of /healthz and /metrics (default: OPS_PORT; 0: none), e.g. for a second worker on one host",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings("SLACK_BOT_TOKEN")
    except SettingsError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)

    # Heavy imports only after the settings are known to be usable.
    from bot.slack_client import SlackTokenCheck, token_alive
    from newsmodel import store
    from store.slack import revoked_reason
    from telemetry import metrics
    from telemetry.endpoint import serve_ops
    from worker import jobs
    from worker.batching import MAINTENANCE_INTERVAL_S, BatchingWorker
    from worker.classifier import ModelService, use_all_cores
    from worker.fetch import GuardedFetcher
    from worker.health import worker_probe
    from worker.slack import SlackReplier, web_client

    store.configure(settings.model_store_endpoint_url, settings.model_cache_dir, settings.model_cache_keep)
    connection = redis_connection(settings)
    metrics.watch_slack_token(lambda: revoked_reason(connection, settings.slack_bot_token))
    models = ModelService.from_settings(settings)
    serves_classify = CLASSIFY_QUEUE in args.queues
    client = web_client(settings)
    # A SimpleWorker (BatchingWorker is one) runs each job in this process instead of forking a child per job
    # (RQ's default). A forked child cannot use CUDA once the parent has initialised it, and would have to
    # reload the model (seconds) for every job; in-process, the model loaded below serves every job.
    worker = BatchingWorker(
        args.queues,
        connection=connection,
        serializer=SERIALIZER,
        name=args.name,
        maintenance_interval=MAINTENANCE_INTERVAL_S,
        worker_ttl=WORKER_TTL_S,
    )
    worker.batch_size = settings.classify_batch_size
    # The ops endpoint first, before the model loads (seconds to minutes): /livez answers at once, /readyz says
    # "model_loaded": false until it is, and a port another worker on this host holds is one log line, not a
    # traceback after the load (serve_ops never raises).
    ops = None
    from_flag = args.ops_port is not None
    ops_port = args.ops_port if from_flag else settings.ops_port
    if ops_port:
        probe = worker_probe(
            connection,
            models,
            args.queues,
            worker.name,
            serves_model=serves_classify,
            clock=worker.clock,
            token_ok=token_alive(SlackTokenCheck(client), connection, settings.slack_bot_token),
        )
        ops = serve_ops(settings.ops_host, ops_port, probe, setting="--ops-port" if from_flag else "OPS_PORT")
    if serves_classify:
        log.info("torch threads: %d", use_all_cores())
        models.load()  # once, before the first job: jobs never load a model (a train worker loads none)
    jobs.install(
        jobs.Runtime(
            settings=settings,
            connection=connection,
            models=models,
            replier=SlackReplier(client),
            fetcher=GuardedFetcher.from_settings(settings),
        )
    )
    if serves_classify:
        # Hot reload: poll MODEL_DIR/current, load a new version in the background, swap it between batches;
        # and publish what is served in newsbot:serving:<worker name> for `/retrain status`.
        models.start_watching(connection, worker.name)
    try:
        worker.work(burst=args.burst, with_scheduler=True, logging_level=settings.log_level.upper())
    finally:
        models.stop()
        if ops is not None:
            ops.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
