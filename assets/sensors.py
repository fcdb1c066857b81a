"""Alerting: a failed run is logged and, when CMMM_ALERT_WEBHOOK is set, posted to that URL."""


import json
import os
import urllib.request

from dagster import DefaultSensorStatus, RunFailureSensorContext, run_failure_sensor


@run_failure_sensor(name="cmmm_run_failure_alert", default_status=DefaultSensorStatus.RUNNING,
                    description="Alerts on any failed run: a log line, and a webhook POST if configured.")
def run_failure_alert(context: RunFailureSensorContext) -> None:
    run = context.dagster_run
    message = f"cmmm run {run.run_id} of job {run.job_name} failed: {context.failure_event.message}"
    context.log.error(message)
    url = os.environ.get("CMMM_ALERT_WEBHOOK")
    if url:
        body = json.dumps({"text": message, "run_id": run.run_id, "job": run.job_name}).encode()
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - URL is operator-configured
            context.log.info(f"alert posted to webhook: HTTP {response.status}")
