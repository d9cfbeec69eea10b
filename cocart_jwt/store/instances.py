"""Model instances from stored field values: what ``Model.from_db`` makes, without its cost
where nothing can tell the difference.

``from_db`` runs ``Model.__init__``: the ``pre_init`` and ``post_init`` signals, and a
``setattr`` per field. For a class where none of that can do anything (no receiver of either
signal, no class in its MRO that redefines ``__init__``, ``__new__``, ``__setattr__`` or
``from_db``, and every field behind Django's plain descriptors), the instance is built
directly: its ``__dict__`` holds the values and ``_state`` says what ``from_db`` leaves (not
adding, read from ``db``). Any other class (a site that tracks field changes through
``post_init``, an ``ImageField``, a field with its own descriptor) goes through ``from_db``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, TypeVar

from django.db.models import Model
from django.db.models.base import ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init

ModelT = TypeVar("ModelT", bound=Model)

PLAIN_DESCRIPTORS = (DeferredAttribute, ForeignKeyDeferredAttribute)
# What Model.__init__ and from_db rely on: a class that redefines one of them may do anything.
CONSTRUCTION = ("__init__", "__new__", "__setattr__", "from_db")


def build(
    model: type[ModelT], db: str, field_names: Sequence[str], values: Sequence[Any]
) -> ModelT:
    """The instance ``model.from_db(db, field_names, values)`` would make; fields not named
    are deferred (they load when read)."""
    if not plain(model) or pre_init.has_listeners(model) or post_init.has_listeners(model):
        return model.from_db(db, field_names, values)
    instance = model.__new__(model)
    state = ModelState()
    state.adding = False
    state.db = db
    instance._state = state
    instance.__dict__.update(zip(field_names, values, strict=True))
    return instance


@cache
def plain(model: type[Model]) -> bool:
    """Whether building ``model`` needs nothing beyond ``__dict__`` and ``_state``."""
    for klass in model.__mro__:
        if klass in (Model, object):
            continue
        if any(name in vars(klass) for name in CONSTRUCTION):
            return False
    return all(
        type(_descriptor(model, field.attname)) in PLAIN_DESCRIPTORS
        for field in model._meta.concrete_fields
    )


def _descriptor(model: type[Model], name: str) -> Any:
    for klass in model.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    return None
