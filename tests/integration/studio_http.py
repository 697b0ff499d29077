"""Plain HTTP calls to Label Studio, the way an annotator's client makes them."""

from __future__ import annotations

from typing import Any

import httpx


class StudioClient:
    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Token {token}"}, timeout=60
        )

    def close(self) -> None:
        self.http.close()

    def project_by_title(self, title: str) -> dict[str, Any]:
        projects = self.http.get("/api/projects", params={"title": title}).raise_for_status()
        matches = [p for p in projects.json()["results"] if p["title"] == title]
        assert len(matches) == 1, f"expected one project titled {title!r}, found {len(matches)}"
        return dict(matches[0])

    def tasks(self, project_id: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            response = self.http.get(
                "/api/tasks",
                params={"project": project_id, "fields": "all", "page": page, "page_size": 100},
            )
            if response.status_code == 404:
                return found
            body = response.raise_for_status().json()
            found.extend(body["tasks"])
            if len(found) >= body["total"]:
                return found
            page += 1

    def annotate(
        self,
        task_id: int,
        label: str,
        *,
        parent_prediction: int | None = None,
        lead_time: float = 2.0,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "result": [
                {
                    "from_name": "label",
                    "to_name": "image",
                    "type": "choices",
                    "value": {"choices": [label]},
                }
            ],
            "lead_time": lead_time,
        }
        if parent_prediction is not None:
            body["parent_prediction"] = parent_prediction
        response = self.http.post(f"/api/tasks/{task_id}/annotations/", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def update_annotation(self, annotation_id: int, label: str) -> None:
        response = self.http.patch(
            f"/api/annotations/{annotation_id}/",
            json={
                "result": [
                    {
                        "from_name": "label",
                        "to_name": "image",
                        "type": "choices",
                        "value": {"choices": [label]},
                    }
                ]
            },
        )
        assert response.status_code == 200, response.text
