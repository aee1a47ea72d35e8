"""Every id the views put in Slack and the bot's listeners match: action ids, block ids, callback ids.

A classification reply's feedback buttons carry the classification record id as their ``value`` (see
``store.classifications.ClassificationRecord``); the category select's block id carries it after
:data:`CHOOSE_BLOCK_PREFIX`.
"""

from __future__ import annotations

import json

# --- classification replies (rendered by the worker, handled by the bot) ------------------------------------
FEEDBACK_CORRECT_ACTION = "feedback_correct"
FEEDBACK_WRONG_ACTION = "feedback_wrong"
FEEDBACK_CHOOSE_ACTION = "feedback_choose"
# The context block with the feedback counts on a classification reply; replaced on every click.
COUNTS_BLOCK_ID = "newsbot_feedback_counts"
# The select's block id carries the classification record id: ``feedback_choose:<record id>``.
CHOOSE_BLOCK_PREFIX = "feedback_choose:"


def choose_block_id(record_id: str) -> str:
    """The category select's block id, carrying the classification record id."""
    return f"{CHOOSE_BLOCK_PREFIX}{record_id}"


def chosen_record(block_id: str) -> str | None:
    """The record id a category select's block id carries, or None for another block."""
    return block_id.removeprefix(CHOOSE_BLOCK_PREFIX) if block_id.startswith(CHOOSE_BLOCK_PREFIX) else None


# An unsure answer asks "which desk?": one button per top label beside Correct / Wrong (in the same actions block,
# to keep within Slack's 50 blocks), action id ``feedback_pick_<rank>`` (ids are unique within a block), value the
# record id and the label as a JSON pair (:func:`pick_value`).
FEEDBACK_PICK_ACTION = "feedback_pick"


def pick_action_id(rank: int) -> str:
    """The action id of the ``rank``-th "which desk?" button (0 for the most probable label)."""
    return f"{FEEDBACK_PICK_ACTION}_{rank}"


def pick_value(record_id: str, label: str) -> str:
    """A "which desk?" button's value: the classification record id and the label it stands for."""
    return json.dumps([record_id, label], ensure_ascii=False)


def picked(value: str) -> tuple[str, str] | None:
    """The (record id, label) a "which desk?" button's value carries, or None for anything else."""
    try:
        pair = json.loads(value)
    except ValueError:
        return None
    if isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) and part for part in pair):
        return pair[0], pair[1]
    return None


# The message block that shows an error instead of a reply.
ERROR_BLOCK_ID = "error"


def result_block_id(index: int) -> str:
    """The section with the ``index``-th article's result."""
    return f"result-{index}"


def meta_block_id(index: int) -> str:
    """The context under the ``index``-th article's result (its model version and record id)."""
    return f"meta-{index}"


def feedback_block_id(index: int) -> str:
    """The actions block with the ``index``-th article's feedback buttons."""
    return f"feedback-{index}"


def article_error_block_id(index: int) -> str:
    """The section saying why the ``index``-th article was not classified."""
    return f"error-{index}"


# --- the /retrain report --------------------------------------------------------------------------------------
# An admin button on a /retrain report that was not promoted: make that version current anyway.
RETRAIN_PROMOTE_ACTION = "retrain_promote"
RETRAIN_PROMOTE_BLOCK_ID = "retrain_promote"

# --- the App Home (handled by bot/listeners/home.py, checked on the server there) ----------------------------
HOME_RETRAIN_ACTION = "home_retrain"  # ``home_retrain_<type>``; value: a model kind (common.kinds.MODEL_KINDS)
HOME_ROLLBACK_ACTION = "home_rollback"
HOME_PROMOTE_ACTION = "home_promote"  # a static_select; the selected option's value is the version
HOME_ADMIN_BLOCK_ID = "home_admin"


# An editor's review of another member's correction; value: ``<user>:<record id>`` (review_value).
HOME_REVIEW_ACCEPT_ACTION = "home_review_accept"
HOME_REVIEW_REJECT_ACTION = "home_review_reject"


def review_block_id(index: int) -> str:
    """The actions block with the ``index``-th pending correction's accept and reject buttons."""
    return f"home_review-{index}"


def review_value(user: str, record_id: str) -> str:
    """A review button's value: whose correction, on which record (user ids carry no colon)."""
    return f"{user}:{record_id}"


def reviewed(value: str) -> tuple[str, str] | None:
    """(user, record id) from a review button's value, or None for another value."""
    user, sep, record_id = value.partition(":")
    return (user, record_id) if sep and user and record_id else None


# An editor labels one of today's unsure articles in the Home: a static_select of the record's labels, its block id
# carrying the record id (unsure_block_id); the selected option's value is the label.
HOME_UNSURE_LABEL_ACTION = "home_unsure_label"
UNSURE_BLOCK_PREFIX = "home_unsure:"


def unsure_block_id(record_id: str) -> str:
    """The actions block with the label select of an unsure article in the Home's review list."""
    return f"{UNSURE_BLOCK_PREFIX}{record_id}"


def unsure_record(block_id: str) -> str | None:
    """The record id an unsure article's select block carries, or None for another block."""
    record_id = block_id.removeprefix(UNSURE_BLOCK_PREFIX)
    return record_id if block_id.startswith(UNSURE_BLOCK_PREFIX) and record_id else None


def home_retrain_action(model_type: str) -> str:
    """The action id of the Home's retrain button for ``model_type``."""
    return f"{HOME_RETRAIN_ACTION}_{model_type}"


# --- the message shortcut (manifest.yml names it too) ---------------------------------------------------------
CLASSIFY_MESSAGE_CALLBACK = "classify_message"
