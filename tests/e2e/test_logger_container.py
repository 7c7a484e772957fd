"""gestor creates, starts and reuses its log service container (the seed:
"the Rust service creates the log container")."""

from __future__ import annotations

import json

from harness import docker, http_get, wait_until


def inspect(name: str) -> dict:
    return json.loads(docker("inspect", name))[0]


def healthy_logged(g) -> bool:
    return any(
        "log service container is healthy" in line.get("message", "") for line in g.log_lines()
    )


def test_gestor_creates_starts_and_reuses_the_log_container(scope, make_gestor):
    g = make_gestor("--interval", "2")
    wait_until("gestor sees it healthy", 120, lambda: healthy_logged(g))
    wait_until("log service answers", 30, lambda: http_get(g.logger_url("/healthz")))
    c = inspect(g.logger_name)
    assert c["Config"]["Labels"]["gestor.protected"] == "true"
    assert c["State"]["Health"]["Status"] == "healthy"
    assert any(
        m["Type"] == "volume" and m["Name"] == g.logger_volume and m["Destination"] == "/data"
        for m in c["Mounts"]
    )
    # Published on loopback, on a port Docker picked (gestor ran with
    # --logger-url http://127.0.0.1:0) and gestor learnt: it ships there.
    binding = c["HostConfig"]["PortBindings"]["8000/tcp"][0]
    assert binding == {"HostIp": "127.0.0.1", "HostPort": ""}
    published = c["NetworkSettings"]["Ports"]["8000/tcp"][0]
    assert published["HostIp"] == "127.0.0.1"
    assert int(published["HostPort"]) == g.logger_port
    assert c["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    first_id = c["Id"]
    wait_until("records stored", 30, lambda: len(g.logger_records()) > 0)
    stored = len(g.logger_records())
    assert g.stop() == 0

    # A second start reuses the running container.
    g2 = make_gestor("--interval", "2")
    wait_until(
        "reuse logged",
        30,
        lambda: any("reusing" in line.get("message", "") for line in g2.log_lines()),
    )
    assert inspect(g.logger_name)["Id"] == first_id
    assert g2.stop() == 0

    # A stopped log container is started again, with its data.
    docker("stop", g.logger_name)
    g3 = make_gestor("--interval", "2")
    wait_until("gestor sees it healthy again", 120, lambda: healthy_logged(g3))
    assert inspect(g.logger_name)["State"]["Health"]["Status"] == "healthy"
    assert inspect(g.logger_name)["Id"] == first_id
    assert len(g3.logger_records()) >= stored
