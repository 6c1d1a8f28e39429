"""The validation layer shared by study configs and the model registry.

Config sections and registry entries are frozen pydantic models built on :class:`Section`: an
unknown key, a value of the wrong type (an int never accepts a bool or a float; a float accepts
an int) or a value out of range is an error, never a silent correction.  :func:`validate` turns
pydantic's :class:`~pydantic.ValidationError` into a :class:`ConfigError` that names the file and
the offending key as a dotted path (``collection.http.timeout_s``, ``models[1]``), with a short
problem statement ("unknown key; known keys are [...]", "value 1.5 is outside [0.0, 1.0]",
"expected int, got float 2.5", "expected one of '>' or '>=', got '=>'", "required key is missing").

A check that involves several keys is a ``model_validator(mode="after")`` raising
:class:`KeyProblem`, which names the key it is about relative to the model being validated.

This module sits just above :mod:`iconicity_utils.core.constants` and imports nothing else from the
package.

Example:
    >>> class Grid(Section):
    ...     rows: int = Field(4, ge=1)
    >>> validate(Grid, {"rows": 0}, "demo.yaml", "realization")
    Traceback (most recent call last):
    ...
    iconicity_utils.core.schema.ConfigError: demo.yaml: key 'realization.rows': value 0 is outside >= 1
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

__all__ = [
    "ConfigError",
    "KeyProblem",
    "Section",
    "SECTION_CONFIG",
    "Unit",
    "Positive",
    "fixed_length",
    "validate",
    "config_error",
]

M = TypeVar("M", bound=BaseModel)

#: the settings of every section: unknown keys are errors, instances are immutable, and types are
#: strict (no "1" -> 1, no True -> 1, no 2.0 -> 2; an int is accepted where a float is expected).
#: Field names may start with ``model_`` (the registry's ``model_kwargs``).
SECTION_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True, protected_namespaces=())


class ConfigError(ValueError):
    """A config file (or registry file) is invalid; the message names the key and the file.

    Attributes:
        file: the file the value came from (``"<dict>"`` for a mapping built in code).
        key: the offending key as a dotted path, e.g. ``thresholds.tau_reuse`` or ``models[1]``.
        problem: what is wrong with it.
    """

    def __init__(self, file: str | Path | None, key: str, problem: str):
        self.file = str(file) if file is not None else "<dict>"
        self.key = key
        self.problem = problem
        super().__init__(f"{self.file}: key '{key}': {problem}")


class KeyProblem(ValueError):
    """Raised inside a validator: ``key`` (relative to the model being validated) is wrong.

    :func:`validate` reports it as a :class:`ConfigError` whose key is the model's own dotted
    path followed by ``key``.
    """

    def __init__(self, key: str, problem: str):
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


class Section(BaseModel):
    """Base of every config section and registry entry (see :data:`SECTION_CONFIG`)."""

    model_config = SECTION_CONFIG


#: a float in [0, 1] (thresholds)
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
#: an integer >= 1 (counts and sizes)
Positive = Annotated[int, Field(ge=1)]


def fixed_length(n: int) -> BeforeValidator:
    """A before-validator for ``tuple[...]`` fields given as a YAML list of exactly ``n`` items.

    YAML has no tuples, and strict mode accepts only a tuple for a tuple field; this turns a list
    of the right length into a tuple and reports any other value as "expected a list of n items".
    """

    def check(value: Any) -> Any:
        if isinstance(value, list | tuple) and len(value) == n:
            return tuple(value)
        raise PydanticCustomError(
            "fixed_length", "expected a list of {n} items, got {value}", {"n": n, "value": repr(value)}
        )

    return BeforeValidator(check)


# --------------------------------------------------------------------------------------------
# ValidationError -> ConfigError
# --------------------------------------------------------------------------------------------

_TYPE_NAMES = {
    "int_type": "int",
    "int_parsing": "int",
    "int_from_float": "int",
    "float_type": "float",
    "float_parsing": "float",
    "string_type": "str",
    "bool_type": "bool",
    "bool_parsing": "bool",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_BOUNDS = {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (``Model``, ``Model | None``, ``list[Model]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _lookup(
    cls: type[BaseModel], loc: tuple[str | int, ...]
) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """Follow an error location through nested models.

    Returns the model owning the last named key of ``loc`` and that key's field (None when the
    key is not a field, as for an unknown key).
    """
    owner: type[BaseModel] | None = cls
    current: type[BaseModel] | None = cls
    info: FieldInfo | None = None
    for part in loc:
        if isinstance(part, int):  # a list or tuple index: stay on the item's type
            continue
        if current is None:
            return None, None
        owner, info = current, current.model_fields.get(part)
        if info is None:
            return owner, None
        current = _model_in(info.annotation)
    return owner, info


def _nullable(info: FieldInfo | None) -> bool:
    if info is None:
        return False
    origin = typing.get_origin(info.annotation)
    return origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(info.annotation)


def _bounds(info: FieldInfo | None, ctx: dict[str, Any]) -> str:
    """The allowed range of a field as text: ``[0.0, 1.0]``, ``>= 1``, ``> 0``."""
    found: dict[str, Any] = {}
    for item in info.metadata if info is not None else ():
        for name in ("ge", "gt", "le", "lt"):
            if getattr(item, name, None) is not None:
                found[name] = getattr(item, name)
    found = found or {k: v for k, v in ctx.items() if k in ("ge", "gt", "le", "lt")}
    if "ge" in found and "le" in found:
        return f"[{found['ge']}, {found['le']}]"
    symbols = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
    return " and ".join(f"{sym} {found[name]}" for name, sym in symbols if name in found)


def _dotted(where: str, loc: tuple[str | int, ...]) -> str:
    key = where
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            key += f".{part}" if key else str(part)
    return key


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def config_error(
    exc: ValidationError, cls: type[BaseModel], file: str | Path | None, where: str = ""
) -> ConfigError:
    """Translate pydantic's first error into a :class:`ConfigError` naming the key and the file.

    Args:
        exc: the error raised by ``cls.model_validate``.
        cls: the model that was validated (to list known keys and ranges).
        file: the file the data came from.
        where: the dotted path of the validated mapping in that file (``""`` at the top level).
    """
    err = exc.errors(include_url=False)[0]
    loc = tuple(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    owner, info = _lookup(cls, loc)
    if loc and isinstance(loc[-1], int):  # an item of a list or tuple: the field's bounds do not apply
        info = None
    error = ctx.get("error")
    if isinstance(error, KeyProblem):
        return ConfigError(file, _dotted(_dotted(where, loc), tuple(error.key.split("."))), error.problem)
    key = _dotted(where, loc) or "<top>"
    if kind == "missing":
        problem = "required key is missing"
    elif kind == "extra_forbidden":
        known = sorted(owner.model_fields) if owner is not None else []
        problem = f"unknown key; known keys are {known}"
        nested = [
            name
            for name, field in (owner.model_fields.items() if owner is not None else ())
            if (sub := _model_in(field.annotation)) is not None and loc[-1] in sub.model_fields
        ]
        if nested:  # a key that lives one level down, e.g. collection.max_retries -> collection.http
            problem += f" ({loc[-1]!r} is a key of {_dotted(_dotted(where, loc[:-1]), (nested[0],))!r})"
    elif kind == "literal_error":
        problem = f"expected one of {ctx.get('expected')}, got {value!r}"
    elif kind in _BOUNDS:
        problem = f"value {value!r} is outside {_bounds(info, ctx)}"
    elif kind in _TYPE_NAMES:
        expected = _TYPE_NAMES[kind] + (" or null" if _nullable(info) else "")
        problem = f"expected {expected}, got {_describe(value)}"
    elif kind == "value_error" and error is not None:
        problem = str(error)
    else:
        problem = err["msg"]
    return ConfigError(file, key, problem)


def validate(cls: type[M], data: Any, file: str | Path | None, where: str = "") -> M:
    """``cls.model_validate(data)``, with any error raised as a :class:`ConfigError`.

    Args:
        cls: a :class:`Section` subclass.
        data: the mapping read from YAML.
        file: the file it came from, named in messages.
        where: the dotted key path of ``data`` in that file (``""`` at the top level).

    Raises:
        ConfigError: for an unknown or missing key, a wrong type, or a value out of range.
    """
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, cls, file, where) from None  # the message says it all
