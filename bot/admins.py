"""Who may run admin actions: ADMIN_USER_IDS, plus (when a setting says so) this workspace's admins and owners.

A workspace admin counts only for the workspace the bot is installed in: in a Slack Connect channel, the
admins of the other organisations are admins of *their* workspaces (users.info says ``is_admin`` with their
own ``team_id``) and must not pass. The bot's workspace is the ``team_id`` of auth.test with its own token,
not the request's team_id, which in a shared channel can be the clicking user's own workspace.
"""

from __future__ import annotations

import logging
import time

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from common.exceptions import NotAdminError
from common.settings import Settings

log = logging.getLogger(__name__)

# users.info answers are remembered this long, so a burst of clicks makes one call, and a demoted
# workspace admin loses access within a minute.
ROLE_CACHE_TTL_S = 60.0


class AdminPolicy:
    """Checked on the server for every admin command and button, never trusted from the UI."""

    def __init__(self, settings: Settings) -> None:
        self.admin_user_ids = frozenset(settings.admin_user_ids)
        self.include_workspace_admins = settings.admins_include_workspace_admins
        self._roles: dict[str, tuple[float, bool]] = {}
        self._own_team: str | None = None

    def own_team(self, client: WebClient) -> str | None:
        """The bot's workspace (auth.test's team_id), asked once; None while Slack cannot say."""
        if self._own_team is None:
            try:
                team = client.auth_test().get("team_id")
            except (SlackApiError, SlackClientError) as exc:
                log.warning("auth.test failed (%s): workspace admins cannot be checked", exc)
                return None
            self._own_team = str(team) if team else None
        return self._own_team

    def is_admin(self, client: WebClient, user_id: str | None) -> bool:
        if not user_id:
            return False
        if user_id in self.admin_user_ids:
            return True
        if not self.include_workspace_admins:
            return False
        cached = self._roles.get(user_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < ROLE_CACHE_TTL_S:
            return cached[1]
        try:
            user = client.users_info(user=user_id).get("user") or {}
        except (SlackApiError, SlackClientError) as exc:
            log.warning("users.info for %s failed (%s): treated as not an admin", user_id, exc)
            return False
        team = self.own_team(client)
        if team is None:
            return False
        role = bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))
        allowed = role and user.get("team_id") == team
        if role and not allowed:
            log.warning("%s is an admin of workspace %s, not of this one (%s)", user_id, user.get("team_id"), team)
        self._roles[user_id] = (now, allowed)
        return allowed

    def require(self, client: WebClient, user_id: str | None) -> None:
        """Raise :class:`NotAdminError` unless ``user_id`` is an admin."""
        if not self.is_admin(client, user_id):
            log.info("admin action refused for %s", user_id)
            raise NotAdminError(f"{user_id} is not an admin")
