"""Republishing the App Home of everyone who opened it lately, after this worker changed the current model.

``worker.admin.rollback`` (rollback and the admins' promote) and ``worker.retrain.retrain`` call
:func:`publish_homes_after_model_change` once they are done. The Home is built by :mod:`ui.home`, the
same code the bot uses; the model it shows is the registry's current version as this worker reads it
(the serving workers may still be loading it: the Home says so), and the admin buttons follow the role the
bot saw when the viewer last opened the Home (every click is checked again by the bot).
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.editors import EditorPolicy
from newsmodel.registry import list_versions
from store import activity
from store.serving import ModelFacts
from ui import home
from ui.reports import metric
from worker.jobs import Runtime

log = logging.getLogger(__name__)


def current_model(rt: Runtime) -> ModelFacts | None:
    """The registry's current version and its facts (None when MODEL_PATH pins the model, or none is current)."""
    settings = rt.settings
    if settings.model_path is not None:
        return None
    # The registry's listing works on a local folder and on an object store alike (no model download).
    info = next((v for v in list_versions(settings.model_dir) if v.is_current), None)
    if info is None:
        return None
    labels = list(info.labels) if info.labels is not None else (info.metrics or {}).get("labels")
    return ModelFacts(
        version=info.version,
        model_type=info.model_type,
        trained_at=info.created_at.isoformat(),
        accuracy=metric(info.metrics, "accuracy"),
        macro_f1=metric(info.metrics, "macro_f1", "f1_macro"),
        labels=tuple(str(label) for label in labels) if isinstance(labels, list) else (),
        label_names={k: dict(v) for k, v in info.labels.names.items()} if info.labels is not None else {},
    )


def publish_homes_after_model_change(rt: Runtime) -> int:
    """Republish the Home of each recent viewer (store.activity.home_viewers); how many were published.

    Never raises: the model change it follows has happened already, and a Home is refreshed anyway the next
    time its user opens it.
    """
    published = 0
    try:
        announced = current_model(rt)
        viewers = activity.home_viewers(rt.connection)
        trust = EditorPolicy(rt.settings).trust_policy(rt.replier.client)  # editors' Homes keep their review queue
    except Exception:
        log.exception("could not read what to republish on the App Home")
        return 0
    for viewer in viewers:
        try:
            view = home.home_view(
                home.gather(
                    rt.connection,
                    viewer.user,
                    viewer.admin,
                    timezone=rt.settings.newsroom_timezone,
                    classify_response_type=rt.settings.classify_response_type,
                    announced=announced,
                    trust=trust,
                )
            )
            rt.replier.client.views_publish(user_id=viewer.user, view=view)
            published += 1
        except (SlackApiError, SlackClientError) as exc:
            log.warning("could not republish the Home of %s: %s", viewer.user, exc)
        except Exception:
            log.exception("could not republish the Home of %s", viewer.user)
    log.info("republished %d App Home view(s) after the model change", published)
    return published
