"""Every public name has exactly one public home (like trio's test_exports.py)."""

from __future__ import annotations

import importlib
import types

import pytest

#: The public modules; each name in their __all__ is public API.
PUBLIC_MODULES = [
    "trio_smith",
    "trio_smith.events",
    "trio_smith.resilience",
    "trio_smith.routing",
    "trio_smith.telemetry",
    "trio_smith.prometheus",
    "trio_smith.otel",
    "trio_smith.observer",
]


def _public(module_name: str) -> dict[str, object]:
    module = importlib.import_module(module_name)
    names: list[str] = module.__all__
    return {name: getattr(module, name) for name in names}


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_lists_exactly_the_public_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.__all__ names missing {name!r}"
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert defined == set(module.__all__)


def test_each_public_object_has_one_public_home() -> None:
    homes: dict[int, list[str]] = {}
    for module_name in PUBLIC_MODULES:
        for name, value in _public(module_name).items():
            homes.setdefault(id(value), []).append(f"{module_name}.{name}")
    shared = [places for places in homes.values() if len(places) > 1]
    assert shared == []


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_classes_are_defined_in_private_modules(module_name: str) -> None:
    for name, value in _public(module_name).items():
        if isinstance(value, type):
            parts = value.__module__.split(".")
            assert any(p.startswith("_") for p in parts[1:]), f"{name} defined in {parts}"


def test_every_error_is_a_trio_smith_error_with_builtin_kin() -> None:
    import trio

    import trio_smith
    import trio_smith.events
    import trio_smith.resilience
    import trio_smith.routing

    errors = [
        value
        for module in (trio_smith, trio_smith.events, trio_smith.resilience, trio_smith.routing)
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, BaseException)
    ]
    assert len(errors) >= 12
    for error in errors:
        assert issubclass(error, trio_smith.TrioSmithError)
        bases = (
            trio_smith.TrioSmithError,
            trio_smith.SupervisorError,
            trio_smith.events.EventsError,
            trio_smith.routing.RoutingError,
        )
        if error not in bases:
            # Builtin kin, or trio's own kin (ClosedResourceError for a
            # closed bus or store, as trio's channels raise).
            kin = [
                b
                for b in error.__mro__
                if b.__module__ == "builtins" or b is trio.ClosedResourceError
            ]
            assert kin[0] is not Exception, f"{error.__name__} has no builtin kin"
