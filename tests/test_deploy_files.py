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

    from freshrec_cli.serving import DEPLOYMENT_NAME

    spec = yaml.safe_load((DEPLOY / "prefect.yaml").read_text())
    (deployment,) = spec["deployments"]
    assert deployment["name"] == DEPLOYMENT_NAME
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
