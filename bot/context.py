"""What the listeners share, put in Bolt's context once per request by :func:`dependencies`.

Bolt passes each context key to a listener that has a parameter of that name
(``slack_bolt.kwargs_injection.utils.build_required_kwargs``), so a listener declares what it uses::

    def handle_retrain(ack: Ack, command: dict[str, Any], submitter: JobSubmitter, settings: Settings,
                       admins: AdminPolicy, client: WebClient, respond: Respond) -> None: ...

and a test passes fakes by keyword. The names are Bolt's own arguments' neighbours, so none may shadow one
(``client``, ``context``, ``body``, …: Bolt's win).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from slack_bolt import BoltContext

from bot.admins import AdminPolicy
from bot.submit import JobSubmitter
from common.settings import Settings
from store.feedback import FeedbackStore


@dataclass(frozen=True, slots=True)
class Dependencies:
    """The shared objects, each under the listener parameter name it is passed as."""

    submitter: JobSubmitter  # enqueues jobs, claims deliveries; its ``connection`` is the bot's Redis
    settings: Settings
    admins: AdminPolicy  # who may run admin commands and buttons, checked on the server
    feedback: FeedbackStore  # the feedback buttons' answers

    def put(self, context: BoltContext) -> None:
        context["submitter"] = self.submitter
        context["settings"] = self.settings
        context["admins"] = self.admins
        context["feedback"] = self.feedback


def dependencies(shared: Dependencies) -> Callable[[BoltContext, Callable[[], None]], None]:
    """A global middleware putting ``shared`` in every request's context."""

    def inject_dependencies(context: BoltContext, next: Callable[[], None]) -> None:
        shared.put(context)
        next()

    return inject_dependencies
