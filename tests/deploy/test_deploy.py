"""The deployment files in deploy/ agree with the code.

There is no Docker engine or Kubernetes here, so every file is parsed and
checked against the project's own loaders and command parser: the example
configs load, every ``signpost ...`` command parses, ports and mounts match
the configs (after the environment overrides each container sets), and the
image is the same everywhere.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from broker.config import BrokerConfig, load_broker_config
from broker.registry import Authority, load_registry, parse_authorities
from node.config import NodeConfig, load_node_config
from signpost.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CONFIG = DEPLOY / "config"
SYSTEMD = DEPLOY / "systemd"
K8S = DEPLOY / "k8s"
EXAMPLE_CODES = {"LEEDS", "KENT"}
EXAMPLE_CONFIGS = {"signpost-node-source-config": "node-source.toml"}
"""ConfigMaps that carry another example than deploy/config/<command>.toml: LEEDS reads its database."""
SIGNPOST_COMMANDS = {"demo", "certs", "node", "broker", "synth"}


# --------------------------------------------------------------------------- helpers


def parse_signpost(argv: list[str]) -> Any:
    """``argv`` (after ``signpost``) through the real parser; a usage error fails the test."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"`signpost {shlex.join(argv)}` does not parse (exit {exc.code})")


def config_of(args: Any) -> PurePosixPath:
    assert getattr(args, "config", None), f"{args} has no --config"
    return PurePosixPath(args.config)


def load_config(args: Any, source: Path, env: Mapping[str, str]) -> NodeConfig | BrokerConfig:
    """The config a ``node``/``broker`` command would load from ``source`` with ``env``."""
    if args.command == "node":
        return load_node_config(source, env)
    assert args.command == "broker", args
    return load_broker_config(source, env)


def config_paths(config: NodeConfig | BrokerConfig) -> dict[str, PurePosixPath]:
    """Every file a config makes the process open, by key; a node's store as its directory."""
    paths = {"tls.ca": config.tls.ca, "tls.cert": config.tls.cert, "tls.key": config.tls.key}
    if config.tls.crl is not None:
        paths["tls.crl"] = config.tls.crl
    if isinstance(config, NodeConfig):
        paths["store (directory)"] = config.store.parent
        paths |= {f"broker_public_keys[{i}]": p for i, p in enumerate(config.broker_public_keys)}
    else:
        paths["registry"] = config.registry
        paths["assertion_key"] = config.assertion_key
        # Given, not created: signpost certs init-deployment makes them, and replicas must share them.
        paths["audit_signing_key"] = config.audit_signing_key
        paths["audit_signing_key (public half)"] = config.audit_signing_key.with_suffix(".pub.pem")
        paths["subject_key"] = config.subject_key
    return {key: PurePosixPath(p) for key, p in paths.items()}


def is_provided(path: PurePosixPath, files: set[PurePosixPath], dirs: set[PurePosixPath]) -> bool:
    """A path is provided by a mounted file, or lies in (or is) a mounted directory."""
    return path in files or any(path == d or d in path.parents for d in dirs)


