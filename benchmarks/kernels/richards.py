"""Richards-style scheduler: prioritised tasks exchanging packets through queues.

A worker fills work packets and hands them to two handlers; each handler turns
the words of a work packet into device packets for its device; a device holds
itself after taking a packet until the idle task releases it.  Plain objects,
instance attributes, a linked-list queue and one `step` method per task kind.
"""

DEVICE_PACKET = 0
WORK_PACKET = 1
IDLE, WORKER, HANDLER_A, HANDLER_B, DEVICE_A, DEVICE_B = range(6)


class Packet:
    def __init__(self, kind, owner):
        self.link = None
        self.kind = kind
        self.owner = owner  # the task that sends it back and forth
        self.index = 0
        self.words = [0, 0, 0, 0]

    def append_to(self, queue):
        """Put this packet at the end of `queue` (its first packet, or None); the new head."""
        self.link = None
        if queue is None:
            return self
        last = queue
        while last.link is not None:
            last = last.link
        last.link = self
        return queue


class Task:
    def __init__(self, scheduler, ident, priority):
        self.scheduler = scheduler
        self.ident = ident
        self.priority = priority
        self.queue = None
        self.held = False
        self.waiting = False

    def runnable(self):
        return not self.held and (self.queue is not None or not self.waiting)

    def receive(self, packet):
        self.queue = packet.append_to(self.queue)

    def take(self):
        packet = self.queue
        self.queue = packet.link
        packet.link = None
        return packet

    def step(self):
        raise NotImplementedError


class IdleTask(Task):
    """Lowest priority: releases a device chosen by a pseudo-random bit, `count` times."""

    def __init__(self, scheduler, ident, priority, count):
        super().__init__(scheduler, ident, priority)
        self.count = count
        self.seed = 1

    def step(self):
        self.count -= 1
        if self.count == 0:
            self.scheduler.hold(self)
            return
        self.seed = (self.seed * 1103515245 + 12345) & 0x7FFFFFFF
        self.scheduler.release(DEVICE_A if self.seed & 0x10000 else DEVICE_B)


class WorkerTask(Task):
    """Fills each work packet it gets with letters and sends it to the handlers in turn."""

    def __init__(self, scheduler, ident, priority):
        super().__init__(scheduler, ident, priority)
        self.destination = HANDLER_A
        self.letter = 0

    def step(self):
        if self.queue is None:
            self.waiting = True
            return
        self.waiting = False
        packet = self.take()
        self.destination = HANDLER_B if self.destination == HANDLER_A else HANDLER_A
        for k in range(len(packet.words)):
            packet.words[k] = 65 + self.letter
            self.letter = (self.letter + 1) % 26
        packet.index = 0
        self.scheduler.send(packet, self.destination)


class HandlerTask(Task):
    """Pairs the next word of a work packet with a free device packet for its device."""

    def __init__(self, scheduler, ident, priority, device):
        super().__init__(scheduler, ident, priority)
        self.device = device
        self.work = None
        self.devices = None

    def step(self):
        while self.queue is not None:
            packet = self.take()
            if packet.kind == WORK_PACKET:
                self.work = packet.append_to(self.work)
            else:
                self.devices = packet.append_to(self.devices)
        work = self.work
        if work is None or (self.devices is None and work.index < len(work.words)):
            self.waiting = True
            return
        self.waiting = False
        if work.index == len(work.words):
            self.work = work.link
            self.scheduler.send(work, WORKER)
            return
        device_packet = self.devices
        self.devices = device_packet.link
        device_packet.index = work.words[work.index]
        work.index += 1
        self.scheduler.send(device_packet, self.device)


class DeviceTask(Task):
    """Takes a packet, holds itself until released, then returns the packet."""

    def __init__(self, scheduler, ident, priority):
        super().__init__(scheduler, ident, priority)
        self.pending = None
        self.checksum = 0

    def step(self):
        if self.pending is not None:
            packet = self.pending
            self.pending = None
            self.checksum = (self.checksum * 7 + packet.index) % 65521
            self.scheduler.send(packet, packet.owner)
        elif self.queue is None:
            self.waiting = True
        else:
            self.waiting = False
            self.pending = self.take()
            self.scheduler.hold(self)


class Scheduler:
    """Runs the highest-priority runnable task, one step at a time, until none is."""

    def __init__(self):
        self.tasks = {}
        self.by_priority = []
        self.sends = 0
        self.holds = 0

    def add(self, task):
        self.tasks[task.ident] = task
        self.by_priority.append(task)
        self.by_priority.sort(key=lambda t: -t.priority)

    def send(self, packet, destination):
        self.sends += 1
        self.tasks[destination].receive(packet)

    def hold(self, task):
        self.holds += 1
        task.held = True

    def release(self, ident):
        self.tasks[ident].held = False

    def run(self):
        steps = 0
        while True:
            for task in self.by_priority:
                if task.runnable():
                    break
            else:
                return steps
            task.step()
            steps += 1


def richards(idle_count):
    scheduler = Scheduler()
    scheduler.add(IdleTask(scheduler, IDLE, 0, idle_count))
    scheduler.add(WorkerTask(scheduler, WORKER, 1000))
    scheduler.add(HandlerTask(scheduler, HANDLER_A, 2000, DEVICE_A))
    scheduler.add(HandlerTask(scheduler, HANDLER_B, 3000, DEVICE_B))
    scheduler.add(DeviceTask(scheduler, DEVICE_A, 4000))
    scheduler.add(DeviceTask(scheduler, DEVICE_B, 5000))
    for _ in range(2):
        scheduler.send(Packet(WORK_PACKET, WORKER), WORKER)
    for handler in (HANDLER_A, HANDLER_B):
        for _ in range(3):
            scheduler.send(Packet(DEVICE_PACKET, handler), handler)
    steps = scheduler.run()
    devices = scheduler.tasks[DEVICE_A], scheduler.tasks[DEVICE_B]
    return steps, scheduler.sends, scheduler.holds, [d.checksum for d in devices]


MAIN = "richards"
ARGS = (5_000,)
