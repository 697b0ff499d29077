"""`/metrics` and JSON logs: requests by route, database gauges, embedding rates, GPUs, ids."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from service.core.gpu_metrics import NvmlCollector
from service.core.logs import JsonFormatter, scope
from service.core.metrics import EMBEDDING_LABELS, ObservedTransport, path_template
from service.core.orm import Image
from service.core.settings import ModelSettings, QualitySettings
from service.pool.embeddings import embed_missing
from tests.helpers import TEST_IMAGE_SIZE, ImagePool, api_client, make_settings, register_pool


def samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_count_requests_by_route_template_and_read_the_database(
    tmp_path: Path, fashion_pool: ImagePool, database_url: str
) -> None:
    settings = make_settings(tmp_path, fashion_pool, database_url=database_url)
    with api_client(settings) as client:
        assert client.get("/metrics", headers={"Authorization": ""}).status_code == 401
        register_pool(client, str(fashion_pool.folder))
        for image_id in (123456, 654321):
            assert client.post(f"/v1/images/{image_id}/retry").status_code == 404
        body = client.get("/metrics")
        assert body.status_code == 200 and body.headers["content-type"].startswith("text/plain")
        found = samples(body.text)
    route = (("method", "POST"), ("route", "/v1/images/{image_id}/retry"), ("status", "404"))
    assert found[("activelabel_http_requests_total", route)] >= 2
    assert not any("123456" in str(labels) for _, labels in found)  # never the raw path
    assert found[("activelabel_http_request_duration_seconds_count", route)] >= 2
    n = len(fashion_pool.labels)
    assert found[("activelabel_images", (("state", "unlabeled"),))] == n
    assert found[("activelabel_images", (("state", "labeled"),))] == 0
    assert found[("activelabel_labels_last_hour", ())] == 0
    job = (("kind", "register"), ("outcome", "succeeded"))
    assert found[("activelabel_job_duration_seconds_count", job)] >= 1


def test_label_studio_calls_are_timed_and_failures_counted() -> None:
    before = _errors("GET", "/api/projects/{id}/", "unreachable")
    client = httpx.Client(transport=ObservedTransport(), timeout=2)
    with pytest.raises(httpx.ConnectError):
        client.get("http://127.0.0.1:9/api/projects/12/")  # the discard port: refused
    client.close()
    assert _errors("GET", "/api/projects/{id}/", "unreachable") == before + 1
    assert path_template("/api/tasks/7/annotations/") == "/api/tasks/{id}/annotations/"


def _errors(method: str, path: str, error: str) -> float:
    from service.core.metrics import REGISTRY

    value = REGISTRY.get_sample_value(
        "activelabel_label_studio_errors_total", {"method": method, "path": path, "error": error}
    )
    return value or 0.0


def test_log_lines_are_json_with_the_request_id_and_extras() -> None:
    record = logging.LogRecord("activelabel.x", logging.INFO, __file__, 1, "hi %s", ("you",), None)
    record.status = 404
    with scope("req-9"):
        line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hi you" and line["request_id"] == "req-9"
    assert (line["level"], line["logger"], line["status"]) == ("INFO", "activelabel.x", 404)
    assert json.loads(JsonFormatter().format(record))["request_id"] is None


def test_request_ids_are_echoed_or_made(tmp_path: Path, fashion_pool: ImagePool) -> None:
    with api_client(make_settings(tmp_path, fashion_pool)) as client:
        given = client.get("/health", headers={"X-Request-ID": "pipeline-42"})
        assert given.headers["X-Request-ID"] == "pipeline-42"
        made = client.get("/health", headers={"X-Request-ID": "not a sane id; {}"})
        assert (
            made.headers["X-Request-ID"] != "pipeline-42"
            and len(made.headers["X-Request-ID"]) == 32
        )


def test_a_scoring_run_shows_its_rate_and_path_on_metrics_and_health(
    tmp_path: Path, fashion_pool: ImagePool
) -> None:
    model = ModelSettings(image_size=TEST_IMAGE_SIZE, batch_size=32, device="cpu")
    quiet = QualitySettings(drift_after_ingestion=False)  # no other run meanwhile
    settings = make_settings(tmp_path, fashion_pool, model=model, quality=quiet)
    with api_client(settings) as client:
        path = client.get("/health").json()["model"]
        labels = tuple(sorted((name, path[name]) for name in EMBEDDING_LABELS))
        before = samples(client.get("/metrics").text)
        register_pool(client, str(fashion_pool.folder))
        context = client.app.state.context  # type: ignore[attr-defined]
        with context.sessions() as session:
            run = embed_missing(session, context.runtime, list(session.scalars(select(Image))))
        found = samples(client.get("/metrics").text)
        gpus = context.gpu_metrics.gpus
    assert (path["device"], path["decoder"], path["device_name"]) == ("cpu", "cpu", None)
    assert (path["precision"], path["runtime"]) == ("fp32", "onnxruntime")  # the CPU default
    assert path["backbone_id"] and path["batch_size"] == 32
    images = "activelabel_images_embedded_total", labels
    seconds = "activelabel_embedding_seconds_total", labels
    assert found[images] - before.get(images, 0.0) == len(fashion_pool.labels)
    assert 0 < found[seconds] - before.get(seconds, 0.0) <= run.seconds
    assert found[("activelabel_embedding_images_per_second", labels)] > 0
    gpu_series = [name for name, _ in found if name.startswith("activelabel_gpu_")]
    assert len(gpu_series) == 3 * gpus  # none without NVML and a GPU, and no error


def test_health_documents_the_model_path_in_the_openapi_schema(
    tmp_path: Path, fashion_pool: ImagePool
) -> None:
    with api_client(make_settings(tmp_path, fashion_pool)) as client:
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["HealthOut"]["properties"]["model"]["description"]
    fields = schemas["ModelPathOut"]["properties"]
    for name in ("device", "device_name", "precision", "runtime", "decoder", "backbone_id"):
        assert fields[name]["description"], name
    assert set(fields["precision"]["enum"]) == {"fp32", "bf16", "int8"}


def test_gpu_metrics_without_nvml_are_absent_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    collector = NvmlCollector(module="activelabel_tests_no_such_nvml")
    with caplog.at_level(logging.INFO, logger="service.core.gpu_metrics"):
        assert list(collector.collect()) == [] and list(collector.collect()) == []
    assert collector.gpus == 0
    assert [r.getMessage() for r in caplog.records] == [
        "GPU metrics off: activelabel_tests_no_such_nvml is not installed (nvidia-ml-py)"
    ]
    collector.close()


def test_gpu_metrics_from_the_installed_nvml_are_consistent_or_absent() -> None:
    collector = NvmlCollector()  # pynvml where nvidia-ml-py is installed
    families = {family.name: family for family in collector.collect()}
    collector.close()
    assert len(families) == (3 if collector.gpus else 0)
    if families:
        used = families["activelabel_gpu_memory_used_bytes"].samples
        total = families["activelabel_gpu_memory_total_bytes"].samples
        ratio = families["activelabel_gpu_utilization_ratio"].samples
        assert [s.labels["gpu"] for s in ratio] == [str(i) for i in range(collector.gpus)]
        assert all(0 <= s.value <= 1 for s in ratio)
        assert all(0 < u.value <= t.value for u, t in zip(used, total, strict=True))