def read_systemd(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as section -> key -> values (keys may repeat; continuation lines joined)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: '{line}' before any [section]"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: '{line}' is not Key=value"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def exec_argv(value: str) -> list[str]:
    """An Exec*= line as argv, without systemd's special prefixes (- @ : + !)."""
    return shlex.split(value.lstrip("-@:+!"))


def one(values: list[str] | None, what: str) -> str:
    assert values, f"{what} is missing"
    return values[-1]


def env_dict(environment: Any) -> dict[str, str]:
    """Compose ``environment`` (mapping or KEY=VALUE list) or k8s ``env`` (list of name/value)."""
    if not environment:
        return {}
    if isinstance(environment, Mapping):
        return {str(k): str(v) for k, v in environment.items()}
    result = {}
    for item in environment:
        if isinstance(item, Mapping):
            if item["name"] == "SIGNPOST_BROKER_AUDIT_LOG" and "secretKeyRef" in item.get("valueFrom", {}):
                # The replicas' shared log: a postgresql:// URL kept in a Secret, not a file to mount.
                result[item["name"]] = "postgresql://from-secret/signpost"
                continue
            if item["name"] == "SIGNPOST_BROKER_LIMITS_STORE" and "secretKeyRef" in item.get("valueFrom", {}):
                # The replicas' shared limits: a redis:// URL (it may hold a password) kept in a Secret.
                result[item["name"]] = "redis://from-secret:6379/0"
                continue
            assert "value" in item, f"env {item['name']} must be a literal value to be checked"
            result[item["name"]] = str(item["value"])
        else:
            key, _, value = str(item).partition("=")
            result[key] = value
    return result


def image_tag_version(image: str) -> str:
    return image.rpartition(":")[2]


# --------------------------------------------------------------------------- compose


@dataclass
class ComposeService:
    name: str
    spec: dict[str, Any]

    @property
    def env(self) -> dict[str, str]:
        return env_dict(self.spec.get("environment"))

    @property
    def argv(self) -> list[str]:
        command = self.spec.get("command")
        assert command, f"compose service {self.name} has no command"
        return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]

    def mounts(self) -> list[tuple[str, PurePosixPath, bool]]:
        """(source, target, read_only) for every volume, short or long syntax."""
        result = []
        for volume in self.spec.get("volumes", []):
            if isinstance(volume, str):
                parts = volume.split(":")
                source, target = parts[0], parts[1]
                read_only = len(parts) > 2 and "ro" in parts[2].split(",")
            else:
                source, target = volume.get("source", ""), volume["target"]
                read_only = bool(volume.get("read_only"))
            result.append((source, PurePosixPath(target), read_only))
        return result

    def host_file(self, target: PurePosixPath) -> Path:
        """The host file bind-mounted at ``target`` (relative to deploy/)."""
        for source, mounted, _ in self.mounts():
            if mounted == target:
                assert source.startswith("."), f"{self.name}: {target} must be a bind mount of a file"
                return (DEPLOY / source).resolve()
        pytest.fail(f"compose service {self.name}: nothing mounted at {target}")

    def provided(self) -> tuple[set[PurePosixPath], set[PurePosixPath]]:
        files, dirs = set(), set()
        for source, target, _ in self.mounts():
            if source.startswith((".", "/")) and Path(source).suffix:  # a bind-mounted file
                files.add(target)
            else:  # a named volume or a directory
                dirs.add(target)
        return files, dirs

    def config(self) -> NodeConfig | BrokerConfig:
        args = parse_signpost(self.argv)
        return load_config(args, self.host_file(config_of(args)), self.env)

    def container_ports(self) -> set[int]:
        ports = set()
        for port in self.spec.get("ports", []):
            if isinstance(port, Mapping):
                ports.add(int(port["target"]))
            else:
                ports.add(int(str(port).split("/")[0].rsplit(":", 1)[-1]))
        ports.update(int(str(p).split("/")[0]) for p in self.spec.get("expose", []))
        return ports


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict) and data.get("services"), "compose.yaml has no services"
    return data


SUPPORT_SERVICES = {"signpost-redis"}
"""Compose services that run someone else's image (the broker's limits store), not ``signpost``."""


def compose_services() -> list[ComposeService]:
    """The services running Signpost itself; SUPPORT_SERVICES are checked by their own tests."""
    services = compose()["services"]
    assert SUPPORT_SERVICES <= set(services), f"compose.yaml lacks {SUPPORT_SERVICES - set(services)}"
    return [ComposeService(name, spec) for name, spec in services.items() if name not in SUPPORT_SERVICES]


def compose_role(role: str) -> list[ComposeService]:
    return [s for s in compose_services() if parse_signpost(s.argv).command == role]


# --------------------------------------------------------------------------- kubernetes


def k8s_documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    assert docs, "deploy/k8s holds no manifests"
    return docs


def k8s_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in k8s_documents() if d["kind"] == kind}


