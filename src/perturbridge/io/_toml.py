"""One reader of TOML configuration files (build plans, generic mapping files).

:class:`TomlReader` checks parsed TOML and collects every problem instead of raising at
the first, so a user fixes a file in one round; the caller raises its own error class
with :attr:`TomlReader.problems` at the end. Every problem names the key by its dotted
path (``store.path``, ``exclude[0].reason``) and says what was expected and what was
found, in one wording for all files:

* ``store: unknown key(s) ['colour']; did you mean 'color'?; allowed: [...]``
* ``input.value_kind: required key is missing (what the values are)``
* ``time.unit_column: expected a non-empty string (the time unit column), found 5``

Tables described as data use :class:`Key` and :meth:`TomlReader.read`; code that reads
key by key uses :meth:`TomlReader.get`, :meth:`TomlReader.strings` and
:meth:`TomlReader.table`.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

__all__ = ["INVALID", "Key", "TomlReader", "describe", "load_toml"]

#: What :meth:`TomlReader.value` returns for a value it refused (the problem is recorded).
INVALID: Final = object()

Kind = Literal[
    "str", "bool", "int", "number", "scalar", "list[str]", "list[scalar]", "map[str]", "raw"
]
_WHAT: dict[str, str] = {
    "str": "a non-empty string",
    "bool": "true or false",
    "int": "an integer",
    "number": "a number",
    "scalar": "a string, number or boolean",
    "list[str]": "an array of strings",
    "list[scalar]": "an array of strings, numbers or booleans",
    "map[str]": "a table of strings",
}


@dataclass(frozen=True)
class Key:
    """A key of a TOML table: its kind, whether it is required, what it means and (for
    strings) the values it may take. Kind ``raw`` passes any value on unchecked."""

    kind: Kind
    required: bool = False
    doc: str = ""
    choices: tuple[str, ...] = ()


def describe(value: Any) -> str:
    """A value as a problem quotes it: its ``repr``, cut at 60 characters."""
    text = repr(tuple(value) if isinstance(value, list) and len(value) > 10 else value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; ``ValueError`` saying why it is not valid TOML or not UTF-8."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"not valid TOML: {err}") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"not a UTF-8 text file: {err}") from err


def _qualified(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


class TomlReader:
    """Reads typed values from parsed TOML, collecting problems instead of raising.

    ``base_dir`` resolves relative paths (:meth:`path`): the folder of the file read.
    """

    def __init__(self, base_dir: Path | None = None) -> None:
        self.base_dir = base_dir if base_dir is not None else Path.cwd()
        self.problems: list[str] = []

    def problem(self, msg: str) -> None:
        """Record one problem (``"<dotted key>: <what is wrong>"``)."""
        self.problems.append(msg)

    def known(self, data: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
        """Record the keys of ``data`` that are not ``allowed``, with the closest known key."""
        unknown = sorted(str(k) for k in data if k not in allowed)
        if not unknown:
            return
        close = {k: difflib.get_close_matches(k, list(allowed), n=1) for k in unknown}
        hints = [(k, c[0]) for k, c in close.items() if c]
        hint = ""
        if len(unknown) == 1 and hints:
            hint = f"; did you mean {hints[0][1]!r}?"
        elif hints:
            hint = "; did you mean " + ", ".join(f"{c!r} for {k!r}" for k, c in hints) + "?"
        self.problem(
            f"{where or 'top level'}: unknown key(s) {unknown}{hint}; allowed: "
            f"{sorted(allowed)} (a typo, or a key in the wrong table?)"
        )

    def table(self, data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
        """The table ``data[key]`` (empty when absent or not a table)."""
        value = data.get(key, {})
        if not isinstance(value, Mapping):
            self.problem(
                f"{_qualified(where, key)}: expected a table, found {type(value).__name__}"
            )
            return {}
        return value

    def get(
        self,
        data: Mapping[str, Any],
        key: str,
        kind: type | tuple[type, ...],
        default: Any,
        where: str,
        *,
        required: bool = False,
    ) -> Any:
        """``data[key]`` if it is of a type in ``kind``, else ``default`` (and a problem
        when it is present or ``required``). A TOML boolean is no number."""
        if key not in data:
            if required:
                self.problem(f"{_qualified(where, key)}: required key is missing")
            return default
        value = data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # TOML booleans are ints in Python: reject them where a number is expected
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok:
            names = " or ".join(k.__name__ for k in kinds)
            self.problem(f"{_qualified(where, key)}: expected {names}, found {describe(value)}")
            return default
        return value

    def strings(self, data: Mapping[str, Any], key: str, default: Any, where: str) -> Any:
        """``data[key]`` as a tuple of strings (one string is a tuple of one), or ``default``."""
        value = data.get(key, default)
        if value is default:
            return default
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(
                f"{_qualified(where, key)}: expected a list of strings, found {describe(value)}"
            )
            return default
        return tuple(value)

    def path(self, value: str) -> Path:
        """``value`` as an absolute path, relative ones relative to :attr:`base_dir`."""
        p = Path(os.path.expanduser(value))
        return (p if p.is_absolute() else self.base_dir / p).absolute()

    def read(self, data: Any, schema: Mapping[str, Key], where: str) -> dict[str, Any]:
        """The keys of the table ``data`` that ``schema`` describes, checked; keys that
        are absent or refused are left out (refused and missing required ones are
        problems, as are keys the schema does not know)."""
        if not isinstance(data, Mapping):
            self.problem(f"{where}: expected a table ([{where}]), found {describe(data)}")
            return {}
        self.known(data, list(schema), where)
        out: dict[str, Any] = {}
        for key, spec in schema.items():
            q = _qualified(where, key)
            if key not in data:
                if spec.required:
                    doc = f" ({spec.doc})" if spec.doc else ""
                    self.problem(f"{q}: required key is missing{doc}")
                continue
            value = self.value(q, spec, data[key])
            if value is not INVALID:
                out[key] = value
        return out

    def value(self, q: str, spec: Key, v: Any) -> Any:
        """``v`` checked against ``spec`` (strings stripped, arrays as tuples), or
        :data:`INVALID` with a problem naming the key ``q``."""
        kind = spec.kind
        if kind == "raw":
            return v
        ok = {
            "str": isinstance(v, str) and bool(v.strip()),
            "bool": isinstance(v, bool),
            "int": isinstance(v, int) and not isinstance(v, bool),
            "number": isinstance(v, (int, float)) and not isinstance(v, bool),
            "scalar": isinstance(v, (str, int, float, bool)),
            "list[str]": isinstance(v, list),
            "list[scalar]": isinstance(v, list),
            "map[str]": isinstance(v, dict),
        }[kind]
        if not ok:
            doc = f" ({spec.doc})" if spec.doc else ""
            self.problem(f"{q}: expected {_WHAT[kind]}{doc}, found {describe(v)}")
            return INVALID
        if kind == "str":
            if spec.choices and v not in spec.choices:
                self.problem(f"{q}: expected one of {list(spec.choices)}, found {v!r}")
                return INVALID
            return v.strip()
        if kind == "number":
            return float(v)
        if kind in ("list[str]", "list[scalar]"):
            inner = Key("str" if kind == "list[str]" else "scalar", doc=spec.doc)
            items = [self.value(f"{q}[{i}]", inner, x) for i, x in enumerate(v)]
            return INVALID if INVALID in items else tuple(items)
        if kind == "map[str]":
            bad = {str(k): x for k, x in v.items() if not isinstance(x, str)}
            for k, x in bad.items():
                self.problem(f"{q}.{k}: expected a string, found {describe(x)}")
            return INVALID if bad else {str(k): x for k, x in v.items()}
        return v
