"""Who may run admin actions: ADMIN_USER_IDS, plus (when a setting says so) workspace admins and owners."""

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
        allowed = bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))
        self._roles[user_id] = (now, allowed)
        return allowed

    def require(self, client: WebClient, user_id: str | None) -> None:
        """Raise :class:`NotAdminError` unless ``user_id`` is an admin."""
        if not self.is_admin(client, user_id):
            log.info("admin action refused for %s", user_id)
            raise NotAdminError(f"{user_id} is not an admin")
