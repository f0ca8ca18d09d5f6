"""The command form: which command types the console offers for an entity type, how each
is described to the person, and how the one chosen is built from the form's JSON body.

A behavior may declare `commands = (...)`: those are the only types the console offers. A
behavior that declares none accepts anything, so the console cannot know what to offer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from ..engine import Engine

_PLACEHOLDERS: dict[type, Any] = {
    msgspec.inspect.IntType: 0,
    msgspec.inspect.FloatType: 0.0,
    msgspec.inspect.StrType: "",
    msgspec.inspect.BoolType: False,
    msgspec.inspect.ListType: [],
    msgspec.inspect.DictType: {},
}


@dataclass(frozen=True, slots=True)
class CommandChoice:
    """One option of the form's command menu. It carries its fields and a sample body because
    a person cannot be expected to know a command's JSON shape, and a body that starts with
    every required field lets them change values rather than guess names."""

    name: str
    cls: type
    fields: str  # "amount: int, note: str (optional)", for the person choosing
    sample: str  # a JSON body with every required field, to start from


def declared_commands(engine: Engine, entity_type: str) -> tuple[type, ...]:
    """The command types the entity type's behavior declares (empty if it declares none)."""
    for registered, behavior_class, _ in engine.registrations():
        if registered == entity_type:
            return tuple(getattr(behavior_class, "commands", ()))
    return ()


def command_choices(engine: Engine, entity_type: str) -> list[CommandChoice]:
    return [_choice(cls) for cls in declared_commands(engine, entity_type)]


def find_command(engine: Engine, entity_type: str, name: str) -> type | None:
    for cls in declared_commands(engine, entity_type):
        if cls.__qualname__ == name:
            return cls
    return None


def build_command(cls: type, body: str) -> Any:
    """The command from a JSON body; `ValueError` says what did not fit, in the body's terms."""
    try:
        data = msgspec.json.decode(body.strip() or "{}")
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise ValueError(f"the body is not valid JSON: {exc}") from None
    try:
        return msgspec.convert(data, cls)
    except msgspec.ValidationError as exc:
        raise ValueError(f"the body does not fit {cls.__qualname__}: {exc}") from None
    except TypeError as exc:  # a type msgspec cannot build (a protobuf message)
        raise ValueError(f"{cls.__qualname__} cannot be built from JSON: {exc}") from None


def _choice(cls: type) -> CommandChoice:
    try:
        info = msgspec.inspect.type_info(cls)
    except TypeError:
        return CommandChoice(cls.__qualname__, cls, "", "{}")
    fields = getattr(info, "fields", ())
    described = []
    sample: dict[str, Any] = {}
    for field in fields:
        type_name = type(field.type).__name__.removesuffix("Type").lower()
        if field.required:
            described.append(f"{field.name}: {type_name}")
            sample[field.encode_name] = _PLACEHOLDERS.get(type(field.type))
        else:
            described.append(f"{field.name}: {type_name} (optional)")
    return CommandChoice(
        cls.__qualname__, cls, ", ".join(described), msgspec.json.encode(sample).decode()
    )
