"""Who is an editor: the admins (ADMIN_USER_IDS), the members named in EDITOR_USER_IDS, and the members of the
Slack user group EDITOR_USERGROUP (usergroups.users.list, scope ``usergroups:read``).

An editor's corrections train the next model as they are; anyone else's wait until an editor accepts them in the
App Home (:mod:`store.trust`). Both the bot (the review buttons, checked on the server) and the training worker
(which corrections a training uses) ask this policy. A user group that cannot be read counts as empty: its members'
corrections wait for review rather than pass unchecked.
"""

from __future__ import annotations

import logging
import time

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from common.settings import Settings
from store.trust import TrustPolicy

log = logging.getLogger(__name__)

# The user group's members are asked again after this long, so a member removed from it stops counting soon.
USERGROUP_CACHE_TTL_S = 60.0
# The members last listed, by user group id, with when (shared by every policy of the process: a Home published
# per click asks Slack at most once a minute).
_GROUPS: dict[str, tuple[float, frozenset[str]]] = {}


class EditorPolicy:
    """The editors, from the settings and (when set) the Slack user group, and the trust policy they make."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.named = frozenset(settings.admin_user_ids) | frozenset(settings.editor_user_ids)
        self.usergroup = settings.editor_usergroup

    def group_members(self, client: WebClient) -> frozenset[str]:
        """EDITOR_USERGROUP's members (cached USERGROUP_CACHE_TTL_S); empty without one or when Slack cannot say."""
        if not self.usergroup:
            return frozenset()
        now = time.monotonic()
        cached = _GROUPS.get(self.usergroup)
        if cached is not None and now - cached[0] < USERGROUP_CACHE_TTL_S:
            return cached[1]
        try:
            users = client.usergroups_users_list(usergroup=self.usergroup).get("users") or []
        except (SlackApiError, SlackClientError) as exc:
            log.warning(
                "usergroups.users.list for %s failed (%s): its members count as non-editors", self.usergroup, exc
            )
            return frozenset()
        members = frozenset(str(user) for user in users)
        _GROUPS[self.usergroup] = (now, members)
        return members

    def editors(self, client: WebClient) -> frozenset[str]:
        return self.named | self.group_members(client)

    def is_editor(self, client: WebClient, user_id: str | None) -> bool:
        if not user_id:
            return False
        return user_id in self.named or user_id in self.group_members(client)

    def trust_policy(self, client: WebClient) -> TrustPolicy:
        """The trust a training (or the review queue) applies now."""
        return TrustPolicy(
            editors=self.editors(client),
            daily_cap=self.settings.corrections_per_member_per_day,
            timezone=self.settings.newsroom_timezone,
            holdout_share=self.settings.editor_holdout_share,
        )
