"""What can be validated of deploy/ without a container engine or a cluster."""

import json
import re
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_compose_file_has_the_services_and_no_secrets():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "prefect-server", "migrate", "register", "worker", "watcher"} <= set(services)
    assert "postgresql+asyncpg" in services["prefect-server"]["environment"]["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert services["watcher"]["command"][0] == "watch"
    text = (DEPLOY / "docker-compose.yml").read_text()
    assert "${POSTGRES_PASSWORD:?" in text and not re.search(r"POSTGRES_PASSWORD:\s*['\"]?\w", text.replace(
        "${POSTGRES_PASSWORD", ""))
    gpu = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]


def test_dockerfile_builds_cpu_and_cuda_from_one_file():
    text = (DEPLOY / "Dockerfile").read_text()
    assert "ARG TORCH_INDEX=" in text and "torch==2.13.0" in text and "USER freshrec" in text
    assert "FRESHREC_DATABASE_URL=" not in text  # no credentials baked in


def test_prefect_yaml_deployment_matches_serve():
    from prefect.flows import load_flow_from_entrypoint

    from freshrec_cli.serving import deployment_name

    spec = yaml.safe_load((DEPLOY / "prefect.yaml").read_text())
    (deployment,) = spec["deployments"]
    assert deployment["name"] == deployment_name(300, "worker") != deployment_name(300)
    assert deployment["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    assert deployment["schedules"][0]["interval"] == 300
    flow = load_flow_from_entrypoint(str(DEPLOY.parent / deployment["entrypoint"]))
    assert flow.name == "freshrec-update"


def test_kubernetes_job_template_declares_every_variable_and_asks_for_a_gpu():
    template = json.loads((DEPLOY / "k8s-gpu-job-template.json").read_text())
    config, variables = template["job_configuration"], template["variables"]["properties"]
    used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", json.dumps(config)))
    assert used <= set(variables), used - set(variables)
    assert {"command", "env", "labels", "name", "namespace", "job_manifest"} <= set(config)
    container = config["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "{{ gpu_count }}"
    assert container["envFrom"][0]["secretRef"]["name"] == "{{ freshrec_secret }}"
    assert variables["env"]["default"]["FRESHREC_DEVICE"] == "cuda"


def test_gpu_worker_builds_the_cuda_image_and_the_ui_knows_its_api():
    services = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    gpu = services["worker-gpu"]
    assert gpu["image"] == "freshrec:cuda"
    assert "/whl/cu" in gpu["build"]["args"]["TORCH_INDEX"]  # not the Dockerfile's CPU default
    assert "TORCH_INDEX" not in (services["worker"].get("build") or {}).get("args", {})
    assert "/api" in services["prefect-server"]["environment"]["PREFECT_UI_API_URL"]


def test_prefect_yaml_pulls_the_code_from_the_image():
    spec = yaml.safe_load((DEPLOY / "prefect.yaml").read_text())
    (step,) = spec["pull"]
    directory = step["prefect.deployments.steps.set_working_directory"]["directory"]
    workdir = re.search(r"^WORKDIR\s+(\S+)", (DEPLOY / "Dockerfile").read_text(), re.M).group(1)
    assert directory == workdir
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for folder in ("flows", "tasks", "freshrec", "sql"):  # what the entrypoint needs lies there
        assert f"COPY {folder} ./{folder}" in dockerfile


def test_kubernetes_job_template_renders_a_gpu_job():
    """Prefect's own rendering (what a worker does with the template and a deployment's job variables)."""
    import asyncio

    from prefect.workers.base import BaseJobConfiguration

    class Rendered(BaseJobConfiguration):  # the fields of the Kubernetes worker's configuration
        job_manifest: dict
        cluster_config: dict | None = None
        job_watch_timeout_seconds: int | None = None
        pod_watch_timeout_seconds: int = 60
        stream_output: bool = True

    template = json.loads((DEPLOY / "k8s-gpu-job-template.json").read_text())
    values = {"name": "freshrec-run", "command": "prefect flow-run execute",
              "labels": {"app": "freshrec"}, "env": {"FRESHREC_MAX_BATCH_ROWS": "20000"}}
    config = asyncio.run(Rendered.from_template_and_values(template, values, client=object()))
    manifest = config.job_manifest
    assert "{{" not in json.dumps(manifest)  # every placeholder got a value
    pod = manifest["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert manifest["kind"] == "Job" and manifest["metadata"]["namespace"] == "freshrec"
    assert container["image"] == "freshrec:cuda" and container["args"] == "prefect flow-run execute"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["envFrom"] == [{"secretRef": {"name": "freshrec-db"}}]
    assert config.env["FRESHREC_DEVICE"] == "cuda" and config.env["FRESHREC_MAX_BATCH_ROWS"] == "20000"
    assert config.env["PREFECT_LOGGING_EXTRA_LOGGERS"] == "freshrec"
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "freshrec-reports"
    assert container["volumeMounts"][0]["mountPath"] == "/var/lib/freshrec"  # FRESHREC_DATA_DIR in the image
    assert pod["restartPolicy"] == "Never" and manifest["spec"]["backoffLimit"] == 0
