"""The deploy/ manifests: parsed, complete, consistent with each other and with vpp.

Each manifest is checked against the owner of its format where one is installed: the Serve
config against Ray Serve's own schema models and build step, the VM launcher config against
Ray's cluster launcher schema. The references (Ray's version, vpp's version, the environment
names vpp reads, its metric names, its routes) are read from the installed packages and
vpp's source, never written down here.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SERVE = DEPLOY / "serve.yaml"
RAYSERVICE = DEPLOY / "kuberay" / "rayservice.yaml"
CLUSTER = DEPLOY / "ray-cluster.yaml"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
DASHBOARD = DEPLOY / "grafana" / "vpp-dashboard.json"
PY_TAG = f"py{sys.version_info.major}{sys.version_info.minor}"

# Labels Ray's metrics agent adds to every user metric, and Prometheus' own.
RAY_METRIC_LABELS = {"Component", "NodeAddress", "SessionName", "Version", "WorkerId",
                     "instance", "job"}


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _kube_documents() -> dict[str, list[dict[str, Any]]]:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for document in yaml.safe_load_all(RAYSERVICE.read_text()):
        if document:
            by_kind.setdefault(document["kind"], []).append(document)
    return by_kind


def _rayservice() -> dict[str, Any]:
    (service,) = _kube_documents()["RayService"]
    return service


def _containers() -> list[dict[str, Any]]:
    cluster = _rayservice()["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def _vpp_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def _expected_image() -> str:
    return f"vpp:{_vpp_version()}-ray{ray.__version__}-{PY_TAG}"


# -- every file parses ------------------------------------------------------------------------
def test_every_manifest_parses() -> None:
    assert isinstance(_yaml(SERVE), dict)
    assert isinstance(_yaml(CLUSTER), dict)
    assert isinstance(_yaml(COMPOSE), dict)
    assert set(_kube_documents()) == {"Secret", "RayService", "Service"}
    assert isinstance(json.loads(DASHBOARD.read_text()), dict)
    assert re.search(r"^FROM \S+", DOCKERFILE.read_text(), re.M)


def test_the_deploy_index_names_every_file() -> None:
    index = (DEPLOY / "README.md").read_text()
    files = [p.relative_to(DEPLOY).as_posix() for p in DEPLOY.rglob("*") if p.is_file()]
    missing = [f for f in files if f != "README.md" and f not in index]
    assert not missing, f"deploy/README.md does not mention {missing}"


# -- the Serve config -------------------------------------------------------------------------
def _model_fields(model: Any) -> set[str]:
    return set(model.model_fields)


def test_serve_config_validates_against_ray_serve_schema() -> None:
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import (
        DeploymentSchema,
        HTTPOptionsSchema,
        RayActorOptionsSchema,
        ServeApplicationSchema,
        ServeDeploySchema,
    )

    config = _yaml(SERVE)
    ServeDeploySchema.model_validate(config)
    # Ray's models ignore unknown keys; a misspelt option would silently do nothing
    assert set(config) <= _model_fields(ServeDeploySchema)
    assert set(config["http_options"]) <= _model_fields(HTTPOptionsSchema)
    (app,) = config["applications"]
    assert set(app) <= _model_fields(ServeApplicationSchema)
    assert app["route_prefix"] == "/"
    (deployment,) = app["deployments"]
    assert deployment["name"] == "vpp-api"
    assert set(deployment) <= _model_fields(DeploymentSchema)
    assert set(deployment["ray_actor_options"]) <= _model_fields(RayActorOptionsSchema)
    scaling = deployment["autoscaling_config"]
    assert set(scaling) <= _model_fields(AutoscalingConfig)
    AutoscalingConfig(**scaling)  # Ray's own checks (min <= initial <= max, ...)
    assert scaling["max_replicas"] > scaling["min_replicas"] >= 1


def test_serve_config_holds_placeholders_not_secrets() -> None:
    (app,) = _yaml(SERVE)["applications"]
    env = app["runtime_env"]["env_vars"]
    assert "VPP_DATABASE_URL" in env
    assert {"VPP_UFTP_DOMAIN", "VPP_UFTP_SIGNING_KEY"} <= set(env)
    for name, value in env.items():
        assert value == "${" + name + "}", f"{name} must be the placeholder ${{{name}}}"


def test_serve_config_import_path_imports_and_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What Serve does with the config before it starts replicas: import the path, call the
    builder with the config's args, build the application; here without Serve running."""
    from ray._common.utils import import_attr
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    from ray.serve._private.build_app import build_app

    from store import make_engine, session_factory
    from store import repository as repo
    from vpp.settings import get_settings

    (app_config,) = _yaml(SERVE)["applications"]
    url = f"sqlite:///{tmp_path / 'vpp.db'}"
    token = "vpp_deploy-test-token-not-a-secret"
    monkeypatch.setenv("VPP_DATABASE_URL", url)
    monkeypatch.setenv("VPP_ADMIN_TOKEN", token)
    get_settings.cache_clear()
    try:
        app = call_user_app_builder_with_args_if_necessary(
            import_attr(app_config["import_path"]), app_config.get("args", {})
        )
    finally:
        get_settings.cache_clear()
    built = build_app(app, name=app_config["name"], default_runtime_env={})
    built.validate_single_fastapi_ingress()
    configured = {d["name"] for d in app_config["deployments"]}
    assert configured == {d.name for d in built.deployments}
    assert built.ingress_deployment_name == "vpp-api"
    # the build step migrated the database and gave the admin the configured token
    engine = make_engine(url)
    with session_factory(engine)() as session:
        user = repo.user_for_token(session, token)
        assert user is not None and user.role == "admin"
    engine.dispose()


