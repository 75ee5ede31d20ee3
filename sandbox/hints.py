"""Rules that make a frequent call stop at the supervisor, and what would not.

A program sends, receives and sets socket options many times per connection, so a rule
that makes one of those calls stop at the supervisor (to look up the socket's family,
to check the executable) costs on every use. `hints` finds such rules from the filter's
own plan (what `sockbox show` prints) and, for each, a change that lets the kernel
decide those calls alone: another rule moved before it, calls taken out of it, or its
conditions dropped for them. A change is offered only where it provably keeps every
verdict (action, errno, whether audited: `changes`), and only when the changed
profile's plan lets the kernel decide more; where none does, the note says the cost
alone. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any
from collections.abc import Iterable, Iterator, Sequence

from .abi import Abi
from .filter import RET_TRACE, AbiPlan, ShapePlan, plan
from .names import SUBCALLS
from .profile import Profile
from .rules import ADDRESS_CALLS, ADDRESS_KEYS, OPTION_CALLS, OPTION_KEYS, PLAIN_ALIAS, Action, Rule, Verdict

# The calls a program makes many times per socket: data and options.
FREQUENT_CALLS = frozenset({"send", "recv", "sendto", "recvfrom", "sendmsg", "recvmsg",
                            "sendmmsg", "recvmmsg", "setsockopt", "getsockopt"})
# Conditions that only the supervisor can test on those calls, whatever the order: the
# socket's or the process's, not the call's own registers.
LOOKUP_KEYS = ("family", "type", "protocol", "exe")

# Every (name, alias) a Call can have: the name alone, or with its plain twin.
_FORMS = frozenset({*((name, None) for name in SUBCALLS), *PLAIN_ALIAS.items()})
Form = tuple[str, str | None]

# One way of entering a frequent call, as the plan tells them apart:
# (ABI, syscall, the shape's text, the call it is).
Road = tuple[Abi, str, str, str]


@dataclass(frozen=True)
class Hint:
    """A rule that makes `calls` stop at the supervisor, and, when one keeps every
    verdict, the change (`rewritten`) that lets the kernel decide them."""

    rule: Rule
    calls: tuple[str, ...]
    every_use: bool  # False: the kernel settles some uses by level and option
    change: str | None = None
    rewritten: Profile | None = None
    still: tuple[str, ...] = ()  # calls the rule makes stop that the change leaves stopping

    def __str__(self) -> str:
        calls = _listed(self.calls)
        them = "it" if len(self.calls) == 1 else "them"
        stops = (f"makes every {calls} stop at the supervisor" if self.every_use else
                 f"makes {calls} stop at the supervisor unless level and option settle {them}")
        keys = _supervisor_keys(self.rule)
        why = f"to test its {_listed(keys)} condition{'s' if len(keys) > 1 else ''}"
        if self.change is None:
            return (f"{self.rule.label} {stops} ({why}); no other order or condition with the "
                    f"same verdicts lets the kernel decide {them}")
        still = (f"; {_listed(self.still)} would still stop (no change with the same verdicts "
                 "avoids that)" if self.still else "")
        return (f"{self.rule.label} {stops} ({why}); {self.change} lets the kernel decide {them}, "
                f"with the same verdict for every call{still}")


def notes(profile: Profile, plans: list[AbiPlan] | None = None) -> list[str]:
    """The hints as `sockbox check` and `show` print them, one line each."""
    return [str(hint) for hint in hints(profile, plans)]


def hints(profile: Profile, plans: list[AbiPlan] | None = None) -> list[Hint]:
    """For each rule that makes a frequent call stop at the supervisor on its account,
    the best change that keeps every verdict, or the cost alone. `plans`: the profile's
    plan, if already made."""
    base = _roads(plan(profile) if plans is None else plans)
    found = []
    for index, rule in enumerate(profile.rules):
        # What this rule holds up: what would go to the kernel without its frequent
        # calls, or without the conditions the supervisor tests on them.
        held = _freed(profile, index, base, _supervisor_keys(rule)) if rule.calls & FREQUENT_CALLS else None
        if not held:
            continue
        best: tuple[frozenset[Road], str, Profile] | None = None
        for change, rewritten in changes(profile, index):
            gained = held & _gained(base, _roads(plan(rewritten)))
            if gained and (best is None or len(gained) > len(best[0])):
                best = (gained, change, rewritten)
        # What its lookups of the socket or process cost, whatever the verdicts.
        caused = _freed(profile, index, base, [key for key in LOOKUP_KEYS if key in rule.keys()])
        if best is not None:
            gained, change, rewritten = best
            still = tuple(call for call in _calls(caused - gained) if call not in _calls(gained))
            found.append(Hint(rule, _calls(gained), _every_use(base, gained), change, rewritten, still))
        elif caused:
            found.append(Hint(rule, _calls(caused), _every_use(base, caused)))
    return found


# ---------------------------------------------------------------------------------------
# The plan: which frequent roads stop


def _roads(plans: Iterable[AbiPlan]) -> dict[Road, ShapePlan]:
    """The plan's shape for each road of a frequent call."""
    return {(abi_plan.abi, syscall.name, shape_plan.shape.text, _call_of(shape_plan)): shape_plan
            for abi_plan in plans for syscall in abi_plan.syscalls for shape_plan in syscall.shapes
            if _call_of(shape_plan) in FREQUENT_CALLS}


