"""MLflow (``pip install medssr_nemo[mlflow]``; ``mlflow-skinny`` is enough). The tracking URI
is ``train.tracking.mlflow_tracking_uri``, else ``MLFLOW_TRACKING_URI``, else a file store in
``<run root>/mlruns``. A run is found again by its ``medssr.run_id`` tag, so a resumed run
continues the same MLflow run."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping

from medssr_nemo.tracking.interfaces import RunIdentity, Tracker

RUN_ID_TAG = "medssr.run_id"
MAX_PARAM_CHARS = 500   # the limit of older MLflow servers; longer values are cut


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_CHARS]
    return flat


class MlflowTracker(Tracker):
    name = "mlflow"

    def __init__(self, identity: RunIdentity, settings: Any) -> None:
        from mlflow.tracking import MlflowClient

        uri = settings.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") \
            or (identity.root / "mlruns").as_uri()
        if uri.startswith("file:") or "://" not in uri:
            # MLflow 3 refuses its file store unless asked; a file URI in our config is that request
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self._client = MlflowClient(tracking_uri=uri)
        experiment = self._client.get_experiment_by_name(identity.project)
        experiment_id = experiment.experiment_id if experiment else self._client.create_experiment(identity.project)
        found = self._client.search_runs([experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{identity.run_id}'",
                                         max_results=1)
        if found:
            self._run_id = found[0].info.run_id
        else:
            run = self._client.create_run(experiment_id, run_name=identity.name,
                                          tags={RUN_ID_TAG: identity.run_id, "medssr.group": identity.group,
                                                "medssr.directory": str(identity.directory)})
            self._run_id = run.info.run_id

    def log_config(self, config: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in _flatten(config).items()]
        existing = self._client.get_run(self._run_id).data.params
        params = [p for p in params if p.key not in existing]   # a resumed run already has them
        for start in range(0, len(params), 100):
            self._client.log_batch(self._run_id, params=params[start:start + 100])
        import yaml

        self._client.log_text(self._run_id, yaml.safe_dump(dict(config), sort_keys=True), "config.yaml")

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        for start in range(0, len(batch), 1000):
            self._client.log_batch(self._run_id, metrics=batch[start:start + 1000])

    def log_summary(self, values: Mapping[str, float]) -> None:
        self.log_metrics(0, values)

    def log_image(self, key: str, path: Path) -> None:
        self._client.log_artifact(self._run_id, str(path), "figures")

    def log_file(self, path: Path) -> None:
        self._client.log_artifact(self._run_id, str(path))

    def close(self) -> None:
        self._client.set_terminated(self._run_id)
