"""The C core of unbox's walk (csrc/unboxwalk.c, _runtime.WalkCore) against
the Python methods it replaced (kept here, on a subclass of the walk): the
same uops out of every pass for many functions; each method on states made
for it; errors, not crashes, for a state that is not what the walk makes;
no leaks, and cycles through the walk collected."""

import gc
import itertools
import sys
import weakref

import pytest
from memory import growth_per_batch

from cpjit import _runtime, pipeline, unbox
from cpjit.ir import ExitStep, Obj, UOp

sys.path.insert(0, __file__.rsplit("/tests/", 1)[0] + "/benchmarks")
import compile_time  # noqa: E402  (the benchmark kernels: real loops over ints and floats)

_new = tuple.__new__


def _with_exit_steps(uop, steps):
    return UOp(uop.name, uop.oparg, uop.operand0, uop.operand1, uop.offset, uop.exit_to,
               uop.jump_to, uop.comment, uop.exit_after, steps, uop.exit_after_steps)


class PythonWalk(unbox._Walk):
    """The walk with its C methods as the Python ones they replaced."""

    def walk(self, start: int) -> int:
        """Uop by uop from `start` until nothing is unboxed after one; returns
        the index where it stopped."""
        uops, handlers = self.trace.uops, unbox._HANDLERS
        islice = itertools.islice
        for index, uop, state, region in zip(itertools.count(start), islice(uops, start, None),
                                             islice(self.states, start, None),
                                             islice(self.region_at, start, None)):
            if not self.raw and index > start and self.stack.count(None) == len(self.stack):
                return index
            self.current = uop
            if uop.name == unbox.LABEL:
                self.label(uop, region)
                continue
            if region is None and self.raw:
                self.leave_region()
            if state is None:
                self.keep(uop)
                continue
            if len(state.stack) != len(self.stack):
                self.stack = [None] * len(state.stack)  # after a terminator: a fresh path
            handler = handlers.get(uop.name)
            if handler is None:
                self.generic(uop)
                continue
            try:
                if not handler(self, uop, index):
                    self.generic(uop)
            except unbox._Skip:
                self.generic(uop)
        return len(uops)

    def emit(self, name: str, oparg: int = 0, operand0=0, operand1=0, *,
             jump_to: int = -1) -> UOp:
        at = self.current
        uop = UOp(name, oparg, operand0, operand1, at.offset, at.exit_to, jump_to, "",
                  at.exit_after, self.exit_steps() if name in self.deopts else ())
        self.out.append(uop)
        return uop

    def keep(self, uop: UOp) -> UOp:
        """Emit an original uop (a copy, if its exits need steps)."""
        if uop.name in self.deopts and (self.raw or self.stack.count(None) != len(self.stack)):
            uop = _with_exit_steps(uop, self.exit_steps())
        self.out.append(uop)
        return uop

    def has_virtual(self) -> bool:
        return self.stack.count(None) != len(self.stack)

    def exit_steps(self) -> tuple:
        """The exit steps of the abstract state where we are (see
        _exit_steps).  With nothing virtual (most often) they are the raw
        locals' sync steps.  Else most uops that can exit see the state the
        one before them saw, so the steps are remembered by the stack items
        (immutable, hashed by identity, kept alive by the key) and the raw
        locals' sync steps (interned: kept alive, so their id is theirs):
        one tuple, made once, shared."""
        stack = self.stack
        if stack.count(None) == len(stack):
            return self.sync_steps
        key = (id(self.sync_steps), *stack)
        steps = self.exit_cache.get(key)
        if steps is None:
            steps = self.exit_cache[key] = self._exit_steps()
        return steps

    def _exit_steps(self) -> tuple:
        """Uops that put the abstract state into the frame: each virtual item
        boxed into its place (deepest first), each changed raw local boxed."""
        stack = self.stack
        # Deepest first; the boxed items above an item stay above it.
        steps = [_new(ExitStep, (stack[p].exit_action, stack[p + 1:].count(None),
                                 stack[p].exit_value))
                 for p in itertools.compress(range(len(stack)), stack)]  # (the virtual ones)
        if not steps:
            return self.sync_steps
        return self.intern((*steps, *self.sync_steps))

    def intern(self, steps: tuple) -> tuple:
        """The one tuple of these exit steps in this compilation: emit finds
        exit stubs by (resume, steps), and the same object compares at once."""
        return self.interned.setdefault(steps, steps)

    def sync_locals(self, steps: tuple | None = None) -> None:
        """Box the raw locals into the frame (each if it changed), but for
        those known to be boxed already: synced since the last store into
        them, on the straight-line path here (self.clean).  (emit()'s work,
        done once for all: they see the same state, whose exit steps the
        caller may have at hand.)"""
        clean = self.clean
        syncs = [sync for sync in self.syncs if sync[1] not in clean] if clean else self.syncs
        if not syncs:
            return
        if steps is None:
            steps = self.exit_steps()
        at = self.current
        offset, exit_to, exit_after = at.offset, at.exit_to, at.exit_after
        self.out += [UOp(name, local, 0, 0, offset, exit_to, -1, "", exit_after,
                         steps if deopts else ())
                     for name, local, deopts in syncs]
        clean.update([sync[1] for sync in syncs])

    def generic(self, uop: UOp) -> None:
        """A uop on objects.  When nothing is unboxed (most code outside
        loops) it comes out as it is.  Else the virtual items it looks at are
        boxed first (all of the stack for a jump target or a uop reading below
        its inputs), the raw locals are synced before code that needs the
        frame, and its exits get the steps that box what stays unboxed."""
        stack, raw = self.stack, self.raw
        pops, pushes, deopts, exits_after, sees_whole_stack, needs_frame = \
            unbox._GENERIC[uop.name, uop.oparg]
        if not raw and stack.count(None) == len(stack):
            self.out.append(uop)  # (and nothing is unboxed after it either)
            del stack[len(stack) - pops:]
            if pushes == 1:
                stack.append(None)
            elif pushes:
                stack += [None] * pushes
            return
        if stack.count(None) != len(stack):
            self.materialize(None if sees_whole_stack else pops)
        steps = self.sync_steps if stack.count(None) == len(stack) else self.exit_steps()
        if raw and needs_frame:
            self.sync_locals(steps)
        # (without raw locals, steps are empty when nothing is virtual)
        kept = _with_exit_steps(uop, steps) if deopts and (raw or steps) else uop
        self.out.append(kept)
        del stack[len(stack) - pops:]
        if pushes == 1:
            stack.append(None)
        elif pushes:
            stack += [None] * pushes
        if exits_after and (raw or stack.count(None) != len(stack)):
            # its exit after its effect boxes what is unboxed below its outputs
            if kept is uop:
                kept = self.out[-1] = uop.replace()
            kept.exit_after_steps = self.exit_steps()


