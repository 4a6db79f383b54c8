"""What the autoscaler acts through: a pool of local processes, or Kubernetes Deployments.

- :class:`LocalProcessPool` really starts and stops ``photostore serve --role ROLE`` processes on
  this machine, each on its own loopback port, with this process's settings (environment and
  ``PHOTOSTORE_CONFIG``). It is how the embedded and loopback deployments scale; the processes are
  its children and stop with it. A service maps to a role: worker, relay; api and upload to api.
- :class:`KubernetesDeployments` patches the ``scale`` subresource of each service's Deployment
  through the official Python client (``pip install 'photostore[kubernetes]'``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from photostore.cluster.engines import free_port
from photostore.errors import BackendUnavailable, ConfigError
from photostore.settings import KubernetesScalingSettings

STOP_TIMEOUT_S = 15.0
ROLE_OF_SERVICE = {"worker": "worker", "relay": "relay", "api": "api", "upload": "api"}


class Actuator(Protocol):
    async def replicas(self, service: str) -> int: ...

    async def scale(self, service: str, target: int) -> None: ...

    async def close(self) -> None: ...


@dataclass
class PoolProcess:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class LocalProcessPool:
    def __init__(self, log_dir: Path, command: list[str] | None = None) -> None:
        self._log_dir = log_dir
        self._command = command or [str(Path(sys.executable).with_name("photostore"))]
        self._pools: dict[str, list[PoolProcess]] = {}

    def urls(self) -> list[str]:
        """Every live process's base URL (its /metrics is worth reading)."""
        return [
            member.url for pool in self._pools.values() for member in pool if member.process.poll() is None
        ]

    async def replicas(self, service: str) -> int:
        pool = self._pools.setdefault(service, [])
        pool[:] = [member for member in pool if member.process.poll() is None]  # forget the dead
        return len(pool)

    async def scale(self, service: str, target: int) -> None:
        role = ROLE_OF_SERVICE.get(service)
        if role is None:
            raise ConfigError(f"the local pool runs {sorted(ROLE_OF_SERVICE)}, not {service!r}")
        current = await self.replicas(service)
        pool = self._pools[service]
        for _ in range(current, target):
            pool.append(self._start(service, role))
        leaving = [pool.pop() for _ in range(target, current)]  # newest first: the oldest are warm
        await asyncio.gather(*(asyncio.to_thread(_stop, member.process) for member in leaving))

    def _start(self, service: str, role: str) -> PoolProcess:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        with (self._log_dir / f"{service}-{port}.log").open("ab") as log:
            process = subprocess.Popen(
                [*self._command, "serve", "--role", role, "--port", str(port)],
                env=dict(os.environ),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stopping it takes its children too
            )
        return PoolProcess(process, port)

    async def close(self) -> None:
        everyone = [member for pool in self._pools.values() for member in pool]
        self._pools.clear()
        await asyncio.gather(*(asyncio.to_thread(_stop, member.process) for member in everyone))


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a worker finishes its current events and commits), SIGKILL if it does not go."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class KubernetesDeployments:
    def __init__(self, settings: KubernetesScalingSettings) -> None:
        try:
            from kubernetes import client, config
        except ImportError:
            raise ConfigError(
                "the kubernetes actuator needs the official client: pip install 'photostore[kubernetes]'"
            ) from None
        try:
            if settings.in_cluster:
                config.load_incluster_config()
            else:
                config.load_kube_config()
        except config.ConfigException as exc:
            raise ConfigError(f"no Kubernetes configuration: {exc}") from None
        self._api: Any = client.AppsV1Api()
        self._api_error: type[Exception] = client.ApiException
        self._settings = settings

    def _deployment(self, service: str) -> str:
        try:
            return self._settings.deployments[service]
        except KeyError:
            raise ConfigError(f"autoscale.kubernetes.deployments has no Deployment for {service!r}") from None

    async def replicas(self, service: str) -> int:
        name, namespace = self._deployment(service), self._settings.namespace
        try:
            scale = await asyncio.to_thread(self._api.read_namespaced_deployment_scale, name, namespace)
        except self._api_error as exc:
            raise BackendUnavailable(f"reading the scale of {namespace}/{name}: {exc}") from None
        return int(scale.spec.replicas or 0)

    async def scale(self, service: str, target: int) -> None:
        name, namespace = self._deployment(service), self._settings.namespace
        body = {"spec": {"replicas": target}}
        try:
            await asyncio.to_thread(self._api.patch_namespaced_deployment_scale, name, namespace, body)
        except self._api_error as exc:
            raise BackendUnavailable(f"scaling {namespace}/{name} to {target}: {exc}") from None

    async def close(self) -> None:
        return None