def _call_of(shape_plan: ShapePlan) -> str:
    """The call a shape is, as a profile names it: sendto without a destination is a send."""
    shape = shape_plan.shape
    plain = PLAIN_ALIAS.get(shape.call)
    return plain if shape.call in ("sendto", "recvfrom") and plain in shape.names else shape.call


def _stops(shape_plan: ShapePlan) -> bool:
    """Whether a call that no register test of its shape catches stops at the supervisor."""
    return next((clause.action == RET_TRACE for clause in shape_plan.clauses if not clause.tests), False)


def _every_use(base: dict[Road, ShapePlan], roads: Iterable[Road]) -> bool:
    """Whether every clause up to the shape's fall-through stops, on all these roads."""
    def always(shape_plan: ShapePlan) -> bool:
        for clause in shape_plan.clauses:
            if clause.action != RET_TRACE:
                return False
            if not clause.tests:
                return True
        return True
    return all(always(base[road]) for road in roads)


def _gained(before: dict[Road, ShapePlan], after: dict[Road, ShapePlan]) -> frozenset[Road]:
    """The roads that stop before and not after (a road the filter handed over whole, to
    fit the kernel's limit, is not there after)."""
    return frozenset(road for road, shape_plan in before.items()
                     if _stops(shape_plan) and road in after and not _stops(after[road]))


def _calls(roads: Iterable[Road]) -> tuple[str, ...]:
    """The calls of these roads, each qualified by the only ABI or road it stops on."""
    roads = list(roads)
    named = []
    for call in (c for c in SUBCALLS if any(road[3] == c for road in roads)):
        on = {(abi, syscall) for abi, syscall, _, c in roads if c == call}
        if any(abi is Abi.X86_64 for abi, _ in on):
            named.append(call)
        elif any(syscall != "socketcall" for _, syscall in on):
            named.append(f"{call} (i386)")
        else:
            named.append(f"{call} (i386 socketcall)")
    return tuple(named)


def _freed(profile: Profile, index: int, base: dict[Road, ShapePlan], keys: Sequence[str]) -> frozenset[Road]:
    """The roads the kernel would decide if this rule left out its frequent calls, or
    tested none of `keys` on them (whatever that did to the verdicts)."""
    if not keys:
        return frozenset()
    rule = profile.rules[index]
    frequent = rule.calls & FREQUENT_CALLS
    without = _narrowed(rule, frequent)
    freed: frozenset[Road] = frozenset()
    for replacement in ((without,), (_loosened(rule, frequent, keys), without)):
        freed |= _gained(base, _roads(plan(_replaced(profile, index, replacement))))
    return freed


# ---------------------------------------------------------------------------------------
# Changes that keep every verdict


def changes(profile: Profile, index: int) -> Iterator[tuple[str, Profile]]:
    """The changes around rule `index` that keep every verdict, in the order preferred
    on a tie: calls taken out of it, another rule moved before it, its conditions
    dropped for its frequent calls. Each as words and as the changed profile."""
    rules, rule = profile.rules, profile.rules[index]
    frequent = sorted(rule.calls & FREQUENT_CALLS, key=SUBCALLS.index)
    choices = list(dict.fromkeys((tuple(frequent), *((call,) for call in frequent)))) if frequent else []
    outcome = _outcome(profile, rule)
    for calls in choices:
        rest = _narrowed(rule, frozenset(calls))
        if rest is None or _valid(rest):
            lost = _forms(rule.calls) - (_forms(rest.calls) if rest else frozenset())
            if _decided_alike(profile, rules[index + 1:], lost, outcome):
                change = "removing it" if rest is None else f"taking {_listed(calls)} out of its calls"
                yield change, _replaced(profile, index, (rest,))
    for later in range(index + 1, len(rules)):
        if rules[later].calls & FREQUENT_CALLS and _moved_alike(profile, index, later):
            moved = (*rules[:index], rules[later], *rules[index:later], *rules[later + 1:])
            yield f"moving {rules[later].label} before it", dataclasses.replace(profile, rules=moved)
    for calls in choices if rule.keys() else ():
        rest = _narrowed(rule, frozenset(calls))
        if (rest is None or _valid(rest)) and _decided_alike(
                profile, rules[index + 1:], _forms(frozenset(calls)), outcome):
            bare = _loosened(rule, frozenset(calls), rule.keys())
            conditions = f"its {_listed(rule.keys())} condition{'s' if len(rule.keys()) > 1 else ''}"
            change = (f"dropping {conditions}" if rest is None else
                      f"giving {_listed(calls)} a rule of {'its' if len(calls) == 1 else 'their'} own "
                      f"before it, without {conditions},")
            yield change, _replaced(profile, index, (bare, rest))


