"""`sockbox show`: a profile's rules and the filter's plan, in words."""

from __future__ import annotations

from .abi import syscall_name
from .confine import describe
from .filter import RET_ALLOW, RET_TRACE, AbiPlan
from .hints import notes
from .names import errno_name
from .profile import Profile


def render(profile: Profile, plans: list[AbiPlan]) -> str:
    lines = [f"{profile.name} ({profile.source}): {profile.description}",
             f"default {profile.default.value}, errno {errno_name(profile.errno)}, log {profile.log.value}"
             + (f", waits up to {profile.wait_for_hosts:g} s for host names to resolve"
                if profile.wait_for_hosts else ""),
             *(f"note: {note}" for note in (*profile.notes, *notes(profile, plans))),
             "", *describe(profile.filesystem, profile.process), "", "rules (first match wins):"]
    lines += [f"  {rule.label}  {rule}" for rule in profile.effective_rules]
    for abi_plan in plans:
        lines += ["", f"{abi_plan.abi.value}: where each call is decided"]
        for syscall in abi_plan.syscalls:
            # A syscall that is another road to a call, named as the kernel names it.
            own = syscall_name(abi_plan.abi, syscall.nr) or syscall.name
            name = syscall.name if own == syscall.name else f"{own} ({syscall.name})"
            for shape_plan in syscall.shapes:
                form = shape_plan.shape.call if syscall.name == "socketcall" else ""
                label = " ".join(part for part in (name, form, shape_plan.shape.text) if part)
                outcomes = "; ".join(_clause(c.action, c.reason, c.tests) for c in shape_plan.clauses)
                lines.append(f"  {label:<38} {outcomes}")
    if any(clause.action == RET_TRACE for abi_plan in plans for syscall in abi_plan.syscalls
           if syscall.name in ("connect", "sendto")
           for shape_plan in syscall.shapes for clause in shape_plan.clauses):
        lines += ["", REPEATS]
    return "\n".join(lines)


REPEATS = ("At the supervisor, a direct connect from an IP socket, or sendto naming a destination\n"
           "from an IP datagram socket, whose facts (executable, socket, address bytes) repeat an\n"
           "unrecorded decision is served in C with it (`repeats` in the --log summary).")


def _clause(action: int, reason: str, tests: tuple) -> str:
    if action == RET_TRACE:
        where = "supervisor"
    elif action == RET_ALLOW:
        where = "kernel allows"
    elif action & 0xFFFF0000 == 0x00050000:
        where = f"kernel fails {errno_name(action & 0xFFFF)}"
    else:
        where = "kernel kills"
    condition = " if " + " and ".join(t.text for t in tests if t.text) if tests else ""
    return f"{where}{condition} ({reason})"
