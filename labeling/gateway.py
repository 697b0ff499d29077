"""The one module that talks to Label Studio through its SDK.

Everything else in the project sees plain records (`labeling.tasks`), never SDK
objects, so a change of SDK or server version stays inside this file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx
from label_studio_sdk.client import LabelStudio
from label_studio_sdk.core.api_error import ApiError
from label_studio_sdk.label_interface import LabelInterface

from labeling.errors import LabelStudioRejected, LabelStudioUnavailable
from labeling.filters import id_range_query, ids_after_query, updated_since_query
from labeling.studio_config import CHOICES_FIELD, IMAGE_FIELD, ProjectSpec
from labeling.tasks import (
    StudioPrediction,
    StudioTask,
    Suggestion,
    TaskDraft,
    prediction_payload,
    prediction_record,
    studio_task,
    task_data,
    task_payload,
)

IMPORT_BATCH = 1000
PAGE_SIZE = 500
WEBHOOK_ACTIONS = (
    "ANNOTATION_CREATED",
    "ANNOTATION_UPDATED",
    "ANNOTATIONS_DELETED",
    "TASKS_DELETED",
)


def build_label_config(spec: ProjectSpec) -> str:
    """The labeling config XML: the image, a header and one Choice per guide label."""
    choice_tags = tuple(
        ("Choice", _choice_attributes(label, definition, hotkey), ())
        for label, definition, hotkey in spec.choices
    )
    choices_attrs = {
        "toName": IMAGE_FIELD,
        "choice": "single-radio",
        "required": "true",
        "showInline": "true",
    }
    config = LabelInterface.create(
        {
            "header": ("Header", {"value": spec.header}, ()),
            IMAGE_FIELD: ("Image", {"zoom": "true", "maxWidth": "320px", "smoothing": "false"}, ()),
            CHOICES_FIELD: ("Choices", choices_attrs, choice_tags),
        }
    )
    LabelInterface(config)  # parses and validates the generated config
    return config


def _choice_attributes(label: str, definition: str, hotkey: str | None) -> dict[str, str]:
    attrs = {"value": label, "hint": definition}
    if hotkey:
        attrs["hotkey"] = hotkey
    return attrs


class LabelStudioGateway:
    """Create projects, push tasks with predictions and read annotations back."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`transport` lets the caller observe every HTTP call (timing, failures)."""
        self.url = url.rstrip("/")
        self._http = httpx.Client(timeout=timeout_s, transport=transport)
        self._client = LabelStudio(base_url=self.url, api_key=api_key, httpx_client=self._http)

    def close(self) -> None:
        """Release the HTTP connections."""
        self._http.close()

    def is_up(self) -> bool:
        try:
            response = self._http.get(f"{self.url}/health", timeout=2.0)
            return response.status_code == 200
        except httpx.HTTPError:
            return False

    def ensure_project(self, spec: ProjectSpec) -> int:
        """The id of the project titled `spec.title`, created or brought up to the guide."""
        config = build_label_config(spec)
        settings: dict[str, Any] = {
            "description": spec.description,
            "label_config": config,
            "expert_instruction": spec.instructions_html,
            "show_instruction": True,
            "maximum_annotations": spec.maximum_annotations,
            "overlap_cohort_percentage": spec.overlap_percentage,
            "show_collab_predictions": True,
            # Annotators are served tasks in id order, which is the round's rank order.
            "sampling": "Sequential sampling",
            "show_overlap_first": False,
        }
        with _translated_errors("find project"):
            found = [
                p for p in self._client.projects.list(title=spec.title) if p.title == spec.title
            ]
        if not found:
            with _translated_errors("create project"):
                return int(self._client.projects.create(title=spec.title, **settings).id)
        # A create retried after a lost answer can leave twins: keep the oldest one with tasks
        # (or the oldest), remove the empty others.
        project = max(found, key=lambda p: (bool(p.task_number), -int(p.id)))
        for duplicate in found:
            if duplicate.id != project.id and not duplicate.task_number:
                with _translated_errors("remove an empty duplicate project"):
                    self._client.projects.delete(id=duplicate.id)
        if project.description != spec.description:
            with _translated_errors("update project to the new guide"):
                self._client.projects.update(id=project.id, **settings)
        return int(project.id)

    def import_tasks(self, project_id: int, drafts: Sequence[TaskDraft]) -> list[int]:
        """Import tasks with their predictions, in order; returns their task ids in that order."""
        task_ids: list[int] = []
        for start in range(0, len(drafts), IMPORT_BATCH):
            task_ids.extend(self.import_chunk(project_id, drafts[start : start + IMPORT_BATCH]))
        return task_ids

    def import_chunk(self, project_id: int, drafts: Sequence[TaskDraft]) -> list[int]:
        """One import call: the tasks with their predictions, in order; their ids in that order.

        `LabelStudioUnavailable` (a timeout, a 5xx, a dropped connection) does not say that
        nothing was created: the tasks may exist, findable by `tasks_after`.
        """
        batch = [task_payload(d) for d in drafts]
        # Posted as plain JSON: the SDK's encoder walks every value of every task, which
        # costs a tenth of Label Studio's own import time; its headers carry the auth.
        with _translated_errors("import tasks"):
            response = self._http.post(
                f"{self.url}/api/projects/{project_id}/import",
                params={"return_task_ids": "true"},
                json=batch,
                headers=self._client._client_wrapper.get_headers(),
            )
        _check_status(response, "import tasks")
        ids = list(response.json().get("task_ids") or [])
        if len(ids) != len(batch):
            raise LabelStudioRejected(f"import returned {len(ids)} task ids for {len(batch)} tasks")
        return [int(i) for i in ids]

    def tasks_after(self, project_id: int, task_id: int) -> list[StudioTask]:
        """The project's tasks whose id is greater than `task_id`, with data and `meta` only.

        A Data Manager filter on the id: what an import cut off after `task_id` may have
        created, read without paging through the whole project.
        """
        with _translated_errors("list tasks created after a task"):
            pager = self._client.tasks.list(
                project=project_id,
                fields="task_only",  # data and meta; annotations are not needed here
                page_size=PAGE_SIZE,
                query=ids_after_query(task_id),
            )
            return [studio_task(task) for task in pager]

    def add_predictions(
        self, project_id: int, suggestions: Sequence[tuple[int, Suggestion]]
    ) -> int:
        """Attach a new suggestion to existing tasks (task id, suggestion); returns the count."""
        for start in range(0, len(suggestions), IMPORT_BATCH):
            batch = [
                {"task": task_id, **prediction_payload(suggestion)}
                for task_id, suggestion in suggestions[start : start + IMPORT_BATCH]
            ]
            with _translated_errors("import predictions"):
                self._client.projects.import_predictions(id=project_id, request=batch)
        return len(suggestions)

    def use_model_version(self, project_id: int, model_version: str) -> None:
        """Pre-fill annotations from this model version's predictions."""
        with _translated_errors("set the project's model version"):
            self._client.projects.update(
                id=project_id, model_version=model_version, show_collab_predictions=True
            )

    def set_task_overlap(self, task_id: int, overlap: int) -> None:
        """How many annotators `task_id` needs; it is offered again until it has them."""
        with _translated_errors("set a task's overlap"):
            self._client.tasks.update(id=str(task_id), overlap=overlap, is_labeled=False)

    def set_image_url(self, task_id: int, image_id: int, image_url: str) -> None:
        """Replace the image URL of a task (a freshly signed one); its annotations stay."""
        with _translated_errors("update a task's image URL"):
            self._client.tasks.update(id=str(task_id), data=task_data(image_id, image_url))

    def list_tasks(self, project_id: int) -> list[StudioTask]:
        """Every task of the project with its annotations (paged through)."""
        with _translated_errors("list tasks"):
            pager = self._client.tasks.list(project=project_id, fields="all", page_size=PAGE_SIZE)
            return [studio_task(task) for task in pager]

    def list_tasks_updated_since(self, project_id: int, since: datetime) -> list[StudioTask]:
        """Tasks (with annotations and predictions) whose `updated_at` is after `since`.

        Label Studio moves a task's `updated_at` when an annotation on it is created,
        edited or deleted, so this reads only what changed.
        """
        with _translated_errors("list tasks updated since a time"):
            pager = self._client.tasks.list(
                project=project_id,
                fields="all",
                page_size=PAGE_SIZE,
                query=updated_since_query(since),
            )
            return [studio_task(task) for task in pager]

    def get_prediction(self, prediction_id: int) -> StudioPrediction | None:
        """One prediction by id; None when Label Studio no longer has it."""
        try:
            with _translated_errors("read a prediction"):
                raw = self._client.predictions.get(id=prediction_id)
        except LabelStudioRejected:
            return None
        return prediction_record(raw.model_dump())

    def ensure_webhook(self, project_id: int, url: str, headers: Mapping[str, str]) -> int:
        """The id of the project's one webhook to `url`, created or updated; extras removed."""
        wanted = {
            "url": url,
            "project": project_id,
            "send_payload": True,
            "send_for_all_actions": False,
            "actions": list(WEBHOOK_ACTIONS),
            "headers": dict(headers),
            "is_active": True,
        }
        with _translated_errors("list webhooks"):
            hooks = [
                h
                for h in self._client.webhooks.list(project=str(project_id))
                if h.project == project_id and h.url == url
            ]
        if not hooks:
            with _translated_errors("create the webhook"):
                return int(self._client.webhooks.create(**wanted).id)
        keep, *extra = hooks
        for hook in extra:
            with _translated_errors("remove a duplicate webhook"):
                self._client.webhooks.delete(id=hook.id)
        current = (keep.headers, sorted(keep.actions or []), keep.is_active, keep.send_payload)
        if current != (wanted["headers"], sorted(WEBHOOK_ACTIONS), True, True):
            with _translated_errors("update the webhook"):
                changes = {k: v for k, v in wanted.items() if k != "project"}
                self._client.webhooks.update(id=keep.id, **changes)
        return int(keep.id)

    def ensure_user(self, email: str) -> int:
        """The id of the user with this email, created (without a password) when missing."""
        with _translated_errors("list users"):
            found = [u for u in self._client.users.list() if (u.email or "") == email]
        if found:
            return int(found[0].id)
        with _translated_errors("create a user"):
            return int(self._client.users.create(username=email, email=email).id)

    def project_url(self, project_id: int) -> str:
        return f"{self.url}/projects/{project_id}/data"

    def tasks_by_id(self, project_id: int, task_ids: Sequence[int]) -> list[StudioTask]:
        """These tasks as Label Studio holds them now; deleted ones are left out."""
        wanted = sorted(set(task_ids))
        found: list[StudioTask] = []
        for start in range(0, len(wanted), PAGE_SIZE):
            batch = wanted[start : start + PAGE_SIZE]
            with _translated_errors("read tasks by id"):
                pager = self._client.tasks.list(
                    project=project_id,
                    fields="all",
                    page_size=PAGE_SIZE,
                    query=id_range_query(batch[0], batch[-1]),
                )
                keep = set(batch)
                found.extend(studio_task(t) for t in pager if int(t.id) in keep)
        return found

    def delete_tasks(self, project_id: int, task_ids: Sequence[int]) -> None:
        """Delete these tasks (ids already gone are ignored); annotators stop being served them."""
        ids = sorted(set(task_ids))
        for start in range(0, len(ids), IMPORT_BATCH):
            selected = {"all": False, "included": ids[start : start + IMPORT_BATCH]}
            with _translated_errors("delete tasks"):
                self._client.actions.create(
                    id="delete_tasks", project=project_id, selected_items=selected
                )


def _check_status(response: httpx.Response, action: str) -> None:
    """Raise the labeling error an error status stands for (5xx: unavailable)."""
    if response.status_code < 400:
        return
    detail = response.text[:500]
    if response.status_code >= 500:
        raise LabelStudioUnavailable(
            f"{action}: Label Studio answered {response.status_code}: {detail}"
        )
    raise LabelStudioRejected(f"{action}: Label Studio refused ({response.status_code}): {detail}")


@contextmanager
def _translated_errors(action: str) -> Iterator[None]:
    """Turn SDK and transport failures into the project's labeling errors."""
    try:
        yield
    except ApiError as err:
        status = err.status_code or 0
        detail = str(err.body)[:500]
        if status >= 500 or status == 0:
            raise LabelStudioUnavailable(
                f"{action}: Label Studio answered {status}: {detail}"
            ) from err
        raise LabelStudioRejected(f"{action}: Label Studio refused ({status}): {detail}") from err
    except httpx.HTTPError as err:
        raise LabelStudioUnavailable(f"{action}: cannot reach Label Studio: {err}") from err
