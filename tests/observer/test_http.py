"""trio_smith.observer over real sockets on 127.0.0.1: every endpoint, the token, bad requests.

Real sockets need real time, so these run on trio's real clock with no
timing assertions (docs/design.md rule 47).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import trio

from trio_smith import ChildSpec, DynamicSupervisor, Supervisor
from trio_smith.events import EventBus
from trio_smith.observer import TREE_VERSION, Observer

from .client import get, raw

EVIL = "<img src=x onerror=alert(1)>"


async def idle() -> None:
    await trio.sleep_forever()


@pytest.fixture
async def root() -> AsyncIterator[Supervisor]:
    pool = DynamicSupervisor.spec("pool", ChildSpec("job", idle))
    async with Supervisor([ChildSpec(EVIL, idle), pool], name="app") as sup:
        yield sup
        await sup.shutdown()


async def test_the_tree_is_versioned_json_with_nested_supervisors(root: Supervisor) -> None:
    await root.find("app/pool").start_child()  # type: ignore[call-arg]
    async with Observer(root) as obs:
        response = await get(obs.url, "/api/tree")
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    doc = response.json()
    assert doc["version"] == TREE_VERSION == 1
    assert isinstance(doc.pop("taken"), float)
    assert doc["root"] == {
        "name": "app",
        "path": "app",
        "kind": "supervisor",
        "state": "running",
        "strategy": "one_for_one",
        "restarts": 0,
        "active": 2,
        "children": [
            {
                "id": EVIL,
                "status": "running",
                "restart": "permanent",
                "restarts": 0,
                "phi": None,
                "heartbeat_age": None,
                "backoff": None,
                "os_pid": None,
                "status_text": None,
                "supervisors": [],
            },
            {
                "id": "pool",
                "status": "running",
                "restart": "permanent",
                "restarts": 0,
                "phi": None,
                "heartbeat_age": None,
                "backoff": None,
                "os_pid": None,
                "status_text": None,
                "supervisors": [
                    {
                        "name": "pool",
                        "path": "app/pool",
                        "kind": "dynamic_supervisor",
                        "state": "running",
                        "strategy": "one_for_one",
                        "restarts": 0,
                        "active": 1,
                        "children": [
                            {
                                "id": "job-1",
                                "status": "running",
                                "restart": "permanent",
                                "restarts": 0,
                                "phi": None,
                                "heartbeat_age": None,
                                "backoff": None,
                                "os_pid": None,
                                "status_text": None,
                                "supervisors": [],
                            }
                        ],
                    }
                ],
            },
        ],
    }


async def test_html_in_an_id_is_escaped_in_the_json(root: Supervisor) -> None:
    async with Observer(root) as obs:
        response = await get(obs.url, "/api/tree")
    assert b"<" not in response.body
    assert b">" not in response.body
    assert b'"\\u003cimg src=x onerror=alert(1)\\u003e"' in response.body
    assert response.json()["root"]["children"][0]["id"] == EVIL
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_the_page_is_self_contained_and_inserts_text_only(root: Supervisor) -> None:
    async with Observer(root) as obs:
        response = await get(obs.url, "/")
    assert response.status == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "connect-src 'self'" in csp
    page = response.body.decode()
    assert "textContent" in page
    assert "innerHTML" not in page
    assert "outerHTML" not in page
    assert "insertAdjacentHTML" not in page
    assert "document.write" not in page
    assert "eval(" not in page
    assert "://" not in page  # nothing fetched from elsewhere
    assert "<script src" not in page
    assert "<link" not in page
    assert 'new EventSource(withToken("/api/events"))' in page


async def test_healthz_and_readyz(root: Supervisor) -> None:
    async with Observer(root) as obs:
        health = await get(obs.url, "/healthz")
        ready = await get(obs.url, "/readyz")
    assert (health.status, health.body) == (200, b"ok\n")
    assert (ready.status, ready.body) == (200, b"ready\n")


async def test_readyz_is_503_until_the_root_runs() -> None:
    sup = Supervisor([ChildSpec("a", idle)])
    async with Observer(sup) as obs:
        before = await get(obs.url, "/readyz")
        async with sup:
            during = await get(obs.url, "/readyz")
            await sup.shutdown()
        after = await get(obs.url, "/readyz")
    assert (before.status, before.body) == (503, b"not ready: new\n")
    assert during.status == 200
    assert (after.status, after.body) == (503, b"not ready: stopped\n")


async def test_metrics_are_prometheus_text(root: Supervisor) -> None:
    async with EventBus(name="main") as bus, Observer(root, bus=bus) as obs:
        response = await get(obs.url, "/metrics")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.body.decode()
    assert 'trio_smith_supervisor_state{state="running",supervisor="app"} 1.0' in text
    assert 'trio_smith_supervisor_children{status="running",supervisor="app/pool"} 0.0' in text
    assert 'trio_smith_bus_subscriptions{bus="main"}' in text


def test_metrics_are_404_without_prometheus_client() -> None:
    code = (
        "import sys, trio\n"
        "sys.modules['prometheus_client'] = None\n"
        "from trio_smith import Supervisor\n"
        "from trio_smith.observer import Observer\n"
        "from tests.observer.client import get\n"
        "async def main():\n"
        "    async with Observer(Supervisor([])) as obs:\n"
        "        print((await get(obs.url, '/metrics')).status)\n"
        "        print((await get(obs.url, '/healthz')).status)\n"
        "trio.run(main)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "404\n200\n"


async def test_head_answers_headers_only(root: Supervisor) -> None:
    async with Observer(root) as obs:
        tree = await get(obs.url, "/api/tree", method="HEAD")
        events = await get(obs.url, "/api/events", method="HEAD")
    assert tree.status == 200
    assert tree.body == b""
    assert int(tree.headers["content-length"]) > 100
    assert events.status == 200
    assert events.body == b""
    assert events.headers["content-type"] == "text/event-stream; charset=utf-8"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_only_get_and_head(root: Supervisor, method: str) -> None:
    async with Observer(root) as obs:
        response = await get(obs.url, "/api/tree", method=method)
        after = await get(obs.url, "/healthz")
    assert (response.status, response.body) == (
        405,
        b"method not allowed: the observer is read-only\n",
    )
    assert response.headers["allow"] == "GET, HEAD"
    assert after.status == 200


async def test_unknown_paths_are_404(root: Supervisor) -> None:
    async with Observer(root) as obs:
        response = await get(obs.url, "/api/nothing")
    assert (response.status, response.body) == (404, b"not found: /api/nothing\n")


@pytest.mark.parametrize(
    "data",
    [
        b"garbage\r\n\r\n",
        b"GET /x HTTP/1.1\r\n\r\n",  # no Host header
        b"GET http://elsewhere/ HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a" * 100000,
        b"GET /api/events?nope=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/events?type=x HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/events?category=a.b HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
)
async def test_bad_requests_get_400_and_the_server_goes_on(root: Supervisor, data: bytes) -> None:
    async with Observer(root) as obs:
        answer = await raw(obs.url, data)
        after = await get(obs.url, "/healthz")
    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
    assert answer.split(b" ")[1] in (b"400", b"431"), answer[:200]
    assert after.status == 200


async def test_a_bad_filter_is_named() -> None:
    async with Observer(Supervisor([])) as obs:
        unknown = await get(obs.url, "/api/events?nope=1")
        bad_type = await get(obs.url, "/api/events?category=a.b")
    assert unknown.status == 400
    assert unknown.body == (
        b"unknown query parameter 'nope'; expected category, source, source_prefix, type\n"
    )
    assert bad_type.status == 400
    assert bad_type.body == (
        b"bad event filter: categories may not contain dots or spaces, got 'a.b'\n"
    )


async def test_a_client_that_closes_early_does_not_stop_the_server(root: Supervisor) -> None:
    async with Observer(root) as obs:
        assert await raw(obs.url, b"") == b""
        for data in (b"GET / HT", b"GET /api/tree HTTP/1.1\r\nHost: x\r\n"):
            assert (await raw(obs.url, data)).startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert (await get(obs.url, "/healthz")).status == 200


async def test_the_token_is_needed_for_every_request(root: Supervisor) -> None:
    async with Observer(root, token="s3cret") as obs:
        for path in ("/", "/api/tree", "/api/events", "/metrics", "/healthz", "/nothing"):
            refused = await get(obs.url, path)
            assert (refused.status, refused.body) == (
                401,
                b"unauthorized: this observer needs its token\n",
            )
            assert refused.headers["www-authenticate"] == "Bearer"
        wrong = await get(obs.url, "/api/tree", headers={"authorization": "Bearer nope"})
        wrong_query = await get(obs.url, "/api/tree?token=nope")
        header = await get(obs.url, "/api/tree", headers={"authorization": "Bearer s3cret"})
        query = await get(obs.url, "/api/tree?token=s3cret")
        post = await get(obs.url, "/api/tree?token=s3cret", method="POST")
    assert wrong.status == wrong_query.status == 401
    assert header.status == query.status == 200
    assert post.status == 405


def test_a_public_address_needs_a_token() -> None:
    sup = Supervisor([])
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        with pytest.raises(ValueError, match="not a loopback address") as info:
            Observer(sup, host=host)
        assert str(info.value) == (
            f"the observer serves {host!r}, which is not a loopback address, only with a "
            "token: pass token=... (every request must then carry it) or bind to 127.0.0.1"
        )
    Observer(sup, host="0.0.0.0", token="t")
    Observer(sup, host="::1")
    Observer(sup, host="127.0.0.2")
    Observer(sup, host="localhost")


def test_arguments_are_checked() -> None:
    sup = Supervisor([])
    cases: list[tuple[dict[str, object], type[Exception], str]] = [
        ({"port": 70000}, ValueError, "port must be an int from 0 to 65535, got 70000"),
        ({"port": True}, ValueError, "port must be an int from 0 to 65535, got True"),
        ({"host": 1}, TypeError, "host must be a str, got 1"),
        ({"bus": "bus"}, TypeError, "bus must be an EventBus or None, got 'bus'"),
        ({"token": b"t"}, TypeError, "token must be a str or None, got a bytes"),
        (
            {"token": "a b"},
            ValueError,
            "token must be a non-empty str of printable ASCII without spaces",
        ),
        (
            {"token": ""},
            ValueError,
            "token must be a non-empty str of printable ASCII without spaces",
        ),
    ]
    for kwargs, kind, message in cases:
        with pytest.raises(kind) as info:
            Observer(sup, **kwargs)  # type: ignore[arg-type]
        assert str(info.value) == message
    with pytest.raises(TypeError) as info:
        Observer("root")  # type: ignore[arg-type]
    assert str(info.value) == "root must be a Supervisor or DynamicSupervisor, got 'root'"
    for name in ("tree_interval", "send_timeout"):
        with pytest.raises(ValueError, match=name):
            Observer(sup, **{name: 0})  # type: ignore[arg-type]
    for name in ("client_buffer", "max_clients"):
        with pytest.raises(ValueError, match=name):
            Observer(sup, **{name: 0})  # type: ignore[arg-type]


async def test_url_only_while_serving() -> None:
    obs = Observer(Supervisor([]))
    with pytest.raises(RuntimeError) as info:
        obs.url  # noqa: B018
    assert str(info.value) == "the observer is not serving: enter it, or run it as a child"
    async with obs:
        assert obs.url.startswith("http://127.0.0.1:")
        assert obs.statistics().url == obs.url
        with pytest.raises(RuntimeError) as again:
            async with obs:
                pass
        assert str(again.value) == f"the observer is already serving at {obs.url}"
    assert obs.statistics().url is None
    async with obs:  # it may serve again once stopped
        assert (await get(obs.url, "/healthz")).status == 200


async def test_an_error_in_the_block_propagates_as_it_is() -> None:
    with pytest.raises(KeyError):
        async with Observer(Supervisor([])):
            raise KeyError("x")


async def test_it_runs_as_a_child_of_the_tree_it_shows(root: Supervisor) -> None:
    obs = Observer(root)
    await root.start_child(obs.spec())
    response = await get(obs.url, "/api/tree")
    ids = [child["id"] for child in response.json()["root"]["children"]]
    assert ids == [EVIL, "pool", "observer"]
    await root.terminate_child("observer")
    assert obs.statistics().url is None


async def test_a_connection_carries_several_requests(root: Supervisor) -> None:
    async with Observer(root) as obs:
        answer = await raw(
            obs.url,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert answer.endswith(b"ready\n")
    assert b"ok\n" in answer


async def test_an_error_answering_is_500_and_the_server_goes_on(
    root: Supervisor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: object) -> object:
        raise ZeroDivisionError("broken")

    async with Observer(root) as obs:
        monkeypatch.setattr(Supervisor, "statistics", broken)
        failed = await get(obs.url, "/readyz")
        monkeypatch.undo()
        after = await get(obs.url, "/readyz")
    assert (failed.status, failed.body) == (500, b"internal error\n")
    assert after.status == 200
    assert "the observer failed to answer a request" in caplog.text