# -- the passes' output, either way --

def _sources():
    """Functions whose loops unbox ints and floats (and others that do not)."""
    for label, func in compile_time.kernel_functions():
        yield label, func

    def floats(xs, k):
        total, best = 0.0, -1.0
        for i in range(len(xs)):
            x = xs[i] * k - i
            if x > best:
                best = x
            total += x / (i + 1)
        return total, best

    def mixed(n, scale):
        acc = 0
        out = []
        for i in range(n):
            j = i * 3 % 7
            acc += j - (i >> 1)
            if acc % 5 == 0:
                out.append(acc * scale)
        return acc, out

    yield "floats", floats
    yield "mixed", mixed


def _passes(func, profile=True):
    record = pipeline.compile_code(func.__code__, func.__qualname__, keep=True,
                                   globals_=func.__globals__, profile=profile)
    return [(r.name, r.changes, [u.replace() for u in r.trace.uops] if r.trace else None)
            for r in record.reports]


@pytest.mark.parametrize("label, func", list(_sources()),
                         ids=lambda x: x if isinstance(x, str) else "")
def test_the_passes_make_the_same_uops(label, func, monkeypatch):
    with_c = _passes(func)
    monkeypatch.setattr(unbox, "_Walk", PythonWalk)
    with_python = _passes(func)
    assert with_c == with_python


def test_the_corpus_unboxes_something():
    # (So that the comparison above compares the walk at work.)
    unboxed = [label for label, func in _sources()
               if any(change.startswith("unboxed locals") for name, changes, _ in _passes(func)
                      if name == "unbox" for change in changes)]
    assert len(unboxed) >= 5, unboxed


