"""The Slack surface: receives mentions and commands, acks within Slack's 3 s, enqueues jobs.

It never imports torch or the worker: it talks to the workers only through the Redis queues.
"""
