"""GPU utilisation and memory for `/metrics`, read from NVIDIA's management library (NVML).

Optional: the `pynvml` module comes with the `nvidia-ml-py` package (`pip install
activelabel[gpu]`). Where it is not installed, or finds no driver or no GPU, the collector
yields nothing. NVML is started on the first scrape, not at import; a failure is logged once
and never fails a scrape.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


class NvmlCollector(Collector):
    """Per-GPU gauges (labelled by NVML index), read when scraped.

    ``module`` names the NVML binding to import (``pynvml``).
    """

    def __init__(self, module: str = "pynvml") -> None:
        self._module_name = module
        self._nvml: ModuleType | None = None
        self._handles: list[Any] = []
        self._started = False  # tried to start NVML (once)
        self._failed = False  # a read failed (logged once)
        self._lock = threading.Lock()

    @property
    def gpus(self) -> int:
        """GPUs reported on (0 until the first scrape, and where NVML is unavailable)."""
        return len(self._handles)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if not self._started:
                self._started = True
                self._start()
            if self._nvml is None or not self._handles:
                return
            try:
                readings = [self._read(self._nvml, handle) for handle in self._handles]
            except Exception as err:  # any NVML failure: this scrape goes on without GPUs
                self._log_failure(err)
                return
        yield from _families(readings)

    def close(self) -> None:
        """Shut NVML down if this collector started it."""
        with self._lock:
            nvml, self._nvml, self._handles = self._nvml, None, []
            if nvml is not None:
                try:
                    nvml.nvmlShutdown()
                except Exception as err:  # shutting down must not fail the service's stop
                    log.info("NVML shutdown failed: %s", err)

    def _start(self) -> None:
        try:
            nvml = importlib.import_module(self._module_name)
        except ImportError:
            log.info("GPU metrics off: %s is not installed (nvidia-ml-py)", self._module_name)
            return
        nvml_error: type[Exception] = getattr(nvml, "NVMLError", Exception)
        try:
            nvml.nvmlInit()
        except nvml_error as err:  # no driver or no library here
            log.info("GPU metrics off: NVML did not start (%s)", err)
            return
        try:
            count = int(nvml.nvmlDeviceGetCount())
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except nvml_error as err:
            log.info("GPU metrics off: NVML lists no GPU (%s)", err)
            self._handles = []
        if not self._handles:
            nvml.nvmlShutdown()
            return
        self._nvml = nvml

    @staticmethod
    def _read(nvml: ModuleType, handle: Any) -> tuple[float, int, int]:
        """(utilisation in [0, 1], memory used, memory total in bytes) of one GPU."""
        utilisation = nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        return utilisation, int(memory.used), int(memory.total)

    def _log_failure(self, err: Exception) -> None:
        if not self._failed:
            self._failed = True
            log.warning("GPU metrics left out: reading NVML failed (%s); logged once", err)


def _families(readings: list[tuple[float, int, int]]) -> Iterator[Metric]:
    utilisation = GaugeMetricFamily(
        "activelabel_gpu_utilization_ratio",
        "Share of the last sample period (NVML's, about 1 s) in which a kernel ran on the GPU.",
        labels=["gpu"],
    )
    used = GaugeMetricFamily(
        "activelabel_gpu_memory_used_bytes", "GPU memory in use (all processes).", labels=["gpu"]
    )
    total = GaugeMetricFamily(
        "activelabel_gpu_memory_total_bytes", "GPU memory installed.", labels=["gpu"]
    )
    for index, (ratio, in_use, installed) in enumerate(readings):
        utilisation.add_metric([str(index)], ratio)
        used.add_metric([str(index)], in_use)
        total.add_metric([str(index)], installed)
    yield from (utilisation, used, total)