# -- each method, on states made for it --

def _virtual_raw(slot):
    return unbox._raw_item(unbox.I64, slot)


def _virtual_local(local):
    return unbox._local_item(unbox.F64, local)


def _walk(cls, stack=(), raw=None, syncs=(), clean=(), current=None):
    """A walk with just the state the C methods read."""
    walk = cls.__new__(cls)
    walk.stack = list(stack)
    walk.raw = dict(raw or {})
    sync_steps = tuple(ExitStep("sync_i64", local) for local in (raw or {}))
    walk.interned = {(): ()}
    walk.sync_steps = walk.interned.setdefault(sync_steps, sync_steps)
    walk.syncs = tuple(syncs)
    walk.clean = set(clean)
    walk.exit_cache = {}
    walk.out = []
    at = UOp("_STORE_FAST", 1, offset=7, exit_to=6, exit_after=8)
    walk.current = current if current is not None else at
    walk.flags = unbox._uop_flags()
    walk.deopts = walk.flags.deopts
    walk.generic_info = unbox._GENERIC
    walk.uop_type = UOp
    walk.exit_step_type = ExitStep
    return walk


def _both(**state):
    return _walk(unbox._Walk, **state), _walk(PythonWalk, **state)


STACKS = [
    (),
    (None, None),
    (None, _virtual_raw(5)),
    (_virtual_local(2), None, _virtual_raw(6), None),
    (_virtual_raw(4), _virtual_raw(5)),
]
RAWS = [{}, {0: unbox.I64, 3: unbox.I64}]


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("raw", RAWS)
def test_exit_steps(stack, raw):
    c, py = _both(stack=stack, raw=raw)
    got, want = c.exit_steps(), py.exit_steps()
    assert got == want and type(got) is tuple
    assert all(type(step) is ExitStep for step in got)
    assert c.exit_steps() is got  # (remembered: the same tuple)
    assert c._exit_steps() is got or got is c.sync_steps
    assert c.has_virtual() == py.has_virtual() == any(item is not None for item in stack)
    if all(item is None for item in stack):
        assert got is c.sync_steps


def test_exit_steps_box_the_virtual_items_deepest_first():
    walk = _walk(unbox._Walk, stack=STACKS[3], raw=RAWS[1])
    assert walk.exit_steps() == (ExitStep("local", 2, 2), ExitStep("box_i64", 1, 6),
                                 ExitStep("sync_i64", 0), ExitStep("sync_i64", 3))


def test_intern_gives_the_one_tuple():
    walk = _walk(unbox._Walk)
    first = (ExitStep("sync_i64", 1),)
    assert walk.intern(first) is first
    assert walk.intern((ExitStep("sync_i64", 1),)) is first


SYNCS = ((("_SYNC_LOCAL_I64", 0, True), ("_SYNC_LOCAL_I64", 3, False)))


@pytest.mark.parametrize("clean", [(), (0,), (0, 3)])
@pytest.mark.parametrize("stack", STACKS[1:4])
@pytest.mark.parametrize("given", [False, True])
def test_sync_locals(clean, stack, given):
    c, py = _both(stack=stack, raw=RAWS[1], syncs=SYNCS, clean=clean)
    steps = (ExitStep("sync_i64", 9),) if given else None
    c.sync_locals(steps)
    py.sync_locals(steps)
    assert c.out == py.out and c.clean == py.clean
    assert len(c.out) == 2 - len(clean)


GENERIC_UOPS = [
    UOp("_BINARY_OP", 0, offset=3, exit_to=3, exit_after=5),  # pops 2, exits after, frame
    UOp("_POP_TOP", offset=4, exit_to=4, exit_after=5),
    UOp("_CHECK_EVAL_BREAKER", offset=1, exit_to=1, exit_after=2),  # side-exits
    UOp("_LOAD_GLOBAL_CACHED", oparg=0, offset=6, exit_to=6, exit_after=9),
    UOp("_COPY", 1, offset=2, exit_to=2, exit_after=3),
]


