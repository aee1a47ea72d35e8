"""Contracts shared by the bot, the workers and the training package, with no heavy dependency.

Only the standard library and pydantic (the base install: ``pip install newsbot``): the settings, the exceptions,
the job payloads that cross the queue, the label sets and model kinds, article parsing, log formatting and the one
mrkdwn escape. Everything with a service behind it lives elsewhere: Redis records and RQ queues in ``store``,
Slack messages and views in ``ui``, metrics and the health endpoint in ``telemetry``
(``tests/test_architecture.py`` checks that common imports nothing beyond its base install).
"""
