"""Compile the policies that apply to one action into Python functions (for placement).

Derived from the loaded policy set's typed AST (``cedarpy.pst``), never hand-written: each
policy becomes ``f(P, PA, R, RA, C, E, H) -> bool`` where ``P``/``R`` are the principal and
resource uids, ``PA``/``RA`` their attributes, ``C`` the context, ``E`` every entity's
attributes by uid and ``H`` every entity's ancestors. Cedar semantics kept:

- ``&&``/``||`` short-circuit and need Booleans; comparisons and arithmetic need Longs and
  overflow is an error; ``==`` across types is false; reading a missing attribute, or an
  attribute of an entity not supplied, is an error; ``has`` on such an entity is false.
- Any error raises out of the function; the caller treats a policy that errors as a
  deny of the whole request (the engine's fail-closed rule), never as "not applicable".
- Constructs not modelled here (extension functions, tags, templates) raise
  ``UnsupportedPolicyError`` at compile time; the caller then uses Cedar itself.

Equivalence with Cedar is checked by a property test against full Cedar decisions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cedarpy import pst

from policies._model import LONG_MAX, LONG_MIN, EntityUid
from policies._policy_set import PolicyInfo, PolicySet

PolicyFn = Callable[..., bool]


class UnsupportedPolicyError(Exception):
    """A policy uses a construct the compiler does not model."""


class CedarEvalError(Exception):
    """Evaluation error with Cedar's meaning (type error, overflow, missing entity)."""


@dataclass(frozen=True)
class CompiledPolicy:
    info: PolicyInfo
    forbid: bool
    fn: PolicyFn
    principal_type: str | None
    """The type the principal scope requires (``is T``), None if any; used for pruning."""
    resource_type: str | None


def compile_action(policy_set: PolicySet, action: str) -> tuple[CompiledPolicy, ...]:
    """Compile every policy whose action scope covers ``action``.

    Raises UnsupportedPolicyError if one of them uses an unmodelled construct.
    """
    ancestors = policy_set.action_ancestors(action) | {action}
    compiled: list[CompiledPolicy] = []
    for index, info in enumerate(policy_set.policies):
        template = policy_set.pst.static_policies[f"policy{index}"]
        if not _action_matches(template.action, ancestors):
            continue
        gen = _Gen(policy_set.namespace, action, ancestors)
        body = gen.policy_body(template)
        compiled.append(
            CompiledPolicy(
                info,
                template.effect == "forbid",
                gen.build(body),
                _scope_type(template.principal),
                _scope_type(template.resource),
            )
        )
    return tuple(compiled)


def _scope_type(scope: Any) -> str | None:
    if isinstance(scope, pst.ScopeIs | pst.ScopeIsIn):
        return str(scope.entity_type)
    return None


def _action_matches(scope: Any, ancestors: set[str] | frozenset[str]) -> bool:
    if isinstance(scope, pst.ScopeAny):
        return True
    if isinstance(scope, pst.ActionEq):
        return scope.entity.id in ancestors
    if isinstance(scope, pst.ActionIn):
        return any(e.id in ancestors for e in scope.entities)
    raise UnsupportedPolicyError(f"action scope {type(scope).__name__}")


_COMPARE = {"less": "<", "less_eq": "<=", "greater": ">", "greater_eq": ">="}
_ARITH = {"add": "_add", "sub": "_sub", "mul": "_mul"}
_SETOPS = {
    "contains": "_contains",
    "contains_all": "_contains_all",
    "contains_any": "_contains_any",
}
_LITERALS = (pst.StringLit, pst.LongLit, pst.BoolLit, pst.EntityLit)


