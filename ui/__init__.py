"""Every message and view newsbot posts in Slack, built in one place for the bot and the worker alike.

- :mod:`ui.ids`: every action id, block id and callback id: the views put them in, the bot's listeners match them.
- :mod:`ui.commands`: the slash commands and their subcommands, one table; the help and usage texts are generated
  from it, and the bot's subcommand tables dispatch on its names.
- :mod:`ui.blocks`: the Block Kit builders the views share.
- :mod:`ui.replies` (classification replies), :mod:`ui.feedback` (feedback counts and the category select),
  :mod:`ui.newsroom` (watch and route answers, desk posts), :mod:`ui.retrain` (training answers and the report),
  :mod:`ui.admin` (``/retrain status`` and ``rollback`` answers), :mod:`ui.texts` (the bot's short answers),
  :mod:`ui.home` (the App Home).

One style: Block Kit as plain JSON dicts (``dict[str, Any]``), built by the small helpers of :mod:`ui.blocks`.
Plain dicts because that is what the product handles everywhere else: Slack sends a message's blocks back as
dicts (the bot edits a reply's counts block in place, :func:`ui.feedback.with_counts`), the App Home is one large
view, tests read blocks as JSON, and ``chat.postMessage`` and ``views.publish`` take dicts. slack_sdk's models
would be converted to dicts at every one of those seams. Every string from outside (page titles, user text,
labels' display names, error details) goes through :mod:`common.mrkdwn`.

This package imports :mod:`common` only (never bot, worker, training or torch): both the bot and the worker
import it.
"""