def test_builder_rejects_args() -> None:
    """The builder's args are a typed model (Serve validates a config's ``args`` with it):
    an unknown key is refused, naming it."""
    import inspect

    from pydantic import ValidationError

    from api.serve import BuildArgs, build_app

    assert inspect.signature(build_app).parameters["args"].annotation in (BuildArgs, "BuildArgs")
    with pytest.raises(ValidationError, match="replicas"):
        build_app({"replicas": 3})


# -- KubeRay ----------------------------------------------------------------------------------
def test_kuberay_serve_config_is_serve_yaml() -> None:
    embedded = yaml.safe_load(_rayservice()["spec"]["serveConfigV2"])
    assert embedded == _yaml(SERVE)


def test_kuberay_rayservice_structure() -> None:
    service = _rayservice()
    assert service["apiVersion"] == "ray.io/v1"
    cluster = service["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == ray.__version__
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # shards run on the workers
    (workers,) = cluster["workerGroupSpecs"]
    assert workers["minReplicas"] <= workers["replicas"] <= workers["maxReplicas"]
    assert json.loads(json.loads(workers["rayStartParams"]["resources"])) == {"worker": 1}
    (worker,) = workers["template"]["spec"]["containers"]
    requests = worker["resources"]["requests"]
    assert int(requests["cpu"]) >= 2 and requests == worker["resources"]["limits"]
    probe = worker["readinessProbe"]["httpGet"]
    assert probe["port"] == 8000
    assert probe["path"] in _get_routes()
    assert any(p["containerPort"] == 8000 for p in worker["ports"])
    # no readiness probe on the head: KubeRay submits the Serve app only once the head is
    # ready, so a head probe on the app would wait for itself
    (head_container,) = head["template"]["spec"]["containers"]
    assert "readinessProbe" not in head_container


def test_kuberay_secret_holds_every_referenced_key() -> None:
    from sqlalchemy.engine import make_url

    (secret,) = _kube_documents()["Secret"]
    data = secret["stringData"]
    for container in _containers():
        for env in container["env"]:
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None:
                assert ref["name"] == secret["metadata"]["name"]
                assert ref["key"] in data
                assert ref["key"] == env["name"]
    assert make_url(data["VPP_DATABASE_URL"]).get_backend_name() == "postgresql"
    assert data["VPP_ADMIN_TOKEN"]


def test_kuberay_services_select_the_ray_pods() -> None:
    cluster = _rayservice()["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    pod_labels = [g["template"]["metadata"]["labels"] for g in groups]
    ports = {p["containerPort"] for c in _containers() for p in c["ports"]}
    services = _kube_documents()["Service"]
    assert {s["metadata"]["name"] for s in services} == {"vpp-api", "vpp-metrics"}
    for service in services:
        own = {k: v for k, v in service["spec"]["selector"].items() if not k.startswith("ray.io/")}
        assert all(own.items() <= labels.items() for labels in pod_labels)
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports


# -- VMs: Ray's cluster launcher --------------------------------------------------------------
def test_ray_cluster_config_validates_with_the_cluster_launcher() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = _yaml(CLUSTER)
    validate_config(prepare_config(config))  # what `ray up` does before it connects
    provider = config["provider"]
    assert provider["type"] == "local"
    assert provider["head_ip"] and provider["worker_ips"]
    head = " ".join(config["head_start_ray_commands"])
    workers = " ".join(config["worker_start_ray_commands"])
    gcs = re.search(r"ray start --head --port=(\d+)", head)
    assert gcs is not None and gcs.group(1) == "6380"  # 6379 is Redis on many hosts
    assert f"--address=$RAY_HEAD_IP:{gcs.group(1)}" in workers
    assert "--dashboard-port=8265" in head
    assert "--metrics-export-port=" in head and "--metrics-export-port=" in workers
    assert "serve deploy ~/vpp/deploy/serve.yaml" in head
    assert f'"ray[serve,default]=={ray.__version__}"' in " ".join(config["setup_commands"])
    for remote, local in config["file_mounts"].items():
        if local != "deploy/vpp.env":  # written by the operator, never committed
            assert (ROOT / local).exists(), f"file_mounts {remote}: {local} missing"


# -- images -----------------------------------------------------------------------------------
def test_image_tags_match_each_other_and_the_installed_ray() -> None:
    dockerfile = DOCKERFILE.read_text()
    (base,) = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert base == f"rayproject/ray:{ray.__version__}-{PY_TAG}"
    assert f'"ray[serve,default]=={ray.__version__}"' in dockerfile
    compose = _yaml(COMPOSE)
    images = {name: s["image"] for name, s in compose["services"].items() if "build" in s}
    assert set(images) == {"ray-head", "ray-worker", "vpp"}
    kube_images = {c["image"] for c in _containers()}
    assert set(images.values()) == kube_images == {_expected_image()}
    for service in compose["services"].values():
        if "build" in service:
            context = (COMPOSE.parent / service["build"]["context"]).resolve()
            assert context == ROOT
            assert (context / service["build"]["dockerfile"]).resolve() == DOCKERFILE


# -- environment names ------------------------------------------------------------------------
def _env_reads(path: Path) -> set[str]:
    """String literals read as environment names in ``path``: ``os.environ.get("X")``,
    ``os.environ["X"]``, ``os.getenv("X")``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        key: ast.expr | None = None
        if isinstance(node, ast.Call) and node.args:
            func = ast.unparse(node.func)
            if func in ("os.environ.get", "os.getenv", "environ.get"):
                key = node.args[0]
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            names.add(key.value)
    return names


def _names_vpp_reads() -> set[str]:
    from vpp.settings import Settings, env_names

    prefix = str(Settings.model_config.get("env_prefix", "")).upper()
    names = {prefix + field.upper() for field in Settings.model_fields}
    names |= set(env_names())
    for package in ("vpp", "store", "actors", "api"):
        for path in (ROOT / package).rglob("*.py"):
            names |= _env_reads(path)
    return names


def _vpp_names_in(value: Any) -> set[str]:
    return set(re.findall(r"\bVPP_[A-Z0-9_]+", json.dumps(value)))


def test_env_names_in_manifests_are_ones_vpp_reads() -> None:
    known = _names_vpp_reads()
    assert {"VPP_DATABASE_URL", "VPP_DATA_DIR", "VPP_ADMIN_TOKEN"} <= known  # parsing works
    used = {
        "serve.yaml": _vpp_names_in(_yaml(SERVE)),
        "kuberay/rayservice.yaml": _vpp_names_in(list(yaml.safe_load_all(RAYSERVICE.read_text()))),
        "compose.yaml": _vpp_names_in(_yaml(COMPOSE)),
        "compose.env.example": set(
            re.findall(r"^(VPP_[A-Z0-9_]+)=", (DEPLOY / "compose.env.example").read_text(), re.M)
        ),
        "Dockerfile": set(re.findall(r"^ENV (VPP_[A-Z0-9_]+)=", DOCKERFILE.read_text(), re.M)),
    }
    for manifest, names in used.items():
        assert names, f"{manifest}: no VPP_ names found"
        assert names <= known, f"{manifest} sets names vpp never reads: {names - known}"
    # every secret the Serve config expands is provided wherever the config runs
    serve_names = set(_yaml(SERVE)["applications"][0]["runtime_env"]["env_vars"])
    kube_env = {e["name"] for c in _containers() for e in c["env"]}
    compose_env = set(_yaml(COMPOSE)["x-vpp-env"])
    assert serve_names <= kube_env and serve_names <= compose_env


# -- readiness paths --------------------------------------------------------------------------
def _get_routes() -> set[str]:
    from api.app import create_app

    app = create_app("sqlite:///:memory:")
    # the OpenAPI paths: FastAPI keeps included routers nested, not in app.routes
    return {path for path, methods in app.openapi()["paths"].items() if "get" in methods}


def _manifest_health_paths() -> set[str]:
    texts = [RAYSERVICE.read_text(), COMPOSE.read_text()]
    return {p for t in texts for p in re.findall(r"/api/v1/(?:ready|health)\b", t)}


def test_readiness_paths_in_manifests_are_routes_that_answer(tmp_path: Path) -> None:
    from api.app import create_app

    paths = _manifest_health_paths()
    assert "/api/v1/ready" in paths
    app = create_app(f"sqlite:///{tmp_path / 'vpp.db'}")
    with TestClient(app) as http:
        for path in paths:
            assert http.get(path).status_code == 200, path
    app.state.sessions.kw["bind"].dispose()


# -- compose ----------------------------------------------------------------------------------
def test_compose_structure() -> None:
    compose = _yaml(COMPOSE)
    services = compose["services"]
    assert set(services) == {"postgres", "ray-head", "ray-worker", "vpp"}
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in compose["volumes"]
    head, worker, driver = services["ray-head"], services["ray-worker"], services["vpp"]
    gcs = re.search(r"--port=(\d+)", head["command"])
    client = re.search(r"--ray-client-server-port=(\d+)", head["command"])
    assert gcs is not None and client is not None and gcs.group(1) != "6379"
    assert f"--address=ray-head:{gcs.group(1)}" in worker["command"]
    assert """--resources='{"worker": 1}'""" in worker["command"]
    assert driver["environment"]["RAY_ADDRESS"] == f"ray://ray-head:{client.group(1)}"
    assert driver["command"].startswith("vpp serve")
    published = {p.rsplit(":", 1)[-1] for p in head["ports"]}
    assert {"8000", "8265"} <= published
    for name in ("postgres", "ray-head", "vpp"):
        assert services[name]["healthcheck"]["test"], name
    assert "/api/v1/ready" in " ".join(driver["healthcheck"]["test"])
    # both Ray nodes mount the same data volume (VPP_DATA_DIR)
    assert head["volumes"] == worker["volumes"]


def _compose_plugin() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
    return probe.returncode == 0


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    """Docker's own parser, where the compose plugin is installed (it needs no engine)."""
    if not _compose_plugin():
        pytest.skip("the docker compose plugin is not installed (checked structurally above)")
    env = tmp_path / ".env"
    env.write_text("POSTGRES_PASSWORD=pw\nVPP_ADMIN_TOKEN=token\n")
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "--env-file", str(env), "config", "--quiet"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr


# -- Grafana ----------------------------------------------------------------------------------
def _declared_metrics() -> dict[str, set[str]]:
    """Exported Prometheus name -> tag keys, for every metric actors/metrics.py creates.

    Ray prefixes user metrics with ``ray_``; counters get ``_total``; histograms export
    ``_bucket`` (with ``le``), ``_count`` and ``_sum``; gauges keep their name."""
    exported: dict[str, set[str]] = {}
    tree = ast.parse((ROOT / "actors" / "metrics.py").read_text())
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        kind = node.func.id
        if kind not in ("Counter", "Gauge", "Histogram"):
            continue
        name = ast.literal_eval(node.args[0])
        tag_arg = {"Counter": 2, "Gauge": 2, "Histogram": 3}[kind]
        keywords = {k.arg: k.value for k in node.keywords}
        tag_node = node.args[tag_arg] if len(node.args) > tag_arg else keywords.get("tag_keys")
        tags = set(ast.literal_eval(tag_node)) if tag_node is not None else set()
        base = f"ray_{name}"
        if kind == "Counter":
            exported[f"{base}_total"] = tags
        elif kind == "Gauge":
            exported[base] = tags
        else:
            exported[f"{base}_bucket"] = tags | {"le"}
            exported[f"{base}_count"] = tags
            exported[f"{base}_sum"] = tags
    return exported


def _dashboard_targets() -> list[dict[str, Any]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t for p in dashboard["panels"] for t in p.get("targets", [])]


def test_dashboard_queries_only_metrics_vpp_declares() -> None:
    declared = _declared_metrics()
    assert len(declared) >= 9, declared  # the parse found the metrics module's metrics
    used: set[str] = set()
    for target in _dashboard_targets():
        expr = target["expr"]
        names = set(re.findall(r"\bray_vpp_[a-z0-9_]+", expr))
        assert names, expr
        unknown = names - set(declared)
        assert not unknown, f"{expr}: not exported by actors/metrics.py: {unknown}"
        used |= names
        allowed = set().union(*(declared[n] for n in names)) | RAY_METRIC_LABELS
        labels = set(re.findall(r"(\w+)\s*(?:=~|!=|=)\s*\"", expr))
        for group in re.findall(r"\bby \(([^)]*)\)", expr):
            labels |= {g.strip() for g in group.split(",")}
        labels |= set(re.findall(r"\{\{(\w+)\}\}", target["legendFormat"]))
        assert labels <= allowed, f"{expr}: labels {labels - allowed} are not on {names}"
    # every declared metric is on the dashboard (histograms through their buckets)
    families = {re.sub(r"_(bucket|count|sum)$", "", n) for n in declared if "_bucket" in n}
    shown = {n for n in declared if n in used} | {f for f in families if f"{f}_bucket" in used}
    plain = {n for n in declared if not re.search(r"_(bucket|count|sum)$", n)}
    assert plain | families <= shown


def test_dashboard_is_importable_grafana_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}"
        refs = [t["refId"] for t in panel["targets"]]
        assert refs == sorted(set(refs))


def test_vpp_serve_replica_takes_as_many_requests_as_the_serve_config() -> None:
    """Serve's default of 5 ongoing requests per replica made the proxy queue and back off
    with 16 polling clients (13 jobs/s against 40 with 8); ``vpp serve`` and
    deploy/serve.yaml both let a replica take 32."""
    from api.serve import MAX_ONGOING_REQUESTS, VppApi

    deployment = _yaml(SERVE)["applications"][0]["deployments"][0]
    assert deployment["max_ongoing_requests"] == MAX_ONGOING_REQUESTS
    assert VppApi._deployment_config.max_ongoing_requests == MAX_ONGOING_REQUESTS