class _Gen:
    """Generates Python source for one policy; constants travel as default arguments."""

    def __init__(self, namespace: str, action: str, groups: frozenset[str]) -> None:
        self.namespace = namespace
        self.consts: list[Any] = []
        self.action = EntityUid(f"{namespace}::Action", action)
        self.action_groups = frozenset(
            EntityUid(f"{namespace}::Action", a) for a in groups | {action}
        )

    def const(self, value: Any) -> str:
        self.consts.append(value)
        return f"_k{len(self.consts) - 1}"

    def uid(self, u: pst.EntityUid) -> EntityUid:
        return EntityUid(str(u.type), u.id)

    def policy_body(self, t: pst.Template) -> str:
        parts = [self.scope(t.principal, "P"), self.scope(t.resource, "R")]
        for clause in t.clauses:
            code = f"_b({self.expr(clause.expr)})"
            parts.append(code if isinstance(clause, pst.When) else f"(not {code})")
        return " and ".join(f"({p})" for p in parts if p != "True") or "True"

    def scope(self, s: Any, var: str) -> str:
        if isinstance(s, pst.ScopeAny):
            return "True"
        if isinstance(s, pst.ScopeIs):
            return f"{var}.type == {self.const(str(s.entity_type))}"
        if isinstance(s, pst.ScopeEq) and isinstance(s.entity, pst.EntityUid):
            return f"{var} == {self.const(self.uid(s.entity))}"
        if isinstance(s, pst.ScopeIn) and isinstance(s.entity, pst.EntityUid):
            return f"_in(E, H, {var}, {self.const(self.uid(s.entity))})"
        if isinstance(s, pst.ScopeIsIn) and isinstance(s.entity, pst.EntityUid):
            kt = self.const(str(s.entity_type))
            return f"{var}.type == {kt} and _in(E, H, {var}, {self.const(self.uid(s.entity))})"
        raise UnsupportedPolicyError(f"scope {type(s).__name__}")

    def expr(self, e: Any) -> str:
        """Python source for Cedar expression ``e`` (one branch per node type)."""
        if isinstance(e, pst.Var):
            if e.name == "action":
                return self.const(self.action)
            return {"principal": "P", "resource": "R", "context": "C"}[e.name]
        if isinstance(e, pst.BoolLit):
            return "True" if e.value else "False"
        if isinstance(e, pst.LongLit):
            return self.const(int(e.value))
        if isinstance(e, pst.StringLit):
            return self.const(e.value)
        if isinstance(e, pst.EntityLit):
            return self.const(self.uid(e.value))
        if isinstance(e, pst.UnaryOp):
            arg = self.expr(e.arg)
            if e.op == "not":
                return f"(not _b({arg}))"
            if e.op == "neg":
                return f"_sub(0, {arg})"
            if e.op == "is_empty":
                return f"(len(_set({arg})) == 0)"
            raise UnsupportedPolicyError(f"operator {e.op}")
        if isinstance(e, pst.BinaryOp):
            return self.binary(e)
        if isinstance(e, pst.GetAttr):
            key = self.const(e.attr)
            if isinstance(e.base, pst.Var) and e.base.name in ("principal", "resource"):
                return f"{'PA' if e.base.name == 'principal' else 'RA'}[{key}]"
            return f"_getattr(E, {self.expr(e.base)}, {key})"
        if isinstance(e, pst.HasAttr):
            if (
                isinstance(e.base, pst.Var)
                and e.base.name in ("principal", "resource")
                and len(e.attrs) == 1
            ):
                attrs = "PA" if e.base.name == "principal" else "RA"
                return f"({self.const(e.attrs[0])} in {attrs})"
            return f"_has(E, {self.expr(e.base)}, {self.const(tuple(e.attrs))})"
        if isinstance(e, pst.Like):
            pattern = "".join(
                ".*" if isinstance(p, pst.Wildcard) else re.escape(p.value) for p in e.pattern
            )
            regex = re.compile(pattern, re.DOTALL)
            return f"_like({self.expr(e.base)}, {self.const(regex)})"
        if isinstance(e, pst.Is):
            base = self.expr(e.base)
            check = f"_is({base}, {self.const(str(e.entity_type))})"
            if e.in_expr is None:
                return f"({check})"
            return f"({check} and _in(E, H, {base}, {self.expr(e.in_expr)}))"
        if isinstance(e, pst.IfThenElse):
            cond, then, other = self.expr(e.cond), self.expr(e.then_expr), self.expr(e.else_expr)
            return f"({then} if _b({cond}) else {other})"
        if isinstance(e, pst.Set):
            if all(isinstance(x, _LITERALS) for x in e.elements):
                return self.const(_mkset(tuple(_literal(x) for x in e.elements)))
            return f"_mkset(({''.join(self.expr(x) + ', ' for x in e.elements)}))"
        if isinstance(e, pst.Record):
            items = ", ".join(f"{self.const(k)}: {self.expr(v)}" for k, v in e.fields.items())
            return f"{{{items}}}"
        raise UnsupportedPolicyError(f"expression {type(e).__name__}")

    def binary(self, e: pst.BinaryOp) -> str:
        left, right = self.expr(e.left), self.expr(e.right)
        if e.op == "and":
            return f"(_b({left}) and _b({right}))"
        if e.op == "or":
            return f"(_b({left}) or _b({right}))"
        if e.op in ("eq", "not_eq"):
            fast = isinstance(e.left, pst.StringLit) or isinstance(e.right, pst.StringLit)
            if fast:  # a str equals only a str: Python's == already has Cedar's meaning
                return f"({left} {'==' if e.op == 'eq' else '!='} {right})"
            return f"{'' if e.op == 'eq' else 'not '}_eq({left}, {right})"
        if e.op in _COMPARE:
            return f"(_long({left}) {_COMPARE[e.op]} _long({right}))"
        if e.op in _ARITH:
            return f"{_ARITH[e.op]}({left}, {right})"
        if e.op in _SETOPS:
            return f"{_SETOPS[e.op]}({left}, {right})"
        if e.op == "in":
            if isinstance(e.left, pst.Var) and e.left.name == "action":
                # the action's groups come from the schema, not from the request's entities
                return f"_action_in({right}, {self.const(self.action_groups)})"
            return f"_in(E, H, {left}, {right})"
        raise UnsupportedPolicyError(f"operator {e.op}")

    def build(self, body: str) -> PolicyFn:
        params = "".join(f", _k{i}=_K[{i}]" for i in range(len(self.consts)))
        source = f"def _policy(P, PA, R, RA, C, E, H{params}):\n    return {body}\n"
        namespace: dict[str, Any] = dict(_RUNTIME)
        namespace["_K"] = tuple(self.consts)
        # The source holds only names built here; every value travels as a constant.
        exec(compile(source, "<cedar-policy>", "exec"), namespace)  # noqa: S102
        fn: PolicyFn = namespace["_policy"]
        return fn