@pytest.mark.parametrize("uop", GENERIC_UOPS, ids=lambda u: u.name)
@pytest.mark.parametrize("stack", STACKS[1:])
@pytest.mark.parametrize("raw", RAWS)
def test_generic(uop, stack, raw):
    c, py = _both(stack=stack, raw=raw, syncs=SYNCS if raw else ())
    for walk in (c, py):
        walk.current = uop
        walk.generic(uop)
    assert c.out == py.out and c.stack == py.stack and c.clean == py.clean
    if not raw and all(item is None for item in stack):
        assert c.out == [uop] and c.out[0] is uop  # (as it is)


def test_generic_boxes_a_virtual_operand_first():
    uop = GENERIC_UOPS[1]  # _POP_TOP of a raw int: boxed, then popped
    walk = _walk(unbox._Walk, stack=[None, _virtual_raw(5)])
    walk.current = uop
    walk.generic(uop)
    assert [u.name for u in walk.out] == ["_BOX_INSERT_I64", "_POP_TOP"]
    assert walk.stack == [None]


@pytest.mark.parametrize("stack", STACKS[1:])
@pytest.mark.parametrize("raw", RAWS)
def test_keep_and_emit(stack, raw):
    c, py = _both(stack=stack, raw=raw)
    for walk in (c, py):
        walk.keep(GENERIC_UOPS[2])
        walk.keep(GENERIC_UOPS[1])
        walk.emit("_GUARD_TYPE", 1, Obj(int))
        walk.emit("_SET_I64", 4, 12, operand1=3)
        walk.emit("_JUMP", jump_to=17)
    assert c.out == py.out
    assert c.out[1] is GENERIC_UOPS[1]  # (no exits: itself)
    assert c.out[-1].jump_to == 17 and c.out[-1].offset == 7 and c.out[-2].operand1 == 3


# -- errors, not crashes --

@pytest.mark.parametrize("field, value, error, message", [
    ("stack", (None,), TypeError, "stack must be a list, not tuple"),
    ("raw", [], TypeError, "raw must be a dict"),
    ("sync_steps", [], TypeError, "sync_steps must be a tuple"),
    ("syncs", None, TypeError, "syncs must be a tuple"),
    ("clean", {}, TypeError, "clean must be a set"),
    ("exit_cache", [], TypeError, "exit_cache must be a dict"),
    ("interned", None, TypeError, "interned must be a dict"),
    ("out", (), TypeError, "out must be a list"),
    ("deopts", [], TypeError, "deopts must be a set or frozenset"),
    ("uop_type", "UOp", TypeError, "uop_type must be a type"),
    ("exit_step_type", tuple, None, None),
    ("exit_step_type", list, TypeError, "exit_step_type must be a tuple subclass"),
])
def test_a_state_of_the_wrong_type(field, value, error, message):
    walk = _walk(unbox._Walk, stack=[None, _virtual_raw(1)])
    setattr(walk, field, value)
    if error is None:
        assert walk.exit_steps() == (("box_i64", 0, 1),)
        return
    for call in (walk.exit_steps, walk.has_virtual, lambda: walk.generic(GENERIC_UOPS[1]),
                 lambda: walk.emit("_POP_TOP"), lambda: walk.keep(GENERIC_UOPS[1]),
                 walk.sync_locals):
        with pytest.raises(error, match=message):
            call()


def test_an_unset_state():
    walk = unbox._Walk.__new__(unbox._Walk)
    with pytest.raises(AttributeError, match="stack is not set"):
        walk.exit_steps()
    with pytest.raises(AttributeError, match="stack"):
        walk.stack


@pytest.mark.parametrize("call, error, message", [
    (lambda w: w.emit(), TypeError, "from 1 to 4 positional"),
    (lambda w: w.emit("_POP_TOP", 0, 0, 0, 0), TypeError, "from 1 to 4 positional"),
    (lambda w: w.emit("_POP_TOP", 1, oparg=2), TypeError, "multiple values for argument 'oparg'"),
    (lambda w: w.emit("_POP_TOP", slot=2), TypeError, "unexpected keyword argument 'slot'"),
    (lambda w: w.sync_locals(None, None), TypeError, "at most 1 argument"),
    (lambda w: w.generic(object()), TypeError, "object.name is not an object slot"),
    (lambda w: w.keep("_POP_TOP"), TypeError, "str.name is not an object slot"),
    (lambda w: w.generic(UOp("_NOT_A_UOP")), KeyError, "_NOT_A_UOP"),
    (lambda w: w.generic(UOp("_BINARY_OP", 0)), RuntimeError, "pops 2 items of a stack of 1"),
])
def test_bad_calls(call, error, message):
    walk = _walk(unbox._Walk, stack=[None])
    with pytest.raises(error, match=message):
        call(walk)


