"""Schema and Field: what each column of a Table is. Models are built from a Schema, never a dataset name."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from recwise.errors import DataError

__all__ = ["Field", "FieldKind", "Schema"]


class FieldKind(str, Enum):  # noqa: UP042 - StrEnum would change str()/format() of the members
    SPARSE = "sparse"  # categorical id, embedded
    DENSE = "dense"  # real value, fed as is (already scaled by the loader)
    SEQUENCE = "sequence"  # padded id sequence
    LABEL = "label"  # the target
    SCENARIO = "scenario"  # the scenario (domain) index, 0..n-1
    TEXT = "text"  # free text, for LLM/text encoders


@dataclass(frozen=True)
class Field:
    """One column: ``name``, ``kind`` and, for ids, ``vocab_size`` (ids are 0..vocab_size-1)."""

    name: str
    kind: FieldKind
    vocab_size: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FieldKind(self.kind))
        if self.kind in (FieldKind.SPARSE, FieldKind.SEQUENCE, FieldKind.SCENARIO) and self.vocab_size < 1:
            raise DataError(f"field '{self.name}' of kind {self.kind.value} needs vocab_size >= 1; "
                            f"got {self.vocab_size}")


@dataclass(frozen=True)
class Schema:
    """An ordered, immutable set of fields."""

    fields: tuple[Field, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise DataError(f"duplicate field names in schema: {sorted(dup)}")

    def of(self, kind: FieldKind | str) -> tuple[Field, ...]:
        kind = FieldKind(kind)
        return tuple(f for f in self.fields if f.kind == kind)

    @property
    def sparse(self) -> tuple[Field, ...]:
        return self.of(FieldKind.SPARSE)

    @property
    def dense(self) -> tuple[Field, ...]:
        return self.of(FieldKind.DENSE)

    @property
    def label(self) -> Field:
        labels = self.of(FieldKind.LABEL)
        if len(labels) != 1:
            raise DataError(f"schema needs exactly one label field; has {len(labels)}")
        return labels[0]

    @property
    def scenario(self) -> Field | None:
        s = self.of(FieldKind.SCENARIO)
        return s[0] if s else None

    @property
    def num_scenarios(self) -> int:
        s = self.scenario
        return s.vocab_size if s is not None else 1

    def __getitem__(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(f.name == name for f in self.fields)

    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def select(self, names: list[str]) -> Schema:
        """A schema with only the named fields (plus label and scenario), in the given order."""
        keep = [self[n] for n in names]
        extra = [f for f in self.fields if f.kind in (FieldKind.LABEL, FieldKind.SCENARIO) and f.name not in names]
        return Schema(tuple(keep + extra))

    def to_dict(self) -> dict[str, Any]:
        return {
            "fields": [
                {"name": f.name, "kind": f.kind.value, "vocab_size": f.vocab_size, "description": f.description}
                for f in self.fields
            ]
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schema:
        return cls(tuple(Field(**f) for f in d["fields"]))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Schema:
        return cls.from_dict(json.loads(text))