def _literal(x: Any) -> Any:
    if isinstance(x, pst.EntityLit):
        return EntityUid(str(x.value.type), x.value.id)
    return x.value


# -- runtime helpers with Cedar's semantics -----------------------------------------------


def _b(v: Any) -> bool:
    if v is True or v is False:
        return v
    raise CedarEvalError(f"expected a Boolean, got {type(v).__name__}")


def _long(v: Any) -> int:
    if type(v) is int:
        return v
    raise CedarEvalError(f"expected a Long, got {type(v).__name__}")


def _checked(v: int) -> int:
    if LONG_MIN <= v <= LONG_MAX:
        return v
    raise CedarEvalError("integer overflow")


def _add(a: Any, b: Any) -> int:
    return _checked(_long(a) + _long(b))


def _sub(a: Any, b: Any) -> int:
    return _checked(_long(a) - _long(b))


def _mul(a: Any, b: Any) -> int:
    return _checked(_long(a) * _long(b))


_SET_TYPES = (frozenset, set, tuple, list)


def _mkset(items: tuple[Any, ...]) -> frozenset[Any] | tuple[Any, ...]:
    try:
        return frozenset(items)
    except TypeError:
        return items


def _set(v: Any) -> Any:
    if isinstance(v, _SET_TYPES):
        return v
    raise CedarEvalError(f"expected a Set, got {type(v).__name__}")


def _eq(a: Any, b: Any) -> bool:
    if type(a) is type(b) and not isinstance(a, _SET_TYPES):
        return bool(a == b)
    if isinstance(a, _SET_TYPES) and isinstance(b, _SET_TYPES):
        return all(_contains(b, x) for x in a) and all(_contains(a, x) for x in b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_eq(a[k], b[k]) for k in a)
    return False


def _contains(s: Any, x: Any) -> bool:
    if type(s) is frozenset and type(x) is str:
        return x in s
    return any(_eq(item, x) for item in _set(s))


def _contains_all(a: Any, b: Any) -> bool:
    if type(a) is frozenset and type(b) is frozenset and all(type(x) is str for x in b):
        return b <= a
    _set(a)
    return all(_contains(a, x) for x in _set(b))


def _contains_any(a: Any, b: Any) -> bool:
    _set(a)
    return any(_contains(a, x) for x in _set(b))


def _entity(v: Any) -> EntityUid:
    if isinstance(v, EntityUid):
        return v
    raise CedarEvalError(f"expected an entity, got {type(v).__name__}")


def _in(E: Mapping[EntityUid, Any], H: Mapping[EntityUid, Any], a: Any, b: Any) -> bool:
    left = _entity(a)
    targets = [_entity(x) for x in b] if isinstance(b, _SET_TYPES) else [_entity(b)]
    ancestors = H.get(left, ())
    return any(t == left or t in ancestors for t in targets)


def _action_in(b: Any, groups: frozenset[EntityUid]) -> bool:
    targets = [_entity(x) for x in b] if isinstance(b, _SET_TYPES) else [_entity(b)]
    return any(t in groups for t in targets)


def _getattr(E: Mapping[EntityUid, Any], base: Any, attr: str) -> Any:
    if isinstance(base, EntityUid):
        attrs = E.get(base)
        if attrs is None:
            raise CedarEvalError(f"entity {base} does not exist")
        return attrs[attr]
    if isinstance(base, Mapping):
        return base[attr]
    raise CedarEvalError(f"attribute access on {type(base).__name__}")


def _has(E: Mapping[EntityUid, Any], base: Any, attrs: tuple[str, ...]) -> bool:
    current = base
    for attr in attrs:
        if isinstance(current, EntityUid):
            record = E.get(current)
            if record is None:
                return False
        elif isinstance(current, Mapping):
            record = current
        else:
            raise CedarEvalError(f"`has` on {type(current).__name__}")
        if attr not in record:
            return False
        current = record[attr]
    return True


def _like(v: Any, regex: re.Pattern[str]) -> bool:
    if type(v) is not str:
        raise CedarEvalError(f"`like` on {type(v).__name__}")
    return regex.fullmatch(v) is not None


def _is(v: Any, entity_type: str) -> bool:
    return _entity(v).type == entity_type


_RUNTIME: dict[str, Any] = {
    "__builtins__": {"len": len},
    "_b": _b,
    "_long": _long,
    "_add": _add,
    "_sub": _sub,
    "_mul": _mul,
    "_mkset": _mkset,
    "_set": _set,
    "_eq": _eq,
    "_contains": _contains,
    "_contains_all": _contains_all,
    "_contains_any": _contains_any,
    "_in": _in,
    "_action_in": _action_in,
    "_getattr": _getattr,
    "_has": _has,
    "_like": _like,
    "_is": _is,
}
