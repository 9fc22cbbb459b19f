"""Suricata rule subset: parsing (`parser`), header groups (`addresses`), model, options."""

from ids.engine.rules.model import Rule
from ids.engine.rules.parser import RuleSet, parse_rule, parse_rules

__all__ = ["Rule", "RuleSet", "parse_rule", "parse_rules"]