def _moved_alike(profile: Profile, index: int, later: int) -> bool:
    """Whether trying rule `later` just before rule `index` keeps every verdict: each rule
    it jumps over either never holds with it for one call, or decides as it does."""
    moved = profile.rules[later]
    return all(_never_both(rule, moved) or _outcome(profile, rule) == _outcome(profile, moved)
               for rule in profile.rules[index:later])


def _decided_alike(profile: Profile, rules: Sequence[Rule], forms: frozenset[Form],
                   outcome: tuple) -> bool:
    """Whether `rules`, then the default, decide every call of these forms (whatever its
    facts) with `outcome`."""
    left = set(forms)
    for rule in rules:
        common = left & _forms(rule.calls)
        if not common:
            continue
        if _outcome(profile, rule) != outcome:
            return False
        if not rule.keys():
            left -= common
            if not left:
                return True
    # A call with an address may be judged as more than one (an IPv6 spelling of an IPv4
    # address), and a verdict naming a rule wins a tie with the default's: a call moved
    # from a rule to the default could then take another of its verdicts.
    if any(name in ADDRESS_CALLS and alias is None for name, alias in left):
        return False
    return _outcome(profile, None) == outcome


def _outcome(profile: Profile, rule: Rule | None) -> tuple:
    """What a call decided by `rule` (None: the default) gets: action, errno, audited."""
    verdict = profile.default_verdict if rule is None else Verdict(
        rule.action, profile.errno if rule.errno is None else rule.errno, rule)
    return (verdict.action, verdict.errno if verdict.action is Action.DENY else None,
            profile.audits(verdict))


def _never_both(one: Rule, other: Rule) -> bool:
    """Whether no call can meet both rules: no call name in common, or disjoint values
    for a key both test."""
    if not _forms(one.calls) & _forms(other.calls):
        return True
    return any(mine is not None and theirs is not None and not mine & theirs
               for mine, theirs in ((one.family, other.family), (one.type, other.type),
                                    (one.level, other.level)))


def _forms(calls: frozenset[str]) -> frozenset[Form]:
    """The (name, alias) forms a rule naming `calls` applies to."""
    return frozenset(form for form in _FORMS if form[0] in calls or form[1] in calls)


def _narrowed(rule: Rule, calls: frozenset[str]) -> Rule | None:
    """The rule without `calls` (None: nothing left)."""
    rest = rule.calls - calls
    return dataclasses.replace(rule, calls=rest) if rest else None


def _loosened(rule: Rule, calls: frozenset[str], keys: Iterable[str]) -> Rule:
    """The rule for `calls` alone, without the conditions `keys`."""
    cleared: dict[str, Any] = dict.fromkeys(keys)
    return dataclasses.replace(rule, calls=calls, **cleared)


def _valid(rule: Rule) -> bool:
    """Whether a rule's conditions can still apply to its calls, as the loader demands."""
    keys = rule.keys()
    return ((not any(key in ADDRESS_KEYS for key in keys) or bool(rule.calls & ADDRESS_CALLS))
            and (not any(key in OPTION_KEYS for key in keys) or bool(rule.calls & OPTION_CALLS)))


def _replaced(profile: Profile, index: int, rules: Iterable[Rule | None]) -> Profile:
    kept = [rule for rule in rules if rule is not None]
    return dataclasses.replace(profile, rules=(*profile.rules[:index], *kept, *profile.rules[index + 1:]))


def _supervisor_keys(rule: Rule) -> tuple[str, ...]:
    """The rule's conditions that the supervisor tests on a frequent call (level and
    option are registers, but for socketcall's, which sockbox's own rules stop anyway)."""
    return tuple(key for key in rule.keys() if key not in OPTION_KEYS)


def _listed(words: Sequence[str]) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