@pytest.mark.parametrize("info, error, message", [
    ((1, 0, False, False, False), TypeError, "must be a 6-tuple, not tuple"),
    ([1, 0, False, False, False, False], TypeError, "must be a 6-tuple, not list"),
    ((-1, 0, False, False, False, False), ValueError, "pops and pushes must be >= 0"),
    (("1", 0, False, False, False, False), TypeError, "an integer is required"),
])
def test_bad_generic_info(info, error, message):
    walk = _walk(unbox._Walk, stack=[None], raw=RAWS[1])
    walk.generic_info = {("_POP_TOP", 0): info}
    with pytest.raises(error, match=message):
        walk.generic(UOp("_POP_TOP"))


def test_a_current_that_is_not_a_uop():
    walk = _walk(unbox._Walk, stack=[None])
    walk.current = None
    with pytest.raises(TypeError, match="current must be a uop"):
        walk.emit("_POP_TOP")


def test_bad_syncs():
    walk = _walk(unbox._Walk, raw=RAWS[1], syncs=[("_SYNC_LOCAL_I64", 0)])
    walk.syncs = (("_SYNC_LOCAL_I64", 0),)
    with pytest.raises(TypeError, match=r"syncs must be a tuple of \(name, local, deopts\)"):
        walk.sync_locals()


# -- memory --

def test_no_leaks_and_collected():
    uops = GENERIC_UOPS
    item = unbox.analysis.Item()
    loop_uops = [UOp("_POP_TOP", 1), UOp("_POP_TOP", 0), UOp("_PUSH_NULL"),
                 UOp("_CHECK_EVAL_BREAKER")]
    loop_states = [unbox.analysis.State(stack, ()) for stack in ((item,), (item,), (), (item,))]

    def one_round():
        for stack in STACKS[1:]:
            walk = _walk(unbox._Walk, stack=stack, raw=RAWS[1], syncs=SYNCS)
            for uop in uops:
                walk.current = uop
                walk.generic(uop)
                walk.emit("_SET_I64", 4, 12)
                walk.keep(uop)
                walk.stack.append(_virtual_raw(3))
                walk.exit_steps()
                walk.sync_locals()
                walk.clean.clear()
            try:
                walk.generic(UOp("_NOT_A_UOP"))
            except KeyError:
                pass
        loop, args = _loop_walk({"_POP_TOP": lambda walk, uop, index: uop.oparg}, loop_uops,
                                loop_states)
        loop.walk_uops(*args)

    for _ in range(20):
        one_round()
    gc.collect()
    held = (*uops, *[item for item in STACKS[3] if item is not None], unbox._GENERIC,
            *loop_uops, *loop_states, loop_uops[0].name, loop_uops[2].name)
    counts = [sys.getrefcount(x) for x in held]
    grown = growth_per_batch(one_round, rounds=200)
    assert min(grown) < 4096, f"bytes more after each 200 rounds: {grown}"
    assert [sys.getrefcount(x) for x in held] == counts


class Marker:
    pass


@pytest.mark.parametrize("field", ["stack", "raw", "sync_steps", "syncs", "clean", "exit_cache",
                                   "interned", "out", "current", "deopts", "generic_info",
                                   "uop_type", "exit_step_type"])
def test_a_cycle_through_the_state_is_collected(field):
    # (The type traverses each field: a cycle through any of them is found.)
    walk, marker = _walk(unbox._Walk), Marker()
    holder = type("Holder", (), {})()  # (an object to hang the cycle on, in any field)
    holder.walk, holder.marker = walk, marker
    setattr(walk, field, holder)
    alive = weakref.ref(marker)
    del walk, marker, holder
    gc.collect()
    assert alive() is None