@dataclass
class K8sContainer:
    deployment: dict[str, Any]
    container: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.deployment['metadata']['name']}/{self.container['name']}"

    @property
    def pod(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.deployment["spec"]["template"]["spec"]
        return spec

    @property
    def env(self) -> dict[str, str]:
        return env_dict(self.container.get("env"))

    @property
    def argv(self) -> list[str]:
        assert "command" not in self.container, f"{self.name}: use args, keep the image's ENTRYPOINT"
        return [str(a) for a in self.container["args"]]

    def named_port(self, port: int | str) -> int:
        if isinstance(port, int):
            return port
        for p in self.container.get("ports", []):
            if p.get("name") == port:
                return int(p["containerPort"])
        pytest.fail(f"{self.name}: no container port named {port!r}")

    def volume(self, name: str) -> dict[str, Any]:
        for volume in self.pod.get("volumes", []):
            if volume["name"] == name:
                return dict(volume)
        pytest.fail(f"{self.name}: volumeMount {name!r} has no volume")

    def files(self) -> dict[PurePosixPath, tuple[str, str, str]]:
        """Mounted files from ConfigMaps and Secrets: path -> (kind, object name, key)."""
        result = {}
        for mount in self.container.get("volumeMounts", []):
            volume = self.volume(mount["name"])
            base = PurePosixPath(mount["mountPath"])
            if "projected" in volume:
                sources = volume["projected"]["sources"]
            else:
                sources = [{k: v} for k, v in volume.items() if k in ("configMap", "secret")]
            for source in sources:
                for kind in ("configMap", "secret"):
                    if kind in source:
                        ref = source[kind]
                        name = ref.get("name") or ref.get("secretName")
                        assert ref.get("items"), f"{self.name}: list the items of {kind} {name} explicitly"
                        for item in ref["items"]:
                            result[base / item["path"]] = (kind, name, item["key"])
        return result

    def dirs(self) -> set[PurePosixPath]:
        return {
            PurePosixPath(m["mountPath"])
            for m in self.container.get("volumeMounts", [])
            if not {"projected", "configMap", "secret"} & set(self.volume(m["name"]))
        }

    def config(self, tmp_path: Path) -> NodeConfig | BrokerConfig:
        args = parse_signpost(self.argv)
        kind, name, key = self.files()[config_of(args)]
        assert kind == "configMap", f"{self.name}: config should come from a ConfigMap"
        source = tmp_path / self.name.replace("/", "_") / key
        source.parent.mkdir(parents=True, exist_ok=True)
        text = k8s_kind("ConfigMap")[name]["data"][key]
        source.write_text(text, encoding="utf-8")
        return load_config(args, source, {**self.env, **self.source_password(text, source.parent)})

    def source_password(self, toml: str, scratch: Path) -> dict[str, str]:
        """A database-fed node reads its password file at load: it must be a mounted Secret's file, and a
        stand-in for it is what the loader reads here (the override that points at it is the test's only)."""
        password_file = tomllib.loads(toml).get("source", {}).get("password_file")
        if password_file is None:
            return {}
        kind, name, _ = self.files().get(PurePosixPath(password_file), ("", "", ""))
        assert kind == "secret", f"{self.name}: source.password_file {password_file} is not a mounted Secret's file"
        assert name.startswith("signpost-node-") and name.endswith("-source"), f"{self.name}: password from {name}"
        stand_in = scratch / "source-password"
        stand_in.write_text("stand-in", encoding="utf-8")
        return {"SIGNPOST_NODE_SOURCE__PASSWORD_FILE": str(stand_in)}


def k8s_containers(role: str | None = None) -> list[K8sContainer]:
    result = []
    for deployment in k8s_kind("Deployment").values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            c = K8sContainer(deployment, container)
            if role is None or parse_signpost(c.argv).command == role:
                result.append(c)
    assert result, f"no Deployment runs signpost {role}"
    return result


def k8s_configmap_text(name: str, key: str) -> str:
    text: str = k8s_kind("ConfigMap")[name]["data"][key]
    return text


def k8s_registry() -> tuple[Authority, ...]:
    broker = k8s_containers("broker")[0]
    _kind, name, key = broker.files()[PurePosixPath("/etc/signpost/registry.json")]
    return parse_authorities(json.loads(k8s_configmap_text(name, key)), f"ConfigMap {name}")


def service_for(deployment: dict[str, Any]) -> dict[str, Any]:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    matches = [
        s
        for s in k8s_kind("Service").values()
        if s["spec"].get("selector") and all(labels.get(k) == v for k, v in s["spec"]["selector"].items())
    ]
    assert len(matches) == 1, f"Deployment {deployment['metadata']['name']}: {len(matches)} Services select it"
    return matches[0]


# --------------------------------------------------------------------------- the example configs


def test_example_node_config_loads_with_production_paths() -> None:
    config = load_node_config(CONFIG / "node.toml", {})
    assert config.code in EXAMPLE_CODES
    assert config.listen[1] == 50051
    assert config.store.parent == Path("/var/lib/signpost")
    for path in (config.tls.ca, config.tls.cert, config.tls.key):
        assert path.parent == Path("/etc/signpost/tls"), path
    # The loader only resolves paths: none of these exist on a test machine, and it must not care.
    assert not config.tls.key.exists()


def test_example_broker_config_loads_with_production_paths() -> None:
    config = load_broker_config(CONFIG / "broker.toml", {})
    assert config.listen == ("0.0.0.0", 8443)
    assert config.registry == Path("/etc/signpost/registry.json")
    for path in (config.tls.ca, config.tls.cert, config.tls.key):
        assert path.parent == Path("/etc/signpost/tls"), path


def test_example_configs_use_absolute_paths() -> None:
    """Relative paths resolve against the config file's directory, which differs by host."""
    for name, keys in (("node.toml", ("store",)), ("broker.toml", ("registry",))):
        data = tomllib.loads((CONFIG / name).read_text(encoding="utf-8"))
        for value in [data[k] for k in keys] + list(data["tls"].values()):
            assert PurePosixPath(value).is_absolute(), f"{name}: {value} is relative"


def test_example_registry_loads_and_lists_the_example_authorities() -> None:
    authorities = load_registry(CONFIG / "registry.json")
    assert {a.code for a in authorities} == EXAMPLE_CODES
    for a in authorities:
        assert a.identity == f"{a.code.lower()}.node.signpost.internal"


def test_env_overrides_change_the_example_configs_as_the_deploy_files_expect() -> None:
    config = load_node_config(
        CONFIG / "node.toml",
        {
            "SIGNPOST_NODE_LISTEN": "0.0.0.0:50052",
            "SIGNPOST_NODE_AUTHORITY__CODE": "KENT",
        },
    )
    assert (config.listen, config.code) == (("0.0.0.0", 50052), "KENT")


# --------------------------------------------------------------------------- commands


def all_commands() -> Iterator[tuple[str, list[str]]]:
    """Every ``signpost ...`` argv in the systemd units, compose and the k8s manifests."""
    for unit in sorted(SYSTEMD.glob("*.service")):
        for value in read_systemd(unit)["Service"].get("ExecStart", []):
            argv = exec_argv(value)
            assert argv[0] == "/usr/local/bin/signpost", f"{unit.name}: ExecStart runs {argv[0]}"
            yield unit.name, argv[1:]
    for service in compose_services():
        yield f"compose {service.name}", service.argv
    for container in k8s_containers():
        yield f"k8s {container.name}", container.argv


def test_every_deploy_command_parses_with_the_real_cli() -> None:
    seen = set()
    for where, argv in all_commands():
        args = parse_signpost(argv)
        seen.add((where.split()[0], args.command, getattr(args, f"{args.command}_command", None)))
    expected = {
        ("signpost-node.service", "node", "serve"),
        ("signpost-broker.service", "broker", "serve"),
        ("signpost-node-import.service", "node", "import"),
        ("compose", "node", "serve"),
        ("compose", "broker", "serve"),
        ("k8s", "node", "serve"),
        ("k8s", "broker", "serve"),
    }
    assert expected <= seen, f"missing: {expected - seen}"


def readme_signpost_commands() -> list[list[str]]:
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```(?:sh|bash|console)\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            for i, word in enumerate(words[:-1]):
                if (word == "signpost" or word.endswith("/signpost")) and words[i + 1] in SIGNPOST_COMMANDS:
                    rest = words[i + 1 :]
                    stops = [j for j, w in enumerate(rest) if w in {"&&", "||", "|", ";", ">", "<"}]
                    commands.append(rest[: stops[0]] if stops else rest)
                    break
    return commands


def test_every_signpost_command_in_the_readme_parses() -> None:
    commands = readme_signpost_commands()
    assert len(commands) >= 6, commands
    for argv in commands:
        parse_signpost(argv)


# --------------------------------------------------------------------------- systemd


def test_systemd_units_are_hardened() -> None:
    services = sorted(SYSTEMD.glob("*.service"))
    assert {p.name for p in services} == {
        "signpost-broker.service",
        "signpost-node.service",
        "signpost-node-import.service",
    }
    for path in services:
        service = read_systemd(path)["Service"]
        assert service.get("User") or service.get("DynamicUser") == ["yes"], f"{path.name} runs as root"
        assert one(service.get("ProtectSystem"), f"{path.name} ProtectSystem") == "strict"
        assert one(service.get("NoNewPrivileges"), f"{path.name} NoNewPrivileges") == "yes"
        assert one(service.get("StateDirectory"), f"{path.name} StateDirectory") == "signpost"
        read_only = " ".join(service.get("ReadOnlyPaths", [])).split()
        assert "/etc/signpost" in read_only, f"{path.name}: /etc/signpost is not in ReadOnlyPaths"
        assert service.get("CapabilityBoundingSet") == [""], f"{path.name} keeps capabilities"


def test_systemd_serve_units_restart_and_use_their_configs() -> None:
    for role in ("node", "broker"):
        unit = read_systemd(SYSTEMD / f"signpost-{role}.service")
        service = unit["Service"]
        assert one(service.get("Restart"), "Restart") == "on-failure"
        assert "multi-user.target" in unit["Install"]["WantedBy"]
        args = parse_signpost(exec_argv(one(service.get("ExecStart"), "ExecStart"))[1:])
        assert (args.command, getattr(args, f"{role}_command")) == (role, "serve")
        assert config_of(args) == PurePosixPath(f"/etc/signpost/{role}.toml")
        # The deployed file is deploy/config/<role>.toml; what it names must fit the sandbox.
        config = load_config(args, CONFIG / f"{role}.toml", {})
        state = PurePosixPath("/var/lib") / one(service.get("StateDirectory"), "StateDirectory")
        for key, path in config_paths(config).items():
            allowed = [PurePosixPath("/etc/signpost")] + ([state] if key.startswith("store") else [])
            assert any(path == d or d in path.parents for d in allowed), f"{role}: {key} {path} outside {allowed}"


def test_systemd_import_unit_and_timer() -> None:
    import_unit = read_systemd(SYSTEMD / "signpost-node-import.service")
    service = import_unit["Service"]
    assert one(service.get("Type"), "Type") == "oneshot"
    args = parse_signpost(exec_argv(one(service.get("ExecStart"), "ExecStart"))[1:])
    assert (args.command, args.node_command) == ("node", "import")
    serve = parse_signpost(exec_argv(read_systemd(SYSTEMD / "signpost-node.service")["Service"]["ExecStart"][0])[1:])
    assert args.config == serve.config, "import and serve must use the same node config (same store)"
    assert args.replace, "the nightly extract is a full snapshot: import it with --replace"
    assert service.get("User") == read_systemd(SYSTEMD / "signpost-node.service")["Service"].get("User")
    # A serving node picks up an import by itself (and keeps answering): the import must not restart, stop or
    # signal it. A restart would take the authority out of every search while the index is rebuilt, and a
    # SIGHUP that lands while the node is still starting would end it.
    hooks = [
        v
        for key in ("ExecStartPre", "ExecStartPost", "ExecStopPost", "ExecStop", "ExecCondition")
        for v in service.get(key, [])
    ]
    for hook in hooks:
        assert not re.search(r"\b(try-)?(reload-or-)?restart\b|\bstop\b|\bkill\b|\bisolate\b", hook), (
            f"the import unit runs '{hook}': the node reloads new data itself"
        )
    acts_on_node = [
        f"[{section}] {key}={v}"
        for section, keys in import_unit.items()
        for key, values in keys.items()
        for v in values
        if "signpost-node.service" in v and key not in ("After", "Wants", "Requires")
    ]
    assert not acts_on_node, f"the import unit acts on the serving node: {acts_on_node}"
    node = load_config(serve, CONFIG / "node.toml", {})
    assert isinstance(node, NodeConfig) and 0 < node.refresh_interval_seconds <= 60, (
        "the deployed node must look for new imports by itself, and soon"
    )
    # Nor do the instructions restart the node after an import, or the broker after a registry edit.
    for path in [DEPLOY / "README.md", *sorted((DEPLOY / "k8s").glob("*.yaml"))]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"rollout restart|compose restart|systemctl (try-)?restart", text), path.name

    timer = read_systemd(SYSTEMD / "signpost-node-import.timer")
    assert (SYSTEMD / one(timer["Timer"].get("Unit"), "Timer Unit")).exists()
    assert one(timer["Timer"].get("Unit"), "Unit") == "signpost-node-import.service"
    assert timer["Timer"].get("OnCalendar"), "the timer has no schedule"
    assert timer["Install"]["WantedBy"] == ["timers.target"]


# --------------------------------------------------------------------------- compose


def test_compose_has_a_broker_and_the_example_nodes() -> None:
    assert len(compose_role("broker")) == 1
    nodes = compose_role("node")
    assert {s.config().code for s in nodes} == EXAMPLE_CODES


def test_compose_ports_agree_with_the_configs() -> None:
    for service in compose_services():
        config = service.config()
        host, port = config.listen
        assert host == "0.0.0.0", f"{service.name} listens on {host}: unreachable from other containers"
        assert service.container_ports() == {port}, f"{service.name}: ports {service.container_ports()} vs {port}"
        health = " ".join(service.spec["healthcheck"]["test"])
        assert f"{port}" in health, f"{service.name}: healthcheck does not probe port {port}"


def test_compose_mounts_everything_the_configs_name() -> None:
    for service in compose_services():
        files, dirs = service.provided()
        for key, path in config_paths(service.config()).items():
            assert is_provided(path, files, dirs), f"{service.name}: {key} {path} is not mounted"
        named = set(compose().get("volumes") or {})
        for source, target, read_only in service.mounts():
            if source.startswith("."):
                assert read_only, f"{service.name}: {target} must be mounted read-only"
                assert not source.endswith("ca.key"), f"{service.name} is given the CA key"
                if source.startswith("./config/"):
                    assert (DEPLOY / source).exists(), f"{service.name}: {source} does not exist"
            else:
                assert source in named, f"{service.name}: volume {source} is not declared"


def test_compose_nodes_get_their_own_certificate_and_store() -> None:
    stores = set()
    for service in compose_role("node"):
        config = service.config()
        assert isinstance(config, NodeConfig)
        for path in (config.tls.cert, config.tls.key):
            source = next(s for s, t, _ in service.mounts() if t == PurePosixPath(path))
            assert f"node-{config.code}." in source, f"{service.name} ({config.code}) mounts {source}"
        store = next(s for s, t, _ in service.mounts() if t == PurePosixPath(config.store.parent))
        stores.add(store)
    assert len(stores) == len(compose_role("node")), "nodes share a store volume"


def test_compose_broker_keeps_its_limits_in_the_compose_redis() -> None:
    broker = compose_role("broker")[0]
    config = broker.config()
    assert isinstance(config, BrokerConfig)
    host, _, port = config.limits_store.removeprefix("redis://").partition("/")[0].partition(":")
    redis = compose()["services"][host]  # the URL names a compose service
    assert int(port) in {int(p) for p in redis.get("expose", [])} and not redis.get("ports"), "Redis is published"
    assert "noeviction" in redis["command"], "an evicted count would be a limit silently given back"
    assert redis["read_only"] and redis["cap_drop"] == ["ALL"]
    assert broker.spec["depends_on"][host]["condition"] == "service_healthy"


def test_compose_registry_reaches_every_node() -> None:
    broker = compose_role("broker")[0]
    config = broker.config()
    assert isinstance(config, BrokerConfig)
    registry = load_registry(broker.host_file(PurePosixPath(config.registry)))
    nodes = {s.name: s.config() for s in compose_role("node")}
    assert len(registry) == len(nodes)
    for authority in registry:
        host, _, port = authority.address.rpartition(":")
        assert host in nodes, f"registry {authority.code}: {host} is not a compose service"
        assert (nodes[host].code, nodes[host].listen[1]) == (authority.code, int(port))


# --------------------------------------------------------------------------- kubernetes


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    namespaces = {d["metadata"]["name"] for d in k8s_documents() if d["kind"] == "Namespace"}
    assert namespaces == {kustomization["namespace"]}


def test_k8s_configmaps_carry_the_example_configs(tmp_path: Path) -> None:
    for container in k8s_containers():
        args = parse_signpost(container.argv)
        _kind, name, key = container.files()[config_of(args)]
        example = EXAMPLE_CONFIGS.get(name, f"{args.command}.toml")
        assert tomllib.loads(k8s_configmap_text(name, key)) == tomllib.loads(
            (CONFIG / example).read_text(encoding="utf-8")
        ), f"ConfigMap {name} differs from deploy/config/{example}"
        container.config(tmp_path)  # and it loads, with the container's overrides
    assert set(k8s_registry()) == set(load_registry(CONFIG / "registry.json"))


def test_k8s_ports_probes_and_services_agree_with_the_configs(tmp_path: Path) -> None:
    for container in k8s_containers():
        config = container.config(tmp_path)
        host, port = config.listen
        assert host == "0.0.0.0", f"{container.name} listens on {host}"
        assert [p["containerPort"] for p in container.container["ports"]] == [port]
        service = service_for(container.deployment)
        assert [(p["port"], container.named_port(p["targetPort"])) for p in service["spec"]["ports"]] == [
            (port, port)
        ], f"Service {service['metadata']['name']}"
        probes = [container.container[k] for k in ("readinessProbe", "livenessProbe")]
        if isinstance(config, BrokerConfig):
            # Readiness is /readyz (audit store, registry, keys usable); liveness only that the process answers.
            for probe, path in zip(probes, ("/readyz", "/healthz"), strict=True):
                get = probe["httpGet"]
                assert (get["path"], get["scheme"], container.named_port(get["port"])) == (path, "HTTPS", port)
        else:
            # kubelet's native grpc probe cannot present a client certificate: the node would refuse it.
            for probe in [*probes, container.container.get("startupProbe", {"tcpSocket": {"port": port}})]:
                assert set(probe) & {"grpc", "httpGet", "exec", "tcpSocket"} == {"tcpSocket"}
                assert container.named_port(probe["tcpSocket"]["port"]) == port


def test_k8s_broker_runs_three_replicas() -> None:
    (broker,) = k8s_containers("broker")
    assert broker.deployment["spec"]["replicas"] == 3


def test_k8s_replicas_share_their_audit_log_and_their_limits(tmp_path: Path) -> None:
    """Three replicas each on memory would give a practitioner three times the limit: the config refuses."""
    (broker,) = k8s_containers("broker")
    config = broker.config(tmp_path)
    assert isinstance(config, BrokerConfig)
    assert config.audit_log.startswith("postgresql://") and config.limits_store.startswith("redis://")
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in broker.container["env"] if "valueFrom" in e}
    assert secrets["SIGNPOST_BROKER_LIMITS_STORE"] == "signpost-limits-redis"
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert "create secret generic signpost-limits-redis" in text


def test_k8s_mounts_everything_the_configs_name(tmp_path: Path) -> None:
    claims = k8s_kind("PersistentVolumeClaim")
    for container in k8s_containers():
        config = container.config(tmp_path)
        files = container.files()
        for key, path in config_paths(config).items():
            assert is_provided(path, set(files), container.dirs()), f"{container.name}: {key} {path} not mounted"
        for key in ("tls.cert", "tls.key"):
            kind, name, item = files[config_paths(config)[key]]
            assert (kind, item) == ("secret", "tls.crt" if key == "tls.cert" else "tls.key"), f"{container.name} {key}"
            if isinstance(config, NodeConfig):
                assert name == f"signpost-node-{config.code.lower()}-tls", f"{config.code} is given {name}"
        assert files[config_paths(config)["tls.ca"]][:2] == ("secret", "signpost-ca")
        if isinstance(config, NodeConfig):
            mount = next(
                m
                for m in container.container["volumeMounts"]
                if PurePosixPath(m["mountPath"]) == PurePosixPath(config.store.parent)
            )
            claim = container.volume(mount["name"])["persistentVolumeClaim"]["claimName"]
            assert claim in claims, f"{container.name}: PVC {claim} is not defined"


def test_k8s_secrets_are_read_only_0400() -> None:
    for container in k8s_containers():
        mounts = {m["name"]: m for m in container.container["volumeMounts"]}
        secret_volumes = [
            container.volume(name)
            for name in mounts
            if "secret" in container.volume(name)
            or any("secret" in s for s in container.volume(name).get("projected", {}).get("sources", []))
        ]
        assert secret_volumes, f"{container.name} mounts no Secret"
        for volume in secret_volumes:
            source = volume.get("projected") or volume["secret"]
            assert source.get("defaultMode") == 0o400, f"{container.name}: {volume['name']} mode"
            assert mounts[volume["name"]].get("readOnly") is True, f"{container.name}: {volume['name']} writable"


def test_k8s_pods_are_locked_down() -> None:
    uid = dockerfile_user()
    for container in k8s_containers():
        pod = container.pod
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["runAsUser"] == uid, "runAsUser differs from the image's USER"
        # Secret files are root-owned; only fsGroup lets a non-root process read the key.
        assert security["fsGroup"] == uid
        own = container.container["securityContext"]
        assert own["readOnlyRootFilesystem"] is True
        assert own["allowPrivilegeEscalation"] is False
        assert own["capabilities"]["drop"] == ["ALL"]
        # Service links would inject SIGNPOST_BROKER_PORT=..., inside our override prefixes.
        assert pod.get("enableServiceLinks") is False, f"{container.name}: enableServiceLinks"


def test_k8s_nodes_one_replica_per_store_and_registry_reaches_them(tmp_path: Path) -> None:
    nodes = {}
    for container in k8s_containers("node"):
        config = container.config(tmp_path)
        assert isinstance(config, NodeConfig)
        spec = container.deployment["spec"]
        assert (spec["replicas"], spec["strategy"]["type"]) == (1, "Recreate"), container.name
        nodes[service_for(container.deployment)["metadata"]["name"]] = config
    assert {c.code for c in nodes.values()} == EXAMPLE_CODES
    registry = k8s_registry()
    assert len(registry) == len(nodes)
    for authority in registry:
        host, _, port = authority.address.rpartition(":")
        service = host.split(".")[0]  # name, or name.namespace.svc...
        assert service in nodes, f"registry {authority.code}: no Service {service}"
        assert (nodes[service].code, nodes[service].listen[1]) == (authority.code, int(port))


def test_readme_creates_every_secret_the_manifests_use() -> None:
    used = set()
    for container in k8s_containers():
        used |= {name for kind, name, _ in container.files().values() if kind == "secret"}
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    created = set(re.findall(r"create secret (?:tls|generic) ([\w.-]+)", text))
    assert used and used <= created, f"README does not create: {used - created}"


# --------------------------------------------------------------------------- image


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            result.append((op.upper(), rest.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def dockerfile_user() -> int:
    users = [rest for op, rest in final_stage() if op == "USER"]
    assert users, "the image runs as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "USER should be numeric so runAsNonRoot can verify it"
    assert int(uid) != 0
    return int(uid)


def test_dockerfile_builds_one_signpost_image() -> None:
    instructions = dockerfile_instructions()
    froms = [rest.split()[0] for op, rest in instructions if op == "FROM"]
    assert froms and all(f == "python:3.11-slim" for f in froms), froms
    entrypoints = [json.loads(rest) for op, rest in final_stage() if op == "ENTRYPOINT"]
    assert entrypoints[-1] == ["signpost"]
    assert any(op == "RUN" and re.search(r"pip install \.(\s|$)", rest) for op, rest in instructions)
    dockerfile_user()
    exposed = {int(p) for op, rest in final_stage() if op == "EXPOSE" for p in rest.split()}
    assert exposed == {
        load_broker_config(CONFIG / "broker.toml", {}).listen[1],
        load_node_config(CONFIG / "node.toml", {}).listen[1],
    }


def test_dockerfile_copies_every_package_pyproject_installs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {
        src.rstrip("/")
        for op, rest in dockerfile_instructions()
        if op == "COPY" and "--from" not in rest
        for src in rest.split()[:-1]
    }
    assert packages <= copied, f"the image would miss {packages - copied}"
    assert "pyproject.toml" in copied


def test_console_script_is_the_entrypoint() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    target = pyproject["project"]["scripts"]["signpost"]
    module, _, function = target.partition(":")
    assert (module, function) == ("signpost.cli", "main")
    from signpost import cli

    assert callable(getattr(cli, function))


def test_compose_and_k8s_use_the_same_image_of_this_version() -> None:
    compose_images = {s.spec.get("image") for s in compose_services()}
    k8s_images = {c.container["image"] for c in k8s_containers()}
    assert len(compose_images) == 1 and compose_images == k8s_images, (compose_images, k8s_images)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert image_tag_version(compose_images.pop()) == version
    for service in compose_services():
        build = service.spec.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
