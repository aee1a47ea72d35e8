"""Contracts shared by the bot, the worker and the training package.

Everything here is pure Python (no torch, no Slack SDK) so that every process can import it:
the category labels, the job payloads that cross the queue, the settings, and the exceptions.
"""