def test_the_walk_s_python_side_reads_and_sets_the_state():
    walk = _walk(unbox._Walk, stack=[None])
    stack = walk.stack
    walk.stack = stack + [_virtual_raw(2)]
    assert walk.stack is not stack and walk.has_virtual()
    del walk.stack
    with pytest.raises(AttributeError):
        walk.has_virtual()
    assert isinstance(walk, _runtime.WalkCore)
    walk.flags = None  # (the subclass's own attributes: in its __dict__)
    assert "flags" in vars(walk) and "stack" not in vars(walk)


# -- the walk's loop --

def _loop_walk(handlers, uops, states=None, region_at=None):
    walk = _walk(unbox._Walk, raw=RAWS[1], syncs=SYNCS)
    states = states if states is not None else [unbox.analysis.State((), ())] * len(uops)
    region_at = region_at if region_at is not None else [RAWS[1]] * len(uops)
    return walk, (0, uops, states, region_at, handlers, unbox._Skip, unbox.LABEL)


def test_walk_uops_hands_each_uop_to_its_handler_or_generic():
    seen = []

    def handled(walk, uop, index):
        seen.append((uop.name, index))
        return uop.oparg == 1  # (else: generic)

    def skipped(walk, uop, index):
        seen.append((uop.name, index))
        raise unbox._Skip("not here")

    uops = [UOp("_POP_TOP", 1), UOp("_POP_TOP", 0), UOp("_PUSH_NULL"), UOp("_CHECK_EVAL_BREAKER")]
    item = unbox.analysis.Item()
    states = [unbox.analysis.State(stack, ()) for stack in ((item,), (item,), (), (item,))]
    walk, args = _loop_walk({"_POP_TOP": handled, "_PUSH_NULL": skipped}, uops, states)
    assert walk.walk_uops(*args) == 4
    assert seen == [("_POP_TOP", 0), ("_POP_TOP", 1), ("_PUSH_NULL", 2)]
    # generic: the second _POP_TOP, the _NOP and the eval breaker (with exit steps)
    # (and the raw locals synced before the eval breaker, which needs the frame)
    assert [u.name for u in walk.out] == ["_POP_TOP", "_PUSH_NULL", "_SYNC_LOCAL_I64",
                                          "_SYNC_LOCAL_I64", "_CHECK_EVAL_BREAKER"]
    assert walk.out[-1].exit_steps == walk.sync_steps and walk.current is uops[-1]


def test_walk_uops_passes_other_errors_on():
    def failing(walk, uop, index):
        raise ZeroDivisionError("in a handler")

    walk, args = _loop_walk({"_PUSH_NULL": failing}, [UOp("_PUSH_NULL")])
    with pytest.raises(ZeroDivisionError, match="in a handler"):
        walk.walk_uops(*args)


@pytest.mark.parametrize("change, error, message", [
    (lambda a: a[:6], TypeError, "takes 7 arguments"),
    (lambda a: (-1, *a[1:]), ValueError, "start must be >= 0"),
    (lambda a: ("0", *a[1:]), TypeError, "integer"),
    (lambda a: (a[0], tuple(a[1]), *a[2:]), TypeError, "must be lists"),
    (lambda a: (*a[:4], [], *a[5:]), TypeError, "handlers must be a dict"),
    (lambda a: (*a[:5], ValueError(), a[6]), TypeError, "skip an exception class"),
    (lambda a: (*a[:6], None), TypeError, "label a str"),
    (lambda a: (a[0], a[1], [(1, 2)], a[3], *a[4:]), TypeError, "state must be a"),
    (lambda a: (a[0], a[1], [None], a[3], *a[4:]), None, None),
])
def test_walk_uops_bad_arguments(change, error, message):
    walk, args = _loop_walk({}, [UOp("_PUSH_NULL")])
    if error is None:
        assert walk.walk_uops(*change(args)) == 1  # (unreachable: kept)
        return
    with pytest.raises(error, match=message):
        walk.walk_uops(*change(args))


def test_walk_uops_stops_where_nothing_is_unboxed():
    walk, args = _loop_walk({}, [UOp("_PUSH_NULL")] * 3)
    walk.raw = {}
    assert walk.walk_uops(*args) == 1 and len(walk.out) == 1
